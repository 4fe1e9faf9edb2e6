// fanout's client of decode's replay endpoint (proto §5.3): one DEALER socket, the requests in
// flight keyed by request id, and their retries.
//
// A request is sent with a fresh id per attempt; an answer to an id no longer in flight (retried
// or abandoned) is ignored, which is safe because pages are idempotent. A request decode does
// not answer within `timeout` is sent again, up to `attempts` times; then its handler runs once
// with no page. Every request's handler runs exactly once, on the owner thread.
//
// Threads: the owner (EventFeed's thread) creates the socket, polls it and calls every method
// except `submit`; `submit` may be called from any thread and wakes the owner through
// `wake_fd()`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "proto/replay.hpp"

namespace jetstream::fanout {

struct ReplayClientOptions {
  std::string endpoint = "tcp://127.0.0.1:6013";
  std::chrono::milliseconds timeout{5000};
  int attempts = 5;
};

class ReplayClient {
 public:
  /// The answer to a request: the decoded page, valid only during the call (its events point
  /// into the received message), or nullptr when decode did not answer after every attempt.
  using PageHandler = std::function<void(const proto::ReplayPageView* page)>;
  /// A message on the replay socket that is not a well-formed page: (what, reason) for the
  /// proto rejection metric.
  using RejectHandler = std::function<void(std::string_view message, std::string_view reason)>;

  ReplayClient(zmq::context_t& context, ReplayClientOptions options, RejectHandler on_rejected);
  ~ReplayClient();
  ReplayClient(const ReplayClient&) = delete;
  ReplayClient& operator=(const ReplayClient&) = delete;

  /// Any thread: queues a request for the owner thread to send, and wakes it.
  void submit(proto::ReplayRequest request, PageHandler on_page);
  /// An eventfd that becomes readable after `submit`; the owner polls it with the socket.
  [[nodiscard]] int wake_fd() const noexcept { return wake_fd_; }

  // ---- Owner thread only.

  /// Creates the socket and connects it (ZeroMQ connects in the background).
  void open();
  /// Closes the socket; requests in flight are dropped without their handlers running.
  void close();
  /// The socket's poll handle; open() first.
  [[nodiscard]] void* socket_handle() const;
  /// Sends a request now.
  void send(proto::ReplayRequest request, PageHandler on_page);
  /// Clears the wake-up and sends what `submit` queued.
  void send_submitted();
  /// Reads up to `max_messages` answers and runs their handlers.
  void receive(int max_messages);
  /// Sends again every request older than the timeout, or gives it up after its last attempt.
  void expire(std::chrono::steady_clock::time_point now);

  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_.size(); }

 private:
  struct Pending {
    proto::ReplayRequest request;
    PageHandler on_page;
    std::chrono::steady_clock::time_point sent_at;
    int attempts = 0;
  };

  void send_pending(Pending pending);

  zmq::context_t& context_;
  ReplayClientOptions options_;
  RejectHandler on_rejected_;
  int wake_fd_ = -1;

  std::mutex submissions_mutex_;
  std::vector<Pending> submissions_;

  // Owner thread only.
  std::unique_ptr<zmq::socket_t> socket_;
  std::unordered_map<std::uint64_t, Pending> in_flight_;
  std::uint64_t next_request_id_ = 1;
};

}  // namespace jetstream::fanout
