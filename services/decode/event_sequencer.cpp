#include "services/decode/event_sequencer.hpp"

#include <chrono>
#include <thread>

#include "common/log/log.hpp"

namespace jetstream::decode {

EventSequencer::EventSequencer(EventStore& store,
                               std::shared_ptr<const zstd::Dictionary> dictionary,
                               DecodeProbe& probe, PipelineCounters& counters,
                               EventPublisher& publisher, std::function<std::int64_t()> now)
    : store_(store),
      compressor_(dictionary ? std::make_unique<zstd::Compressor>(std::move(dictionary)) : nullptr),
      probe_(probe),
      counters_(counters),
      publisher_(publisher),
      now_(now),
      clock_(store.last_time_us(), std::move(now)),
      previous_time_us_(store.last_time_us()),
      cursor_(store.upstream_cursor()) {}

bool EventSequencer::accept(DecodedBatchPtr batch, const std::atomic<bool>& stopping) {
  if (batch->sequence < next_sequence_ || waiting_.count(batch->sequence) != 0) {
    // Each sequence is dispatched exactly once: a repeat is a bug in the receiver.
    log::error("decode pipeline delivered a batch twice", {{"sequence", batch->sequence}});
    std::abort();
  }
  waiting_.emplace(batch->sequence, std::move(batch));
  while (!waiting_.empty() && waiting_.begin()->first == next_sequence_) {
    DecodedBatchPtr ready = std::move(waiting_.begin()->second);
    waiting_.erase(waiting_.begin());
    if (!commit(*ready, stopping)) return false;
    ++next_sequence_;
    counters_.batches_in_flight.fetch_sub(1, std::memory_order_acq_rel);
  }
  probe_.set_queue_depth(counters_.batches_in_flight.load(std::memory_order_relaxed));
  return true;
}

bool EventSequencer::commit(DecodedBatch& batch, const std::atomic<bool>& stopping) {
  probe_.record_decode_stats(batch.stats);
  for (const auto& text : batch.upstream_errors) {
    log::warn_every(std::chrono::seconds(10), "upstream_error_frame",
                    "upstream sent an error frame", {{"error", text}});
  }

  const std::size_t count = batch.events.size();
  json_.resize(count);
  zstd_.resize(count);
  views_.resize(count);
  const bool twin = !store_.options().compact.empty();
  changes_.resize(twin ? count : 0);
  for (std::size_t i = 0; i < count; ++i) {
    const firehose::PendingEvent& pending = batch.events[i];
    const std::int64_t time_us = clock_.next();
    json_[i].clear();
    pending.append_finalized(json_[i], time_us);
    if (compressor_) {
      compressor_->compress(json_[i], zstd_[i]);
    } else {
      zstd_[i].clear();
    }
    proto::EventView& view = views_[i];
    view.time_us = time_us;
    view.prev_time_us = previous_time_us_;
    view.kind = pending.kind;
    view.did = pending.did;
    view.collection = pending.collection;
    view.json = json_[i];
    view.zstd = {reinterpret_cast<const std::uint8_t*>(zstd_[i].data()), zstd_[i].size()};
    if (twin) changes_[i] = RecordChange{pending.rkey, pending.rev, pending.is_delete};
    previous_time_us_ = time_us;
  }
  if (batch.cursor > cursor_) cursor_ = batch.cursor;

  // Below the free-space reserve nothing is stored, so nothing is acknowledged: the receiver
  // pauses when its batches in flight are full and ingest holds the frames (README "Disk full").
  while (!counters_.disk_has_room.load(std::memory_order_acquire)) {
    for (int i = 0; i < 10 && !stopping.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (stopping.load()) return false;
  }
  const auto write_start = std::chrono::steady_clock::now();
  std::string error;
  while (!store_.append(views_, changes_, cursor_, error)) {
    probe_.record_store_error();
    log::error("event log write failed; retrying in 1s (nothing is acknowledged meanwhile)",
               {{"error", error}, {"events", count}});
    for (int i = 0; i < 10 && !stopping.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (stopping.load()) return false;
  }
  const double write_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
  counters_.durable_cursor.store(cursor_, std::memory_order_release);
  if (count != 0) counters_.newest_time_us.store(previous_time_us_, std::memory_order_release);
  const double age_seconds = batch.oldest_receive_time_us > 0
                                 ? static_cast<double>(now_() - batch.oldest_receive_time_us) / 1e6
                                 : 0.0;
  probe_.record_stored(count, cursor_, write_seconds, age_seconds < 0 ? 0 : age_seconds);
  const std::int64_t stored_at = now_();
  for (const auto& pending : batch.events) {
    probe_.record_upstream_lag(static_cast<double>(stored_at - pending.upstream_time_us) / 1e6);
  }

  std::size_t bytes = 0;
  for (std::size_t start = 0; start < count; start += kMaxEventsPerMessage) {
    const std::size_t n = std::min(kMaxEventsPerMessage, count - start);
    const std::span<const proto::EventView> chunk(views_.data() + start, n);
    publisher_.publish_events(chunk);
    bytes += proto::event_batch_size(chunk);
  }
  if (count != 0) probe_.record_published(count, bytes);
  return true;
}

void EventSequencer::publish_heartbeat() {
  proto::Heartbeat heartbeat;
  heartbeat.newest_time_us = previous_time_us_;
  heartbeat.oldest_time_us = store_.oldest_time_us();
  publisher_.publish_heartbeat(heartbeat);
  // What fanout needs for snapshot=true handshakes, on every tick whatever the load (fanout is
  // ready only once it has it).
  const std::string compacted = store_.options().compact.canonical();
  const std::string building = store_.building_collections();
  publisher_.publish_state_info(
      proto::StateInfo{compacted, store_.tombstone_horizon_us(), building});
  probe_.set_log_bounds(heartbeat.oldest_time_us, heartbeat.newest_time_us);
}

}  // namespace jetstream::decode
