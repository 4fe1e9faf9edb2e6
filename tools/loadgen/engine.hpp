// The socket side of jetstream-loadgen: one Worker per epoll thread, each owning a fixed share
// of the clients (raw non-blocking sockets, level-triggered epoll, no other library).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock/clock.hpp"
#include "common/websocket/codec.hpp"
#include "common/websocket/permessage_deflate.hpp"
#include "common/zstd/zstd_dictionary.hpp"
#include "tools/loadgen/protocol.hpp"
#include "tools/loadgen/report.hpp"

namespace jetstream::loadgen {

/// What every worker needs to know; built once by the runner, shared read-only.
struct EngineConfig {
  sockaddr_storage address{};
  socklen_t address_length = 0;
  std::string host_header;
  std::string target;              ///< path and query of the request line
  std::uint64_t until_events = 0;  ///< 0: never stop a client on its own
  /// Binary messages: decompress every K-th one per client to read time_us (0: none).
  std::uint64_t decompress_every = 1;
  std::shared_ptr<const zstd::Dictionary> dictionary;  ///< null: binary messages are not read
  /// Offer permessage-deflate; compressed text messages are inflated as far as `time_us`.
  bool deflate = false;
  double connect_rate = 0;  ///< connections per second for this worker (0: all at once)
  std::chrono::microseconds handshake_timeout{std::chrono::seconds(10)};
  /// >0: client `id` binds to 127.0.`source_network`.(1 + id % source_addresses) first.
  std::uint32_t source_addresses = 0;
  std::uint32_t source_network = 1;
};

/// Figures a worker publishes after every loop turn, read by the runner's thread (relaxed).
struct WorkerCounters {
  std::atomic<std::uint64_t> deliveries{0};
  std::atomic<std::uint64_t> wire_bytes{0};
  std::atomic<std::uint64_t> connected{0};  ///< clients that ever completed the handshake
  std::atomic<std::uint64_t> open{0};       ///< websockets open right now
  /// Clients with nothing more to wait for: reached --until-events, or ended (closed, failed).
  std::atomic<std::uint64_t> settled{0};
};

/// One epoll thread and the clients it owns. `run` is the thread body; everything else is read
/// by the runner after `run` has returned.
class Worker {
 public:
  /// `client_ids`: the global numbers of this worker's clients (for the report).
  Worker(const EngineConfig& config, std::vector<std::size_t> client_ids, std::uint64_t seed);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Connects, reads and answers until `stop` is set; then closes every socket it still holds.
  void run(const std::atomic<bool>& stop);

  const WorkerCounters& counters() const { return counters_; }
  /// Writes each client's result to `results[global id]`.
  void collect(std::vector<ClientResult>& results) const;
  const LatencyHistogram& latency() const { return latency_; }
  std::uint64_t negative_latencies() const { return negative_latencies_; }
  std::uint64_t ignored_after_target() const { return ignored_after_target_; }

 private:
  enum class State : std::uint8_t { kPending, kConnecting, kHandshaking, kOpen, kClosing, kDone };

  struct Connection {
    std::size_t id = 0;
    int fd = -1;
    State state = State::kPending;
    bool want_write = false;
    bool close_sent = false;
    std::int64_t deadline_us = 0;  ///< connect + handshake must finish by then (steady clock)
    std::string out;               ///< bytes not yet written (request, pongs, close)
    std::string in;                ///< the upgrade response until it is complete
    std::string accept;            ///< the Sec-WebSocket-Accept the server must send
    websocket::FrameParser parser{websocket::Sender::kServer, 64u << 20};
    ClientResult result;
  };

  /// How much of the next data message to keep: a text event's start (for `time_us`), a
  /// binary one whole when it is sampled for decompression, nothing once the client is done.
  websocket::KeepBytes keep_bytes(const Connection& c) const;
  void on_message(Connection& c, const websocket::Message& message);
  /// A ping, pong or close; false when the connection is over.
  bool on_control(Connection& c, const websocket::Message& message);

  void connect_due(std::int64_t now_steady_us);
  void start_connect(Connection& c, std::int64_t now_steady_us);
  void on_connected(Connection& c);
  void on_event(Connection& c, std::uint32_t events);
  void on_readable(Connection& c);
  void on_bytes(Connection& c, std::string_view data);
  void on_eof(Connection& c);
  void feed(Connection& c, std::string_view data);
  void send_bytes(Connection& c, std::string_view data);
  void flush(Connection& c);
  void set_events(Connection& c, bool want_write);
  void send_close(Connection& c, std::uint16_t code, std::string_view reason);
  void record_time(Connection& c, std::int64_t time_us);
  void finish(Connection& c, std::string reason);
  void expire(std::int64_t now_steady_us);
  void close_all();
  void publish();
  websocket::Mask mask();
  bool sampled(std::uint64_t index) const;

  const EngineConfig& config_;
  std::vector<Connection> connections_;
  std::size_t next_to_connect_ = 0;
  int epoll_fd_ = -1;
  std::int64_t start_steady_us_ = 0;
  std::vector<char> scratch_;  ///< one receive buffer for every socket of this thread
  std::unique_ptr<zstd::Decompressor> decompressor_;
  std::unique_ptr<websocket::MessageInflater> inflater_;  ///< with `deflate`
  std::string inflated_;                                  ///< an event's start, reused
  std::mt19937_64 random_;
  websocket::Message message_;  ///< reused for every message of every connection
  std::int64_t now_us_ = 0;     ///< wall clock of the last recv, for latency

  LatencyHistogram latency_;
  std::uint64_t negative_latencies_ = 0;
  std::uint64_t ignored_after_target_ = 0;
  std::uint64_t deliveries_ = 0;
  std::uint64_t wire_bytes_ = 0;
  std::uint64_t connected_ = 0;
  std::uint64_t open_ = 0;
  std::uint64_t settled_ = 0;
  WorkerCounters counters_;
};

using clock::steady_clock_us;
using clock::wall_clock_us;

}  // namespace jetstream::loadgen
