// Every metric fanout exports, behind named methods (the *_probe pattern). Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/metrics/proto_rejections.hpp"
#include "services/fanout/event_feed.hpp"
#include "services/fanout/http_server.hpp"
#include "services/fanout/subscriber_options.hpp"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace jetstream::fanout {

enum class CloseReason : std::uint8_t {
  client_closed,
  connection_lost,   ///< socket error, ping timeout, write stalled
  too_slow,          ///< no progress for the configured time
  out_of_retention,  ///< its position fell out of the event log
  log_unavailable,   ///< decode's replay did not answer
  invalid_message,   ///< options_update that could not be parsed or validated
  shutdown,
};
inline constexpr std::size_t kCloseReasonCount = 7;
std::string_view to_string(CloseReason reason);

class FanoutProbe final : public FeedObserver {
 public:
  explicit FanoutProbe(std::shared_ptr<prometheus::Registry> registry);

  void subscriber_connected(MessageEncoding encoding);
  void subscriber_disconnected(MessageEncoding encoding, CloseReason reason);
  void delivered(std::uint64_t events, std::uint64_t bytes);
  /// decode's sequencing time (`time_us`) of the first event of a send to the send: how far
  /// behind the stream a client is served (sampled once per send).
  void delivery_lag(double seconds);
  /// Fanout's own share: from a block's arrival at fanout to the kernel taking the first frame
  /// of a send to one client (sampled once per send, every client).
  void write_lag(double seconds);
  void skipped_filtered(std::uint64_t events);
  void skipped_oversize(std::uint64_t events);
  void replay_started();
  void replay_finished();
  void replay_page(std::uint64_t events, double lag_seconds);
  /// snapshot=true subscribers in their snapshot part, and what they were sent of it.
  void snapshot_started();
  /// `complete`: SnapshotComplete was sent (else the subscriber left before).
  void snapshot_finished(bool complete);
  void snapshot_events(std::uint64_t events);
  void snapshot_restarted();
  void options_update(std::string_view result);
  void set_window(std::size_t bytes, std::int64_t head_time_us);
  /// The HTTP server's counters (called once a second; counters advance by the difference).
  void set_http(const HttpServerStats& stats);
  /// The catch-up governor's rate (events/s; -1 when off), live's baseline p99 write lag
  /// (seconds; -1 before it is measured) and the congested intervals so far.
  void set_catch_up(double events_per_second, double baseline_seconds,
                    std::uint64_t congested_intervals);
  /// permessage-deflate's counters (called once a second; counters advance by the difference).
  void set_deflate(const DeflateStats& stats);

  /// What the status page shows of this replica (read from the metrics themselves).
  struct Figures {
    double clients[kMessageEncodingCount] = {};
    double events_received = 0;  ///< from decode's live stream
    double events_delivered = 0;
  };
  Figures figures() const;

  // FeedObserver
  void on_batch_received(std::size_t events, std::size_t bytes) override;
  void on_gap_repaired(std::size_t events) override;
  void on_chain_reset(std::string_view why) override;
  void on_proto_rejected(std::string_view message, std::string_view reason) override;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  metrics::ProtoRejections proto_rejections_;
  prometheus::Gauge* subscribers_[kMessageEncodingCount]{};
  prometheus::Counter* deflate_events_ = nullptr;
  prometheus::Counter* deflate_json_bytes_ = nullptr;
  prometheus::Counter* deflate_bytes_ = nullptr;
  std::uint64_t last_deflate_[3] = {};  // set_deflate is called from one actor only
  prometheus::Counter* closes_[kCloseReasonCount]{};
  prometheus::Counter* events_delivered_ = nullptr;
  prometheus::Counter* bytes_delivered_ = nullptr;
  prometheus::Counter* events_emitted_ = nullptr;
  prometheus::Counter* bytes_emitted_ = nullptr;
  prometheus::Counter* skipped_filtered_ = nullptr;
  prometheus::Counter* skipped_oversize_ = nullptr;
  prometheus::Gauge* replay_sessions_ = nullptr;
  prometheus::Counter* replay_pages_ = nullptr;
  prometheus::Gauge* snapshot_sessions_ = nullptr;
  prometheus::Counter* snapshot_events_ = nullptr;
  prometheus::Counter* snapshots_completed_ = nullptr;
  prometheus::Counter* snapshots_restarted_ = nullptr;
  prometheus::Histogram* replay_lag_ = nullptr;
  prometheus::Histogram* delivery_lag_ = nullptr;
  prometheus::Histogram* write_lag_ = nullptr;
  prometheus::Counter* gaps_repaired_ = nullptr;
  prometheus::Counter* repaired_events_ = nullptr;
  prometheus::Counter* chain_resets_ = nullptr;
  prometheus::Gauge* window_bytes_ = nullptr;
  prometheus::Gauge* head_time_us_ = nullptr;
  prometheus::Counter* header_timeouts_ = nullptr;
  prometheus::Counter* long_requests_ = nullptr;
  prometheus::Gauge* request_memory_ = nullptr;
  prometheus::Gauge* requests_waiting_ = nullptr;
  prometheus::Gauge* catch_up_rate_ = nullptr;
  prometheus::Gauge* live_lag_baseline_ = nullptr;
  prometheus::Counter* catch_up_congested_ = nullptr;
  std::uint64_t last_congested_ = 0;
  HttpServerStats last_http_;  // set_http is called from one actor only
};

}  // namespace jetstream::fanout
