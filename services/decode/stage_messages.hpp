// decode's actor messages and the state its stages share: the receiver thread hands batches of
// frames to worker actors, which decode them in parallel; the sequencer actor puts the results
// back in arrival order, stamps time_us, compresses, stores and publishes.
//
//   receiver thread ──FrameBatch──▶ decode_worker ×N ──DecodedBatch──▶ sequencer (detached)
//        ▲                                                                  │
//        └──────────── durable cursor, batches in flight (atomics) ─────────┘
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/firehose/v1_encoder.hpp"
#include "proto/backfill.hpp"
#include "proto/ingest.hpp"

namespace jetstream::decode {

/// Frames the receiver accepted, in arrival order. Owned by one stage at a time.
struct FrameBatch {
  std::uint64_t sequence = 0;  ///< consecutive from 1: the sequencer restores this order
  std::vector<zmq::message_t> frames;
  std::vector<proto::FrameHeader> headers;
};
using FrameBatchPtr = std::shared_ptr<FrameBatch>;

/// A batch's events, not yet sequenced.
struct DecodedBatch {
  std::uint64_t sequence = 0;
  std::vector<firehose::PendingEvent> events;
  std::int64_t cursor = 0;  ///< highest nonzero upstream seq in the batch, 0 when none
  std::int64_t oldest_receive_time_us = 0;
  firehose::DecodeStats stats;
  std::vector<std::string> upstream_errors;  ///< bounded texts of upstream error frames
  /// Repositories backfill should fetch again or DIDs it should resolve again (a `#sync`, an
  /// active `#account`, an `#identity`; firehose::FrameOutcome::Resync), in frame order.
  std::vector<std::pair<std::string, std::uint8_t>> resyncs;

  // --verify only (empty otherwise).
  /// A commit the CommitGate held or passed, in frame order; a passed commit's events (if any)
  /// start at `position` in `events`, a held commit's would have been there.
  struct GatedCommit {
    std::size_t position = 0;
    std::uint32_t frame = 0;  ///< index in `frames`
    std::string did;
    std::string rev;
    bool held = false;
    bool refresh = false;  ///< held: its signature failed against a cached key
  };
  std::vector<GatedCommit> gated;
  /// The frames, kept so the sequencer can hold any frame of a DID that has frames waiting,
  /// and the frame each event came from.
  std::shared_ptr<const FrameBatch> frames;
  std::vector<std::uint32_t> event_frames;
  /// How the gate counted each frame's commit (kGatePassed…): a passed commit held behind its
  /// DID's held frames is decided and counted again on release, so its first count is taken back.
  std::vector<std::uint8_t> frame_gate;
  static constexpr std::uint8_t kGatePassed = 1;
  static constexpr std::uint8_t kGateUnverified = 2;
  static constexpr std::uint8_t kGateUnproven = 4;
};
using DecodedBatchPtr = std::shared_ptr<DecodedBatch>;

/// One repository batch from backfill (proto/README.md §3.9), decoded: the view points into
/// `body`. `routing_id` names the backfill that sent it, for the ack.
struct BackfillBatch {
  zmq::message_t routing_id;
  zmq::message_t body;
  proto::RepoBatchView view;
  std::size_t next_record = 0;  ///< the sequencer applies it in steps (EventSequencer)
  proto::BatchAck ack;          ///< what the steps so far did
};
using BackfillBatchPtr = std::shared_ptr<BackfillBatch>;

/// State shared between the receiver thread and the sequencer: plain atomics, no locks.
struct PipelineCounters {
  std::atomic<std::int64_t> durable_cursor{-1};    ///< upstream seq of the last stored frame
  std::atomic<std::int64_t> batches_in_flight{0};  ///< dispatched, not yet stored
  std::atomic<std::int64_t> newest_time_us{0};
  std::atomic<std::int64_t> oldest_time_us{0};
  /// The data directory's free space is at least --min-free-bytes and the log is writable: the
  /// sequencer stores only while this holds (the disk watch sets it once a second).
  std::atomic<bool> disk_has_room{true};
  std::atomic<std::uint64_t> disk_free_bytes{0};  ///< at the last look

  // The figures of fanout's status page (proto §3.6c), published by the sequencer each tick.
  std::atomic<bool> upstream_connected{false};         ///< ingest's last status said so
  std::atomic<std::int64_t> upstream_status_at_us{0};  ///< when that status came (wall clock)
  std::atomic<std::int64_t> upstream_lag_us{-1};       ///< the newest stored event's age at storing
  std::atomic<std::uint64_t> frames_received{0};
  std::atomic<std::uint64_t> events_stored{0};
  std::atomic<std::uint64_t> backfill_records_applied{0};
  // backfill's last progress report (proto §3.13), and when it came (wall clock; 0 = never)
  std::atomic<std::uint64_t> backfill_repos_done{0};
  std::atomic<std::uint64_t> backfill_repos_total{0};
  std::atomic<std::uint64_t> backfill_repos_failed{0};
  std::atomic<std::int64_t> backfill_progress_at_us{0};
};

}  // namespace jetstream::decode

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::decode::FrameBatchPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::decode::DecodedBatchPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::decode::BackfillBatchPtr)

namespace jetstream::decode {

using decode_atom = caf::atom_constant<caf::atom("decode")>;
using store_atom = caf::atom_constant<caf::atom("store")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
/// --verify: the resolver has the DID's document (or its failure) in the identity cache.
using resolved_atom = caf::atom_constant<caf::atom("resolved")>;
/// A repository batch from backfill (services/decode/backfill_receiver.hpp).
using backfill_atom = caf::atom_constant<caf::atom("backfill")>;

/// Decodes frame batches; stateless between batches apart from reusable buffers.
using decode_worker_actor = caf::typed_actor<caf::reacts_to<decode_atom, FrameBatchPtr>>;
/// Runs the EventSequencer (sequencer_actor.hpp): sequences, stores and publishes decoded
/// batches; `tick` publishes a heartbeat; `resolved` releases the frames held for a DID.
using sequencer_actor =
    caf::typed_actor<caf::reacts_to<store_atom, DecodedBatchPtr>, caf::reacts_to<tick_atom>,
                     caf::reacts_to<resolved_atom, std::string>,
                     caf::reacts_to<backfill_atom, BackfillBatchPtr>>;

/// What a worker needs to check signatures (decode --verify); null: verification is off.
struct WorkerVerification;

decode_worker_actor spawn_decode_worker(caf::actor_system& system, sequencer_actor sequencer,
                                        std::shared_ptr<const WorkerVerification> verification);

}  // namespace jetstream::decode
