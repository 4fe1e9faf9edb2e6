// The one Beast translation unit of the server side (plain and TLS sessions).
#include "common/websocket/frame_server.hpp"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <charconv>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include "common/firehose/frame.hpp"
#include "common/websocket/url.hpp"

namespace jetstream::websocket {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ws = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

/// Time a client has for its TLS handshake, its HTTP request and the upgrade.
constexpr std::chrono::seconds kHandshakeTimeout{10};

/// What every session of one server shares. Counters are read from other threads.
struct Shared {
  std::vector<std::vector<std::uint8_t>> frames;
  std::vector<std::optional<std::int64_t>> seqs;
  FrameServerOptions options;
  std::optional<ssl::context> tls;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> open{0};
  std::atomic<std::uint64_t> sent{0};
  mutable std::mutex targets_mutex;
  std::vector<std::string> targets;

  /// Index of the first frame to send for a request with `target`.
  std::size_t start_index(std::string_view target) const {
    const auto cursor_text = query_param(target, "cursor");
    if (!cursor_text) return 0;
    std::int64_t cursor = 0;
    const char* end = cursor_text->data() + cursor_text->size();
    const auto [stop, ec] = std::from_chars(cursor_text->data(), end, cursor);
    if (ec != std::errc() || stop != end) return 0;
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      if (seqs[i] && *seqs[i] > cursor) return i;
    }
    return frames.size();
  }
};

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  /// Drops the connection at once (no close frame).
  virtual void abort() = 0;
};

template <bool kTls>
class Session : public SessionBase, public std::enable_shared_from_this<Session<kTls>> {
 public:
  using NextLayer =
      std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : ws_(make_stream(std::move(socket), *shared)),
        pacer_(ws_.get_executor()),
        shared_(std::move(shared)) {}

  ~Session() override {
    if (accepted_) shared_->open.fetch_sub(1);
  }

  void run() {
    beast::get_lowest_layer(ws_).expires_after(kHandshakeTimeout);
    if constexpr (kTls) {
      ws_.next_layer().async_handshake(ssl::stream_base::server,
                                       [self = this->shared_from_this()](beast::error_code ec) {
                                         if (!ec) self->read_request();
                                       });
    } else {
      read_request();
    }
  }

  void abort() override {
    const auto keep_alive = std::move(keep_alive_);  // may be the last reference: dies at return
    if (done_) return;
    done_ = true;
    pacer_.cancel();
    beast::error_code ignored;
    auto& lowest = beast::get_lowest_layer(ws_);
    lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest.close();
  }

 private:
  static ws::stream<NextLayer> make_stream(tcp::socket socket, Shared& shared) {
    if constexpr (kTls) {
      return ws::stream<NextLayer>(std::move(socket), *shared.tls);
    } else {
      return ws::stream<NextLayer>(std::move(socket));
    }
  }

  void read_request() {
    http::async_read(ws_.next_layer(), http_buffer_, request_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec) self->on_request();
                     });
  }

  void on_request() {
    const std::string target(request_.target());
    if (target_path(target) != shared_->options.path) return respond(http::status::not_found);
    if (!ws::is_upgrade(request_)) return respond(http::status::upgrade_required);
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(ws::stream_base::timeout{kHandshakeTimeout, ws::stream_base::none(), false});
    ws_.async_accept(request_, [self = this->shared_from_this(), target](beast::error_code ec) {
      if (!ec) self->on_accept(target);
    });
  }

  void respond(http::status status) {
    auto response = std::make_shared<http::response<http::string_body>>(status, request_.version());
    response->set(http::field::content_type, "text/plain");
    response->body() = std::string(http::obsolete_reason(status)) + "\n";
    response->keep_alive(false);
    response->prepare_payload();
    http::async_write(ws_.next_layer(), *response,
                      [self = this->shared_from_this(), response](beast::error_code, std::size_t) {
                        self->abort();
                      });
  }

  void on_accept(const std::string& target) {
    accepted_ = true;
    shared_->open.fetch_add(1);
    {
      std::lock_guard lock(shared_->targets_mutex);
      shared_->targets.push_back(target);
    }
    shared_->connections.fetch_add(1);
    next_ = shared_->start_index(target);
    started_ = Clock::now();
    ws_.binary(true);
    if (shared_->options.answer_pings) read_loop();
    send_next();
  }

  void read_loop() {
    ws_.async_read(read_buffer_,
                   [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                     if (ec) {
                       self->done_ = true;
                       self->pacer_.cancel();
                       return;
                     }
                     self->read_buffer_.consume(self->read_buffer_.size());
                     self->read_loop();
                   });
  }

  void send_next() {
    if (done_) return;
    if (next_ >= shared_->frames.size()) {
      if (shared_->options.keep_open) {
        // With no read pending nothing would own the session: it owns itself until stop().
        if (!shared_->options.answer_pings) keep_alive_ = this->shared_from_this();
        return;
      }
      ws_.async_close(ws::close_code::normal,
                      [self = this->shared_from_this()](beast::error_code) { self->done_ = true; });
      return;
    }
    if (shared_->options.rate > 0) {
      const auto due =
          started_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                         static_cast<double>(sent_here_) / shared_->options.rate));
      if (Clock::now() < due) {
        pacer_.expires_at(due);
        pacer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
          if (!ec) self->write_frame();
        });
        return;
      }
    }
    write_frame();
  }

  void write_frame() {
    if (done_) return;
    const auto& frame = shared_->frames[next_];
    ws_.async_write(net::buffer(frame.data(), frame.size()),
                    [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                      self->on_write(ec);
                    });
  }

  void on_write(beast::error_code ec) {
    if (ec) {
      done_ = true;
      return;
    }
    shared_->sent.fetch_add(1);
    ++sent_here_;
    ++next_;
    if (shared_->options.drop_after != 0 && sent_here_ >= shared_->options.drop_after) {
      return abort();
    }
    send_next();
  }

  ws::stream<NextLayer> ws_;
  net::steady_timer pacer_;
  std::shared_ptr<Shared> shared_;
  beast::flat_buffer http_buffer_;
  http::request<http::string_body> request_;
  beast::flat_buffer read_buffer_;
  std::size_t next_ = 0;
  std::size_t sent_here_ = 0;
  Clock::time_point started_{};
  std::shared_ptr<Session> keep_alive_;
  bool accepted_ = false;
  bool done_ = false;
};

}  // namespace

class FrameServer::Impl {
 public:
  Impl(std::vector<std::vector<std::uint8_t>> frames, FrameServerOptions options)
      : shared_(std::make_shared<Shared>()), acceptor_(io_) {
    shared_->frames = std::move(frames);
    shared_->seqs.reserve(shared_->frames.size());
    for (const auto& frame : shared_->frames) {
      shared_->seqs.push_back(firehose::peek_frame_seq({frame.data(), frame.size()}));
    }
    shared_->options = std::move(options);
    const auto& opts = shared_->options;
    if (!opts.tls_certificate_pem.empty() || !opts.tls_private_key_pem.empty()) {
      try {
        shared_->tls.emplace(ssl::context::tls_server);
        shared_->tls->use_certificate_chain(
            net::buffer(opts.tls_certificate_pem.data(), opts.tls_certificate_pem.size()));
        shared_->tls->use_private_key(
            net::buffer(opts.tls_private_key_pem.data(), opts.tls_private_key_pem.size()),
            ssl::context::pem);
      } catch (const boost::system::system_error& error) {
        throw std::invalid_argument(std::string("FrameServer: bad TLS certificate or key: ") +
                                    error.what());
      }
    }
    boost::system::error_code ec;
    const auto address = net::ip::make_address(opts.host, ec);
    if (ec) throw std::invalid_argument("FrameServer: host must be an IP address: " + opts.host);
    const tcp::endpoint endpoint(address, opts.port);
    const auto check = [&](const char* what) {
      if (ec) {
        throw std::system_error(ec.value(), std::system_category(),
                                std::string("FrameServer: ") + what + " " + opts.host + ":" +
                                    std::to_string(opts.port));
      }
    };
    acceptor_.open(endpoint.protocol(), ec);
    check("open");
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    check("set SO_REUSEADDR on");
    acceptor_.bind(endpoint, ec);
    check("bind");
    acceptor_.listen(net::socket_base::max_listen_connections, ec);
    check("listen on");
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~Impl() { stop(); }

  void stop() {
    std::lock_guard lock(stop_mutex_);
    if (!thread_.joinable()) return;
    net::post(io_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      for (auto& weak : sessions_) {
        if (auto session = weak.lock()) session->abort();
      }
      sessions_.clear();
    });
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  const Shared& shared() const { return *shared_; }

 private:
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        std::shared_ptr<SessionBase> session;
        if (shared_->tls) {
          auto typed = std::make_shared<Session<true>>(std::move(socket), shared_);
          typed->run();
          session = std::move(typed);
        } else {
          auto typed = std::make_shared<Session<false>>(std::move(socket), shared_);
          typed->run();
          session = std::move(typed);
        }
        std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
        sessions_.push_back(session);
      }
      accept();
    });
  }

  net::io_context io_;
  std::shared_ptr<Shared> shared_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::vector<std::weak_ptr<SessionBase>> sessions_;
  std::mutex stop_mutex_;
  std::thread thread_;
};

FrameServer::FrameServer(std::vector<std::vector<std::uint8_t>> frames, FrameServerOptions options)
    : impl_(std::make_shared<Impl>(std::move(frames), std::move(options))) {}

FrameServer::~FrameServer() { stop(); }

std::uint16_t FrameServer::port() const { return impl_->port(); }

std::string FrameServer::url() const {
  const auto& options = impl_->shared().options;
  const bool tls = impl_->shared().tls.has_value();
  std::string host = tls ? "localhost" : options.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return std::string(tls ? "wss://" : "ws://") + host + ":" + std::to_string(port()) + options.path;
}

std::size_t FrameServer::connections() const { return impl_->shared().connections.load(); }

std::size_t FrameServer::open_connections() const { return impl_->shared().open.load(); }

std::vector<std::string> FrameServer::request_targets() const {
  const auto& shared = impl_->shared();
  std::lock_guard lock(shared.targets_mutex);
  return shared.targets;
}

std::uint64_t FrameServer::frames_sent() const { return impl_->shared().sent.load(); }

void FrameServer::stop() { impl_->stop(); }

}  // namespace jetstream::websocket
