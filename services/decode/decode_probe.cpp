#include "services/decode/decode_probe.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <string>

#include "common/http/address_policy.hpp"
#include "common/http/http_client.hpp"

namespace jetstream::decode {

static_assert(std::tuple_size_v<decltype(DecodeProbe::IdentityFigures::http_errors)> ==
              http::kFetchErrorCount);
static_assert(std::tuple_size_v<decltype(DecodeProbe::IdentityFigures::refused_addresses)> ==
              http::kAddressClassCount);
namespace {

prometheus::Histogram::BucketBoundaries exponential_buckets(double start, double factor,
                                                            int count) {
  prometheus::Histogram::BucketBoundaries buckets;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) buckets.push_back(bound);
  return buckets;
}

}  // namespace

DecodeProbe::DecodeProbe(std::shared_ptr<prometheus::Registry> registry,
                         std::string_view socket_url)
    : registry_(std::move(registry)), proto_rejections_(*registry_) {
  auto& r = *registry_;
  const std::string url(socket_url);
  auto& frames = prometheus::BuildCounter()
                     .Name("jetstream_decode_frames_total")
                     .Help("Upstream frames decoded, by frame type")
                     .Register(r);
  for (std::size_t i = 0; i < frames_by_type_.size(); ++i) {
    frames_by_type_[i] = &frames.Add(
        {{"type", std::string(firehose::to_string(static_cast<firehose::FrameType>(i)))}});
  }
  auto& drops = prometheus::BuildCounter()
                    .Name("jetstream_decode_drops_total")
                    .Help("Frames, commits or ops that produced no event, by reason")
                    .Register(r);
  for (std::size_t i = 0; i < drops_.size(); ++i) {
    drops_[i] = &drops.Add(
        {{"reason", std::string(firehose::to_string(static_cast<firehose::DropReason>(i)))}});
  }
  auto& verified = prometheus::BuildCounter()
                       .Name("jetstream_decode_verify_commits_total")
                       .Help(
                           "--verify: commits passed, by result (passed_unverified: "
                           "--verify-fail-open for a DID that did not resolve)")
                       .Register(r);
  commits_verified_ = &verified.Add({{"result", "verified"}});
  commits_passed_unverified_ = &verified.Add({{"result", "passed_unverified"}});
  commits_unproven_ = &prometheus::BuildCounter()
                           .Name("jetstream_decode_verify_unproven_commits_total")
                           .Help(
                               "--verify full: commits passed without a Sync 1.1 proof (frames "
                               "older than Sync 1.1: no prevData or an op without prev)")
                           .Register(r)
                           .Add({});
  repo_revisions_ = &prometheus::BuildGauge()
                         .Name("jetstream_decode_verify_repo_revs")
                         .Help("--verify full: repositories whose last rev is held in memory")
                         .Register(r)
                         .Add({});
  repo_revision_reads_ = &prometheus::BuildCounter()
                              .Name("jetstream_decode_verify_rev_store_reads_total")
                              .Help(
                                  "--verify full: repositories' last revs read from the event "
                                  "store (not in memory)")
                              .Register(r)
                              .Add({});
  held_frames_ = &prometheus::BuildGauge()
                      .Name("jetstream_decode_verify_held_frames")
                      .Help("--verify: frames held until their DID resolves (stored, not lost)")
                      .Register(r)
                      .Add({});
  held_dids_ = &prometheus::BuildGauge()
                    .Name("jetstream_decode_verify_held_dids")
                    .Help("--verify: DIDs whose resolution held frames wait for")
                    .Register(r)
                    .Add({});
  identity_cache_entries_ = &prometheus::BuildGauge()
                                 .Name("jetstream_identity_cache_entries")
                                 .Help("Resolved identities held in the cache")
                                 .Register(r)
                                 .Add({});
  auto& cache_lookups = prometheus::BuildCounter()
                            .Name("jetstream_identity_cache_lookups_total")
                            .Help("Identity cache lookups, by result")
                            .Register(r);
  identity_cache_hits_ = &cache_lookups.Add({{"result", "hit"}});
  identity_cache_misses_ = &cache_lookups.Add({{"result", "miss"}});
  auto& resolutions = prometheus::BuildCounter()
                          .Name("jetstream_identity_resolutions_total")
                          .Help(
                              "DID resolutions, by outcome (coalesced: joined one in flight; "
                              "refresh_limited: a refresh answered from a refresh moments old)")
                          .Register(r);
  resolutions_resolved_ = &resolutions.Add({{"outcome", "resolved"}});
  resolutions_failed_ = &resolutions.Add({{"outcome", "failed"}});
  resolutions_coalesced_ = &resolutions.Add({{"outcome", "coalesced"}});
  resolutions_refresh_limited_ = &resolutions.Add({{"outcome", "refresh_limited"}});
  auto& http_errors = prometheus::BuildCounter()
                          .Name("jetstream_http_client_errors_total")
                          .Help("Outbound HTTP requests that failed, by reason")
                          .Register(r);
  for (std::size_t i = 0; i < http_errors_.size(); ++i) {
    http_errors_[i] = &http_errors.Add(
        {{"reason", std::string(http::to_string(static_cast<http::FetchError>(i)))}});
  }
  auto& refused = prometheus::BuildCounter()
                      .Name("jetstream_http_client_refused_addresses_total")
                      .Help("Addresses the HTTP client refused to connect to, by class")
                      .Register(r);
  for (std::size_t i = 0; i < refused_addresses_.size(); ++i) {
    refused_addresses_[i] =
        &refused.Add({{"class", std::string(http::to_string(static_cast<http::AddressClass>(i)))}});
  }
  // v1 name and labels: consumer_events_processed_total{event_type, socket_url}.
  auto& processed = prometheus::BuildCounter()
                        .Name("consumer_events_processed_total")
                        .Help("Events produced from upstream, by kind (v1 name)")
                        .Register(r);
  events_by_kind_[1] = &processed.Add({{"event_type", "commit"}, {"socket_url", url}});
  events_by_kind_[2] = &processed.Add({{"event_type", "identity"}, {"socket_url", url}});
  events_by_kind_[3] = &processed.Add({{"event_type", "account"}, {"socket_url", url}});
  events_error_ = &processed.Add({{"event_type", "error"}, {"socket_url", url}});
  auto& verdicts = prometheus::BuildCounter()
                       .Name("jetstream_decode_ingest_frames_total")
                       .Help("Frames received from ingest, by what decode did with them")
                       .Register(r);
  for (std::size_t i = 0; i < frame_verdicts_.size(); ++i) {
    frame_verdicts_[i] =
        &verdicts.Add({{"verdict", std::string(to_string(static_cast<FrameVerdict>(i)))}});
  }
  twin_records_ = &prometheus::BuildGauge()
                       .Name("jetstream_decode_twin_records")
                       .Help(
                           "Records (latest create or update) kept in the compacted twin, by "
                           "group: a --compact-collections pattern, #identity, #account")
                       .Register(r);
  twin_tombstones_ =
      &prometheus::BuildGauge()
           .Name("jetstream_decode_twin_tombstones")
           .Help("Deletes kept in the compacted twin until --tombstone-ttl, by group")
           .Register(r);
  twin_bytes_ = &prometheus::BuildGauge()
                     .Name("jetstream_decode_twin_bytes")
                     .Help("Bytes of the compacted twin on disk (SST files and memtables)")
                     .Register(r)
                     .Add({});
  tombstones_expired_ = &prometheus::BuildCounter()
                             .Name("jetstream_decode_twin_tombstones_expired_total")
                             .Help("Tombstones removed after --tombstone-ttl")
                             .Register(r)
                             .Add({});
  twin_building_ = &prometheus::BuildGauge()
                        .Name("jetstream_decode_twin_building")
                        .Help(
                            "1 while collections added to --compact-collections are built "
                            "from the log")
                        .Register(r)
                        .Add({});
  twin_build_progress_ = &prometheus::BuildGauge()
                              .Name("jetstream_decode_twin_build_progress_ratio")
                              .Help("How far the twin's build has read the log (0..1; 1 = done)")
                              .Register(r)
                              .Add({});
  twin_build_progress_->Set(1);
  twin_build_events_ = &prometheus::BuildCounter()
                            .Name("jetstream_decode_twin_build_events_read_total")
                            .Help("Log events read by the twin's build")
                            .Register(r)
                            .Add({});
  resumes_ = &prometheus::BuildCounter()
                  .Name("jetstream_decode_resumes_total")
                  .Help("Resume requests sent to ingest (start, gap, ingest restart, lost tail)")
                  .Register(r)
                  .Add({});
  events_stored_ = &prometheus::BuildCounter()
                        .Name("jetstream_decode_events_stored_total")
                        .Help("Events written to the event log")
                        .Register(r)
                        .Add({});
  events_published_ = &prometheus::BuildCounter()
                           .Name("jetstream_decode_events_published_total")
                           .Help("Events published to fanout")
                           .Register(r)
                           .Add({});
  bytes_published_ = &prometheus::BuildCounter()
                          .Name("jetstream_decode_bytes_published_total")
                          .Help("Bytes of event batches published to fanout")
                          .Register(r)
                          .Add({});
  store_errors_ = &prometheus::BuildCounter()
                       .Name("jetstream_decode_store_errors_total")
                       .Help("Failed event log writes (retried until they succeed)")
                       .Register(r)
                       .Add({});
  last_seq_ = &prometheus::BuildGauge()
                   .Name("consumer_last_seq")
                   .Help("Upstream seq of the last durably stored frame (v1 name)")
                   .Register(r)
                   .Add({});
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("jetstream_decode_batches_in_flight")
                      .Help("Frame batches received but not yet stored")
                      .Register(r)
                      .Add({});
  auto& bounds = prometheus::BuildGauge()
                     .Name("jetstream_decode_log_time_us")
                     .Help("time_us of the oldest and newest stored events")
                     .Register(r);
  oldest_time_us_ = &bounds.Add({{"end", "oldest"}});
  newest_time_us_ = &bounds.Add({{"end", "newest"}});
  disk_usage_ = &prometheus::BuildGauge()
                     .Name("jetstream_decode_log_disk_bytes")
                     .Help("Disk used by the event log")
                     .Register(r)
                     .Add({});
  disk_free_ = &prometheus::BuildGauge()
                    .Name("jetstream_decode_disk_free_bytes")
                    .Help(
                        "Free space of the data directory's file system (decode stops storing "
                        "below --min-free-bytes)")
                    .Register(r)
                    .Add({});
  min_free_ = &prometheus::BuildGauge()
                   .Name("jetstream_decode_min_free_bytes")
                   .Help("--min-free-bytes: the free space below which decode stops storing")
                   .Register(r)
                   .Add({});
  log_writable_ = &prometheus::BuildGauge()
                       .Name("jetstream_decode_log_writable")
                       .Help(
                           "1 while the event log is open for writing, 0 while read-only "
                           "(started on a full disk)")
                       .Register(r)
                       .Add({});
  log_writable_->Set(1);
  processing_seconds_ = &prometheus::BuildHistogram()
                             .Name("consumer_event_processing_duration_seconds")
                             .Help("Ingest receive to durably stored, per batch (v1 name)")
                             .Register(r)
                             .Add({}, exponential_buckets(0.0001, 2, 18));
  write_seconds_ = &prometheus::BuildHistogram()
                        .Name("jetstream_decode_store_write_seconds")
                        .Help("RocksDB batch write latency")
                        .Register(r)
                        .Add({}, exponential_buckets(0.00005, 2, 16));
  upstream_lag_ =
      &prometheus::BuildHistogram()
           .Name("jetstream_decode_upstream_lag_seconds")
           .Help("Upstream event time (the firehose `time`) to stored in the log")
           .Register(r)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                                            60, 300, 1800, 3600, 21600, 86400});
  retention_seconds_ = &prometheus::BuildHistogram()
                            .Name("jetstream_decode_retention_run_seconds")
                            .Help("Duration of one retention pass")
                            .Register(r)
                            .Add({}, exponential_buckets(0.001, 4, 10));
  replay_page_seconds_ = &prometheus::BuildHistogram()
                              .Name("jetstream_decode_replay_page_seconds")
                              .Help("Time to read and send one replay page")
                              .Register(r)
                              .Add({}, exponential_buckets(0.0001, 2, 16));
  replay_events_ = &prometheus::BuildCounter()
                        .Name("jetstream_decode_replay_events_total")
                        .Help("Events served to fanout replay requests")
                        .Register(r)
                        .Add({});
}

void DecodeProbe::record_decode_stats(const firehose::DecodeStats& stats) {
  for (std::size_t i = 0; i < frames_by_type_.size(); ++i) {
    if (stats.frames_by_type[i] != 0)
      frames_by_type_[i]->Increment(static_cast<double>(stats.frames_by_type[i]));
  }
  for (std::size_t i = 0; i < drops_.size(); ++i) {
    if (stats.drops[i] != 0) drops_[i]->Increment(static_cast<double>(stats.drops[i]));
  }
  if (stats.commits_verified != 0) {
    commits_verified_->Increment(static_cast<double>(stats.commits_verified));
  }
  if (stats.commits_unproven != 0) {
    commits_unproven_->Increment(static_cast<double>(stats.commits_unproven));
  }
  if (stats.commits_passed_unverified != 0) {
    commits_passed_unverified_->Increment(static_cast<double>(stats.commits_passed_unverified));
  }
  for (std::size_t kind = 1; kind < events_by_kind_.size(); ++kind) {
    if (stats.events_by_kind[kind] != 0) {
      events_by_kind_[kind]->Increment(static_cast<double>(stats.events_by_kind[kind]));
    }
  }
  const auto errors = stats.frames_by_type[static_cast<std::size_t>(firehose::FrameType::error)];
  if (errors != 0) events_error_->Increment(static_cast<double>(errors));
}

void DecodeProbe::record_frame_verdict(FrameVerdict verdict) {
  frame_verdicts_[static_cast<std::size_t>(verdict)]->Increment();
}

void DecodeProbe::record_resume_requested() { resumes_->Increment(); }

void DecodeProbe::record_proto_rejected(std::string_view message, std::string_view reason) {
  proto_rejections_.record(message, reason);
}

void DecodeProbe::record_stored(std::size_t events, std::int64_t upstream_seq, double write_seconds,
                                double frame_to_store_seconds) {
  events_stored_->Increment(static_cast<double>(events));
  last_seq_->Set(static_cast<double>(upstream_seq));
  write_seconds_->Observe(write_seconds);
  processing_seconds_->Observe(frame_to_store_seconds);
}

void DecodeProbe::record_published(std::size_t events, std::size_t bytes) {
  events_published_->Increment(static_cast<double>(events));
  bytes_published_->Increment(static_cast<double>(bytes));
}

void DecodeProbe::record_upstream_lag(double seconds) {
  upstream_lag_->Observe(seconds < 0 ? 0 : seconds);
}

void DecodeProbe::record_store_error() { store_errors_->Increment(); }

void DecodeProbe::set_queue_depth(std::int64_t batches_in_flight) {
  queue_depth_->Set(static_cast<double>(batches_in_flight));
}

void DecodeProbe::set_log_bounds(std::int64_t oldest_time_us, std::int64_t newest_time_us) {
  oldest_time_us_->Set(static_cast<double>(oldest_time_us));
  newest_time_us_->Set(static_cast<double>(newest_time_us));
}

void DecodeProbe::set_disk_free(std::uint64_t bytes) {
  disk_free_->Set(static_cast<double>(bytes));
}

void DecodeProbe::set_twin(const std::map<std::string, EventStore::TwinCounts>& counts,
                           std::uint64_t disk_bytes) {
  for (const auto& [group, value] : counts) {
    auto it = twin_groups_.find(group);
    if (it == twin_groups_.end()) {
      it = twin_groups_
               .emplace(group, std::pair{&twin_records_->Add({{"group", group}}),
                                         &twin_tombstones_->Add({{"group", group}})})
               .first;
    }
    it->second.first->Set(static_cast<double>(value.records));
    it->second.second->Set(static_cast<double>(value.tombstones));
  }
  for (auto& [group, gauges] : twin_groups_) {
    if (!counts.contains(group)) {
      gauges.first->Set(0);
      gauges.second->Set(0);
    }
  }
  twin_bytes_->Set(static_cast<double>(disk_bytes));
}

void DecodeProbe::record_tombstones_expired(std::int64_t count) {
  if (count > 0) tombstones_expired_->Increment(static_cast<double>(count));
}

void DecodeProbe::set_twin_build(const EventStore::TwinBuild& build, std::int64_t oldest_time_us) {
  twin_building_->Set(build.pending ? 1 : 0);
  double progress = 1;
  if (build.pending && build.newest > oldest_time_us) {
    progress = static_cast<double>(std::max(build.position, oldest_time_us) - oldest_time_us) /
               static_cast<double>(build.newest - oldest_time_us);
    progress = std::clamp(progress, 0.0, 1.0);
  }
  twin_build_progress_->Set(progress);
  if (build.events_read > twin_build_events_seen_) {
    twin_build_events_->Increment(static_cast<double>(build.events_read - twin_build_events_seen_));
    twin_build_events_seen_ = build.events_read;
  }
}

void DecodeProbe::set_repo_revisions(std::size_t in_memory, std::uint64_t store_reads) {
  repo_revisions_->Set(static_cast<double>(in_memory));
  advance(repo_revision_reads_, store_reads, repo_revision_reads_seen_);
}

void DecodeProbe::set_held_frames(std::size_t frames, std::size_t dids) {
  held_frames_->Set(static_cast<double>(frames));
  held_dids_->Set(static_cast<double>(dids));
}

void DecodeProbe::advance(prometheus::Counter* counter, std::uint64_t total, std::uint64_t& seen) {
  if (total > seen) counter->Increment(static_cast<double>(total - seen));
  seen = total;
}

void DecodeProbe::set_identity(const IdentityFigures& figures) {
  identity_cache_entries_->Set(static_cast<double>(figures.cache_entries));
  advance(identity_cache_hits_, figures.cache_hits, identity_seen_.cache_hits);
  advance(identity_cache_misses_, figures.cache_misses, identity_seen_.cache_misses);
  advance(resolutions_resolved_, figures.resolved, identity_seen_.resolved);
  advance(resolutions_failed_, figures.failed, identity_seen_.failed);
  advance(resolutions_coalesced_, figures.coalesced, identity_seen_.coalesced);
  advance(resolutions_refresh_limited_, figures.refresh_limited, identity_seen_.refresh_limited);
  for (std::size_t i = 0; i < http_errors_.size(); ++i) {
    advance(http_errors_[i], figures.http_errors[i], identity_seen_.http_errors[i]);
  }
  for (std::size_t i = 0; i < refused_addresses_.size(); ++i) {
    advance(refused_addresses_[i], figures.refused_addresses[i],
            identity_seen_.refused_addresses[i]);
  }
}

void DecodeProbe::set_min_free(std::uint64_t bytes) { min_free_->Set(static_cast<double>(bytes)); }

void DecodeProbe::set_log_writable(bool writable) { log_writable_->Set(writable ? 1 : 0); }

void DecodeProbe::set_disk_usage(std::uint64_t bytes) {
  disk_usage_->Set(static_cast<double>(bytes));
}

void DecodeProbe::record_retention_run(double seconds) { retention_seconds_->Observe(seconds); }

void DecodeProbe::record_replay_page(std::string_view status, std::size_t events, double seconds) {
  prometheus::BuildCounter()
      .Name("jetstream_decode_replay_pages_total")
      .Help("Replay pages served, by status")
      .Register(*registry_)
      .Add({{"status", std::string(status)}})
      .Increment();
  replay_events_->Increment(static_cast<double>(events));
  replay_page_seconds_->Observe(seconds);
}

void DecodeProbe::record_backfill_batch(const proto::BatchAck& ack) {
  prometheus::BuildCounter()
      .Name("jetstream_decode_backfill_batches_total")
      .Help("Repository batches from backfill, by what decode answered (stored, rejected, busy)")
      .Register(*registry_)
      .Add({{"outcome", std::string(proto::to_string(ack.outcome))}})
      .Increment();
  auto& records = prometheus::BuildCounter()
                      .Name("jetstream_decode_backfill_records_total")
                      .Help(
                          "Records of stored backfill batches, by what decode did with them: "
                          "applied (a new event), unchanged (the twin held the same or a newer "
                          "rev), tombstoned (the repository no longer holds it), invalid")
                      .Register(*registry_);
  records.Add({{"result", "applied"}}).Increment(ack.applied);
  records.Add({{"result", "unchanged"}}).Increment(ack.unchanged);
  records.Add({{"result", "tombstoned"}}).Increment(ack.tombstoned);
  records.Add({{"result", "invalid"}}).Increment(ack.invalid);
}

}  // namespace jetstream::decode
