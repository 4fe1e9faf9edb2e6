// The only Beast translation unit of fanout: Beast reads and parses requests (http::async_read
// with a request_parser, on a plain tcp::socket); responses, the 101 and everything after it
// are written here and in client_connection.cpp, never by Beast.
#include "services/fanout/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "common/config/ascii_text.hpp"
#include "common/log/log.hpp"
#include "common/websocket/codec.hpp"
#include "common/websocket/permessage_deflate.hpp"

namespace jetstream::fanout {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr std::string_view kWelcome = "Welcome to Jetstream";
constexpr std::string_view kTextPlain = "text/plain; charset=UTF-8";
constexpr std::size_t kMaxUserAgentBytes = 256;
/// After a response that ends the connection: how long unread client bytes are drained before
/// the socket is closed (closing with unread bytes would reset the connection and could destroy
/// the response in flight).
constexpr std::chrono::seconds kLingerTimeout{1};
/// Most bytes one read of a request asks for.
constexpr std::size_t kReadChunkBytes = 64 * 1024;
/// Pause before accepting again after an accept error such as EMFILE.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

using config::iequals_ascii;
using config::trim_ows;

/// Whether the comma-separated list `value` holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    if (iequals_ascii(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

/// Whether any `name` header of `request` lists `token`.
template <class Request>
bool any_header_has_token(const Request& request, http::field name, std::string_view token) {
  auto [begin, end] = request.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    const auto value = it->value();
    if (has_token(std::string_view(value.data(), value.size()), token)) return true;
  }
  return false;
}

std::string_view to_view(beast::string_view s) { return {s.data(), s.size()}; }

std::string peer_address(const tcp::socket& socket) {
  boost::system::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return {};
  auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
  }
  return address.to_string();
}

/// `Date` as Go's net/http writes it (RFC 7231 IMF-fixdate).
std::string http_date() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[64];
  const std::size_t size = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return std::string(text, size);
}

/// Whether `value` can be echoed into a response header as is.
bool is_safe_header_value(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7F;
  });
}

struct Response {
  unsigned status = 200;
  std::vector<std::pair<std::string_view, std::string>> headers;
  std::string body;
  bool head = false;  // HEAD: Content-Length of the body, no body
  bool close = false;
};

std::string render(const Response& response) {
  std::string out;
  out.reserve(256 + response.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(response.status);
  out += ' ';
  const auto reason = http::obsolete_reason(http::int_to_status(response.status));
  out.append(reason.data(), reason.size());
  out += "\r\n";
  out += "Access-Control-Allow-Origin: *\r\n";
  for (const auto& [name, value] : response.headers) {
    out.append(name);
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "Date: ";
  out += http_date();
  out += "\r\n";
  if (response.status != 204 && response.status >= 200) {
    out += "Content-Length: ";
    out += std::to_string(response.body.size());
    out += "\r\n";
  }
  if (response.close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!response.head && response.status != 204) out += response.body;
  return out;
}

Response text_response(unsigned status, std::string body) {
  Response response;
  response.status = status;
  response.headers.emplace_back("Content-Type", std::string(kTextPlain));
  response.headers.emplace_back("Vary", "Origin");
  response.body = std::move(body);
  return response;
}

/// echo's default error handler: `{"message":"<status text>"}` and a newline.
Response json_error(unsigned status, std::string_view message) {
  Response response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "application/json; charset=UTF-8");
  response.headers.emplace_back("Vary", "Origin");
  response.body = "{\"message\":\"";
  response.body += message;
  response.body += "\"}\n";
  return response;
}

/// gorilla/websocket's answer to a request that is not a valid websocket handshake.
Response bad_handshake() {
  Response response;
  response.status = 400;
  response.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  response.headers.emplace_back("Sec-WebSocket-Version", "13");
  response.headers.emplace_back("Vary", "Origin");
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.body = "Bad Request\n";
  return response;
}

using Request = http::request<http::string_body>;

/// The `Sec-WebSocket-Key` of a valid RFC 6455 upgrade request, or nullopt.
std::optional<std::string> websocket_key(const Request& request) {
  if (request.version() != 11) return std::nullopt;
  if (!any_header_has_token(request, http::field::connection, "upgrade")) return std::nullopt;
  if (!any_header_has_token(request, http::field::upgrade, "websocket")) return std::nullopt;
  if (to_view(request[http::field::sec_websocket_version]) != "13") return std::nullopt;
  const auto key = trim_ows(to_view(request[http::field::sec_websocket_key]));
  if (!websocket::is_valid_websocket_key(key)) return std::nullopt;
  return std::string(key);
}

/// Every `Sec-WebSocket-Extensions` line of the request, joined with "," (RFC 7230 §3.2.2).
std::string extension_offers(const Request& request) {
  std::string offers;
  const auto lines = request.equal_range(http::field::sec_websocket_extensions);
  for (auto it = lines.first; it != lines.second; ++it) {
    if (!offers.empty()) offers += ',';
    offers += to_view(it->value());
  }
  return offers;
}

/// The 101; `extensions` (may be empty) is the accepted `Sec-WebSocket-Extensions`.
std::string switching_protocols(std::string_view key, std::string_view extensions) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  out += websocket::websocket_accept(key);
  if (!extensions.empty()) {
    out += "\r\nSec-WebSocket-Extensions: ";
    out += extensions;
  }
  out += "\r\n\r\n";
  return out;
}

}  // namespace

namespace {

class HttpSession;

/// Everything the server's sessions share; the threads and every pending handler keep it alive.
class ServerCore : public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(HttpServerOptions opts, SubscribeHandler h)
      : options(std::move(opts)),
        handler(std::move(h)),
        io(std::make_shared<net::io_context>(static_cast<int>(options.threads))),
        work(net::make_work_guard(*io)),
        acceptor(net::make_strand(*io)),
        retry_timer(acceptor.get_executor()) {}

  void listen();
  void start_threads();
  void do_accept();
  void stop();
  void shutdown();
  void track(const std::shared_ptr<HttpSession>& session);
  void track(const std::shared_ptr<ClientConnection>& connection);

  /// A share of max_request_memory for `session`'s long request: true when granted now; else
  /// the session is queued and its on_memory_granted() runs once a share is free.
  bool acquire_request_memory(const std::shared_ptr<HttpSession>& session);
  /// Gives a share back and grants it to the longest-waiting session.
  void release_request_memory();

  const HttpServerOptions options;
  const SubscribeHandler handler;
  const std::shared_ptr<net::io_context> io;
  net::executor_work_guard<net::io_context::executor_type> work;
  tcp::acceptor acceptor;
  net::steady_timer retry_timer;
  std::uint16_t port = 0;
  std::vector<std::thread> threads;

  std::atomic<bool> stopped{false};
  std::atomic<bool> shut_down{false};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> upgrades{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> header_timeouts{0};
  std::atomic<std::uint64_t> long_requests{0};

  const std::size_t memory_share = request_memory_share(options);
  /// Long heads read at once, whatever the memory allows: reading and parsing them is CPU work
  /// on the io threads, and a head admitted beside too many others would wait for their parsing
  /// with its header timeout running. Four per io thread keep the threads busy.
  const std::size_t max_long_reads = 4 * options.threads;
  std::mutex memory_mutex;
  std::size_t memory_in_use = 0;                            // guarded by memory_mutex
  std::deque<std::shared_ptr<HttpSession>> memory_waiters;  // guarded by memory_mutex

  std::mutex registry_mutex;
  std::vector<std::weak_ptr<HttpSession>> sessions;
  std::vector<std::weak_ptr<ClientConnection>> connections;
  std::size_t prune_at = 64;
};

/// One TCP connection until it is answered and closed, or upgraded.
///
/// Reading: the bytes go into `buffer_` and Beast's parser is fed from it (parser::put), so this
/// class decides how much is read and when. The first kSmallRequestBytes of a request are read
/// at once; a longer request (a subscribe URL with thousands of wantedDids) first takes a share
/// of the server's request memory, waiting for one in arrival order, and gives it back when it
/// is answered or upgraded. The header timeout runs while bytes are awaited from the client and
/// is paused while the session waits for memory.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<ServerCore> server, tcp::socket socket)
      : server_(std::move(server)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(server_->options.max_header_bytes + server_->options.max_body_bytes + 1024),
        peer_ip_(peer_address(socket_)) {}

  ~HttpSession() {
    if (holds_memory_) server_->release_request_memory();
  }

  void run() {
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->start_request(); });
  }

  /// Closes the socket at once (server shutdown).
  void abort() {
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->close_now(); });
  }

  /// A share of request memory is this session's now (called by the server, any thread).
  void on_memory_granted() {
    net::post(socket_.get_executor(), [self = shared_from_this()] {
      self->holds_memory_ = true;
      if (self->done_) {
        self->give_back_memory();
        return;
      }
      self->arm_timer(self->server_->options.header_timeout, true);
      self->read_more();
    });
  }

 private:
  void arm_timer(std::chrono::steady_clock::duration timeout, bool reading_request = false) {
    timer_.expires_after(timeout);
    timer_.async_wait(
        [self = shared_from_this(), reading_request](const boost::system::error_code& ec) {
          if (ec || self->done_) return;
          // An idle keep-alive connection that sends nothing is closed too, but not counted.
          if (reading_request && self->parser_ && self->parser_->got_some()) {
            self->server_->header_timeouts.fetch_add(1, std::memory_order_relaxed);
          }
          self->close_now();
        });
  }

  void give_back_memory() {
    if (!holds_memory_) return;
    holds_memory_ = false;
    server_->release_request_memory();
  }

  void start_request() {
    if (done_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    arm_timer(server_->options.header_timeout, true);
    parse_buffered();
  }

  /// Feeds the parser what is buffered (bytes pipelined behind the previous request, or just
  /// read); reads more when it needs more.
  void parse_buffered() {
    while (buffer_.size() > 0) {
      beast::error_code ec;
      std::size_t used = 0;
      try {
        used = parser_->put(buffer_.data(), ec);
      } catch (const std::length_error&) {
        // Beast keeps one header field's value below 64 KiB (the target has no such bound).
        ec = http::error::header_limit;
      }
      buffer_.consume(used);
      if (ec == http::error::need_more) break;
      if (ec) {
        on_read_error(ec);
        return;
      }
      if (parser_->is_done()) {
        on_request();
        return;
      }
      if (used == 0) break;
    }
    read_more();
  }

  void read_more() {
    const std::size_t limit = holds_memory_ ? buffer_.max_size() : kSmallRequestBytes;
    if (buffer_.size() >= limit) {
      if (!holds_memory_) {
        // A long request: wait for a share of the request memory before reading on.
        server_->long_requests.fetch_add(1, std::memory_order_relaxed);
        timer_.cancel();
        if (server_->acquire_request_memory(shared_from_this())) {
          holds_memory_ = true;
          arm_timer(server_->options.header_timeout, true);
          read_more();
        }
        return;
      }
      respond(json_error(431, "Request Header Fields Too Large"), true);
      return;
    }
    const std::size_t chunk = std::min(limit - buffer_.size(), kReadChunkBytes);
    socket_.async_read_some(
        buffer_.prepare(chunk),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t bytes) {
          self->on_bytes(ec, bytes);
        });
  }

  void on_bytes(const boost::system::error_code& ec, std::size_t bytes) {
    if (done_) return;
    if (ec) {
      close_now();  // EOF between or inside requests, reset
      return;
    }
    buffer_.commit(bytes);
    parse_buffered();
  }

  void on_read_error(const beast::error_code& ec) {
    timer_.cancel();
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      respond(json_error(431, "Request Header Fields Too Large"), true);
    } else if (ec == http::error::body_limit) {
      respond(json_error(413, "Request Entity Too Large"), true);
    } else {
      respond(text_response(400, "Bad Request"), true);  // malformed HTTP
    }
  }

  void on_request() {
    timer_.cancel();
    server_->requests.fetch_add(1, std::memory_order_relaxed);
    handle(parser_->get());
  }

  void handle(Request& request) {
    const bool keep_alive = request.keep_alive();
    const std::string_view target = to_view(request.target());
    const std::size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const http::verb method = request.method();

    // The CORS middleware answers every preflight before routing (v1: echo's CORS middleware).
    if (method == http::verb::options) {
      Response response;
      response.status = 204;
      response.headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
      const auto asked = trim_ows(to_view(request[http::field::access_control_request_headers]));
      if (!asked.empty() && is_safe_header_value(asked)) {
        response.headers.emplace_back("Access-Control-Allow-Headers", std::string(asked));
      }
      response.headers.emplace_back(
          "Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
      respond(std::move(response), !keep_alive);
      return;
    }
    if (path == "/") {
      if (method == http::verb::get || method == http::verb::head) {
        Response response = text_response(200, std::string(kWelcome));
        response.head = method == http::verb::head;
        respond(std::move(response), !keep_alive);
      } else {
        Response response = json_error(405, "Method Not Allowed");
        response.headers.emplace_back("Allow", "GET, HEAD, OPTIONS");
        respond(std::move(response), !keep_alive);
      }
      return;
    }
    for (const auto& [page_path, render] : server_->options.pages) {
      if (path != page_path) continue;
      if (method != http::verb::get && method != http::verb::head) {
        Response response = json_error(405, "Method Not Allowed");
        response.headers.emplace_back("Allow", "GET, HEAD, OPTIONS");
        respond(std::move(response), !keep_alive);
        return;
      }
      Page page;
      try {
        page = render();
      } catch (const std::exception& e) {
        log::error("page handler threw", {{"path", page_path}, {"error", e.what()}});
        respond(text_response(500, "Internal Server Error"), true);
        return;
      }
      Response response;
      response.status = 200;
      response.headers.emplace_back("Content-Type", std::move(page.content_type));
      response.headers.emplace_back("Vary", "Origin");
      // The names stay in `page`, alive until the response is rendered (in respond).
      for (auto& [name, value] : page.headers)
        response.headers.emplace_back(name, std::move(value));
      response.body = std::move(page.body);
      response.head = method == http::verb::head;
      respond(std::move(response), !keep_alive);
      return;
    }
    if (path == "/subscribe") {
      if (method == http::verb::get) {
        subscribe(request, target, question, keep_alive);
      } else {
        Response response = json_error(405, "Method Not Allowed");
        response.headers.emplace_back("Allow", "GET, OPTIONS");
        respond(std::move(response), !keep_alive);
      }
      return;
    }
    respond(json_error(404, "Not Found"), !keep_alive);
  }

  std::string client_ip(const Request& request) const {
    // Every X-Forwarded-For line, in order: a proxy may add its own line (HAProxy does) rather
    // than extend the client's, and only the last hops are trustworthy.
    std::string forwarded_for;
    const auto lines = request.equal_range("X-Forwarded-For");
    for (auto it = lines.first; it != lines.second; ++it) {
      if (!forwarded_for.empty()) forwarded_for += ',';
      forwarded_for += to_view(it->value());
    }
    return select_client_ip(peer_ip_, forwarded_for, to_view(request["X-Real-IP"]),
                            server_->options.trusted_proxies);
  }

  void subscribe(Request& request, std::string_view target, std::size_t question, bool keep_alive) {
    SubscribeRequest subscribe;
    if (question != std::string_view::npos)
      subscribe.query = std::string(target.substr(question + 1));
    subscribe.socket_encoding = std::string(to_view(request["Socket-Encoding"]));
    subscribe.client_ip = client_ip(request);
    subscribe.user_agent =
        std::string(to_view(request[http::field::user_agent]).substr(0, kMaxUserAgentBytes));
    std::optional<std::string> deflate_answer;
    if (server_->options.permessage_deflate) {
      deflate_answer = websocket::accept_permessage_deflate(extension_offers(request));
      subscribe.deflate_offered = deflate_answer.has_value();
    }

    // v1 order: the query is validated first (400 with its text), the handshake second.
    SubscribeDecision decision;
    try {
      decision = server_->handler(subscribe);
    } catch (const std::exception& e) {
      log::error("subscribe handler threw", {{"error", e.what()}});
      respond(text_response(500, "Internal Server Error"), true);
      return;
    }
    if (auto* error = std::get_if<HttpError>(&decision)) {
      server_->rejected.fetch_add(1, std::memory_order_relaxed);
      respond(text_response(error->status, std::move(error->body)), !keep_alive);
      return;
    }
    const auto key = websocket_key(request);
    if (!key) {
      server_->rejected.fetch_add(1, std::memory_order_relaxed);
      respond(bad_handshake(), !keep_alive);
      return;
    }
    auto accept = std::get<SubscribeAccept>(std::move(decision));
    const std::string extensions =
        accept.permessage_deflate && deflate_answer ? *deflate_answer : std::string();
    upgrade(std::move(accept), *key, extensions, std::move(subscribe.client_ip));
  }

  void upgrade(SubscribeAccept accept, const std::string& key, const std::string& extensions,
               std::string ip) {
    done_ = true;
    timer_.cancel();
    // Bytes the client sent after its request (frames pipelined behind the handshake).
    const auto leftover = buffer_.data();
    const std::string_view received(static_cast<const char*>(leftover.data()), leftover.size());
    boost::system::error_code ec;
    const int fd = socket_.release(ec);
    if (ec) {
      log::warn("cannot release an upgraded socket", {{"error", ec.message()}});
      close_now();
      return;
    }
    std::shared_ptr<ClientConnection> connection;
    ConnectionOptions connection_options = server_->options.connection;
    if (!extensions.empty())
      connection_options.compression = websocket::Compression::kPermessageDeflate;
    try {
      connection = ClientConnection::adopt(server_->io, fd, std::move(ip), connection_options,
                                           switching_protocols(key, extensions), received);
    } catch (const std::exception& e) {
      log::warn("cannot adopt an upgraded socket", {{"error", e.what()}});
      return;
    }
    server_->upgrades.fetch_add(1, std::memory_order_relaxed);
    server_->track(connection);
    ConnectionHandlers handlers;
    try {
      if (accept.on_open) handlers = accept.on_open(connection);
    } catch (const std::exception& e) {
      log::error("subscribe on_open threw", {{"error", e.what()}});
      connection->abort("on_open failed");
    }
    connection->start(std::move(handlers));
  }

  void respond(Response response, bool close) {
    response.close = close;
    response_ = render(response);
    close_after_write_ = close;
    arm_timer(server_->options.header_timeout);
    net::async_write(socket_, net::buffer(response_),
                     [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                       self->on_write(ec);
                     });
  }

  void on_write(const boost::system::error_code& ec) {
    timer_.cancel();
    if (done_) return;
    if (ec) {
      close_now();
    } else if (close_after_write_) {
      // No request follows: the memory of this one goes now, not after the linger.
      parser_.reset();
      give_back_memory();
      buffer_.consume(buffer_.size());
      buffer_.shrink_to_fit();
      linger_close();
    } else {
      // Keep-alive: the next request starts small again.
      parser_.reset();
      give_back_memory();
      if (buffer_.capacity() > 2 * kSmallRequestBytes) buffer_.shrink_to_fit();
      start_request();
    }
  }

  void linger_close() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm_timer(kLingerTimeout);
    drain();
  }

  void drain() {
    socket_.async_read_some(
        net::buffer(drain_buffer_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            self->close_now();
          } else {
            self->drain();
          }
        });
  }

  void close_now() {
    done_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  std::shared_ptr<ServerCore> server_;
  tcp::socket socket_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string response_;
  std::array<char, 512> drain_buffer_{};
  std::string peer_ip_;
  bool close_after_write_ = false;
  bool done_ = false;
  bool holds_memory_ = false;  // a share of the server's request memory
};

// --- ServerCore ----------------------------------------------------------------------

void ServerCore::listen() {
  const auto& address = options.listen;
  std::vector<tcp::endpoint> endpoints;
  if (address.host.empty()) {
    endpoints.emplace_back(tcp::v6(), address.port);  // dual-stack when IPv6 is available
    endpoints.emplace_back(tcp::v4(), address.port);
  } else {
    tcp::resolver resolver(*io);
    boost::system::error_code ec;
    const auto results =
        resolver.resolve(address.host, std::to_string(address.port),
                         tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec) {
      throw std::system_error(
          ec, "fanout: cannot resolve listen address " + config::format_listen_address(address));
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  boost::system::error_code ec = net::error::host_not_found;
  for (const auto& endpoint : endpoints) {
    acceptor.close(ec);
    acceptor.open(endpoint.protocol(), ec);
    if (ec) continue;
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (endpoint.protocol() == tcp::v6() && address.host.empty()) {
      acceptor.set_option(net::ip::v6_only(false), ec);
    }
    acceptor.bind(endpoint, ec);
    if (ec) continue;
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) continue;
    port = acceptor.local_endpoint().port();
    return;
  }
  throw std::system_error(ec, "fanout: cannot listen on " + config::format_listen_address(address));
}

void ServerCore::start_threads() {
  threads.reserve(options.threads);
  for (std::size_t i = 0; i < options.threads; ++i) {
    threads.emplace_back([self = shared_from_this()] {
      for (;;) {
        try {
          self->io->run();
          return;
        } catch (const std::exception& e) {
          log::error("fanout io thread: unhandled exception", {{"error", e.what()}});
        }
      }
    });
  }
}

void ServerCore::do_accept() {
  acceptor.async_accept(
      net::make_strand(*io),
      [self = shared_from_this()](const boost::system::error_code& ec, tcp::socket socket) {
        if (self->stopped.load()) return;
        if (ec) {
          if (ec == net::error::operation_aborted) return;
          log::warn_every(std::chrono::seconds(10), "fanout-accept-error",
                          "accept failed, retrying", {{"error", ec.message()}});
          self->retry_timer.expires_after(kAcceptRetryDelay);
          self->retry_timer.async_wait([self](const boost::system::error_code& wait_ec) {
            if (!wait_ec && !self->stopped.load()) self->do_accept();
          });
          return;
        }
        self->connections_accepted.fetch_add(1, std::memory_order_relaxed);
        auto session = std::make_shared<HttpSession>(self, std::move(socket));
        self->track(session);
        session->run();
        self->do_accept();
      });
}

void ServerCore::stop() {
  if (stopped.exchange(true)) return;
  net::post(acceptor.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
    self->retry_timer.cancel();
  });
}

bool ServerCore::acquire_request_memory(const std::shared_ptr<HttpSession>& session) {
  std::lock_guard lock(memory_mutex);
  if (memory_waiters.empty() && memory_in_use + memory_share <= options.max_request_memory &&
      memory_in_use / memory_share < max_long_reads) {
    memory_in_use += memory_share;
    return true;
  }
  memory_waiters.push_back(session);
  return false;
}

void ServerCore::release_request_memory() {
  std::shared_ptr<HttpSession> next;
  {
    std::lock_guard lock(memory_mutex);
    memory_in_use -= memory_share;
    if (memory_waiters.empty()) return;
    next = std::move(memory_waiters.front());  // the share passes on: memory_in_use stays
    memory_waiters.pop_front();
    memory_in_use += memory_share;
  }
  next->on_memory_granted();
}

void ServerCore::shutdown() {
  if (shut_down.exchange(true)) return;
  stop();
  {
    // Waiting sessions are held only by this queue: they go (closing their sockets) with it.
    std::deque<std::shared_ptr<HttpSession>> waiting;
    {
      std::lock_guard lock(memory_mutex);
      waiting.swap(memory_waiters);
    }
  }
  std::vector<std::weak_ptr<HttpSession>> open_sessions;
  std::vector<std::weak_ptr<ClientConnection>> open_connections;
  {
    std::lock_guard lock(registry_mutex);
    open_sessions.swap(sessions);
    open_connections.swap(connections);
  }
  for (const auto& weak : open_sessions) {
    if (auto session = weak.lock()) session->abort();
  }
  for (const auto& weak : open_connections) {
    if (auto connection = weak.lock()) connection->abort("server shutdown");
  }
  open_sessions.clear();
  open_connections.clear();
  work.reset();
  for (auto& thread : threads) {
    if (thread.joinable()) thread.join();
  }
}

template <class T>
void prune(std::vector<std::weak_ptr<T>>& list) {
  list.erase(std::remove_if(list.begin(), list.end(), [](const auto& w) { return w.expired(); }),
             list.end());
}

void ServerCore::track(const std::shared_ptr<HttpSession>& session) {
  std::unique_lock lock(registry_mutex);
  if (shut_down.load()) {  // accepted while shutdown() was collecting: it will not see this one
    lock.unlock();
    session->abort();
    return;
  }
  sessions.push_back(session);
  if (sessions.size() + connections.size() >= prune_at) {
    prune(sessions);
    prune(connections);
    prune_at = std::max<std::size_t>(64, 2 * (sessions.size() + connections.size()));
  }
}

void ServerCore::track(const std::shared_ptr<ClientConnection>& connection) {
  std::unique_lock lock(registry_mutex);
  if (shut_down.load()) {  // upgraded while shutdown() was collecting: it will not see this one
    lock.unlock();
    connection->abort("server shutdown");
    return;
  }
  connections.push_back(connection);
  if (sessions.size() + connections.size() >= prune_at) {
    prune(sessions);
    prune(connections);
    prune_at = std::max<std::size_t>(64, 2 * (sessions.size() + connections.size()));
  }
}

}  // namespace

class HttpServer::Impl final : public ServerCore {
 public:
  using ServerCore::ServerCore;
};

// --- HttpServer ----------------------------------------------------------------------------

HttpServer::HttpServer(HttpServerOptions options, SubscribeHandler handler) {
  if (!handler) throw std::invalid_argument("HttpServer: no subscribe handler");
  if (options.threads == 0) throw std::invalid_argument("HttpServer: threads must be at least 1");
  if (options.max_request_memory < request_memory_share(options)) {
    throw std::invalid_argument("HttpServer: max_request_memory is below one request's share (" +
                                std::to_string(request_memory_share(options)) + " bytes)");
  }
  impl_ = std::make_shared<Impl>(std::move(options), std::move(handler));
  impl_->listen();
  impl_->do_accept();
  impl_->start_threads();
}

HttpServer::~HttpServer() { shutdown(); }

std::uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() { impl_->stop(); }

void HttpServer::shutdown() { impl_->shutdown(); }

HttpServerStats HttpServer::stats() const {
  HttpServerStats stats{impl_->connections_accepted.load(),
                        impl_->requests.load(),
                        impl_->upgrades.load(),
                        impl_->rejected.load(),
                        impl_->header_timeouts.load(),
                        impl_->long_requests.load()};
  std::lock_guard lock(impl_->memory_mutex);
  stats.request_memory_in_use = impl_->memory_in_use;
  stats.requests_waiting = impl_->memory_waiters.size();
  return stats;
}

std::size_t request_memory_share(const HttpServerOptions& options) {
  return kRequestMemoryFactor * (options.max_header_bytes + options.max_body_bytes + 1024);
}

}  // namespace jetstream::fanout
