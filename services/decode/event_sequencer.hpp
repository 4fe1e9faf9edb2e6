// The writer's logic, free of actors and sockets so tests drive it directly: restores arrival
// order, assigns time_us, compresses once, stores events with the upstream cursor in one atomic
// batch, then publishes them with their prev_time_us chain.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/clock/clock.hpp"
#include "common/zstd/zstd_dictionary.hpp"
#include "proto/backfill.hpp"
#include "proto/events.hpp"
#include "services/decode/commit_verifier.hpp"
#include "services/decode/decode_probe.hpp"
#include "services/decode/event_store.hpp"
#include "services/decode/held_commits.hpp"
#include "services/decode/repo_revisions.hpp"
#include "services/decode/stage_messages.hpp"

namespace jetstream::decode {

/// Where sequenced events go after they are stored (ZeroMQ PUB in the service, a recorder in
/// tests). Called on the writer's thread only.
class EventPublisher {
 public:
  virtual ~EventPublisher() = default;
  virtual void publish_events(std::span<const proto::EventView> events) = 0;
  virtual void publish_heartbeat(const proto::Heartbeat& heartbeat) = 0;
  virtual void publish_state_info(const proto::StateInfo& info) = 0;
  /// The figures of fanout's status page (proto §3.6c), each tick; a publisher that does not
  /// carry them (tests) ignores them.
  virtual void publish_status(const proto::PipelineStatus& /*status*/) {}
};

/// Unique, strictly increasing microsecond timestamps: wall clock, +1 on ties or when the clock
/// steps back, never below the last one stored (so also across restarts).
class TimeUsClock {
 public:
  TimeUsClock(std::int64_t last, std::function<std::int64_t()> now)
      : last_(last), now_(std::move(now)) {}
  std::int64_t next() {
    const std::int64_t now = now_();
    last_ = now > last_ ? now : last_ + 1;
    return last_;
  }
  std::int64_t last() const { return last_; }

 private:
  std::int64_t last_;
  std::function<std::int64_t()> now_;
};

class EventSequencer {
 public:
  /// Events published per message to fanout: bounds message size and latency of big batches.
  static constexpr std::size_t kMaxEventsPerMessage = 512;

  EventSequencer(EventStore& store, std::shared_ptr<const zstd::Dictionary> dictionary,
                 DecodeProbe& probe, PipelineCounters& counters, EventPublisher& publisher,
                 std::function<std::int64_t()> now = clock::wall_clock_us);

  /// Takes a decoded batch (in any order) and commits every batch that is now next in order.
  /// Returns false only when stopping was requested while the store kept failing.
  bool accept(DecodedBatchPtr batch, const std::atomic<bool>& stopping);

  void publish_heartbeat();
  /// What the status message of this tick says (PipelineCounters, the twin's counts).
  proto::PipelineStatus pipeline_status() const;

  /// Applies one batch of a repository backfill fetched (proto/README.md §3.9): each record the
  /// twin holds nothing newer for becomes a new event marked as backfill, and (last batch) each
  /// record the repository no longer holds a delete; stored and published like live events. The
  /// ack is `stored` only once they are durable; `busy` when they cannot be stored now (the disk
  /// is short, a write failed: nothing of the batch is stored, backfill sends it again).
  proto::BatchAck apply_backfill(const proto::RepoBatchView& batch);

  /// Where a batch applied in steps stands (the sequencer actor applies one step per message, so
  /// live batches that arrive meanwhile go first: a step holds the writer for ~0.1 ms, a whole
  /// batch of 500 records for several ms).
  struct BackfillProgress {
    std::size_t next = 0;  ///< the first record not yet considered
    proto::BatchAck ack;
  };
  /// Measured by backfill_bench section 2 (live ~2,000 frames/s beside 200,000 records), steps of
  /// 64 / 16 / 8 / 4 records: 74,954 / 72,465 / 67,088 / 43,179 records/s, live p99 beside them
  /// 5.6 / 1.6 / 1.2 / 1.1 ms (0.5–0.8 ms alone). 8 keeps the 50,000/s target with the least
  /// added latency; below it each step's own write costs more than the records in it.
  static constexpr std::size_t kBackfillRecordsPerStep = 8;
  /// Applies up to `max_records` more records of `batch` (and, at the end of a `last` batch, its
  /// tombstones); the ack once the batch is done (or cannot be stored now), nullopt while
  /// records remain.
  std::optional<proto::BatchAck> apply_backfill_step(BackfillProgress& progress,
                                                     const proto::RepoBatchView& batch,
                                                     std::size_t max_records);

  std::uint64_t next_sequence() const { return next_sequence_; }

  // ---- --verify (README "Verification"): frames held until their DID resolves.

  struct Verification {
    identity::IdentityCache* cache = nullptr;
    CommitVerifier::Options options;  ///< final_check is set here: released frames are decided
    /// Asks for the DID's resolution; its answer must come back as release(did). Called on the
    /// sequencer's thread, after the frames that wait for it are stored.
    std::function<void(const std::string& did, bool refresh)> request_resolution;
    /// --verify full: drop a commit whose rev is not above its repository's last stored rev,
    /// keeping this many repositories' revs in memory (the rest are read from the store).
    bool check_revs = false;
    std::size_t rev_cache_size = 250'000;
  };
  /// Turns verification on: loads the frames a previous run held and asks for their DIDs.
  void enable_verification(Verification verification);
  /// The DID's resolution is in the cache: decides its held frames in order and stores their
  /// events. Returns false only when stopping was requested while the store kept failing.
  bool release(const std::string& did, const std::atomic<bool>& stopping);
  const HeldCommits& held_commits() const { return held_; }

 private:
  /// Finalizes `events` (time_us, JSON, zstd) into views_ and changes_, continuing the chain.
  void sequence_events(const std::vector<firehose::PendingEvent>& events);
  /// Publishes views_ once stored, in messages of at most kMaxEventsPerMessage.
  void publish_sequenced();
  /// `may_hold` is false for frames being released: their DID is no longer held.
  bool commit(DecodedBatch& batch, const std::atomic<bool>& stopping, bool may_hold = true);
  /// Moves the events of DIDs with held frames, and the held commits, out of `batch` into held
  /// frames (and `verification_writes_`); drops the commits whose rev does not increase.
  void screen_frames(DecodedBatch& batch);
  /// --verify full: whether a passed commit's rev increases; counts and logs the drop when not.
  bool rev_increases(std::string_view did, std::string_view rev, std::int64_t seq,
                     firehose::DecodeStats& stats);
  void hold_frame(const std::string& did, const FrameBatch& frames, std::uint32_t index,
                  bool refresh);
  /// Takes back the gate's count of `frame`'s commit when the frame is held here.
  static void uncount_gate(DecodedBatch& batch, std::uint32_t frame);

  EventStore& store_;
  std::unique_ptr<zstd::Compressor> compressor_;  // null without a dictionary
  DecodeProbe& probe_;
  PipelineCounters& counters_;
  EventPublisher& publisher_;
  std::function<std::int64_t()> now_;
  TimeUsClock clock_;
  std::int64_t previous_time_us_;
  std::int64_t cursor_;
  std::uint64_t next_sequence_ = 1;
  std::map<std::uint64_t, DecodedBatchPtr> waiting_;  // arrived early, by sequence

  // Reused per batch.
  std::vector<std::string> json_;
  std::vector<std::string> zstd_;
  std::vector<proto::EventView> views_;
  /// What each event does to the compacted twin (filled only when a twin is configured).
  std::vector<RecordChange> changes_;

  // Backfill batches (reused).
  firehose::V1Encoder backfill_encoder_;
  std::vector<firehose::PendingEvent> backfill_events_;
  std::vector<std::string> backfill_keys_;
  std::vector<std::size_t> backfill_records_;

  // --verify
  std::optional<Verification> verification_;
  HeldCommits held_;
  EventStore::VerificationWrites verification_writes_;  ///< written with the next append
  std::unique_ptr<RepoRevisions> revisions_;            // --verify full
  std::vector<std::pair<std::string, bool>> resolutions_to_request_;
  firehose::V1Encoder release_encoder_;
  std::unique_ptr<CommitVerifier> release_verifier_;
};

}  // namespace jetstream::decode
