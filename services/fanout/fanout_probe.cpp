#include "services/fanout/fanout_probe.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "common/log/log.hpp"

namespace jetstream::fanout {

std::string_view to_string(CloseReason reason) {
  switch (reason) {
    case CloseReason::client_closed: return "client_closed";
    case CloseReason::connection_lost: return "connection_lost";
    case CloseReason::too_slow: return "too_slow";
    case CloseReason::out_of_retention: return "out_of_retention";
    case CloseReason::log_unavailable: return "log_unavailable";
    case CloseReason::invalid_message: return "invalid_message";
    case CloseReason::shutdown: return "shutdown";
  }
  return "unknown";
}

FanoutProbe::FanoutProbe(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)), proto_rejections_(*registry_) {
  auto& r = *registry_;
  auto& subscribers = prometheus::BuildGauge()
                          .Name("jetstream_subscribers_connected")
                          .Help("Connected websocket subscribers, by compression (v1 name)")
                          .Register(r);
  subscribers_[0] = &subscribers.Add({{"compression", "none"}});
  subscribers_[1] = &subscribers.Add({{"compression", "zstd"}});
  subscribers_[2] = &subscribers.Add({{"compression", "deflate"}});
  deflate_events_ = &prometheus::BuildCounter()
                         .Name("jetstream_fanout_deflate_events_total")
                         .Help(
                             "Events compressed for permessage-deflate subscribers (once per "
                             "event on this replica, whatever the number of such clients)")
                         .Register(r)
                         .Add({});
  auto& deflate_bytes = prometheus::BuildCounter()
                            .Name("jetstream_fanout_deflate_bytes_total")
                            .Help(
                                "Payload bytes of the events compressed for permessage-deflate: "
                                "form=json before, form=deflate what is sent instead")
                            .Register(r);
  deflate_json_bytes_ = &deflate_bytes.Add({{"form", "json"}});
  deflate_bytes_ = &deflate_bytes.Add({{"form", "deflate"}});
  auto& closes = prometheus::BuildCounter()
                     .Name("jetstream_fanout_client_closes_total")
                     .Help("Subscriber connections ended, by reason")
                     .Register(r);
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    closes_[i] = &closes.Add({{"reason", std::string(to_string(static_cast<CloseReason>(i)))}});
  }
  events_delivered_ = &prometheus::BuildCounter()
                           .Name("jetstream_events_delivered_total")
                           .Help("Events queued to subscribers (v1 name)")
                           .Register(r)
                           .Add({});
  bytes_delivered_ = &prometheus::BuildCounter()
                          .Name("jetstream_bytes_delivered_total")
                          .Help("Payload bytes queued to subscribers (v1 name)")
                          .Register(r)
                          .Add({});
  events_emitted_ = &prometheus::BuildCounter()
                         .Name("jetstream_events_emitted_total")
                         .Help("Events received from decode's live stream (v1 name)")
                         .Register(r)
                         .Add({});
  bytes_emitted_ = &prometheus::BuildCounter()
                        .Name("jetstream_bytes_emitted_total")
                        .Help("Bytes of event batches received from decode (v1 name)")
                        .Register(r)
                        .Add({});
  auto& skipped = prometheus::BuildCounter()
                      .Name("jetstream_fanout_events_skipped_total")
                      .Help("Events not sent to a subscriber, by reason")
                      .Register(r);
  skipped_filtered_ = &skipped.Add({{"reason", "filtered"}});
  skipped_oversize_ = &skipped.Add({{"reason", "oversize"}});
  replay_sessions_ = &prometheus::BuildGauge()
                          .Name("jetstream_fanout_replay_sessions")
                          .Help("Subscribers currently served from decode's event log")
                          .Register(r)
                          .Add({});
  snapshot_sessions_ = &prometheus::BuildGauge()
                            .Name("jetstream_fanout_snapshot_sessions")
                            .Help("snapshot=true subscribers still reading the compacted state")
                            .Register(r)
                            .Add({});
  snapshot_events_ = &prometheus::BuildCounter()
                          .Name("jetstream_fanout_snapshot_events_total")
                          .Help(
                              "Compacted events (records and tombstones) received for "
                              "snapshot subscribers")
                          .Register(r)
                          .Add({});
  snapshots_completed_ = &prometheus::BuildCounter()
                              .Name("jetstream_fanout_snapshots_completed_total")
                              .Help("Snapshots that reached SnapshotComplete")
                              .Register(r)
                              .Add({});
  snapshots_restarted_ = &prometheus::BuildCounter()
                              .Name("jetstream_fanout_snapshots_restarted_total")
                              .Help(
                                  "Snapshots restarted from 0: the cursor was older than the "
                                  "tombstone horizon")
                              .Register(r)
                              .Add({});
  replay_pages_ = &prometheus::BuildCounter()
                       .Name("jetstream_fanout_replay_pages_total")
                       .Help("Replay pages received for subscribers")
                       .Register(r)
                       .Add({});
  replay_lag_ = &prometheus::BuildHistogram()
                     .Name("jetstream_fanout_replay_lag_seconds")
                     .Help("How far behind the newest event a replaying subscriber's page ends")
                     .Register(r)
                     .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 1, 10, 60, 600, 3600,
                                                                      21600, 86400});
  delivery_lag_ = &prometheus::BuildHistogram()
                       .Name("jetstream_fanout_delivery_lag_seconds")
                       .Help("Event time_us (sequenced by decode) to queued for a client, per send")
                       .Register(r)
                       .Add({}, prometheus::Histogram::BucketBoundaries{
                                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
                                    30, 300, 3600, 86400});
  write_lag_ = &prometheus::BuildHistogram()
                    .Name("jetstream_fanout_write_lag_seconds")
                    .Help(
                        "Fanout's own share: an event's arrival at fanout to the kernel taking "
                        "the first frame of a live send to a client, per send (replay and "
                        "snapshot sends are not measured)")
                    .Register(r)
                    .Add({}, prometheus::Histogram::BucketBoundaries{
                                 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01,
                                 0.025, 0.05, 0.1, 0.25, 1, 5});
  auto& feed = prometheus::BuildCounter()
                   .Name("jetstream_fanout_feed_repairs_total")
                   .Help("Gaps in decode's live stream filled from the event log")
                   .Register(r);
  gaps_repaired_ = &feed.Add({});
  repaired_events_ = &prometheus::BuildCounter()
                          .Name("jetstream_fanout_feed_repaired_events_total")
                          .Help("Events read from the log to fill live-stream gaps")
                          .Register(r)
                          .Add({});
  chain_resets_ = &prometheus::BuildCounter()
                       .Name("jetstream_fanout_feed_resets_total")
                       .Help("Times the live chain restarted because a gap could not be filled")
                       .Register(r)
                       .Add({});
  window_bytes_ = &prometheus::BuildGauge()
                       .Name("jetstream_fanout_window_bytes")
                       .Help("Memory held by the in-memory window of recent events")
                       .Register(r)
                       .Add({});
  head_time_us_ = &prometheus::BuildGauge()
                       .Name("jetstream_fanout_head_time_us")
                       .Help("time_us of the newest event fanout holds")
                       .Register(r)
                       .Add({});
  header_timeouts_ =
      &prometheus::BuildCounter()
           .Name("jetstream_fanout_header_timeouts_total")
           .Help("connections closed because their request was not sent within --header-timeout")
           .Register(r)
           .Add({});
  long_requests_ =
      &prometheus::BuildCounter()
           .Name("jetstream_fanout_long_requests_total")
           .Help("requests over 16 KiB (long subscribe URLs) that took a share of request memory")
           .Register(r)
           .Add({});
  request_memory_ = &prometheus::BuildGauge()
                         .Name("jetstream_fanout_request_memory_bytes")
                         .Help(
                             "request memory held by long requests being read "
                             "(at most --max-request-memory)")
                         .Register(r)
                         .Add({});
  requests_waiting_ = &prometheus::BuildGauge()
                           .Name("jetstream_fanout_requests_waiting")
                           .Help("long requests waiting for a share of request memory")
                           .Register(r)
                           .Add({});
  catch_up_rate_ = &prometheus::BuildGauge()
                        .Name("jetstream_fanout_catch_up_rate")
                        .Help(
                            "events/s replay and snapshot deliveries of this replica may take "
                            "now (live first, --catch-up-live-rise; -1 = off)")
                        .Register(r)
                        .Add({});
  live_lag_baseline_ = &prometheus::BuildGauge()
                            .Name("jetstream_fanout_live_write_lag_baseline_seconds")
                            .Help(
                                "live sends' p99 write lag with catch-up paused (measured every "
                                "10 s; -1 = not yet): what catch-up is compared with")
                            .Register(r)
                            .Add({});
  catch_up_congested_ =
      &prometheus::BuildCounter()
           .Name("jetstream_fanout_catch_up_congested_intervals_total")
           .Help(
               "100 ms intervals in which live sends' p99 write lag rose above its baseline "
               "by more than --catch-up-live-rise, so catch-up was slowed")
           .Register(r)
           .Add({});
}

void FanoutProbe::subscriber_connected(MessageEncoding encoding) {
  subscribers_[static_cast<std::size_t>(encoding)]->Increment();
}

void FanoutProbe::subscriber_disconnected(MessageEncoding encoding, CloseReason reason) {
  subscribers_[static_cast<std::size_t>(encoding)]->Decrement();
  closes_[static_cast<std::size_t>(reason)]->Increment();
}

void FanoutProbe::delivered(std::uint64_t events, std::uint64_t bytes) {
  events_delivered_->Increment(static_cast<double>(events));
  bytes_delivered_->Increment(static_cast<double>(bytes));
}

void FanoutProbe::write_lag(double seconds) { write_lag_->Observe(seconds < 0 ? 0 : seconds); }

void FanoutProbe::delivery_lag(double seconds) {
  delivery_lag_->Observe(seconds < 0 ? 0 : seconds);
}

void FanoutProbe::skipped_filtered(std::uint64_t events) {
  skipped_filtered_->Increment(static_cast<double>(events));
}
void FanoutProbe::skipped_oversize(std::uint64_t events) {
  skipped_oversize_->Increment(static_cast<double>(events));
}
void FanoutProbe::replay_started() { replay_sessions_->Increment(); }
void FanoutProbe::replay_finished() { replay_sessions_->Decrement(); }
void FanoutProbe::replay_page(std::uint64_t, double lag_seconds) {
  replay_pages_->Increment();
  replay_lag_->Observe(lag_seconds < 0 ? 0 : lag_seconds);
}

void FanoutProbe::snapshot_started() { snapshot_sessions_->Increment(); }
void FanoutProbe::snapshot_finished(bool complete) {
  snapshot_sessions_->Decrement();
  if (complete) snapshots_completed_->Increment();
}
void FanoutProbe::snapshot_events(std::uint64_t events) {
  snapshot_events_->Increment(static_cast<double>(events));
}
void FanoutProbe::snapshot_restarted() { snapshots_restarted_->Increment(); }

void FanoutProbe::options_update(std::string_view result) {
  prometheus::BuildCounter()
      .Name("jetstream_fanout_options_updates_total")
      .Help("options_update messages from subscribers, by result")
      .Register(*registry_)
      .Add({{"result", std::string(result)}})
      .Increment();
}

void FanoutProbe::set_window(std::size_t bytes, std::int64_t head_time_us) {
  window_bytes_->Set(static_cast<double>(bytes));
  head_time_us_->Set(static_cast<double>(head_time_us));
}

void FanoutProbe::set_catch_up(double events_per_second, double baseline_seconds,
                               std::uint64_t congested_intervals) {
  catch_up_rate_->Set(events_per_second);
  live_lag_baseline_->Set(baseline_seconds);
  catch_up_congested_->Increment(static_cast<double>(congested_intervals - last_congested_));
  last_congested_ = congested_intervals;
}

FanoutProbe::Figures FanoutProbe::figures() const {
  Figures out;
  for (std::size_t i = 0; i < kMessageEncodingCount; ++i) out.clients[i] = subscribers_[i]->Value();
  out.events_received = events_emitted_->Value();
  out.events_delivered = events_delivered_->Value();
  return out;
}

void FanoutProbe::set_deflate(const DeflateStats& stats) {
  const std::uint64_t now[3] = {stats.events.load(std::memory_order_relaxed),
                                stats.json_bytes.load(std::memory_order_relaxed),
                                stats.deflate_bytes.load(std::memory_order_relaxed)};
  prometheus::Counter* counters[3] = {deflate_events_, deflate_json_bytes_, deflate_bytes_};
  for (int i = 0; i < 3; ++i) {
    counters[i]->Increment(static_cast<double>(now[i] - last_deflate_[i]));
    last_deflate_[i] = now[i];
  }
}

void FanoutProbe::set_http(const HttpServerStats& stats) {
  header_timeouts_->Increment(
      static_cast<double>(stats.header_timeouts - last_http_.header_timeouts));
  long_requests_->Increment(static_cast<double>(stats.long_requests - last_http_.long_requests));
  request_memory_->Set(static_cast<double>(stats.request_memory_in_use));
  requests_waiting_->Set(static_cast<double>(stats.requests_waiting));
  last_http_ = stats;
}

void FanoutProbe::on_batch_received(std::size_t events, std::size_t bytes) {
  events_emitted_->Increment(static_cast<double>(events));
  bytes_emitted_->Increment(static_cast<double>(bytes));
}

void FanoutProbe::on_gap_repaired(std::size_t events) {
  gaps_repaired_->Increment();
  repaired_events_->Increment(static_cast<double>(events));
}

void FanoutProbe::on_chain_reset(std::string_view why) {
  chain_resets_->Increment();
  log::warn("live event chain restarted; subscribers behind it continue from the log",
            {{"why", why}});
}

void FanoutProbe::on_proto_rejected(std::string_view message, std::string_view reason) {
  proto_rejections_.record(message, reason);
}

}  // namespace jetstream::fanout
