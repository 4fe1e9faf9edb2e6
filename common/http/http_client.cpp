#include "common/http/http_client.hpp"

#include <openssl/ssl.h>
#include <zlib.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "common/websocket/url.hpp"

namespace jetstream::http {

std::string_view to_string(FetchError error) {
  switch (error) {
    case FetchError::bad_url: return "bad_url";
    case FetchError::plain_http_refused: return "plain_http_refused";
    case FetchError::dns: return "dns";
    case FetchError::forbidden_address: return "forbidden_address";
    case FetchError::connect: return "connect";
    case FetchError::tls: return "tls";
    case FetchError::timeout: return "timeout";
    case FetchError::too_large: return "too_large";
    case FetchError::bad_response: return "bad_response";
    case FetchError::too_many_redirects: return "too_many_redirects";
    case FetchError::aborted: return "aborted";
  }
  return "unknown";
}

namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

constexpr std::size_t kMaxHeadBytes = 16 * 1024;
constexpr std::size_t kMaxDetailBytes = 256;

std::string bounded(std::string text) {
  if (text.size() > kMaxDetailBytes) text.resize(kMaxDetailBytes);
  return text;
}

AddressClass classify(const net::ip::address& address) {
  return address.is_v4() ? classify_ipv4(address.to_v4().to_bytes())
                         : classify_ipv6(address.to_v6().to_bytes());
}

enum class GunzipOutcome : std::uint8_t { ok, corrupt, too_large };

/// Inflates a gzip body with zlib, stopping once the output passes `cap` (a gzip bomb is a
/// too_large response, not an allocation of its inflated size).
GunzipOutcome gunzip(std::string_view input, std::size_t cap, std::string& out) {
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    std::fputs("fatal: zlib inflateInit2 failed\n", stderr);
    std::abort();
  }
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  stream.avail_in = static_cast<uInt>(input.size());
  std::array<char, 16384> chunk{};
  int status = Z_OK;
  GunzipOutcome outcome = GunzipOutcome::ok;
  while (status != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk.data());
    stream.avail_out = static_cast<uInt>(chunk.size());
    status = inflate(&stream, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      outcome = GunzipOutcome::corrupt;
      break;
    }
    out.append(chunk.data(), chunk.size() - stream.avail_out);
    if (out.size() > cap) {
      outcome = GunzipOutcome::too_large;
      break;
    }
    if (status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
      outcome = GunzipOutcome::corrupt;  // the input ended before the gzip stream did
      break;
    }
  }
  inflateEnd(&stream);
  return outcome;
}

}  // namespace

struct HttpClient::Impl {
  explicit Impl(Options client_options) : options(std::move(client_options)) {
    tls.set_verify_mode(ssl::verify_peer);
    beast::error_code ec;
    tls.set_default_verify_paths(ec);
    if (!options.extra_ca_file.empty()) tls.load_verify_file(options.extra_ca_file, ec);
    thread = std::thread([this] { io.run(); });
  }
  ~Impl() {
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Options options;
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> work{io.get_executor()};
  ssl::context tls{ssl::context::tls_client};
  Counters counters;
  std::thread thread;
};

namespace {

/// One GET, through its redirects. Lives as long as an asynchronous operation holds it.
class Fetch : public std::enable_shared_from_this<Fetch> {
 public:
  Fetch(HttpClient::Impl& client, FetchLimits limits, HttpClient::Callback done)
      : client_(client),
        limits_(limits),
        done_(std::move(done)),
        resolver_(client.io),
        resolve_deadline_(client.io) {}
  /// A streamed fetch (HttpClient::get_stream).
  Fetch(HttpClient::Impl& client, FetchLimits limits, HttpClient::Stream stream)
      : Fetch(client, limits, std::move(stream.done)) {
    on_chunk_ = std::move(stream.on_chunk);
  }
  ~Fetch() {
    if (inflating_) inflateEnd(&inflater_);
  }
  Fetch(const Fetch&) = delete;
  Fetch& operator=(const Fetch&) = delete;

  void start(const std::string& url_text) {
    std::string why;
    auto url = websocket::parse_http_url(url_text, &why);
    if (!url) return finish(FetchError::bad_url, bounded(url_text + ": " + why));
    if (!url->tls && !client_.options.policy.permits_plain_http(url->host)) {
      return finish(FetchError::plain_http_refused, bounded("plain http to " + url->host));
    }
    url_ = *url;
    result_.final_url = url_.to_string();
    plain_.reset();
    tls_.reset();
    resolve_timed_out_ = false;
    resolve_deadline_.expires_after(limits_.connect_timeout);
    resolve_deadline_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (auto self = weak.lock(); self && !ec) {
        self->resolve_timed_out_ = true;
        self->resolver_.cancel();
      }
    });
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port),
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
          self->on_resolve(ec, std::move(results));
        });
  }

 private:
  template <class F>
  void with_stream(F&& use) {
    if (tls_) {
      use(*tls_);
    } else {
      use(*plain_);
    }
  }
  beast::tcp_stream& tcp_layer() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    resolve_deadline_.cancel();
    if (resolve_timed_out_) return finish(FetchError::timeout, "resolving " + url_.host);
    if (ec) return finish(FetchError::dns, bounded(url_.host + ": " + ec.message()));
    std::vector<tcp::endpoint> permitted;
    std::optional<AddressClass> refused;
    for (const auto& entry : results) {
      const AddressClass address_class = classify(entry.endpoint().address());
      if (client_.options.policy.permits(url_.host, address_class)) {
        permitted.push_back(entry.endpoint());
      } else {
        refused = address_class;
        client_.counters.refused_addresses[static_cast<std::size_t>(address_class)].fetch_add(
            1, std::memory_order_relaxed);
      }
    }
    if (permitted.empty()) {
      result_.refused_class = refused;
      return finish(
          FetchError::forbidden_address,
          bounded(url_.host + " resolves only to " +
                  std::string(to_string(refused.value_or(AddressClass::reserved))) + " addresses"));
    }
    if (url_.tls) {
      tls_.emplace(client_.io, client_.tls);
      beast::error_code not_literal;
      net::ip::make_address(url_.host, not_literal);
      if (not_literal) {  // SNI names hosts, never addresses
        // SSL_set_tlsext_host_name() is a macro with a C cast; this is its expansion.
        SSL_ctrl(tls_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(url_.host.c_str()));
      }
      tls_->set_verify_callback(ssl::host_name_verification(url_.host));
    } else {
      plain_.emplace(client_.io);
    }
    tcp_layer().expires_after(limits_.connect_timeout);
    tcp_layer().async_connect(
        permitted, [self = shared_from_this()](beast::error_code connect_ec, const tcp::endpoint&) {
          self->on_connect(connect_ec);
        });
  }

  void on_connect(beast::error_code ec) {
    if (ec) return fail_stage(ec, FetchError::connect, "connecting to " + url_.host);
    if (!tls_) return send_request();
    tls_->async_handshake(
        ssl::stream_base::client, [self = shared_from_this()](beast::error_code handshake_ec) {
          if (handshake_ec) {
            return self->fail_stage(handshake_ec, FetchError::tls, "TLS with " + self->url_.host);
          }
          self->send_request();
        });
  }

  void send_request() {
    request_ = {};
    request_.method(bhttp::verb::get);
    request_.target(url_.target);
    request_.version(11);
    request_.set(bhttp::field::host, url_.host_header());
    request_.set(bhttp::field::user_agent, client_.options.user_agent);
    // A streamed body is handed over as it comes: no coding is asked for (one sent anyway is
    // inflated as it streams).
    request_.set(bhttp::field::accept_encoding, on_chunk_ ? "identity" : "gzip");
    request_.set(bhttp::field::connection, "close");
    tcp_layer().expires_after(limits_.header_timeout);
    with_stream([this](auto& stream) {
      bhttp::async_write(stream, request_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                           if (ec) return self->fail_stage(ec, FetchError::connect, "sending");
                           self->read_head();
                         });
    });
  }

  void read_head() {
    buffer_.clear();
    if (on_chunk_) {
      stream_parser_.emplace();
      stream_parser_->header_limit(kMaxHeadBytes);
      stream_parser_->body_limit(limits_.max_body_bytes);
      with_stream([this](auto& stream) {
        bhttp::async_read_header(
            stream, buffer_, *stream_parser_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_head(ec); });
      });
      return;
    }
    parser_.emplace();
    parser_->header_limit(kMaxHeadBytes);
    parser_->body_limit(limits_.max_body_bytes);
    with_stream([this](auto& stream) {
      bhttp::async_read_header(
          stream, buffer_, *parser_,
          [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_head(ec); });
    });
  }

  /// The politeness and content headers every caller may want, from the final response.
  void capture_headers(const bhttp::response_header<>& response) {
    result_.status = response.result_int();
    auto header = [&response](bhttp::field field) -> std::optional<std::string> {
      const auto found = response.find(field);
      if (found == response.end()) return std::nullopt;
      return bounded(std::string(found->value()));
    };
    auto named_header = [&response](std::string_view name) -> std::optional<std::string> {
      const auto found = response.find(beast::string_view(name.data(), name.size()));
      if (found == response.end()) return std::nullopt;
      return bounded(std::string(found->value()));
    };
    result_.content_type = header(bhttp::field::content_type).value_or("");
    result_.retry_after = header(bhttp::field::retry_after);
    result_.ratelimit_remaining = named_header("ratelimit-remaining");
    result_.ratelimit_reset = named_header("ratelimit-reset");
    content_encoding_ = header(bhttp::field::content_encoding).value_or("identity");
  }

  void on_head(beast::error_code ec) {
    if (ec) return fail_stage(ec, FetchError::bad_response, "reading the response head");
    const bhttp::response_header<>& head =
        stream_parser_ ? stream_parser_->get().base() : parser_->get().base();
    const unsigned status = head.result_int();
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
      const auto location = head.find(bhttp::field::location);
      if (location == head.end())
        return finish(FetchError::bad_response, "redirect without Location");
      if (++redirects_ > limits_.max_redirects) {
        return finish(FetchError::too_many_redirects, bounded(result_.final_url));
      }
      std::string next(location->value());
      if (!next.empty() && next.front() == '/') {
        next = std::string(url_.tls ? "https://" : "http://") + url_.host_header() + next;
      }
      return start(next);  // the new host is resolved and checked like the first
    }
    if (stream_parser_) {
      capture_headers(head);
      if (beast::iequals(content_encoding_, "gzip")) {
        if (inflateInit2(&inflater_, 16 + MAX_WBITS) != Z_OK) {
          std::fputs("fatal: zlib inflateInit2 failed\n", stderr);
          std::abort();
        }
        inflating_ = true;
      } else if (!beast::iequals(content_encoding_, "identity")) {
        return finish(FetchError::bad_response, bounded("content-encoding " + content_encoding_));
      }
      streaming_ok_ = status >= 200 && status < 300;
      chunk_.resize(kStreamChunkBytes);
      return read_chunk();
    }
    tcp_layer().expires_after(limits_.body_timeout);
    with_stream([this](auto& stream) {
      bhttp::async_read(stream, buffer_, *parser_,
                        [self = shared_from_this()](beast::error_code read_ec, std::size_t) {
                          self->on_body(read_ec);
                        });
    });
  }

  // ---- Streamed bodies (get_stream): a fixed buffer refilled until the body ends.

  void read_chunk() {
    auto& body = stream_parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    // The timeout is the longest wait for the next bytes: a repository of hundreds of MiB
    // takes as long as it takes, a stalled one does not.
    tcp_layer().expires_after(limits_.body_timeout);
    with_stream([this](auto& stream) {
      bhttp::async_read_some(stream, buffer_, *stream_parser_,
                             [self = shared_from_this()](beast::error_code ec, std::size_t) {
                               self->on_stream_bytes(ec);
                             });
    });
  }

  void on_stream_bytes(beast::error_code ec) {
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) return fail_stage(ec, FetchError::bad_response, "reading the body");
    const std::size_t got = chunk_.size() - stream_parser_->get().body().size;
    if (got > 0 && !take({chunk_.data(), got})) return;
    if (stream_parser_->is_done()) {
      if (inflating_ && !inflated_end_) {
        return finish(FetchError::bad_response, "the gzip body ended early");
      }
      return finish(std::nullopt, {});
    }
    read_chunk();
  }

  /// Hands streamed bytes on (inflated first when the body is gzip); false once finished.
  bool take(std::span<const std::uint8_t> bytes) {
    if (!inflating_) return deliver(bytes);
    inflater_.next_in = const_cast<Bytef*>(bytes.data());
    inflater_.avail_in = static_cast<uInt>(bytes.size());
    std::array<std::uint8_t, 65536> out{};
    while (inflater_.avail_in > 0 && !inflated_end_) {
      inflater_.next_out = out.data();
      inflater_.avail_out = static_cast<uInt>(out.size());
      const int status = inflate(&inflater_, Z_NO_FLUSH);
      if (status != Z_OK && status != Z_STREAM_END) {
        finish(FetchError::bad_response, "corrupt gzip body");
        return false;
      }
      inflated_end_ = status == Z_STREAM_END;
      const std::size_t produced = out.size() - inflater_.avail_out;
      if (produced > 0 && !deliver({out.data(), produced})) return false;
    }
    return true;
  }

  bool deliver(std::span<const std::uint8_t> bytes) {
    delivered_ += bytes.size();
    if (!streaming_ok_) {
      // An error status: keep the start of its text for the caller's log line.
      const std::size_t room =
          kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, result_.body.size());
      result_.body.append(reinterpret_cast<const char*>(bytes.data()),
                          std::min(room, bytes.size()));
      if (result_.body.size() >= kMaxErrorBodyBytes) {
        finish(std::nullopt, {});
        return false;
      }
      return true;
    }
    if (delivered_ > limits_.max_body_bytes) {
      finish(FetchError::too_large, "inflated body");
      return false;
    }
    if (!on_chunk_(bytes)) {
      finish(FetchError::aborted, "the body's consumer stopped it");
      return false;
    }
    return true;
  }

  void on_body(beast::error_code ec) {
    if (ec) return fail_stage(ec, FetchError::bad_response, "reading the body");
    capture_headers(parser_->get().base());
    auto response = parser_->release();
    const std::string encoding = content_encoding_;
    if (beast::iequals(encoding, "gzip")) {
      switch (gunzip(response.body(), limits_.max_body_bytes, result_.body)) {
        case GunzipOutcome::ok: break;
        case GunzipOutcome::corrupt: return finish(FetchError::bad_response, "corrupt gzip body");
        case GunzipOutcome::too_large: return finish(FetchError::too_large, "inflated body");
      }
    } else if (beast::iequals(encoding, "identity")) {
      result_.body = std::move(response.body());
    } else {
      return finish(FetchError::bad_response, bounded("content-encoding " + encoding));
    }
    finish(std::nullopt, {});
  }

  void fail_stage(beast::error_code ec, FetchError otherwise, const std::string& stage) {
    if (ec == beast::error::timeout) return finish(FetchError::timeout, bounded(stage));
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit ||
        ec == bhttp::error::buffer_overflow) {
      return finish(FetchError::too_large, bounded(stage));
    }
    finish(otherwise, bounded(stage + ": " + ec.message()));
  }

  void finish(std::optional<FetchError> error, std::string detail) {
    if (!done_) return;
    result_.error = error;
    result_.detail = std::move(detail);
    if (error) {
      client_.counters.errors[static_cast<std::size_t>(*error)].fetch_add(
          1, std::memory_order_relaxed);
    }
    client_.counters.in_flight.fetch_sub(1, std::memory_order_relaxed);
    auto done = std::move(done_);
    done_ = nullptr;
    beast::error_code ignored;
    if (plain_) plain_->socket().close(ignored);
    if (tls_) beast::get_lowest_layer(*tls_).socket().close(ignored);
    done(std::move(result_));
  }

  HttpClient::Impl& client_;
  FetchLimits limits_;
  HttpClient::Callback done_;
  tcp::resolver resolver_;
  net::steady_timer resolve_deadline_;
  bool resolve_timed_out_ = false;
  websocket::WebSocketUrl url_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  bhttp::request<bhttp::empty_body> request_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  beast::flat_buffer buffer_;
  std::string content_encoding_;
  // get_stream only.
  static constexpr std::size_t kStreamChunkBytes = 256 * 1024;
  static constexpr std::size_t kMaxErrorBodyBytes = 64 * 1024;
  std::function<bool(std::span<const std::uint8_t>)> on_chunk_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> stream_parser_;
  std::vector<std::uint8_t> chunk_;
  bool streaming_ok_ = false;  ///< a 2xx: chunks go to on_chunk_, else to result_.body
  std::size_t delivered_ = 0;
  z_stream inflater_{};
  bool inflating_ = false;
  bool inflated_end_ = false;
  int redirects_ = 0;
  FetchResult result_;
};

}  // namespace

HttpClient::HttpClient(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpClient::~HttpClient() = default;

void HttpClient::get(std::string url, FetchLimits limits, Callback done) {
  impl_->counters.requests.fetch_add(1, std::memory_order_relaxed);
  impl_->counters.in_flight.fetch_add(1, std::memory_order_relaxed);
  net::post(impl_->io,
            [impl = impl_.get(), url = std::move(url), limits, done = std::move(done)]() mutable {
              std::make_shared<Fetch>(*impl, limits, std::move(done))->start(url);
            });
}

void HttpClient::get_stream(std::string url, FetchLimits limits, Stream stream) {
  impl_->counters.requests.fetch_add(1, std::memory_order_relaxed);
  impl_->counters.in_flight.fetch_add(1, std::memory_order_relaxed);
  net::post(impl_->io, [impl = impl_.get(), url = std::move(url), limits,
                        stream = std::move(stream)]() mutable {
    std::make_shared<Fetch>(*impl, limits, std::move(stream))->start(url);
  });
}

const HttpClient::Counters& HttpClient::counters() const { return impl_->counters; }

}  // namespace jetstream::http
