// The one Beast translation unit of the client side. Everything Beast-typed stays in here.
#include "common/websocket/client.hpp"

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <optional>
#include <utility>

namespace jetstream::websocket {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ws = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string_view to_string(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::dns: return "dns";
    case ErrorCategory::connect: return "connect";
    case ErrorCategory::tls: return "tls";
    case ErrorCategory::handshake: return "handshake";
    case ErrorCategory::closed_by_peer: return "closed_by_peer";
    case ErrorCategory::stall: return "stall";
    case ErrorCategory::read_error: return "read_error";
    case ErrorCategory::protocol: return "protocol";
  }
  return "unknown";
}

namespace {

std::string millis(std::chrono::milliseconds value) {
  return std::to_string(value.count()) + " ms";
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

/// How a failed read on an open connection is reported.
ClientError classify_read_error(const beast::error_code& ec, const ws::close_reason& reason) {
  if (ec == ws::error::closed) {
    std::string message = "peer sent close frame, code " + std::to_string(reason.code);
    if (!reason.reason.empty()) message += ": " + std::string(reason.reason.c_str());
    return {ErrorCategory::closed_by_peer, std::move(message)};
  }
  if (ec == net::error::eof || ec == net::error::connection_reset ||
      ec == net::error::broken_pipe || ec == ssl::error::stream_truncated) {
    return {ErrorCategory::closed_by_peer, "connection closed by peer: " + ec.message()};
  }
  if (ec == ws::error::message_too_big) {
    return {ErrorCategory::protocol, "message over the size limit"};
  }
  if (ec == ws::condition::protocol_violation) {
    return {ErrorCategory::protocol, "websocket protocol violation: " + ec.message()};
  }
  return {ErrorCategory::read_error, "read failed: " + ec.message()};
}

}  // namespace

class WebSocketClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  using Strand = net::strand<net::io_context::executor_type>;
  using PlainStream = ws::stream<beast::tcp_stream>;
  using TlsStream = ws::stream<beast::ssl_stream<beast::tcp_stream>>;

  Impl(net::io_context& io, ClientOptions options, ClientHandlers handlers)
      : strand_(net::make_strand(io)),
        resolver_(strand_),
        timer_(strand_),
        options_(std::move(options)),
        handlers_(std::move(handlers)) {}

  void connect(WebSocketUrl url) {
    if (started_.exchange(true)) return;
    net::post(strand_, [self = shared_from_this(), url = std::move(url)]() mutable {
      self->do_resolve(std::move(url));
    });
  }

  void close() {
    if (closed_.exchange(true)) return;
    net::post(strand_, [self = shared_from_this()] { self->do_close(); });
  }

 private:
  enum class Stage : std::uint8_t { idle, resolving, connecting, tls, upgrading, open, done };

  bool stopped() const { return closed_.load(std::memory_order_relaxed) || stage_ == Stage::done; }

  beast::tcp_stream& lowest() {
    return tls_ ? beast::get_lowest_layer(*tls_) : beast::get_lowest_layer(*plain_);
  }

  /// Calls `f` with whichever websocket stream this connection uses.
  template <typename F>
  void with_stream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  void do_resolve(WebSocketUrl url) {
    if (stopped()) return;
    url_ = std::move(url);
    if (url_.tls) {
      ssl_context_.emplace(ssl::context::tls_client);
      ssl_context_->set_verify_mode(ssl::verify_peer);
      beast::error_code ec;
      if (options_.trust_system_cas) ssl_context_->set_default_verify_paths(ec);
      if (!ec && !options_.extra_ca_file.empty()) {
        ssl_context_->load_verify_file(options_.extra_ca_file, ec);
      }
      if (ec) return fail({ErrorCategory::tls, "cannot load CA certificates: " + ec.message()});
      tls_.emplace(strand_, *ssl_context_);
    } else {
      plain_.emplace(strand_);
    }
    stage_ = Stage::resolving;
    connect_deadline_ = Clock::now() + options_.connect_timeout;
    timer_.expires_at(connect_deadline_);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && self->stage_ == Stage::resolving) {
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

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (stopped()) return;
    timer_.cancel();
    if (resolve_timed_out_) {
      return fail({ErrorCategory::dns, "resolving " + url_.host + " timed out after " +
                                           millis(options_.connect_timeout)});
    }
    if (ec) return fail({ErrorCategory::dns, "cannot resolve " + url_.host + ": " + ec.message()});
    stage_ = Stage::connecting;
    lowest().expires_at(connect_deadline_);
    lowest().async_connect(
        results, [self = shared_from_this()](beast::error_code connect_ec, const tcp::endpoint&) {
          self->on_connect(connect_ec);
        });
  }

  void on_connect(beast::error_code ec) {
    if (stopped()) return;
    if (ec == beast::error::timeout) {
      return fail({ErrorCategory::connect, "connect to " + url_.host_header() +
                                               " timed out after " +
                                               millis(options_.connect_timeout)});
    }
    if (ec) {
      return fail(
          {ErrorCategory::connect, "connect to " + url_.host_header() + ": " + ec.message()});
    }
    if (!tls_) return upgrade();
    stage_ = Stage::tls;
    auto& tls_stream = tls_->next_layer();
    if (!is_ip_literal(url_.host) &&
        // SSL_set_tlsext_host_name() is a macro with a C cast; this is its expansion.
        SSL_ctrl(tls_stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                 TLSEXT_NAMETYPE_host_name, const_cast<char*>(url_.host.c_str())) != 1) {
      return fail({ErrorCategory::tls, "cannot set SNI host name"});
    }
    tls_stream.set_verify_callback(ssl::host_name_verification(url_.host));
    lowest().expires_after(options_.handshake_timeout);
    tls_stream.async_handshake(
        ssl::stream_base::client,
        [self = shared_from_this()](beast::error_code tls_ec) { self->on_tls_handshake(tls_ec); });
  }

  void on_tls_handshake(beast::error_code ec) {
    if (stopped()) return;
    if (ec == beast::error::timeout) {
      return fail({ErrorCategory::tls,
                   "TLS handshake timed out after " + millis(options_.handshake_timeout)});
    }
    if (ec) return fail({ErrorCategory::tls, "TLS handshake: " + ec.message()});
    upgrade();
  }

  void upgrade() {
    stage_ = Stage::upgrading;
    lowest().expires_never();
    with_stream([this](auto& stream) {
      stream.set_option(
          ws::stream_base::timeout{options_.handshake_timeout, ws::stream_base::none(), false});
      stream.set_option(
          ws::stream_base::decorator([agent = options_.user_agent](ws::request_type& request) {
            request.set(http::field::user_agent, agent);
          }));
      stream.read_message_max(options_.max_message_bytes);
      stream.control_callback(
          [this](ws::frame_type, beast::string_view) { last_received_ = Clock::now(); });
      stream.async_handshake(
          response_, url_.host_header(), url_.target,
          [self = shared_from_this()](beast::error_code ec) { self->on_upgrade(ec); });
    });
  }

  void on_upgrade(beast::error_code ec) {
    if (stopped()) return;
    if (ec == ws::error::upgrade_declined) {
      return fail({ErrorCategory::handshake,
                   "upgrade declined: HTTP " + std::to_string(response_.result_int())});
    }
    if (ec == beast::error::timeout) {
      return fail({ErrorCategory::handshake,
                   "websocket upgrade timed out after " + millis(options_.handshake_timeout)});
    }
    if (ec) return fail({ErrorCategory::handshake, "websocket upgrade: " + ec.message()});
    stage_ = Stage::open;
    const auto now = Clock::now();
    last_received_ = last_message_ = last_ping_ = now;
    if (handlers_.on_open) handlers_.on_open();
    if (stopped()) return;
    arm_watchdog();
    read();
  }

  void read() {
    with_stream([this](auto& stream) {
      stream.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        self->on_read(ec);
      });
    });
  }

  void on_read(beast::error_code ec) {
    if (stopped()) return;
    if (ec) {
      ws::close_reason reason;
      with_stream([&reason](auto& stream) { reason = stream.reason(); });
      return fail(classify_read_error(ec, reason));
    }
    bool binary = true;
    with_stream([&binary](auto& stream) { binary = stream.got_binary(); });
    if (!binary) return fail({ErrorCategory::protocol, "text message (want binary frames only)"});
    last_received_ = last_message_ = Clock::now();
    const auto data = buffer_.cdata();
    const auto* begin = static_cast<const std::uint8_t*>(data.data());
    std::vector<std::uint8_t> message(begin, begin + data.size());
    buffer_.consume(buffer_.size());
    if (handlers_.on_message) handlers_.on_message(std::move(message));
    if (stopped()) return;
    read();
  }

  std::chrono::milliseconds watchdog_tick() const {
    std::chrono::milliseconds tick{1000};
    for (const auto value :
         {options_.ping_interval, options_.idle_timeout, options_.message_timeout}) {
      if (value.count() > 0) tick = std::min(tick, value / 4);
    }
    return std::max(tick, std::chrono::milliseconds{10});
  }

  void arm_watchdog() {
    timer_.expires_after(watchdog_tick());
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->on_watchdog();
    });
  }

  void on_watchdog() {
    if (stopped() || stage_ != Stage::open) return;
    const auto now = Clock::now();
    if (options_.idle_timeout.count() > 0 && now - last_received_ >= options_.idle_timeout) {
      return fail({ErrorCategory::stall,
                   "nothing received (not even a pong) for " + millis(options_.idle_timeout)});
    }
    if (options_.message_timeout.count() > 0 && now - last_message_ >= options_.message_timeout) {
      return fail({ErrorCategory::stall, "no message for " + millis(options_.message_timeout)});
    }
    if (options_.ping_interval.count() > 0 && !ping_in_flight_ &&
        now - last_ping_ >= options_.ping_interval) {
      ping_in_flight_ = true;
      last_ping_ = now;
      with_stream([this](auto& stream) {
        stream.async_ping(
            {}, [self = shared_from_this()](beast::error_code) { self->ping_in_flight_ = false; });
      });
    }
    arm_watchdog();
  }

  void fail(ClientError error) {
    if (stopped()) return;
    stage_ = Stage::done;
    teardown();
    auto on_error = std::move(handlers_.on_error);
    handlers_ = {};
    if (on_error) on_error(error);
  }

  void teardown() {
    timer_.cancel();
    resolver_.cancel();
    if (tls_ || plain_) {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest().close();
    }
  }

  void do_close() {
    handlers_ = {};
    if (stage_ == Stage::done) return;
    const bool open = stage_ == Stage::open;
    stage_ = Stage::done;
    timer_.cancel();
    resolver_.cancel();
    if (open && !ping_in_flight_) {
      // The websocket timeout's handshake part bounds the close handshake too.
      with_stream([this](auto& stream) {
        stream.async_close(ws::close_code::normal,
                           [self = shared_from_this()](beast::error_code) { self->teardown(); });
      });
      return;
    }
    teardown();
  }

  Strand strand_;
  tcp::resolver resolver_;
  net::steady_timer timer_;
  ClientOptions options_;
  ClientHandlers handlers_;
  WebSocketUrl url_;
  std::optional<ssl::context> ssl_context_;
  std::optional<PlainStream> plain_;
  std::optional<TlsStream> tls_;
  beast::flat_buffer buffer_;
  ws::response_type response_;
  std::atomic<bool> started_{false};
  std::atomic<bool> closed_{false};
  Stage stage_ = Stage::idle;
  bool resolve_timed_out_ = false;
  bool ping_in_flight_ = false;
  Clock::time_point connect_deadline_{};
  Clock::time_point last_received_{};
  Clock::time_point last_message_{};
  Clock::time_point last_ping_{};
};

WebSocketClient::WebSocketClient(boost::asio::io_context& io, ClientOptions options,
                                 ClientHandlers handlers)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(handlers))) {}

WebSocketClient::~WebSocketClient() { close(); }

void WebSocketClient::connect(WebSocketUrl url) { impl_->connect(std::move(url)); }

void WebSocketClient::close() { impl_->close(); }

}  // namespace jetstream::websocket
