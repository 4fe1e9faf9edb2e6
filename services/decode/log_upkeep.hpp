// The upkeep of decode's event log, as detached actors beside the pipeline:
// - retention: every --retention-interval deletes events older than --event-ttl and twin
//   tombstones older than --tombstone-ttl, and reports the log's size and bounds;
// - the twin build: adds newly compacted collections from the log, then quits;
// - the disk watch: every --disk-check-interval, the data directory's free space against
//   --min-free-bytes (storing pauses below it, and a log opened read-only on a full disk is
//   reopened for writing once space returns); it also reports the twin's counts and size.
// Detached: RocksDB calls and statvfs block.
#pragma once

#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "services/decode/decode_probe.hpp"
#include "services/decode/event_store.hpp"
#include "services/decode/stage_messages.hpp"

namespace jetstream::decode {

using retention_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;
using disk_watch_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

/// Starts retention; the first pass runs at once. Each pass deletes log events older than `ttl`
/// and the compacted twin's tombstones older than `tombstone_ttl`. `store` and `probe` outlive
/// the actor.
retention_actor spawn_retention(caf::actor_system& system, EventStore& store, DecodeProbe& probe,
                                std::chrono::microseconds ttl,
                                std::chrono::microseconds tombstone_ttl,
                                std::chrono::microseconds interval);

using twin_build_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

/// Builds the collections added to --compact-collections from the log, `events_per_step` log
/// events at a time (each step takes the store's write lock briefly, so ingestion goes on
/// between steps), then quits. Does nothing when no build is pending.
twin_build_actor spawn_twin_build(caf::actor_system& system, EventStore& store, DecodeProbe& probe,
                                  std::size_t events_per_step);

/// Starts the disk watch; the first look is at once. It sets `counters.disk_has_room` (the
/// sequencer stores only while it holds) and `counters.disk_free_bytes`.
disk_watch_actor spawn_disk_watch(caf::actor_system& system, EventStore& store, DecodeProbe& probe,
                                  PipelineCounters& counters, std::string data_dir,
                                  std::int64_t min_free, std::chrono::microseconds interval);

/// Free bytes for an unprivileged writer in the file system holding `path`; nullopt if unknown.
std::optional<std::uint64_t> free_bytes(const std::string& path);

/// The readiness text of a full disk: `disk full: N bytes free, need M`.
std::string disk_full_text(std::uint64_t free, std::int64_t need);

}  // namespace jetstream::decode
