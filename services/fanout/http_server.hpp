// The public HTTP listener of fanout (`--listen-addr`, v1 `:6008`): `GET /`, CORS preflights,
// and `GET /subscribe`, whose websocket handshake it answers itself before handing the raw
// socket to a `ClientConnection`. Beast parses requests and nothing else; this header includes
// neither Beast nor Asio, and http_server.cpp is the only Beast translation unit of fanout.
//
// Threads: the server owns an io_context and `threads` threads running it; every connection
// (HTTP or websocket) lives on its own strand of it. The subscribe handler is called on one of
// those threads and must not block.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/config/listen_address.hpp"
#include "services/fanout/client_connection.hpp"
#include "services/fanout/trusted_proxies.hpp"

namespace jetstream::fanout {

/// What the fanout logic needs to decide about a `GET /subscribe`.
struct SubscribeRequest {
  /// The part of the target after `?` (empty when none), not decoded; up to max_header_bytes.
  std::string query;
  /// The first `Socket-Encoding` header value (empty when absent).
  std::string socket_encoding;
  /// The client's address as `select_client_ip` finds it (trusted_proxies.hpp): the peer, or
  /// from `X-Forwarded-For` / `X-Real-IP` when the peer is a trusted proxy; at most 64 bytes.
  std::string client_ip;
  /// `User-Agent`, for logs only (at most 256 bytes).
  std::string user_agent;
  /// The client offered permessage-deflate in a form this server accepts (and the server allows
  /// it: `HttpServerOptions::permessage_deflate`). The handler decides whether to use it.
  bool deflate_offered = false;
};

/// Refuses the request with a plain-text answer (`text/plain; charset=UTF-8`, body as given —
/// v1's texts have no trailing newline), e.g. `{400, "invalid cursor: x"}`.
struct HttpError {
  unsigned status = 400;
  std::string body;
};

/// Accepts the request. The upgrade headers are checked after the handler ran (see README,
/// "Connections"): if they are not a valid websocket handshake the client gets 400 and
/// `on_open` is never called, so per-client state belongs in `on_open`, not in the handler.
struct SubscribeAccept {
  /// Called once the connection exists, before anything is read from it or written to it,
  /// on a server thread. Returns the connection's callbacks; `send()` may already be called.
  std::function<ConnectionHandlers(const std::shared_ptr<ClientConnection>& connection)> on_open;
  /// Answer the client's permessage-deflate offer (only when `deflate_offered`): the 101 carries
  /// the extension and the connection reads compressed client messages.
  bool permessage_deflate = false;
};

using SubscribeDecision = std::variant<HttpError, SubscribeAccept>;

/// A plain GET page besides `/` and `/subscribe` (fanout's `/status` and `/status.json`):
/// rendered on an io thread for each request, so it must be quick and must not block.
struct Page {
  std::string content_type;
  std::string body;
  /// Extra response headers (e.g. Cache-Control).
  std::vector<std::pair<std::string, std::string>> headers;
};
using PageHandler = std::function<Page()>;
using SubscribeHandler = std::function<SubscribeDecision(const SubscribeRequest& request)>;

struct HttpServerOptions {
  /// `:6008` listens on every interface (IPv6 and IPv4); tests use `127.0.0.1:0`.
  config::ListenAddress listen{"", 6008};
  /// Threads running the io_context (HTTP parsing, websocket reads/writes, timers).
  std::size_t threads = 1;
  /// Settings of every websocket connection.
  ConnectionOptions connection;
  /// Whether permessage-deflate offers are considered at all (`--permessage-deflate`).
  bool permessage_deflate = true;
  /// GET (and HEAD) pages by exact path; other methods get 405.
  std::vector<std::pair<std::string, PageHandler>> pages;
  /// Time a client has to send a complete request (each one, on a keep-alive connection), and
  /// to read the answer; counted while its bytes are read, not while it waits for memory (below).
  std::chrono::milliseconds header_timeout{10'000};
  /// Longest request line + headers; longer gets 431. v1 takes 10,000 wantedDids (~440 KB).
  std::size_t max_header_bytes = 1024 * 1024;
  /// Longest request body; longer gets 413.
  std::size_t max_body_bytes = 4 * 1024;
  /// Memory the requests being read may hold together. The first kSmallRequestBytes of every
  /// request are read at once; a longer one waits (in arrival order, its header timeout paused)
  /// until a share of kRequestMemoryFactor × its largest size is free, so many long URLs at once
  /// cost this much at most. At least one share; HttpServer refuses less. At most four long heads
  /// per io thread are read at once whatever the memory (their parsing is CPU work that would
  /// otherwise count against each other's header timeout).
  std::size_t max_request_memory = std::size_t{128} << 20;
  /// Peers whose forwarding headers are believed (default: everyone, as v1).
  TrustedProxies trusted_proxies;
};

/// Bytes of a request read before it needs a share of max_request_memory: every ordinary
/// request (a few hundred bytes, or a few thousand with filters) fits.
inline constexpr std::size_t kSmallRequestBytes = 16 * 1024;
/// A long request's share: its read buffer, the parser's copy of the target, the query handed to
/// the handler and what the handler builds from it are each at most its size.
inline constexpr std::size_t kRequestMemoryFactor = 4;

/// The share of max_request_memory one long request takes (for validation and tests).
[[nodiscard]] std::size_t request_memory_share(const HttpServerOptions& options);

/// Counters, readable from any thread.
struct HttpServerStats {
  std::uint64_t connections_accepted = 0;  // TCP connections
  std::uint64_t requests = 0;              // complete HTTP requests read
  std::uint64_t upgrades = 0;              // websockets handed to the fanout logic
  std::uint64_t rejected = 0;              // /subscribe answered with an error
  std::uint64_t header_timeouts = 0;       // connections closed: a request not sent in time
  std::uint64_t long_requests = 0;         // requests that needed a share of request memory
  std::size_t request_memory_in_use = 0;   // bytes of shares held now
  std::size_t requests_waiting = 0;        // long requests waiting for a share now
};

class HttpServer {
 public:
  /// Binds (SO_REUSEADDR) and starts the threads. Throws std::system_error naming the address
  /// when it cannot listen, std::invalid_argument when `handler` is empty, `threads` is 0 or
  /// max_request_memory is below one share.
  HttpServer(HttpServerOptions options, SubscribeHandler handler);
  /// Calls shutdown().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The port actually bound (useful with port 0).
  std::uint16_t port() const;

  /// Stops accepting connections. Requests already being read are still answered and open
  /// websockets are untouched: the fanout logic closes its clients (1001) itself. Idempotent.
  void stop();

  /// stop(), then drops every connection still open (websockets get `on_closed`, kDropped,
  /// `server shutdown`), lets the threads finish and joins them. Idempotent. Connections the
  /// fanout logic still holds stay valid objects; their calls become no-ops.
  void shutdown();

  HttpServerStats stats() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace jetstream::fanout
