// Every metric ingest exports, behind one class: business code calls `probe.record_x(...)` and
// never touches the registry. Thread-safe (prometheus-cpp metrics are atomic); the hot path
// (io thread, per frame) costs three counter increments.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "common/metrics/proto_rejections.hpp"
#include "common/websocket/client.hpp"
#include "proto/wire.hpp"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace jetstream::ingest {

/// Where the upstream connection is, as the connection state machine sees it.
enum class UpstreamState : std::uint8_t {
  idle,        ///< no resume from decode yet: deliberately not connected
  connecting,  ///< resolving, connecting, handshaking
  connected,   ///< the websocket is open
  backoff,     ///< the last attempt failed; waiting before the next one
};
inline constexpr std::size_t kUpstreamStateCount = 4;
std::string_view to_string(UpstreamState state);

/// Reconnect reasons: the websocket client's error categories plus `error_frame` (the upstream
/// sent an `op = -1` frame).
inline constexpr std::size_t kReconnectReasonCount = websocket::kErrorCategoryCount + 1;
inline constexpr std::string_view kErrorFrameReason = "error_frame";

class IngestProbe {
 public:
  explicit IngestProbe(prometheus::Registry& registry);

  void set_state(UpstreamState state);
  UpstreamState state() const { return state_.load(std::memory_order_relaxed); }

  void record_reconnect(std::string_view reason);
  /// One upstream websocket message read (before it is published).
  void record_received(std::size_t bytes);
  void record_published(std::uint64_t ingest_seq, std::int64_t upstream_seq);
  void record_error_frame();
  void set_seconds_since_last_frame(double seconds);
  void record_resume(bool retry);
  void record_rejected(std::string_view message, proto::DecodeError reason);

 private:
  std::atomic<UpstreamState> state_{UpstreamState::idle};
  prometheus::Gauge* connected_;
  std::array<prometheus::Gauge*, kUpstreamStateCount> state_gauges_{};
  prometheus::Family<prometheus::Counter>* reconnects_family_;
  std::array<prometheus::Counter*, kReconnectReasonCount> reconnects_{};
  prometheus::Counter* frames_received_;
  prometheus::Counter* bytes_received_;
  prometheus::Counter* frames_published_;
  prometheus::Counter* error_frames_;
  prometheus::Gauge* last_upstream_seq_;
  prometheus::Gauge* last_ingest_seq_;
  prometheus::Gauge* seconds_since_last_frame_;
  prometheus::Counter* resumes_accepted_;
  prometheus::Counter* resumes_retried_;
  metrics::ProtoRejections rejected_;
};

}  // namespace jetstream::ingest
