// One client's websocket after the handshake: the raw TCP socket, RFC 6455 framing done here
// (common/websocket/codec.hpp), one write queue through which every byte goes, pings, and the close
// handshake.
//
// Threads: every connection runs on its own strand of the server's io_context. `send`, `close`,
// `abort`, `queued_bytes` and `client_ip` may be called from any thread; the callbacks in
// `ConnectionHandlers` are invoked on the strand, one at a time, never after `on_closed`.
//
// Ownership: the connection keeps itself alive while it has socket work pending; the fanout
// logic holds a `shared_ptr` for as long as it wants to send. Both may drop it at any time.
//
// This header includes no Asio or Beast, so the fanout logic's translation units stay cheap.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/websocket/codec.hpp"

namespace boost::asio {
class io_context;
}

namespace jetstream::fanout {

/// A cheap reference to immutable frame bytes (header + payload) shared by many clients.
/// `owner` keeps the bytes alive; one owner may hold a whole batch of frames laid out in one
/// allocation, each frame of the batch being a `SharedFrame` pointing into it.
///
/// Within one `send()` batch, a data frame may have no owner: it then borrows the owner of the
/// next frame of the batch that has one (frames are written in order, so that owner outlives
/// it). A client taking a run of events from one block thus costs one reference count, not one
/// per event. A frame that carries an owner for others must not be empty (empty frames are
/// dropped unsent).
struct SharedFrame {
  std::shared_ptr<const void> owner;
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  /// When set (not the epoch), the time this frame's bytes have taken once the socket has them
  /// is reported to ConnectionOptions::on_frame_written: fanout sets it on the first frame of a
  /// send to the moment the event reached fanout, which measures fanout's own share of latency.
  std::chrono::steady_clock::time_point measure_from{};

  /// A frame owning its bytes (one allocation): `SharedFrame::copy_of(make_frame(...))`.
  static SharedFrame copy_of(std::string bytes);
  /// `[offset, offset + size)` of a buffer shared with other frames and clients.
  static SharedFrame slice(std::shared_ptr<const std::string> buffer, std::size_t offset,
                           std::size_t size);

  std::span<const std::uint8_t> bytes() const noexcept { return {data, size}; }
};

/// Who ended a connection.
enum class CloseInitiator : std::uint8_t {
  /// The fanout logic called `close()`; code and reason are the ones it gave.
  kServer,
  /// The client sent a close frame (echoed); its code (1005 when it had none) and reason.
  kClient,
  /// The client broke the protocol: the server sent 1002 (protocol), 1007 (invalid payload) or
  /// 1009 (message too big) with a short reason.
  kProtocol,
  /// No closing handshake: `ping timeout`, `write stalled`, `connection closed by client`,
  /// `read failed: …`, `write failed: …`, or the reason given to `abort()`. Code 1006.
  kDropped,
};

std::string_view close_initiator_name(CloseInitiator initiator);

struct CloseInfo {
  CloseInitiator initiator = CloseInitiator::kDropped;
  std::uint16_t code = 1006;
  std::string reason;
};

/// Callbacks of one connection, invoked on its strand. Keep them short and non-blocking (hand
/// work to an actor). Each may be empty.
struct ConnectionHandlers {
  /// A complete text message from the client (e.g. an `options_update`). Not called once the
  /// connection is closing.
  std::function<void(std::string message)> on_text;
  /// Exactly once, when the websocket is over: closing handshake done, or connection dropped.
  /// After a clean close the socket may linger up to `close_timeout` (our FIN sent, waiting for
  /// the client's) so the close frame is not destroyed by a reset; nothing is sent any more.
  std::function<void(const CloseInfo& info)> on_closed;
  /// The room report, fanout's one back-pressure signal: once when the connection starts, then
  /// after each write pass that sent bytes queued by `send()`, with the bytes still queued. The
  /// session side is `SessionHandle::room` (client_session.hpp), which wakes a session only when
  /// it stopped at its high-water mark (`SessionSignals::waiting_for_room`); so a slow client is
  /// refilled without polling.
  std::function<void(std::uint64_t queued_bytes)> on_room;
};

/// Tunables of every connection (the defaults are the production values).
struct ConnectionOptions {
  /// Called on the connection's strand when a frame with `measure_from` set is wholly taken by
  /// the kernel, with the time since `measure_from`. Must be cheap and thread-safe.
  std::function<void(std::chrono::steady_clock::duration since)> on_frame_written;
  /// A ping is sent this long after the previous one was answered (v1: 30 s).
  std::chrono::milliseconds ping_interval{30'000};
  /// After a ping is written, the client must send something (a pong or anything else) within
  /// this time, or it is dropped with `ping timeout`.
  std::chrono::milliseconds pong_timeout{30'000};
  /// A write that makes no progress (not one byte taken by the kernel) for this long drops the
  /// connection with `write stalled`.
  std::chrono::milliseconds write_stall_timeout{60'000};
  /// After `close()`, the time allowed to flush what is queued, send the close frame and get
  /// the client's close back; also bounds the lingering after a client-initiated close.
  std::chrono::milliseconds close_timeout{5'000};
  /// Largest client message (all fragments; inflated, when compressed); a larger one closes with
  /// 1009.
  std::size_t max_message_bytes = 10'000'000;
  /// permessage-deflate was negotiated (set per connection by the handshake): client messages
  /// with RSV1 are inflated, each alone (the server asked for client_no_context_takeover).
  websocket::Compression compression = websocket::Compression::kNone;
  /// Most frames gathered into one write (one sendmsg). 1 = one frame per system call.
  std::size_t max_frames_per_write = 1024;
  /// Most bytes gathered into one write.
  std::size_t max_bytes_per_write = std::size_t{1} << 20;
};

/// Counters of one connection, readable from any thread.
struct ConnectionStats {
  std::uint64_t frames_written = 0;  // frames given to send() and fully written
  std::uint64_t bytes_written = 0;   // all bytes written after the 101 response
  std::uint64_t writes = 0;          // sendmsg calls that wrote something
};

class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  /// Takes over a connected TCP socket (`fd`) whose HTTP upgrade has been read, and binds it to
  /// a new strand of `io`. `handshake_response` (the 101) is the first thing written;
  /// `received` holds bytes the client sent after its request (pipelined frames). Nothing
  /// happens until `start()`. HttpServer calls this; tests and benchmarks may too (any
  /// connected stream socket works). Throws std::system_error if the socket cannot be adopted.
  static std::shared_ptr<ClientConnection> adopt(std::shared_ptr<boost::asio::io_context> io,
                                                 int fd, std::string client_ip,
                                                 ConnectionOptions options,
                                                 std::string handshake_response,
                                                 std::string_view received);

  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  /// Installs the callbacks and starts writing, reading and pinging. Call once (HttpServer does,
  /// with what `SubscribeAccept::on_open` returned).
  void start(ConnectionHandlers handlers);

  /// Queues frames (complete websocket frames, e.g. from `make_frame`) to be written in order,
  /// after everything queued before. Never blocks, never fails: once the connection is closing
  /// the frames are dropped. The bytes stay referenced until written.
  void send(std::vector<SharedFrame> frames);
  void send(SharedFrame frame);

  /// Starts the closing handshake: what is queued is written, then a close frame with `code`
  /// and `reason` (fitted to 123 bytes); the socket is closed when the client's close comes
  /// back or after `close_timeout`. Later sends are dropped. Idempotent.
  void close(std::uint16_t code, std::string reason);

  /// Drops the connection now, without a close frame (`on_closed` gets kDropped, `reason`; if a
  /// closing handshake was under way, its CloseInfo is kept).
  void abort(std::string reason);

  /// Bytes accepted by `send()` and not yet written (0 once closed).
  std::uint64_t queued_bytes() const noexcept {
    return queued_bytes_.load(std::memory_order_relaxed);
  }
  /// The client's address as the fanout logic should key it (X-Forwarded-For, X-Real-IP or
  /// the peer address).
  std::string_view client_ip() const noexcept { return client_ip_; }
  /// Whether `close`, `abort` or the client ended the connection (sends are dropped).
  bool closing() const noexcept { return !accepting_.load(std::memory_order_relaxed); }
  ConnectionStats stats() const noexcept;

 private:
  struct Impl;
  ClientConnection(std::string client_ip, std::unique_ptr<Impl> impl);

  const std::string client_ip_;
  std::atomic<std::uint64_t> queued_bytes_{0};
  std::atomic<bool> accepting_{true};
  std::unique_ptr<Impl> impl_;
};

}  // namespace jetstream::fanout
