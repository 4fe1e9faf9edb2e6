// The compacted twin (API.md "State"), measured:
//   1. appends to decode's event store with the twin of app.bsky.* on, against the same appends
//      with it off (the cost of writing state in the log's batch);
//   2. disk bytes per compacted record and per tombstone (after a flush and a full compaction),
//      on synthetic posts and on the corpus's real events;
//   3. a snapshot to one websocket client through the real jetstream-decode and jetstream-fanout
//      (jetstream-loadgen, snapshot=true), from a twin of --records records.
// Each figure is printed with its ratio to the issue's target. Exit 0 unless something failed.
//
//   4. the live clients' p99 alone and beside --snapshot-clients snapshot readers (each from its
//      own loopback address, paced by fanout's default per-IP rate as distinct users would be).
//
//   build/release/tests/bench/state_bench [--records 1000000] [--deletes 100000]
//                                         [--snapshot-clients 100]
#include <rapidjson/document.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/firehose/capture.hpp"
#include "common/firehose/v1_encoder.hpp"
#include "common/zstd/zstd_dictionary.hpp"
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
    // No upstream cursor (-1): section 4's upstream then plays its capture from its first frame.
    if (!store.append(views, changes, -1, error)) {
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

/// 2b. Disk bytes per twin entry on real events: the corpus's frames, each pass under other
/// repositories (support::rewrite_plc_dids) so that every record is new, decoded by the v1
/// encoder and compressed with the v1 dictionary as decode does, appended with the twin of
/// app.bsky.* and compacted. Returns false when the corpus or dictionary is missing.
bool corpus_disk_bytes(const std::filesystem::path& path, std::size_t passes) {
  const auto corpus = support::shared_file("corpus/dev.frames");
  const auto dictionary_path = support::shared_file("zstd/jetstream-v1.zdict");
  if (!corpus || !dictionary_path) {
    std::fprintf(stderr, "state_bench: ../shared corpus or zstd dictionary missing\n");
    return false;
  }
  std::string error;
  const auto dictionary = jetstream::zstd::Dictionary::load(dictionary_path->string(), error);
  if (!dictionary) {
    std::fprintf(stderr, "state_bench: %s\n", error.c_str());
    return false;
  }
  jetstream::zstd::Compressor compressor(dictionary);
  const auto bytes = support::read_binary_file(*corpus);
  const auto frames = jetstream::firehose::split_capture(bytes);
  if (!frames) return false;
  auto store = open_store(path, "app.bsky.*");
  if (!store) return false;
  jetstream::firehose::V1Encoder encoder;
  std::vector<jetstream::firehose::PendingEvent> pending;
  std::vector<std::string> jsons, zstds;
  std::vector<proto::EventView> views;
  std::vector<decode::RecordChange> changes;
  std::int64_t time_us = recent_time_us();
  std::int64_t prev = 0;
  std::uint64_t json_bytes = 0, zstd_bytes = 0, events = 0;
  for (std::size_t pass = 0; pass < passes; ++pass) {
    pending.clear();
    for (const auto frame : *frames) {
      std::vector<std::uint8_t> copy(frame.begin(), frame.end());
      support::rewrite_plc_dids(copy, pass);
      (void)encoder.events_from_frame(copy, pending);
    }
    jsons.resize(pending.size());
    zstds.resize(pending.size());
    views.resize(pending.size());
    changes.resize(pending.size());
    for (std::size_t i = 0; i < pending.size(); ++i) {
      const auto& event = pending[i];
      const std::int64_t t = ++time_us;
      jsons[i] = event.finalize(t);
      compressor.compress(jsons[i], zstds[i]);
      json_bytes += jsons[i].size();
      zstd_bytes += zstds[i].size();
      views[i] = proto::EventView{
          t,
          prev,
          event.kind,
          event.did,
          event.collection,
          jsons[i],
          {reinterpret_cast<const std::uint8_t*>(zstds[i].data()), zstds[i].size()}};
      changes[i] = decode::RecordChange{event.rkey, event.rev, event.is_delete};
      prev = t;
    }
    if (!store->append(views, changes, -1, error)) {
      std::fprintf(stderr, "state_bench: append failed: %s\n", error.c_str());
      return false;
    }
    events += pending.size();
  }
  if (!store->flush_and_compact(error)) {
    std::fprintf(stderr, "state_bench: %s\n", error.c_str());
    return false;
  }
  std::int64_t records = 0, tombstones = 0;
  for (const auto& [group, counts] : store->twin_counts()) {
    records += counts.records;
    tombstones += counts.tombstones;
  }
  const auto twin = store->twin_disk_bytes();
  std::printf(
      "  the corpus (%zu passes under other repositories): %llu events, %.0f bytes of JSON and "
      "%.0f of zstd each on average\n",
      passes, static_cast<unsigned long long>(events),
      static_cast<double>(json_bytes) / static_cast<double>(events),
      static_cast<double>(zstd_bytes) / static_cast<double>(events));
  std::printf(
      "  %.0f bytes per twin entry (%lld records and identity/account entries, %lld "
      "tombstones: %.1f MB)\n",
      static_cast<double>(twin) / static_cast<double>(records + tombstones),
      static_cast<long long>(records), static_cast<long long>(tombstones),
      static_cast<double>(twin) / 1e6);
  return true;
}

/// What one loadgen run printed (its --json line), parsed; an empty document when it failed.
rapidjson::Document loadgen_summary(const std::string& log) {
  rapidjson::Document json;
  const auto at = log.find("{\"url\"");
  if (at == std::string::npos) return json;
  json.Parse(log.substr(at, log.find('\n', at) - at).c_str());
  if (json.HasParseError() || !json.IsObject()) json.SetNull();
  return json;
}

/// 4. `snapshots` clients reading snapshot=true, each from its own loopback address at fanout's
/// default per-IP rate (as distinct users would), beside 200 live clients (each from its own
/// address too) while upstream plays
/// ~2,000 events/s: the live clients' p99 with and without them. fanout is restarted with the
/// default --max-sub-rate; an upstream (jetstream-frames serve) and ingest are started in front
/// of the running decode.
template <class StartFanout>
int concurrent_snapshots_beside_live(const std::filesystem::path& dir, std::size_t snapshots,
                                     std::uint16_t frames_port, std::uint16_t control_port,
                                     std::uint16_t fanout_port, std::uint16_t fanout_metrics,
                                     support::ChildProcess& fanout, StartFanout&& start_fanout) {
  constexpr int kLiveClients = 200;
  constexpr int kSeconds = 15;
  constexpr int kFramesPerSecond = 1950;  // ~2,000 events/s, as bench-fanout
  const auto capture = dir / "live.frames";
  if (!support::write_repeated_capture(capture, kFramesPerSecond * (3 * kSeconds + 30),
                                       support::RepeatedRecords::distinct)) {
    std::fprintf(stderr, "state_bench: ../shared/corpus/dev.frames missing\n");
    return 1;
  }
  if (!start_fanout("5000")) {
    std::fprintf(stderr, "state_bench: fanout not ready\n%s\n", fanout.log().c_str());
    return 1;
  }
  const auto upstream_port = support::free_loopback_port();
  support::ChildProcess serve, ingest;
  serve.start(support::StackUnderTest::binary("tools/frames/jetstream-frames"),
              {"serve", capture.string(), "--listen", "127.0.0.1:" + std::to_string(upstream_port),
               "--rate", std::to_string(kFramesPerSecond), "--keep-open"},
              (dir / "serve.log").string());
  support::start_ingest(ingest, upstream_port, frames_port, control_port,
                        support::free_loopback_port(), dir / "ingest.log");
  const std::string url = "ws://127.0.0.1:" + std::to_string(fanout_port) + "/subscribe";
  const std::string seconds = std::to_string(kSeconds) + "s";
  // Live events reach fanout before anything is measured (the twin's events are an hour old;
  // decode stamps live ones with now).
  const double live_after_us = static_cast<double>(recent_time_us() + 3'500'000'000);
  if (!support::eventually(
          [&] {
            return support::metric_value(support::http_get(fanout_metrics, "/metrics").body,
                                         "jetstream_fanout_head_time_us") > live_after_us;
          },
          std::chrono::seconds(60))) {
    std::fprintf(stderr, "state_bench: no live events reached fanout\n%s\n%s\n",
                 ingest.log().c_str(), fanout.log().c_str());
    return 1;
  }

  struct Live {
    double p99_ms = -1, own_p99_ms = -1, deliveries_per_s = 0;
  };
  const auto live_run = [&](const char* name) {
    Live live;
    const std::string before = support::http_get(fanout_metrics, "/metrics").body;
    support::ChildProcess loadgen;
    loadgen.start(support::StackUnderTest::binary("tools/loadgen/jetstream-loadgen"),
                  {"--url", url, "--clients", std::to_string(kLiveClients), "--connect-rate",
                   "1000", "--duration", seconds, "--progress=false", "--json",
                   // each live client its own address too, under the per-IP rate like a user
                   "--source-addresses", std::to_string(kLiveClients), "--source-network", "2"},
                  (dir / (std::string("live-") + name + ".log")).string());
    (void)loadgen.wait(std::chrono::seconds(kSeconds + 60));
    const std::string after = support::http_get(fanout_metrics, "/metrics").body;
    const auto json = loadgen_summary(loadgen.log());
    if (!json.IsObject() || !json.HasMember("latency_us")) {
      std::fprintf(stderr, "state_bench: live loadgen failed\n%s\n", loadgen.log().c_str());
      return live;
    }
    live.p99_ms = json["latency_us"]["p99"].GetDouble() / 1000;
    live.deliveries_per_s = json["deliveries_per_s"].GetDouble();
    live.own_p99_ms =
        support::histogram_quantile(before, after, "jetstream_fanout_write_lag_seconds", 0.99) *
        1000;
    return live;
  };

  const Live alone = live_run("alone");
  support::ChildProcess readers;
  readers.start(support::StackUnderTest::binary("tools/loadgen/jetstream-loadgen"),
                {"--url", url, "--query", "snapshot=true", "--clients", std::to_string(snapshots),
                 "--source-addresses", std::to_string(std::min<std::size_t>(snapshots, 254)),
                 "--duration", std::to_string(kSeconds + 30) + "s", "--progress=false", "--json"},
                (dir / "snapshots.log").string());
  const bool reading = support::eventually(
      [&] {
        return support::metric_value(support::http_get(fanout_metrics, "/metrics").body,
                                     "jetstream_fanout_snapshot_sessions") >=
               static_cast<double>(snapshots);
      },
      std::chrono::seconds(60));
  const std::string snapshot_before = support::http_get(fanout_metrics, "/metrics").body;
  const auto snapshot_start = Clock::now();
  const Live beside = reading ? live_run("beside-snapshots") : Live{};
  const double snapshot_seconds =
      std::chrono::duration<double>(Clock::now() - snapshot_start).count();
  const double snapshot_events =
      support::metric_value(support::http_get(fanout_metrics, "/metrics").body,
                            "jetstream_fanout_snapshot_events_total") -
      support::metric_value(snapshot_before, "jetstream_fanout_snapshot_events_total");
  readers.kill_now();
  ingest.stop();
  serve.stop();
  if (alone.p99_ms < 0 || beside.p99_ms < 0) {
    std::fprintf(stderr, "state_bench: %s\n%s\n",
                 reading ? "a live run failed" : "the snapshot clients did not all start",
                 readers.log().c_str());
    return 1;
  }
  std::printf(
      "==> 4. %d live clients (~%d events/s upstream, %d s) alone, then beside %zu snapshot=true "
      "clients from %zu loopback addresses (fanout's default --max-sub-rate 5000 per IP)\n",
      kLiveClients, kFramesPerSecond * 77 / 75, kSeconds, snapshots,
      std::min<std::size_t>(snapshots, 254));
  std::printf(
      "  alone          live p99 %6.1f ms (fanout's own share p99 %5.1f ms), %8.0f deliveries/s\n",
      alone.p99_ms, alone.own_p99_ms, alone.deliveries_per_s);
  std::printf(
      "  beside them    live p99 %6.1f ms (fanout's own share p99 %5.1f ms), %8.0f deliveries/s\n",
      beside.p99_ms, beside.own_p99_ms, beside.deliveries_per_s);
  std::printf("  snapshot clients read %.0f events/s together\n",
              snapshot_events / snapshot_seconds);
  std::printf("  live p99 moved %+.0f%% (target: at most +20%%); fanout's own share %+.0f%%\n",
              100 * (beside.p99_ms / alone.p99_ms - 1),
              100 * (beside.own_p99_ms / alone.own_p99_ms - 1));
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  std::size_t records = 1'000'000;
  std::size_t deletes = 100'000;
  std::size_t concurrent_snapshots = 100;
  std::string live_rise = "20";  // fanout's default, percent
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--snapshot-clients") == 0) {
      concurrent_snapshots = std::stoul(argv[i + 1]);
    }
    if (std::strcmp(argv[i], "--records") == 0) records = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--catch-up-live-rise") == 0) live_rise = argv[i + 1];
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
  if (!corpus_disk_bytes(dir / "corpus", 2600)) return 1;
  std::filesystem::remove_all(dir / "corpus");

  // 3. A snapshot through the real services to one loadgen client.
  const auto events_port = support::free_loopback_port();
  const auto replay_port = support::free_loopback_port();
  const auto frames_port = support::free_loopback_port();
  const auto control_port = support::free_loopback_port();
  const auto decode_metrics = support::free_loopback_port();
  const auto fanout_port = support::free_loopback_port();
  const auto fanout_metrics = support::free_loopback_port();
  support::ChildProcess decode, fanout, loadgen;
  decode.start(
      support::StackUnderTest::binary("services/decode/jetstream-decode"),
      {"--data-dir", (dir / "data").string(), "--compact-collections", "app.bsky.*",
       "--frames-endpoint", "tcp://127.0.0.1:" + std::to_string(frames_port), "--control-endpoint",
       "tcp://127.0.0.1:" + std::to_string(control_port), "--events-endpoint",
       "tcp://127.0.0.1:" + std::to_string(events_port), "--replay-endpoint",
       "tcp://127.0.0.1:" + std::to_string(replay_port), "--backfill-endpoint",
       "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port()), "--metrics-listen-addr",
       "127.0.0.1:" + std::to_string(decode_metrics), "--min-free-bytes", "0"},
      (dir / "decode.log").string());
  const auto start_fanout = [&](const char* max_sub_rate) {
    fanout.start(support::StackUnderTest::binary("services/fanout/jetstream-fanout"),
                 {"--listen-addr", "127.0.0.1:" + std::to_string(fanout_port),
                  "--metrics-listen-addr", "127.0.0.1:" + std::to_string(fanout_metrics),
                  "--events-endpoint", "tcp://127.0.0.1:" + std::to_string(events_port),
                  "--replay-endpoint", "tcp://127.0.0.1:" + std::to_string(replay_port),
                  "--max-sub-rate", max_sub_rate, "--catch-up-live-rise", live_rise},
                 (dir / "fanout.log").string());
    return support::eventually(
        [&] { return support::http_get(fanout_metrics, "/readyz").status == 200; },
        std::chrono::seconds(60));
  };
  // The per-IP rate (v1's 5,000 events/s by default) paces snapshots like replays: off here, to
  // measure the service rather than the limit.
  const bool ready = start_fanout("0");
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
  if (status == 0 && concurrent_snapshots > 0) {
    fanout.stop();
    status = concurrent_snapshots_beside_live(dir, concurrent_snapshots, frames_port, control_port,
                                              fanout_port, fanout_metrics, fanout, start_fanout);
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
