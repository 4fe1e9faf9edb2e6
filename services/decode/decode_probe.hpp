// Every metric decode exports, behind named methods: business code calls
// `probe.record_drop(reason)` and never touches the registry (the Redpanda *_probe pattern).
// Thread-safe: prometheus-cpp metrics are atomic.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>

#include "common/firehose/v1_encoder.hpp"
#include "common/metrics/proto_rejections.hpp"
#include "proto/backfill.hpp"
#include "services/decode/event_store.hpp"
#include "services/decode/ingest_tracker.hpp"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace jetstream::decode {

class DecodeProbe {
 public:
  explicit DecodeProbe(std::shared_ptr<prometheus::Registry> registry, std::string_view socket_url);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  /// One decoded batch's counts (frames by type, events by kind, drops by reason).
  void record_decode_stats(const firehose::DecodeStats& stats);
  void record_frame_verdict(FrameVerdict verdict);
  void record_resume_requested();
  void record_proto_rejected(std::string_view message, std::string_view reason);
  void record_stored(std::size_t events, std::int64_t upstream_seq, double write_seconds,
                     double frame_to_store_seconds);
  void record_published(std::size_t events, std::size_t bytes);
  /// Upstream `time` of an event (its commit, identity or account) to the moment it was stored.
  void record_upstream_lag(double seconds);
  void record_store_error();
  void set_queue_depth(std::int64_t batches_in_flight);
  void set_log_bounds(std::int64_t oldest_time_us, std::int64_t newest_time_us);
  void set_disk_usage(std::uint64_t bytes);
  /// Free bytes of the data directory's file system (the disk watch, once a second).
  void set_disk_free(std::uint64_t bytes);
  /// --min-free-bytes, exported so alerts compare against the configured reserve.
  void set_min_free(std::uint64_t bytes);
  /// 1 while the event log is open for writing, 0 while read-only (started on a full disk).
  void set_log_writable(bool writable);
  void record_retention_run(double seconds);
  /// The compacted twin: records and tombstones per group (a pattern, `#identity`,
  /// `#account`), its disk bytes, tombstones expired by the TTL.
  void set_twin(const std::map<std::string, EventStore::TwinCounts>& counts,
                std::uint64_t disk_bytes);
  void record_tombstones_expired(std::int64_t count);
  /// The build of newly compacted collections from the log: 1 while it runs, and its position
  /// within the log (0..1; 1 when no build runs).
  void set_twin_build(const EventStore::TwinBuild& build, std::int64_t oldest_time_us);
  void record_replay_page(std::string_view status, std::size_t events, double seconds);
  /// One backfill batch answered (sequencer thread).
  void record_backfill_batch(const proto::BatchAck& ack);

  // --verify
  /// Frames held until their DID resolves, and how many DIDs they wait for.
  void set_held_frames(std::size_t frames, std::size_t dids);
  /// --verify full: repositories whose last rev is in memory; cumulative reads from the store.
  void set_repo_revisions(std::size_t in_memory, std::uint64_t store_reads);
  /// Cumulative figures of the identity cache, the resolver and its HTTP client (read once a
  /// second; counters advance by the difference).
  struct IdentityFigures {
    std::uint64_t cache_entries = 0;
    std::uint64_t cache_hits = 0;
    std::uint64_t cache_misses = 0;
    std::uint64_t resolved = 0;
    std::uint64_t failed = 0;
    std::uint64_t coalesced = 0;
    std::uint64_t refresh_limited = 0;
    std::array<std::uint64_t, 11> http_errors{};       ///< by http::FetchError
    std::array<std::uint64_t, 8> refused_addresses{};  ///< by http::AddressClass
  };
  void set_identity(const IdentityFigures& figures);

 private:
  /// Advances `counter` to the cumulative `total` it mirrors (`seen` is the last total).
  static void advance(prometheus::Counter* counter, std::uint64_t total, std::uint64_t& seen);
  std::shared_ptr<prometheus::Registry> registry_;
  metrics::ProtoRejections proto_rejections_;
  std::array<prometheus::Counter*, firehose::kFrameTypeCount> frames_by_type_{};
  std::array<prometheus::Counter*, firehose::kDropReasonCount> drops_{};
  std::array<prometheus::Counter*, 4> events_by_kind_{};  // v1: consumer_events_processed_total
  prometheus::Counter* events_error_ = nullptr;
  std::array<prometheus::Counter*, 4> frame_verdicts_{};
  prometheus::Counter* resumes_ = nullptr;
  prometheus::Counter* events_stored_ = nullptr;
  prometheus::Counter* events_published_ = nullptr;
  prometheus::Counter* bytes_published_ = nullptr;
  prometheus::Counter* store_errors_ = nullptr;
  prometheus::Gauge* last_seq_ = nullptr;
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Gauge* oldest_time_us_ = nullptr;
  prometheus::Gauge* newest_time_us_ = nullptr;
  prometheus::Gauge* disk_usage_ = nullptr;
  prometheus::Gauge* disk_free_ = nullptr;
  prometheus::Gauge* min_free_ = nullptr;
  prometheus::Gauge* log_writable_ = nullptr;
  prometheus::Histogram* processing_seconds_ = nullptr;
  prometheus::Histogram* write_seconds_ = nullptr;
  prometheus::Histogram* upstream_lag_ = nullptr;
  prometheus::Histogram* retention_seconds_ = nullptr;
  prometheus::Histogram* replay_page_seconds_ = nullptr;
  prometheus::Counter* replay_events_ = nullptr;
  prometheus::Family<prometheus::Gauge>* twin_records_ = nullptr;
  prometheus::Family<prometheus::Gauge>* twin_tombstones_ = nullptr;
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> twin_groups_;
  prometheus::Gauge* twin_bytes_ = nullptr;
  prometheus::Counter* tombstones_expired_ = nullptr;
  prometheus::Gauge* twin_building_ = nullptr;
  prometheus::Gauge* twin_build_progress_ = nullptr;
  prometheus::Counter* twin_build_events_ = nullptr;
  std::uint64_t twin_build_events_seen_ = 0;
  prometheus::Counter* commits_verified_ = nullptr;
  prometheus::Counter* commits_passed_unverified_ = nullptr;
  prometheus::Counter* commits_unproven_ = nullptr;
  prometheus::Gauge* repo_revisions_ = nullptr;
  prometheus::Counter* repo_revision_reads_ = nullptr;
  std::uint64_t repo_revision_reads_seen_ = 0;
  prometheus::Gauge* held_frames_ = nullptr;
  prometheus::Gauge* held_dids_ = nullptr;
  prometheus::Gauge* identity_cache_entries_ = nullptr;
  prometheus::Counter* identity_cache_hits_ = nullptr;
  prometheus::Counter* identity_cache_misses_ = nullptr;
  prometheus::Counter* resolutions_resolved_ = nullptr;
  prometheus::Counter* resolutions_failed_ = nullptr;
  prometheus::Counter* resolutions_coalesced_ = nullptr;
  prometheus::Counter* resolutions_refresh_limited_ = nullptr;
  std::array<prometheus::Counter*, 11> http_errors_{};
  std::array<prometheus::Counter*, 8> refused_addresses_{};
  IdentityFigures identity_seen_;
};

}  // namespace jetstream::decode
