// ClientConnection: Asio only for the reactor (readiness waits, timers, strands); the bytes move
// with recv(2) and sendmsg(2) on the native socket, so one write gathers up to IOV_MAX frames
// (asio::async_write would split a buffer sequence into writes of at most 16-64 buffers) and
// frames that sit next to each other in one batch buffer become one iovec.
#include "services/fanout/client_connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <utility>

#include "common/log/log.hpp"
#include "common/websocket/codec.hpp"
#include "common/websocket/permessage_deflate.hpp"
#include "services/fanout/write_queue.hpp"

namespace jetstream::fanout {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using Strand = net::strand<net::io_context::executor_type>;
using websocket::FrameParser;
using websocket::make_close_frame;
using websocket::make_frame;
using websocket::Opcode;
namespace close_code = websocket::close_code;

namespace {

/// iovecs per sendmsg (Linux IOV_MAX).
constexpr std::size_t kMaxIovecs = 1024;
/// Bytes read per recv(2) into the thread's scratch buffer.
constexpr std::size_t kReadChunk = 64 * 1024;
/// Bytes read per wake-up before yielding the thread to other connections.
constexpr std::size_t kReadBudget = 256 * 1024;
/// sendmsg calls per wake-up before yielding.
constexpr int kWriteBudget = 64;

using EntryKind = WriteQueue::Kind;

/// The connection's life: open → closing (close frame queued, waiting for it to be written
/// and/or for the client's close) → draining (our close written, write side shut, reading until
/// the client's EOF) → closed (socket closed, on_closed called).
enum class Phase : std::uint8_t { kOpen, kClosing, kDraining, kClosed };
enum class PingPhase : std::uint8_t { kIdle, kQueued, kAwaitingPong };

const SharedFrame& ping_frame() {
  static const SharedFrame frame = SharedFrame::copy_of(make_frame(Opcode::kPing, {}));
  return frame;
}

std::string errno_text(int error) {
  return std::error_code(error, std::generic_category()).message();
}

}  // namespace

std::string_view close_initiator_name(CloseInitiator initiator) {
  switch (initiator) {
    case CloseInitiator::kServer: return "server";
    case CloseInitiator::kClient: return "client";
    case CloseInitiator::kProtocol: return "protocol";
    case CloseInitiator::kDropped: return "dropped";
  }
  return "unknown";
}

SharedFrame SharedFrame::copy_of(std::string bytes) {
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  const auto* data = reinterpret_cast<const std::uint8_t*>(owned->data());
  const std::size_t size = owned->size();
  return SharedFrame{std::move(owned), data, size};
}

SharedFrame SharedFrame::slice(std::shared_ptr<const std::string> buffer, std::size_t offset,
                               std::size_t size) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer->data()) + offset;
  return SharedFrame{std::move(buffer), data, size};
}

struct ClientConnection::Impl {
  Impl(std::shared_ptr<net::io_context> context, ConnectionOptions opts)
      : io(std::move(context)),
        strand(net::make_strand(*io)),
        socket(strand),
        ping_timer(strand),
        stall_timer(strand),
        close_timer(strand),
        options(opts),
        parser(websocket::Sender::kClient, opts.max_message_bytes, opts.compression) {}

  // Declared first, destroyed last: the strand, socket and timers need their io_context.
  std::shared_ptr<net::io_context> io;
  Strand strand;
  tcp::socket socket;
  net::steady_timer ping_timer;
  net::steady_timer stall_timer;
  net::steady_timer close_timer;
  ConnectionOptions options;
  ClientConnection* outer = nullptr;

  // --- Strand state ---
  ConnectionHandlers handlers;
  FrameParser parser;
  websocket::Message client_message;  ///< the last message the client sent, reused
  std::string early_input;            // bytes that came with the HTTP request, parsed at start
  Phase phase = Phase::kOpen;
  bool started = false;
  bool reading = false;
  bool close_frame_queued = false;
  bool close_frame_written = false;
  bool peer_close_received = false;
  bool drain_after_close_frame = false;  // fail fast: do not wait for the client's close
  bool close_timer_armed = false;
  bool reported = false;  // on_closed was called
  CloseInfo close_info;

  WriteQueue queue;
  bool waiting_writable = false;
  bool stall_timer_armed = false;
  Clock::time_point last_progress;

  PingPhase ping_phase = PingPhase::kIdle;
  Clock::time_point ping_written_at;
  Clock::time_point last_received;

  // --- Any thread ---
  std::mutex inbox_mutex;
  std::vector<SharedFrame> inbox;
  bool flush_posted = false;
  std::atomic<std::uint64_t> frames_written{0};
  std::atomic<std::uint64_t> bytes_written{0};
  std::atomic<std::uint64_t> writes{0};

  std::shared_ptr<ClientConnection> self() { return outer->shared_from_this(); }
  int fd() { return socket.native_handle(); }

  void subtract_queued(std::uint64_t bytes) {
    if (bytes != 0) outer->queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  // --- Start ---

  void on_start(ConnectionHandlers h) {
    handlers = std::move(h);
    started = true;
    if (phase == Phase::kClosed) {  // aborted before start
      report_closed();
      return;
    }
    const auto now = Clock::now();
    last_received = now;
    do_write();
    // Writes done before start (the owner may send at once) could not be reported: tell the
    // owner how much is queued now, so one waiting for room is not left waiting.
    if (phase == Phase::kOpen && handlers.on_room) handlers.on_room(outer->queued_bytes());
    if (!early_input.empty()) {
      const std::string input = std::move(early_input);
      early_input.clear();
      handle_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
    }
    if (phase == Phase::kClosed) return;
    start_read();
    if (phase == Phase::kOpen) arm_ping_timer(now + options.ping_interval);
  }

  // --- Write path ---

  void on_flush() {
    std::vector<SharedFrame> frames;
    {
      std::lock_guard lock(inbox_mutex);
      frames.swap(inbox);
      flush_posted = false;
    }
    if (phase != Phase::kOpen || close_frame_queued) {
      std::uint64_t dropped = 0;
      for (const auto& frame : frames) dropped += frame.size;
      subtract_queued(dropped);
      return;
    }
    if (queue.empty()) last_progress = Clock::now();
    for (auto& frame : frames) queue.push_back(EntryKind::kData, std::move(frame));
    do_write();
  }

  /// A ping or pong, ahead of queued data (WriteQueue::push_control says where).
  void enqueue_control(EntryKind kind, SharedFrame frame) {
    if (queue.empty()) last_progress = Clock::now();
    queue.push_control(kind, std::move(frame));
  }

  /// Drops queued data not yet started (a closing connection sends its close frame next).
  void discard_unsent() {
    const WriteQueue::Discarded discarded = queue.discard_unsent();
    if (discarded.ping_dropped) ping_phase = PingPhase::kIdle;
    subtract_queued(discarded.data_bytes);
  }

  void do_write() {
    if (waiting_writable || phase == Phase::kClosed || queue.empty()) return;
    bool wrote_data = false;
    for (int round = 0; round < kWriteBudget && !queue.empty(); ++round) {
      std::array<iovec, kMaxIovecs> iov;
      const WriteQueue::Gather gathered =
          queue.gather(iov, options.max_frames_per_write, options.max_bytes_per_write);
      const std::size_t bytes = gathered.bytes;
      msghdr message{};
      message.msg_iov = iov.data();
      message.msg_iovlen = gathered.iov_count;
      const ssize_t sent = ::sendmsg(fd(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        const int error = errno;
        if (error == EINTR) continue;
        if (error == EAGAIN || error == EWOULDBLOCK) {
          wait_writable();
          break;
        }
        drop("write failed: " + errno_text(error));
        return;
      }
      writes.fetch_add(1, std::memory_order_relaxed);
      last_progress = Clock::now();
      wrote_data |= consume(static_cast<std::size_t>(sent));
      if (phase == Phase::kClosed) return;
      if (static_cast<std::size_t>(sent) < bytes) {  // the socket buffer is full
        wait_writable();
        break;
      }
    }
    if (!queue.empty() && !waiting_writable) wait_writable();  // budget used: yield
    if (wrote_data && handlers.on_room) handlers.on_room(outer->queued_bytes());
  }

  /// Removes `sent` bytes from the front of the queue; true when some were data.
  bool consume(std::size_t sent) {
    bytes_written.fetch_add(sent, std::memory_order_relaxed);
    const WriteQueue::Consumed done = queue.consume(sent, options.on_frame_written);
    subtract_queued(done.data_bytes);
    if (done.data_frames != 0)
      frames_written.fetch_add(done.data_frames, std::memory_order_relaxed);
    if (done.ping_written && phase == Phase::kOpen) {
      ping_phase = PingPhase::kAwaitingPong;
      ping_written_at = Clock::now();
      arm_ping_timer(ping_written_at + options.pong_timeout);
    }
    if (done.close_written) {
      close_frame_written = true;
      if (peer_close_received || drain_after_close_frame) start_draining();
    }
    return done.data_bytes != 0;
  }

  void wait_writable() {
    waiting_writable = true;
    socket.async_wait(tcp::socket::wait_write,
                      [self = self()](const boost::system::error_code& ec) {
                        Impl& impl = *self->impl_;
                        impl.waiting_writable = false;
                        if (ec || impl.phase == Phase::kClosed) return;
                        impl.do_write();
                      });
    if (!stall_timer_armed) arm_stall_timer(last_progress + options.write_stall_timeout);
  }

  void arm_stall_timer(Clock::time_point at) {
    stall_timer_armed = true;
    stall_timer.expires_at(at);
    stall_timer.async_wait([self = self()](const boost::system::error_code& ec) {
      Impl& impl = *self->impl_;
      impl.stall_timer_armed = false;
      if (ec || impl.phase == Phase::kClosed || !impl.waiting_writable) return;
      const auto deadline = impl.last_progress + impl.options.write_stall_timeout;
      if (Clock::now() >= deadline) {
        impl.drop("write stalled");
      } else {
        impl.arm_stall_timer(deadline);
      }
    });
  }

  // --- Read path ---

  void start_read() {
    if (reading || phase == Phase::kClosed) return;
    reading = true;
    socket.async_wait(tcp::socket::wait_read, [self = self()](const boost::system::error_code& ec) {
      Impl& impl = *self->impl_;
      impl.reading = false;
      if (ec || impl.phase == Phase::kClosed) return;
      impl.on_readable();
    });
  }

  void on_readable() {
    alignas(64) static thread_local std::uint8_t buffer[kReadChunk];
    std::size_t total = 0;
    while (total < kReadBudget) {
      const ssize_t got = ::recv(fd(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (got > 0) {
        total += static_cast<std::size_t>(got);
        last_received = Clock::now();
        handle_input(buffer, static_cast<std::size_t>(got));
        if (phase == Phase::kClosed) return;
        continue;
      }
      if (got == 0) {
        on_end_of_stream();
        return;
      }
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) break;
      if (phase == Phase::kOpen) {
        drop("read failed: " + errno_text(error));
      } else {
        finish();
      }
      return;
    }
    start_read();
  }

  void on_end_of_stream() {
    if (phase == Phase::kOpen) {
      drop("connection closed by client");
    } else {
      finish();
    }
  }

  void handle_input(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    while (!input.empty()) {
      if (phase == Phase::kDraining || phase == Phase::kClosed || peer_close_received) return;
      switch (parser.parse(input, client_message)) {
        case FrameParser::Status::kNeedMore: return;
        case FrameParser::Status::kError: on_protocol_error(parser.error()); return;
        case FrameParser::Status::kMessage: handle_message(); break;
      }
    }
  }

  void handle_message() {
    switch (client_message.opcode) {
      case Opcode::kText:
        if (client_message.compressed && !inflate_client_message()) return;
        if (phase == Phase::kOpen && handlers.on_text)
          handlers.on_text(std::move(client_message.payload));
        client_message.payload = std::string();  // a message may be 10 MB: do not keep its buffer
        break;
      case Opcode::kBinary:
        log::debug("ignoring binary message from client",
                   {{"client_ip", outer->client_ip()}, {"bytes", client_message.size}});
        client_message.payload = std::string();
        break;
      case Opcode::kPing:
        if (!close_frame_written) {
          enqueue_control(EntryKind::kPong,
                          SharedFrame::copy_of(make_frame(Opcode::kPong, client_message.payload)));
          do_write();
        }
        break;
      case Opcode::kPong: break;  // liveness was noted when the bytes arrived
      case Opcode::kClose: on_peer_close(client_message.close_code, client_message.payload); break;
      case Opcode::kContinuation: break;  // never a complete message
    }
  }

  /// Replaces a compressed text message by its inflated bytes, bounded like an uncompressed one
  /// (a deflate bomb stops at the bound and closes 1009). False when the connection is failed.
  bool inflate_client_message() {
    // One inflater per io thread: every client compresses each message alone (the server asked
    // for client_no_context_takeover), so no zlib state lives with a connection.
    thread_local websocket::MessageInflater inflater;
    std::string inflated;
    const auto result =
        inflater.inflate(client_message.payload, options.max_message_bytes, inflated);
    client_message.payload = std::string();
    switch (result) {
      case websocket::MessageInflater::Result::kOk:
        client_message.payload = std::move(inflated);
        return true;
      case websocket::MessageInflater::Result::kTooBig:
        on_protocol_error({websocket::close_code::kMessageTooBig, "message too big"});
        return false;
      case websocket::MessageInflater::Result::kCorrupt:
        on_protocol_error({websocket::close_code::kInvalidPayload, "invalid compressed message"});
        return false;
    }
    return false;
  }

  // --- Closing ---

  void on_peer_close(std::uint16_t code, const std::string& reason) {
    peer_close_received = true;
    if (phase == Phase::kOpen) {
      close_info = CloseInfo{CloseInitiator::kClient, code, reason};
      begin_closing();
      discard_unsent();
      queue_close_frame(make_close_frame(code, {}));  // echo the code (RFC 6455 §5.5.1)
      do_write();
    } else if (phase == Phase::kClosing && close_frame_written) {
      start_draining();
    }
  }

  void on_protocol_error(const websocket::ProtocolError& error) {
    if (phase == Phase::kOpen) {
      close_info =
          CloseInfo{CloseInitiator::kProtocol, error.close_code, std::string(error.reason)};
      begin_closing();
      drain_after_close_frame = true;
      discard_unsent();
      queue_close_frame(make_close_frame(error.close_code, error.reason));
      do_write();
    } else if (close_frame_written) {
      start_draining();
    } else {
      drain_after_close_frame = true;
    }
  }

  void on_close_requested(std::uint16_t code, std::string reason) {
    if (phase != Phase::kOpen) return;
    close_info = CloseInfo{CloseInitiator::kServer, code, websocket::fit_close_reason(reason)};
    begin_closing();
    queue_close_frame(make_close_frame(code, reason));
    do_write();
  }

  void begin_closing() {
    outer->accepting_.store(false, std::memory_order_relaxed);
    phase = Phase::kClosing;
    ping_timer.cancel();
    arm_close_timer();
  }

  void queue_close_frame(std::string frame) {
    if (queue.empty()) last_progress = Clock::now();
    close_frame_queued = true;
    queue.push_back(EntryKind::kClose, SharedFrame::copy_of(std::move(frame)));
  }

  void arm_close_timer() {
    if (close_timer_armed) return;
    close_timer_armed = true;
    close_timer.expires_after(options.close_timeout);
    close_timer.async_wait([self = self()](const boost::system::error_code& ec) {
      Impl& impl = *self->impl_;
      if (ec || impl.phase == Phase::kClosed) return;
      impl.finish();
    });
  }

  /// Our close frame is out and no more is expected from the client but its EOF: the websocket
  /// is closed (on_closed now). Shut the write side (FIN) and read until the client closes too
  /// (at most `close_timeout`), so unread client bytes cannot turn our close into a reset that
  /// destroys the close frame in flight.
  void start_draining() {
    if (phase == Phase::kClosed || phase == Phase::kDraining) return;
    phase = Phase::kDraining;
    arm_close_timer();
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    start_read();
    if (started) report_closed();
  }

  /// Ends the connection without a closing handshake (or cuts one short).
  void drop(std::string reason) {
    if (phase == Phase::kClosed) return;
    if (phase == Phase::kOpen) {
      close_info = CloseInfo{CloseInitiator::kDropped, close_code::kAbnormal, std::move(reason)};
    }
    finish();
  }

  void finish() {
    if (phase == Phase::kClosed) return;
    phase = Phase::kClosed;
    outer->accepting_.store(false, std::memory_order_relaxed);
    ping_timer.cancel();
    stall_timer.cancel();
    close_timer.cancel();
    boost::system::error_code ignored;
    socket.close(ignored);
    subtract_queued(queue.clear());
    parser.release();  // frees a partial message
    if (started) report_closed();
  }

  void report_closed() {
    if (reported) return;
    reported = true;
    ConnectionHandlers done = std::move(handlers);
    handlers = ConnectionHandlers{};  // drops whatever the callbacks captured
    if (done.on_closed) done.on_closed(close_info);
  }

  // --- Liveness ---

  void arm_ping_timer(Clock::time_point at) {
    ping_timer.expires_at(at);
    ping_timer.async_wait([self = self()](const boost::system::error_code& ec) {
      if (ec) return;
      self->impl_->on_ping_timer();
    });
  }

  void on_ping_timer() {
    if (phase != Phase::kOpen) return;
    switch (ping_phase) {
      case PingPhase::kIdle:
        enqueue_control(EntryKind::kPing, ping_frame());
        ping_phase = PingPhase::kQueued;
        do_write();
        break;
      case PingPhase::kQueued: break;  // stuck behind a stalled write: the stall timer decides
      case PingPhase::kAwaitingPong:
        if (last_received >= ping_written_at) {
          ping_phase = PingPhase::kIdle;
          arm_ping_timer(ping_written_at + options.ping_interval);
        } else {
          drop("ping timeout");
        }
        break;
    }
  }
};

ClientConnection::ClientConnection(std::string client_ip, std::unique_ptr<Impl> impl)
    : client_ip_(std::move(client_ip)), impl_(std::move(impl)) {}

ClientConnection::~ClientConnection() = default;

std::shared_ptr<ClientConnection> ClientConnection::adopt(
    std::shared_ptr<boost::asio::io_context> io, int fd, std::string client_ip,
    ConnectionOptions options, std::string handshake_response, std::string_view received) {
  auto impl = std::make_unique<Impl>(std::move(io), options);
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  const bool v6 = ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
                  address.ss_family == AF_INET6;
  boost::system::error_code ec;
  impl->socket.assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    throw std::system_error(ec, "adopting a client socket");
  }
  // Small frames must leave at once (as Go's net package does by default); ignored for
  // non-TCP sockets.
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!handshake_response.empty()) {
    impl->queue.push_back(EntryKind::kHandshake,
                          SharedFrame::copy_of(std::move(handshake_response)));
  }
  impl->early_input.assign(received);
  auto connection = std::shared_ptr<ClientConnection>(
      new ClientConnection(std::move(client_ip), std::move(impl)));
  connection->impl_->outer = connection.get();
  return connection;
}

void ClientConnection::start(ConnectionHandlers handlers) {
  net::post(impl_->strand, [self = shared_from_this(), h = std::move(handlers)]() mutable {
    self->impl_->on_start(std::move(h));
  });
}

void ClientConnection::send(std::vector<SharedFrame> frames) {
  if (frames.empty() || !accepting_.load(std::memory_order_relaxed)) return;
  std::uint64_t bytes = 0;
  for (const auto& frame : frames) bytes += frame.size;
  queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  bool post = false;
  {
    std::lock_guard lock(impl_->inbox_mutex);
    if (impl_->inbox.empty()) {
      impl_->inbox = std::move(frames);
    } else {
      impl_->inbox.insert(impl_->inbox.end(), std::make_move_iterator(frames.begin()),
                          std::make_move_iterator(frames.end()));
    }
    if (!impl_->flush_posted) {
      impl_->flush_posted = true;
      post = true;
    }
  }
  if (post) net::post(impl_->strand, [self = shared_from_this()] { self->impl_->on_flush(); });
}

void ClientConnection::send(SharedFrame frame) {
  std::vector<SharedFrame> frames;
  frames.push_back(std::move(frame));
  send(std::move(frames));
}

void ClientConnection::close(std::uint16_t code, std::string reason) {
  if (!accepting_.exchange(false, std::memory_order_relaxed)) return;
  net::post(impl_->strand, [self = shared_from_this(), code, r = std::move(reason)]() mutable {
    self->impl_->on_close_requested(code, std::move(r));
  });
}

void ClientConnection::abort(std::string reason) {
  accepting_.store(false, std::memory_order_relaxed);
  net::post(impl_->strand, [self = shared_from_this(), r = std::move(reason)]() mutable {
    self->impl_->drop(std::move(r));
  });
}

ConnectionStats ClientConnection::stats() const noexcept {
  return ConnectionStats{impl_->frames_written.load(std::memory_order_relaxed),
                         impl_->bytes_written.load(std::memory_order_relaxed),
                         impl_->writes.load(std::memory_order_relaxed)};
}

}  // namespace jetstream::fanout
