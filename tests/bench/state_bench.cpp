// The compacted twin (API.md "State"), measured:
//   1. appends to decode's event store with the twin of app.bsky.* on, against the same appends
//      with it off (the cost of writing state in the log's batch);
//   2. disk bytes per compacted record and per tombstone (after a flush and a full compaction);
//   3. a snapshot to one websocket client through the real jetstream-decode and jetstream-fanout
//      (jetstream-loadgen, snapshot=true), from a twin of --records records.
// Each figure is printed with its ratio to the issue's target. Exit 0 unless something failed.
//
//   build/release/tests/bench/state_bench [--records 1000000] [--deletes 100000]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "services/decode/event_store.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pipeline_fixtures.hpp"

namespace {

namespace decode = jetstream::decode;
namespace proto = jetstream::proto;
namespace support = jetstream::testing;
using Clock = std::chrono::steady_clock;

constexpr double kSnapshotEventsPerSecondLimit = 500'000;
constexpr std::size_t kBatch = 1000;

/// A post as v1 sends it, ~400 bytes like the corpus's posts (JSON only: no zstd here).
std::string post_json(std::int64_t time_us, const std::string& did, const std::string& rkey,
                      bool is_delete) {
  std::string json = R"({"did":")" + did + R"(","time_us":)" + std::to_string(time_us) +
                     R"(,"kind":"commit","commit":{"rev":"3lbenchrev22","operation":")" +
                     (is_delete ? "delete" : "create") +
                     R"(","collection":"app.bsky.feed.post","rkey":")" + rkey + "\"";
  if (!is_delete) {
    json += R"(,"record":{"$type":"app.bsky.feed.post","createdAt":"2024-11-20T10:00:00.000Z",)"
            R"("langs":["en"],"text":"a benchmark post about state, snapshots and the firehose, )"
            R"(long enough to look like one written by a person on a Wednesday"},)"
            R"("cid":"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")";
  }
  return json + "}}";
}

struct Appended {
  double seconds = 0;
  std::int64_t last_time_us = 0;
};

/// Appends `count` events (creates of distinct records, or deletes of the first `count` of them)
/// in batches, after `start`.
bool append(decode::EventStore& store, std::size_t count, bool deletes, std::int64_t& time_us,
            double& seconds) {
  std::vector<std::string> dids, rkeys, jsons;
  std::vector<proto::EventView> views;
  std::vector<decode::RecordChange> changes;
  const auto begin = Clock::now();
  std::int64_t prev = store.last_time_us();  // the chain continues the store's
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(kBatch, count - done);
    dids.resize(n);
    rkeys.resize(n);
    jsons.resize(n);
    views.resize(n);
    changes.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t record = done + i;
      dids[i] = "did:plc:bench" + std::to_string(record % 50'000);
      rkeys[i] = "3lrk" + std::to_string(record);
      const std::int64_t t = time_us + 1;
      jsons[i] = post_json(t, dids[i], rkeys[i], deletes);
      views[i] = proto::EventView{
          t, prev, proto::EventKind::commit, dids[i], "app.bsky.feed.post", jsons[i], {}};
      prev = t;
      changes[i] = decode::RecordChange{rkeys[i], "3lbenchrev22", deletes};
      time_us = t;
    }
    std::string error;
    if (!store.append(views, changes, static_cast<std::int64_t>(done + n), error)) {
      std::fprintf(stderr, "state_bench: append failed: %s\n", error.c_str());
      return false;
    }
    done += n;
  }
  seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  return true;
}

/// An hour ago: recent enough that decode's retention (24 h) and the tombstone TTL (7 d) leave
/// the benchmark's events alone when decode starts on them.
std::int64_t recent_time_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() -
         std::int64_t{3'600'000'000};
}

std::unique_ptr<decode::EventStore> open_store(const std::filesystem::path& path,
                                               const char* compact) {
  decode::EventStore::Options options;
  options.path = path.string();
  std::string error;
  options.compact = jetstream::syntax::CollectionSet::parse(compact, error).value();
  auto store = decode::EventStore::open(options, error);
  if (!store) std::fprintf(stderr, "state_bench: %s\n", error.c_str());
  return store;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t records = 1'000'000;
  std::size_t deletes = 100'000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--records") == 0) records = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--deletes") == 0) deletes = std::stoul(argv[i + 1]);
  }
  deletes = std::min(deletes, records);
  const auto dir = std::filesystem::temp_directory_path() /
                   ("jetstream-state-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
#ifdef NDEBUG
  const char* build = "optimised (NDEBUG)";
#else
  const char* build = "debug (assertions on)";
#endif
  std::printf("==> machine: %ld cores; build %s\n", cores, build);

  // 1. Appends with the twin off, then on (fresh stores, the same events).
  double off_seconds = 0, on_seconds = 0, delete_seconds = 0;
  {
    auto plain = open_store(dir / "plain", "");
    std::int64_t time_us = recent_time_us();
    if (!plain || !append(*plain, records, false, time_us, off_seconds)) return 1;
  }
  std::filesystem::remove_all(dir / "plain");
  const auto store_path = dir / "data" / "events";
  std::uint64_t record_bytes = 0, after_delete_bytes = 0;
  {
    auto store = open_store(store_path, "app.bsky.*");
    std::int64_t time_us = recent_time_us();
    if (!store || !append(*store, records, false, time_us, on_seconds)) return 1;
    std::string error;
    if (!store->flush_and_compact(error)) return 1;
    record_bytes = store->twin_disk_bytes();
    if (!append(*store, deletes, true, time_us, delete_seconds)) return 1;
    if (!store->flush_and_compact(error)) return 1;
    after_delete_bytes = store->twin_disk_bytes();
  }
  const double off_rate = static_cast<double>(records) / off_seconds;
  const double on_rate = static_cast<double>(records) / on_seconds;
  std::printf("==> 1. event store appends, %zu creates of distinct records in batches of %zu\n",
              records, kBatch);
  std::printf("  twin off %10.0f events/s\n  twin on  %10.0f events/s  (%.2fx the rate without)\n",
              off_rate, on_rate, on_rate / off_rate);
  const double per_record = static_cast<double>(record_bytes) / static_cast<double>(records);
  const double per_tombstone = deletes == 0
                                   ? 0
                                   : (static_cast<double>(after_delete_bytes) -
                                      per_record * static_cast<double>(records - deletes)) /
                                         static_cast<double>(deletes);
  std::printf("==> 2. disk (LZ4, after a full compaction)\n");
  std::printf("  %.0f bytes per compacted record (key, entry, the event's ~%zu bytes of JSON)\n",
              per_record, post_json(1, "did:plc:bench1", "3lrk1", false).size());
  std::printf("  %.0f bytes per tombstone (%zu deletes)\n", per_tombstone, deletes);

  // 3. A snapshot through the real services to one loadgen client.
  const auto events_port = support::free_loopback_port();
  const auto replay_port = support::free_loopback_port();
  const auto decode_metrics = support::free_loopback_port();
  const auto fanout_port = support::free_loopback_port();
  const auto fanout_metrics = support::free_loopback_port();
  support::ChildProcess decode, fanout, loadgen;
  decode.start(
      support::StackUnderTest::binary("services/decode/jetstream-decode"),
      {"--data-dir", (dir / "data").string(), "--compact-collections", "app.bsky.*",
       "--frames-endpoint", "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port()),
       "--control-endpoint", "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port()),
       "--events-endpoint", "tcp://127.0.0.1:" + std::to_string(events_port), "--replay-endpoint",
       "tcp://127.0.0.1:" + std::to_string(replay_port), "--metrics-listen-addr",
       "127.0.0.1:" + std::to_string(decode_metrics), "--min-free-bytes", "0"},
      (dir / "decode.log").string());
  fanout.start(support::StackUnderTest::binary("services/fanout/jetstream-fanout"),
               {"--listen-addr", "127.0.0.1:" + std::to_string(fanout_port),
                "--metrics-listen-addr", "127.0.0.1:" + std::to_string(fanout_metrics),
                "--events-endpoint", "tcp://127.0.0.1:" + std::to_string(events_port),
                "--replay-endpoint", "tcp://127.0.0.1:" + std::to_string(replay_port),
                // the per-IP rate (v1's 5,000 events/s by default) paces snapshots like replays:
                // off, to measure the service rather than the limit
                "--max-sub-rate", "0"},
               (dir / "fanout.log").string());
  const bool ready = support::eventually(
      [&] { return support::http_get(fanout_metrics, "/readyz").status == 200; },
      std::chrono::seconds(60));
  int status = 0;
  if (!ready) {
    std::fprintf(stderr, "state_bench: fanout not ready\n%s\n%s\n", decode.log().c_str(),
                 fanout.log().c_str());
    status = 1;
  } else {
    const std::string until = std::to_string(records);  // records and tombstones: one each
    const auto log_path = (dir / "loadgen.log").string();
    loadgen.start(
        support::StackUnderTest::binary("tools/loadgen/jetstream-loadgen"),
        {"--url", "ws://127.0.0.1:" + std::to_string(fanout_port) + "/subscribe", "--query",
         "snapshot=true", "--clients", "1", "--until-events", until, "--duration", "300s",
         "--progress=false", "--json", "--server-pid", std::to_string(fanout.pid())},
        log_path);
    const auto exit = loadgen.wait(std::chrono::seconds(330));
    const std::string out = loadgen.log();
    const auto at = out.find("\"deliveries_per_s\":");
    if (!exit || at == std::string::npos) {
      std::fprintf(stderr, "state_bench: loadgen did not finish\n%s\n", out.c_str());
      status = 1;
    } else {
      const double rate = std::stod(out.substr(at + 19));
      const auto cpu_at = out.find("\"deliveries_per_server_cpu_s\":");
      std::printf(
          "==> 3. snapshot=true to one websocket client: %zu compacted events "
          "(%zu records, %zu tombstones) through jetstream-decode and jetstream-fanout\n",
          records, records - deletes, deletes);
      std::printf("  %10.0f events/s  (%.2fx the %.0f events/s target)\n", rate,
                  rate / kSnapshotEventsPerSecondLimit, kSnapshotEventsPerSecondLimit);
      if (cpu_at != std::string::npos) {
        std::printf("  %10.0f events per fanout CPU second\n", std::stod(out.substr(cpu_at + 30)));
      }
    }
  }
  if (std::getenv("JETSTREAM_STATE_BENCH_KEEP") != nullptr) {
    std::printf("kept: %s; decode metrics :%u, fanout :%u (Enter to stop)\n", dir.c_str(),
                decode_metrics, fanout_port);
    std::getchar();
  }
  fanout.stop();
  decode.stop();
  std::filesystem::remove_all(dir);
  return status;
}
