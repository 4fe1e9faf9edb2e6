#include "services/decode/event_sequencer.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <thread>
#include <unordered_set>

#include "common/log/log.hpp"
#include "common/text/utf8.hpp"

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

void EventSequencer::enable_verification(Verification verification) {
  verification.options.final_check = true;
  verification_ = std::move(verification);
  release_verifier_ =
      std::make_unique<CommitVerifier>(*verification_->cache, now_, verification_->options);
  // Released frames are decided in order; an #identity among them must not empty the cache
  // under the next commit of the same DID (a rotated key is caught by the refresh path).
  release_encoder_.set_commit_gate(release_verifier_.get());
  if (verification_->check_revs) {
    revisions_ = std::make_unique<RepoRevisions>(
        verification_->rev_cache_size,
        [this](std::string_view did) { return store_.repo_rev(did); });
  }
  std::uint64_t highest = 0;
  for (auto& [id, stored] : store_.held_frames()) {
    auto frame = HeldFrame::decode(id, stored);
    highest = std::max(highest, id);
    if (!frame) {
      log::error("a held frame in the store is unreadable; dropped", {{"id", id}});
      verification_writes_.held_deletes.push_back(id);
      continue;
    }
    const std::string did = frame->did;
    if (held_.add(std::move(*frame)) != HeldCommits::Ask::nothing) {
      resolutions_to_request_.emplace_back(did, false);
    }
  }
  held_.resume_ids_after(highest);
  probe_.set_held_frames(held_.frame_count(), held_.did_count());
  if (held_.did_count() != 0) {
    log::info("verification: frames held by the previous run are waiting for their DIDs",
              {{"frames", held_.frame_count()}, {"dids", held_.did_count()}});
  }
  for (const auto& [did, refresh] : resolutions_to_request_) {
    verification_->request_resolution(did, refresh);
  }
  resolutions_to_request_.clear();
}

void EventSequencer::hold_frame(const std::string& did, const FrameBatch& frames,
                                std::uint32_t index, bool refresh) {
  HeldFrame frame;
  frame.id = held_.next_id();
  frame.did = did;
  frame.upstream_seq = frames.headers[index].upstream_seq;
  frame.receive_time_us = frames.headers[index].receive_time_us;
  const auto* data = static_cast<const std::uint8_t*>(frames.frames[index].data());
  frame.bytes.assign(data, data + frames.frames[index].size());
  verification_writes_.held_puts.emplace_back(frame.id, frame.encode());
  const HeldCommits::Ask ask = held_.add(std::move(frame), refresh);
  if (ask != HeldCommits::Ask::nothing) {
    resolutions_to_request_.emplace_back(did, ask == HeldCommits::Ask::refresh);
  }
}

namespace {

/// An event that will not be stored now is not counted now (a held one is when released).
void uncount(const firehose::PendingEvent& event, firehose::DecodeStats& stats) {
  --stats.events;
  --stats.events_by_kind[static_cast<std::size_t>(event.kind)];
}

}  // namespace

bool EventSequencer::rev_increases(std::string_view did, std::string_view rev, std::int64_t seq,
                                   firehose::DecodeStats& stats) {
  if (revisions_ == nullptr || revisions_->advance(did, rev)) return true;
  ++stats.drops[static_cast<std::size_t>(firehose::DropReason::rev_not_increasing)];
  log::warn_every(std::chrono::seconds(10), "rev_not_increasing",
                  "a commit failed verification; dropped",
                  {{"reason", "rev_not_increasing"}, {"did", did}, {"seq", seq}, {"rev", rev}});
  return false;
}

void EventSequencer::uncount_gate(DecodedBatch& batch, std::uint32_t frame) {
  // A frame held here is decided, and counted, again when its DID's frames are released.
  if (frame >= batch.frame_gate.size()) return;
  const std::uint8_t gate = batch.frame_gate[frame];
  batch.frame_gate[frame] = 0;  // once per frame
  if ((gate & DecodedBatch::kGatePassed) == 0) return;
  auto& passed = (gate & DecodedBatch::kGateUnverified) != 0 ? batch.stats.commits_passed_unverified
                                                             : batch.stats.commits_verified;
  if (passed > 0) --passed;
  if ((gate & DecodedBatch::kGateUnproven) != 0 && batch.stats.commits_unproven > 0) {
    --batch.stats.commits_unproven;
  }
}

void EventSequencer::screen_frames(DecodedBatch& batch) {
  const bool any_held = std::any_of(batch.gated.begin(), batch.gated.end(),
                                    [](const auto& commit) { return commit.held; });
  if (!any_held && revisions_ == nullptr && held_.frame_count() == 0) return;
  if (!batch.frames) {
    log::error("decode pipeline: a batch with gated commits lost its frames");
    std::abort();
  }
  std::vector<firehose::PendingEvent> kept;
  kept.reserve(batch.events.size());
  std::size_t next_commit = 0;
  // A frame yields several events: it is held, or dropped, once.
  std::optional<std::uint32_t> held_frame;
  std::optional<std::uint32_t> dropped_frame;
  for (std::size_t position = 0; position <= batch.events.size(); ++position) {
    for (; next_commit < batch.gated.size() && batch.gated[next_commit].position == position;
         ++next_commit) {
      const auto& commit = batch.gated[next_commit];
      if (commit.held || held_.holds(commit.did)) {
        // Behind a held frame of its DID, a passed commit waits too: order per DID is kept.
        if (held_frame != commit.frame) uncount_gate(batch, commit.frame);
        hold_frame(commit.did, *batch.frames, commit.frame, commit.held && commit.refresh);
        held_frame = commit.frame;
      } else if (!rev_increases(commit.did, commit.rev,
                                batch.frames->headers[commit.frame].upstream_seq, batch.stats)) {
        dropped_frame = commit.frame;
      }
    }
    if (position == batch.events.size()) break;
    firehose::PendingEvent& event = batch.events[position];
    const std::uint32_t frame = batch.event_frames.at(position);
    if (frame == held_frame || frame == dropped_frame) {
      uncount(event, batch.stats);
    } else if (held_.holds(event.did)) {
      uncount_gate(batch, frame);
      hold_frame(event.did, *batch.frames, frame, false);
      held_frame = frame;
      uncount(event, batch.stats);
    } else {
      kept.push_back(std::move(event));
    }
  }
  batch.events = std::move(kept);
}

bool EventSequencer::release(const std::string& did, const std::atomic<bool>& stopping) {
  HeldCommits::Released released = held_.release(did);
  if (released.frames.empty()) return true;
  DecodedBatch batch;
  release_encoder_.reset_stats();
  release_verifier_->set_refresh_tried(released.refreshed);
  std::int64_t oldest_receive = std::numeric_limits<std::int64_t>::max();
  firehose::DecodeStats screened;  // what the rev check removed from the encoder's counts
  while (!released.frames.empty()) {
    HeldFrame& frame = released.frames.front();
    const std::size_t first_event = batch.events.size();
    const auto outcome = release_encoder_.events_from_frame(frame.bytes, batch.events);
    if (outcome.held) {
      // A signature failed against a document that was not fetched afresh, or the DID left the
      // cache (an #identity) since the resolver answered: this frame and the ones behind it wait
      // again (they are in the store already).
      const bool refresh = release_verifier_->last_hold_wants_refresh();
      bool first = true;
      for (HeldFrame& waiting : released.frames) {
        const auto ask = held_.add(std::move(waiting), first && refresh);
        if (first && ask != HeldCommits::Ask::nothing) {
          resolutions_to_request_.emplace_back(did, ask == HeldCommits::Ask::refresh);
        }
        first = false;
      }
      break;
    }
    if (outcome.gate_passed &&
        !rev_increases(outcome.repo, outcome.rev, frame.upstream_seq, screened)) {
      for (std::size_t i = first_event; i < batch.events.size(); ++i) {
        ++screened.events;
        ++screened.events_by_kind[static_cast<std::size_t>(batch.events[i].kind)];
      }
      batch.events.resize(first_event);
    }
    verification_writes_.held_deletes.push_back(frame.id);
    oldest_receive = std::min(oldest_receive, frame.receive_time_us);
    released.frames.pop_front();
  }
  batch.stats = release_encoder_.stats();
  // The workers counted these frames already; only the drops and events are new.
  batch.stats.frames = 0;
  batch.stats.frames_by_type = {};
  batch.stats.events -= screened.events;
  for (std::size_t kind = 0; kind < screened.events_by_kind.size(); ++kind) {
    batch.stats.events_by_kind[kind] -= screened.events_by_kind[kind];
  }
  for (std::size_t reason = 0; reason < screened.drops.size(); ++reason) {
    batch.stats.drops[reason] += screened.drops[reason];
  }
  batch.oldest_receive_time_us =
      oldest_receive == std::numeric_limits<std::int64_t>::max() ? 0 : oldest_receive;
  batch.cursor = cursor_;
  return commit(batch, stopping, /*may_hold=*/false);
}

bool EventSequencer::commit(DecodedBatch& batch, const std::atomic<bool>& stopping, bool may_hold) {
  if (verification_ && may_hold) screen_frames(batch);
  probe_.record_decode_stats(batch.stats);
  for (const auto& text : batch.upstream_errors) {
    log::warn_every(std::chrono::seconds(10), "upstream_error_frame",
                    "upstream sent an error frame", {{"error", text}});
  }

  const std::size_t count = batch.events.size();
  sequence_events(batch.events);
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
  if (revisions_ != nullptr) verification_writes_.repo_revs.swap(revisions_->pending_writes());
  // Backfill's resync queue exists only beside a twin (nothing to backfill without one).
  if (!store_.options().compact.empty()) verification_writes_.resyncs.swap(batch.resyncs);
  while (!store_.append(views_, changes_, cursor_, verification_writes_, error)) {
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
  verification_writes_.resyncs.clear();
  if (verification_) {
    verification_writes_.held_puts.clear();
    verification_writes_.held_deletes.clear();
    verification_writes_.repo_revs.clear();
    probe_.set_held_frames(held_.frame_count(), held_.did_count());
    if (revisions_ != nullptr) {
      probe_.set_repo_revisions(revisions_->size(), revisions_->store_reads());
    }
    // Asked only now that the frames waiting for them are stored: an answer cannot overtake them.
    for (const auto& [did, refresh] : resolutions_to_request_) {
      verification_->request_resolution(did, refresh);
    }
    resolutions_to_request_.clear();
  }
  if (count != 0) counters_.newest_time_us.store(previous_time_us_, std::memory_order_release);
  const double age_seconds = batch.oldest_receive_time_us > 0
                                 ? static_cast<double>(now_() - batch.oldest_receive_time_us) / 1e6
                                 : 0.0;
  probe_.record_stored(count, cursor_, write_seconds, age_seconds < 0 ? 0 : age_seconds);
  const std::int64_t stored_at = now_();
  for (const auto& pending : batch.events) {
    probe_.record_upstream_lag(static_cast<double>(stored_at - pending.upstream_time_us) / 1e6);
  }
  counters_.events_stored.fetch_add(count, std::memory_order_relaxed);
  if (!batch.events.empty()) {
    counters_.upstream_lag_us.store(
        std::max<std::int64_t>(0, stored_at - batch.events.back().upstream_time_us),
        std::memory_order_relaxed);
  }

  publish_sequenced();
  return true;
}

void EventSequencer::sequence_events(const std::vector<firehose::PendingEvent>& events) {
  const std::size_t count = events.size();
  json_.resize(count);
  zstd_.resize(count);
  views_.resize(count);
  const bool twin = !store_.options().compact.empty();
  changes_.resize(twin ? count : 0);
  for (std::size_t i = 0; i < count; ++i) {
    const firehose::PendingEvent& pending = events[i];
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
    view.backfill = pending.backfill;
    view.did = pending.did;
    view.collection = pending.collection;
    view.json = json_[i];
    view.zstd = {reinterpret_cast<const std::uint8_t*>(zstd_[i].data()), zstd_[i].size()};
    if (twin) changes_[i] = RecordChange{pending.rkey, pending.rev, pending.is_delete};
    previous_time_us_ = time_us;
  }
}

void EventSequencer::publish_sequenced() {
  const std::size_t count = views_.size();
  std::size_t bytes = 0;
  for (std::size_t start = 0; start < count; start += kMaxEventsPerMessage) {
    const std::size_t n = std::min(kMaxEventsPerMessage, count - start);
    const std::span<const proto::EventView> chunk(views_.data() + start, n);
    publisher_.publish_events(chunk);
    bytes += proto::event_batch_size(chunk);
  }
  if (count != 0) probe_.record_published(count, bytes);
}

proto::BatchAck EventSequencer::apply_backfill(const proto::RepoBatchView& batch) {
  BackfillProgress progress;
  for (;;) {
    if (auto ack = apply_backfill_step(progress, batch, kBackfillRecordsPerStep)) return *ack;
  }
}

std::optional<proto::BatchAck> EventSequencer::apply_backfill_step(
    BackfillProgress& progress, const proto::RepoBatchView& batch, std::size_t max_records) {
  proto::BatchAck& ack = progress.ack;
  ack.batch_id = batch.batch_id;
  const CollectionSet& compacted = store_.options().compact;
  std::string error;
  const auto wanted = CollectionSet::parse(batch.collections, error);
  if (compacted.empty() || !wanted) {
    ack.outcome = proto::BatchOutcome::rejected;
    log::warn_every(std::chrono::seconds(10), "backfill_batch_refused",
                    compacted.empty() ? "a backfill batch arrived but no collection is compacted"
                                      : "a backfill batch names collections that do not parse",
                    {{"did", batch.did}, {"error", error}});
    probe_.record_backfill_batch(ack);
    return ack;
  }
  if (!counters_.disk_has_room.load(std::memory_order_acquire) || !store_.writable()) {
    ack.outcome = proto::BatchOutcome::busy;  // nothing waits here: live frames come first
    probe_.record_backfill_batch(ack);
    return ack;
  }

  // This step's records that both sets cover, keyed as the twin keys them.
  const std::size_t first = progress.next;
  const std::size_t end =
      std::min(batch.records.size(), first + std::max<std::size_t>(max_records, 1));
  const bool final_step = end == batch.records.size();
  backfill_keys_.clear();
  backfill_records_.clear();
  std::string rkey;
  for (std::size_t i = first; i < end; ++i) {
    const proto::BackfillRecordView& record = batch.records[i];
    if (!wanted->matches(record.collection) || !compacted.matches(record.collection)) {
      ++ack.unchanged;
      continue;
    }
    rkey.clear();
    text::append_replacing_invalid(rkey, record.rkey);
    backfill_keys_.push_back(twin_key(batch.did, record.collection, rkey));
    backfill_records_.push_back(i);
  }
  const auto entries = store_.twin_entries(backfill_keys_, error);
  std::vector<std::string> stale;
  if ((!error.empty()) || (final_step && batch.last &&
                           !store_.stale_records(batch.did, batch.rev, *wanted, stale, error))) {
    ack = proto::BatchAck{batch.batch_id, proto::BatchOutcome::busy, 0, 0, 0, 0};
    log::error("reading the compacted twin for a backfill batch failed; backfill sends it again",
               {{"did", batch.did}, {"error", error}});
    probe_.record_backfill_batch(ack);
    return ack;
  }
  backfill_events_.clear();
  backfill_encoder_.reset_stats();
  for (std::size_t j = 0; j < backfill_records_.size(); ++j) {
    // The rule of twin_replaces (compacted_twin.hpp) for a backfilled record: the store applies
    // it again, and the check folds the log with it.
    if (entries[j] && !(entries[j]->rev < batch.rev)) {
      ++ack.unchanged;
      continue;
    }
    const proto::BackfillRecordView& record = batch.records[backfill_records_[j]];
    if (backfill_encoder_.record_event(batch.did, batch.rev, record.collection, record.rkey,
                                       record.cid, record.record, backfill_events_)) {
      ++ack.applied;
    } else {
      ++ack.invalid;
    }
  }
  // Records of this batch are the repository's, not stale (those of earlier steps are stored at
  // the batch's rev, so stale_records did not return them).
  const std::unordered_set<std::string_view> held_by_batch(backfill_keys_.begin(),
                                                           backfill_keys_.end());
  for (const std::string& key : stale) {
    const auto parsed = parse_twin_key(key);
    // Records of this very batch are the repository's, not stale; stale_records returns only
    // keys that parse.
    if (!parsed || held_by_batch.contains(key)) continue;
    backfill_encoder_.record_event(batch.did, batch.rev, parsed->collection, parsed->rkey, {}, {},
                                   backfill_events_);
    ++ack.tombstoned;
  }
  probe_.record_decode_stats(backfill_encoder_.stats());

  const std::int64_t previous_before = previous_time_us_;
  sequence_events(backfill_events_);
  const auto write_start = std::chrono::steady_clock::now();
  if (!store_.append(views_, changes_, cursor_, error)) {
    // Not stored: these time_us were never used; the chain goes on from the last stored event.
    previous_time_us_ = previous_before;
    probe_.record_store_error();
    log::error("storing a backfill batch failed; backfill sends it again",
               {{"did", batch.did}, {"error", error}});
    ack = proto::BatchAck{batch.batch_id, proto::BatchOutcome::busy, 0, 0, 0, 0};
    probe_.record_backfill_batch(ack);
    return ack;
  }
  const double write_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
  if (!views_.empty()) counters_.newest_time_us.store(previous_time_us_, std::memory_order_release);
  probe_.record_stored(views_.size(), cursor_, write_seconds, 0.0);
  counters_.events_stored.fetch_add(views_.size(), std::memory_order_relaxed);
  counters_.backfill_records_applied.fetch_add(views_.size(), std::memory_order_relaxed);
  publish_sequenced();
  progress.next = end;
  if (!final_step) return std::nullopt;  // the rest after whatever live batches wait
  probe_.record_backfill_batch(ack);
  return ack;
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
  publisher_.publish_status(pipeline_status());
}

proto::PipelineStatus EventSequencer::pipeline_status() const {
  // Figures a few threads keep (PipelineCounters); a status older than 5 s (ingest gone) or a
  // backfill silent for 30 s count as "not connected" and "no backfill".
  const std::int64_t now = now_();
  const auto relaxed = std::memory_order_relaxed;
  proto::PipelineStatus status;
  status.upstream_connected = counters_.upstream_connected.load(relaxed) &&
                              now - counters_.upstream_status_at_us.load(relaxed) <= 5'000'000;
  status.upstream_lag_us = counters_.upstream_lag_us.load(relaxed);
  status.frames_received = counters_.frames_received.load(relaxed);
  status.events_stored = counters_.events_stored.load(relaxed);
  status.log_oldest_time_us = std::max<std::int64_t>(0, store_.oldest_time_us());
  status.log_newest_time_us = std::max<std::int64_t>(0, previous_time_us_);
  status.twin = !store_.options().compact.empty();
  if (status.twin) {
    for (const auto& [pattern, counts] : store_.twin_counts()) {
      status.compacted_records +=
          static_cast<std::uint64_t>(std::max<std::int64_t>(0, counts.records));
    }
  }
  const std::int64_t backfill_at = counters_.backfill_progress_at_us.load(relaxed);
  status.backfill = backfill_at > 0 && now - backfill_at <= 30'000'000;
  if (status.backfill) {
    status.backfill_repos_total = counters_.backfill_repos_total.load(relaxed);
    status.backfill_repos_done =
        std::min(counters_.backfill_repos_done.load(relaxed), status.backfill_repos_total);
    status.backfill_repos_failed =
        std::min(counters_.backfill_repos_failed.load(relaxed),
                 status.backfill_repos_total - status.backfill_repos_done);
  }
  status.backfill_records_applied = counters_.backfill_records_applied.load(relaxed);
  status.sent_time_us = std::max<std::int64_t>(1, now);
  return status;
}

}  // namespace jetstream::decode
