#include "services/decode/log_upkeep.hpp"

#include <sys/statvfs.h>

#include <limits>
#include <memory>

#include "common/clock/clock.hpp"
#include "common/log/log.hpp"

namespace jetstream::decode {
namespace {

retention_actor::behavior_type retention(retention_actor::pointer self, EventStore* store,
                                         DecodeProbe* probe, std::chrono::microseconds ttl,
                                         std::chrono::microseconds tombstone_ttl,
                                         std::chrono::microseconds interval) {
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        const auto start = std::chrono::steady_clock::now();
        const std::int64_t cutoff = clock::wall_clock_us() - ttl.count();
        std::string error;
        if (!store->delete_before(cutoff, error)) {
          log::error("retention pass failed", {{"error", error}});
        }
        if (!store->options().compact.empty()) {
          const std::int64_t horizon = clock::wall_clock_us() - tombstone_ttl.count();
          const std::int64_t expired = store->expire_tombstones(horizon, error);
          if (expired < 0) {
            log::error("tombstone expiry failed", {{"error", error}});
          } else if (expired > 0) {
            log::info("compacted twin: tombstones expired", {{"count", expired}});
          }
          probe->record_tombstones_expired(expired);
        }
        probe->record_retention_run(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        probe->set_disk_usage(store->disk_usage_bytes());
        probe->set_log_bounds(store->oldest_time_us(), store->newest_time_us());
        self->delayed_send(self, interval, tick_atom::value);
      },
  };
}

twin_build_actor::behavior_type twin_build(twin_build_actor::pointer self, EventStore* store,
                                           DecodeProbe* probe, std::size_t events_per_step) {
  self->send(self, tick_atom::value);
  auto last_report = std::make_shared<std::chrono::steady_clock::time_point>();
  return {
      [=](tick_atom) {
        std::string error;
        if (!store->build_twin_step(events_per_step, error)) {
          log::error("compacted twin build step failed; retrying in 1s", {{"error", error}});
          self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
          return;
        }
        const auto build = store->twin_build();
        probe->set_twin_build(build, store->oldest_time_us());
        probe->set_twin(store->twin_counts(), store->twin_disk_bytes());
        if (!build.pending) {
          log::info("compacted twin built from the log", {{"events_read", build.events_read}});
          self->quit();
          return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now - *last_report >= std::chrono::seconds(10)) {
          *last_report = now;
          log::info("building the compacted twin from the log",
                    {{"collections", build.collections},
                     {"position_time_us", build.position},
                     {"newest_time_us", build.newest},
                     {"events_read", build.events_read}});
        }
        self->send(self, tick_atom::value);  // the next step after the messages waiting
      },
  };
}

}  // namespace

twin_build_actor spawn_twin_build(caf::actor_system& system, EventStore& store, DecodeProbe& probe,
                                  std::size_t events_per_step) {
  return system.spawn<caf::detached>(twin_build, &store, &probe, events_per_step);
}

std::optional<std::uint64_t> free_bytes(const std::string& path) {
  struct statvfs stats {};
  if (::statvfs(path.c_str(), &stats) != 0) return std::nullopt;
  return std::uint64_t{stats.f_bavail} * std::uint64_t{stats.f_frsize};
}

std::string disk_full_text(std::uint64_t free, std::int64_t need) {
  return "disk full: " + std::to_string(free) + " bytes free, need " + std::to_string(need);
}

namespace {

disk_watch_actor::behavior_type disk_watch(disk_watch_actor::pointer self, EventStore* store,
                                           DecodeProbe* probe, PipelineCounters* counters,
                                           std::string data_dir, std::int64_t min_free,
                                           std::chrono::microseconds interval) {
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        const auto free = free_bytes(data_dir);
        if (!free) {
          log::warn_every(std::chrono::minutes(1), "decode-statvfs",
                          "cannot read the data directory's free space", {{"dir", data_dir}});
        }
        const std::uint64_t bytes = free.value_or(std::numeric_limits<std::uint64_t>::max());
        const bool room = !free || bytes >= static_cast<std::uint64_t>(min_free);
        counters->disk_free_bytes.store(bytes);
        if (free) probe->set_disk_free(bytes);
        bool writable = store->writable();
        if (room && !writable) {
          std::string error;
          if (store->reopen_writable(error)) {
            log::info("disk space is back: the event log is open for writing again",
                      {{"free_bytes", bytes}});
            writable = true;
          } else {
            log::warn_every(std::chrono::seconds(30), "decode-reopen",
                            "cannot open the event log for writing yet", {{"error", error}});
          }
        }
        probe->set_log_writable(writable);
        // The twin's figures once a second too: they change with every append.
        if (!store->options().compact.empty()) {
          probe->set_twin(store->twin_counts(), store->twin_disk_bytes());
        }
        const bool had_room = counters->disk_has_room.exchange(room && writable);
        if (had_room && !(room && writable)) {
          log::warn("disk full: decode stops storing (ingest holds the frames) until space returns",
                    {{"free_bytes", bytes}, {"min_free_bytes", min_free}});
        } else if (!had_room && room && writable) {
          log::info("disk space is back: decode stores again", {{"free_bytes", bytes}});
        }
        self->delayed_send(self, interval, tick_atom::value);
      },
  };
}

}  // namespace

retention_actor spawn_retention(caf::actor_system& system, EventStore& store, DecodeProbe& probe,
                                std::chrono::microseconds ttl,
                                std::chrono::microseconds tombstone_ttl,
                                std::chrono::microseconds interval) {
  return system.spawn<caf::detached>(retention, &store, &probe, ttl, tombstone_ttl, interval);
}

disk_watch_actor spawn_disk_watch(caf::actor_system& system, EventStore& store, DecodeProbe& probe,
                                  PipelineCounters& counters, std::string data_dir,
                                  std::int64_t min_free, std::chrono::microseconds interval) {
  return system.spawn<caf::detached>(disk_watch, &store, &probe, &counters, std::move(data_dir),
                                     min_free, interval);
}

}  // namespace jetstream::decode
