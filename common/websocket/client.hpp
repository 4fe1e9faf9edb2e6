// A websocket client for one upstream connection (`ws://` or `wss://`), Beast behind a pimpl:
// including this header costs nothing of Beast or Asio.
//
// Threads: the client runs on a caller-provided `boost::asio::io_context` (the caller runs it,
// typically on one thread of its own). Every callback is invoked on that io_context, one at a
// time, in order (the client keeps its own strand). `connect()` and `close()` may be called from
// any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/websocket/url.hpp"

namespace boost::asio {
class io_context;
}

namespace jetstream::websocket {

/// Why a connection ended (or never opened). The stage decides for timeouts: a TLS handshake
/// that times out is `tls`, a websocket upgrade that times out is `handshake`.
enum class ErrorCategory : std::uint8_t {
  dns,             ///< the host did not resolve (or resolving timed out)
  connect,         ///< TCP connect refused, unreachable or timed out
  tls,             ///< TLS handshake failed: certificate not trusted, wrong host name, timeout
  handshake,       ///< HTTP upgrade refused (non-101 status) or timed out
  closed_by_peer,  ///< the peer closed: close frame, EOF, reset, TLS truncation
  stall,           ///< nothing (or no message) received for the configured time
  read_error,      ///< any other read failure on an open connection
  protocol,        ///< a websocket protocol violation, an oversize or text message
};
inline constexpr std::size_t kErrorCategoryCount = 8;

/// `dns`, `connect`, `tls`, `handshake`, `closed_by_peer`, `stall`, `read_error`, `protocol`.
std::string_view to_string(ErrorCategory category);

struct ClientError {
  ErrorCategory category = ErrorCategory::read_error;
  /// One line for a log: what failed and why (may quote peer data; log it as a bounded field).
  std::string message;
};

struct ClientOptions {
  /// Resolving plus TCP connect.
  std::chrono::milliseconds connect_timeout{10'000};
  /// TLS handshake plus the websocket upgrade (each gets the full time).
  std::chrono::milliseconds handshake_timeout{10'000};
  /// A ping is sent after this long without a ping; zero disables pings.
  std::chrono::milliseconds ping_interval{20'000};
  /// Nothing at all received (no message, no pong, no ping) for this long: `stall`. Zero: off.
  std::chrono::milliseconds idle_timeout{60'000};
  /// No binary message received for this long (pongs do not count): `stall`. Zero: off.
  std::chrono::milliseconds message_timeout{0};
  /// Larger messages end the connection with `protocol`.
  std::size_t max_message_bytes = 16u * 1024u * 1024u;
  /// `wss`: trust the system's CA store (OpenSSL default verify paths).
  bool trust_system_cas = true;
  /// `wss`: also trust the CA certificates in this PEM file (tests use a self-signed one).
  std::string extra_ca_file;
  std::string user_agent = "jetstream-cpp";
};

struct ClientHandlers {
  /// The websocket upgrade succeeded.
  std::function<void()> on_open;
  /// One complete binary message, handed over (the client keeps no reference to it).
  std::function<void(std::vector<std::uint8_t>&& message)> on_message;
  /// The connection failed or ended: called at most once, and nothing is called after it. Not
  /// called when the connection ends because of `close()`.
  std::function<void(const ClientError& error)> on_error;
};

/// One connection attempt and its stream of binary messages. Single use: connect once; make a
/// new client to reconnect. Destroying it closes it; pending handlers on the io_context keep the
/// internals alive until they finish, so it may be destroyed from any thread at any time.
class WebSocketClient {
 public:
  WebSocketClient(boost::asio::io_context& io, ClientOptions options, ClientHandlers handlers);
  ~WebSocketClient();
  WebSocketClient(const WebSocketClient&) = delete;
  WebSocketClient& operator=(const WebSocketClient&) = delete;

  /// Starts resolving, connecting, the TLS handshake (`wss`) and the upgrade to `url.target`.
  /// Only the first call does anything.
  void connect(WebSocketUrl url);

  /// Ends the connection: a close frame (1000) when it is open, else the socket is dropped. No
  /// handler is invoked once close() has returned when it is called on the io_context's thread
  /// (from another thread, a handler already running may finish). Idempotent.
  void close();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace jetstream::websocket
