// Replay reads and appends of decode's event store (services/decode/event_store.hpp) on one core.
//
//   build/release/tests/bench/replay_bench [--benchmark_min_time=2]
//   JETSTREAM_BENCH_COMPRESSION=none build/release/tests/bench/replay_bench   (default lz4)
//
// Fills a store in a fresh directory under /tmp (removed at exit) with 200,000 events (then
// reopens it, so the reads come from SST blocks through the 256 MiB block cache): the v1
// JSON lines of ../shared/corpus/dev.expected.jsonl repeated with increasing time_us (~550 B
// each), each compressed once with the v1 dictionary (../shared/zstd/jetstream-v1.zdict, ~250 B);
// without ../shared, synthetic events of the same sizes. Then:
//   BM_ReadPage/<max_events>      one reader pages through the whole log, no filter, JSON only
//   BM_ReadPageZstd/<max_events>  same, asking for the zstd frames too
//   BM_ReadPageCollection/...     same with wantedCollections = app.bsky.feed.like (every stored
//                                 event is scanned; only the matching ones are copied)
//   BM_Append                     append in batches of 64 into a fresh store (WAL on, no fsync)
// Each reports events/s (returned events) and MB/s (page payload); the summary adds scanned
// events/s, the store's size on disk, and the ratio of unfiltered events/s to the 500,000
// events/s replay target.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "common/zstd/zstd_dictionary.hpp"
#include "proto/events.hpp"
#include "proto/replay.hpp"
#include "services/decode/event_store.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace decode = jetstream::decode;
namespace proto = jetstream::proto;
namespace support = jetstream::testing;

constexpr std::size_t kFillEvents = 200'000;
constexpr std::size_t kAppendBatch = 64;
constexpr double kTargetEventsPerSecond = 500'000.0;
constexpr std::int64_t kFirstTimeUs = 1'700'000'000'000'000;

/// One event's bytes; views are made per append.
struct Sample {
  proto::EventKind kind = proto::EventKind::commit;
  std::string did;
  std::string collection;
  std::string json;
  std::string zstd;
};

std::string json_string_field(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\":\"";
  const auto at = json.find(key);
  if (at == std::string::npos) return {};
  const auto begin = at + key.size();
  const auto end = json.find('"', begin);
  return end == std::string::npos ? std::string() : json.substr(begin, end - begin);
}

/// The dev corpus with its zstd frames, or synthetic events of the same shape.
const std::vector<Sample>& samples() {
  static const std::vector<Sample> loaded = [] {
    std::vector<Sample> out;
    std::unique_ptr<jetstream::zstd::Compressor> compressor;
    if (auto path = support::shared_file("zstd/jetstream-v1.zdict")) {
      std::string error;
      if (auto dictionary = jetstream::zstd::Dictionary::load(path->string(), error)) {
        compressor = std::make_unique<jetstream::zstd::Compressor>(dictionary);
      }
    }
    if (auto path = support::shared_file("corpus/dev.expected.jsonl")) {
      std::istringstream in(support::read_text_file(*path));
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        Sample sample;
        sample.did = json_string_field(line, "did");
        const std::string kind = json_string_field(line, "kind");
        sample.kind = kind == "identity"  ? proto::EventKind::identity
                      : kind == "account" ? proto::EventKind::account
                                          : proto::EventKind::commit;
        if (sample.kind == proto::EventKind::commit) {
          sample.collection = json_string_field(line, "collection");
        }
        if (sample.did.empty() ||
            (sample.kind == proto::EventKind::commit && sample.collection.empty())) {
          continue;
        }
        sample.json = line;
        if (compressor) compressor->compress(sample.json, sample.zstd);
        out.push_back(std::move(sample));
      }
    }
    if (out.empty()) {
      std::fprintf(stderr, "replay_bench: ../shared missing, using synthetic events\n");
      const char* collections[] = {"app.bsky.feed.like", "app.bsky.feed.post",
                                   "app.bsky.graph.follow", "app.bsky.feed.repost"};
      for (std::size_t i = 0; i < 64; ++i) {
        Sample sample;
        sample.did = "did:plc:" + std::to_string(100000000 + i * 7919);
        sample.collection = collections[i % 4];
        sample.json = "{\"did\":\"" + sample.did + "\",\"kind\":\"commit\",\"commit\":{\"pad\":\"" +
                      std::string(440, static_cast<char>('a' + i % 26)) + "\"}}";
        sample.zstd.resize(250);
        for (std::size_t b = 0; b < sample.zstd.size(); ++b) {
          sample.zstd[b] = static_cast<char>((b * 131 + i * 17) & 0xff);
        }
        out.push_back(std::move(sample));
      }
    }
    return out;
  }();
  return loaded;
}

/// A fresh directory under /tmp (tests/support/temp_dir.hpp).
class TempDir : public jetstream::testing::TempDir {
 public:
  TempDir() : jetstream::testing::TempDir("replay_bench") {}
};

decode::EventStore::Compression bench_compression() {
  const char* value = std::getenv("JETSTREAM_BENCH_COMPRESSION");
  if (value != nullptr && std::string(value) == "none")
    return decode::EventStore::Compression::none;
  return decode::EventStore::Compression::lz4;
}

std::unique_ptr<decode::EventStore> open_store(const std::string& path) {
  decode::EventStore::Options options;
  options.path = path;
  options.compression = bench_compression();
  std::string error;
  auto store = decode::EventStore::open(options, error);
  if (!store) {
    std::fprintf(stderr, "replay_bench: %s\n", error.c_str());
    std::abort();
  }
  return store;
}

/// Appends `count` events continuing the store's chain, in batches of kAppendBatch.
void append_events(decode::EventStore& store, std::size_t count, std::size_t& next_sample) {
  const auto& source = samples();
  std::vector<proto::EventView> views(kAppendBatch);
  std::int64_t time_us = std::max(store.last_time_us(), kFirstTimeUs);
  std::int64_t prev = store.last_time_us();
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(kAppendBatch, count - done);
    for (std::size_t i = 0; i < n; ++i) {
      const Sample& sample = source[next_sample++ % source.size()];
      time_us += 20;
      views[i] = {time_us,
                  prev,
                  sample.kind,
                  sample.did,
                  sample.collection,
                  sample.json,
                  {reinterpret_cast<const std::uint8_t*>(sample.zstd.data()), sample.zstd.size()}};
      prev = time_us;
    }
    std::string error;
    if (!store.append(std::span(views.data(), n), static_cast<std::int64_t>(done + n), error)) {
      std::fprintf(stderr, "replay_bench: append: %s\n", error.c_str());
      std::abort();
    }
    done += n;
  }
}

/// The store every read benchmark pages through, filled once; removed at exit.
struct Filled {
  Filled() : store(open_store(dir.db())) {
    std::size_t next_sample = 0;
    const auto start = std::chrono::steady_clock::now();
    append_events(*store, kFillEvents, next_sample);
    fill_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Reopen: RocksDB flushes the recovered memtables, so replays read SST blocks (through the
    // block cache) as they do for anything older than the last minute or so.
    store.reset();
    store = open_store(dir.db());
  }
  TempDir dir;
  std::unique_ptr<decode::EventStore> store;
  double fill_seconds = 0;
};

Filled& filled() {
  static Filled f;
  return f;
}

/// Totals of the last run of each benchmark, for the summary.
struct Totals {
  double seconds = 0;
  double events = 0;
  double scanned = 0;
  double bytes = 0;
};
std::map<std::string, Totals> g_totals;

void read_whole_log(benchmark::State& state, const std::string& name, bool want_zstd,
                    std::vector<std::string> collections) {
  decode::EventStore& store = *filled().store;
  decode::ReplayPageBuffer buffer;
  proto::ReplayRequest request;
  request.request_id = 1;
  request.max_events = static_cast<std::uint32_t>(state.range(0));
  request.max_bytes = proto::kMaxPageBytes;
  request.want_zstd = want_zstd;
  request.collections = std::move(collections);
  Totals totals;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    request.start_time_us = 0;
    for (;;) {
      if (store.read_page(request, buffer) != proto::ReplayStatus::ok) {
        state.SkipWithError(buffer.error().c_str());
        return;
      }
      totals.events += static_cast<double>(buffer.page().events.size());
      totals.scanned += static_cast<double>(buffer.scanned());
      totals.bytes += static_cast<double>(buffer.payload_bytes());
      benchmark::DoNotOptimize(buffer.page().events.data());
      if (buffer.page().done) break;
      request.start_time_us = buffer.page().next_time_us;
    }
  }
  totals.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  state.counters["events/s"] = benchmark::Counter(totals.events, benchmark::Counter::kIsRate);
  state.counters["scanned/s"] = benchmark::Counter(totals.scanned, benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<std::int64_t>(totals.bytes));
  g_totals[name + "/" + std::to_string(state.range(0))] = totals;
}

void BM_ReadPage(benchmark::State& state) { read_whole_log(state, "no filter", false, {}); }
BENCHMARK(BM_ReadPage)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ReadPageZstd(benchmark::State& state) {
  read_whole_log(state, "no filter, zstd", true, {});
}
BENCHMARK(BM_ReadPageZstd)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ReadPageCollection(benchmark::State& state) {
  read_whole_log(state, "app.bsky.feed.like", false, {"app.bsky.feed.like"});
}
BENCHMARK(BM_ReadPageCollection)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Append(benchmark::State& state) {
  TempDir dir;
  auto store = open_store(dir.db());
  std::size_t next_sample = 0;
  Totals totals;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    append_events(*store, kAppendBatch, next_sample);
    totals.events += static_cast<double>(kAppendBatch);
  }
  totals.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  state.counters["events/s"] = benchmark::Counter(totals.events, benchmark::Counter::kIsRate);
  g_totals["append, batches of 64"] = totals;
}
BENCHMARK(BM_Append)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  const auto& f = filled();
  double sample_json = 0, sample_zstd = 0;
  for (const auto& sample : samples()) {
    sample_json += static_cast<double>(sample.json.size());
    sample_zstd += static_cast<double>(sample.zstd.size());
  }
  const auto count = static_cast<double>(samples().size());
  std::printf("\nsummary (one reader, %zu events of %.0f B JSON + %.0f B zstd, %s blocks):\n",
              kFillEvents, sample_json / count, sample_zstd / count,
              bench_compression() == decode::EventStore::Compression::lz4 ? "LZ4" : "uncompressed");
  std::printf("  fill (append x64)        : %10.0f events/s\n",
              static_cast<double>(kFillEvents) / f.fill_seconds);
  std::printf("  store on disk            : %10.1f MB (%.0f B/event, ~%llu events estimated)\n",
              static_cast<double>(f.store->disk_usage_bytes()) / 1e6,
              static_cast<double>(f.store->disk_usage_bytes()) / static_cast<double>(kFillEvents),
              static_cast<unsigned long long>(f.store->approximate_event_count()));
  double best_unfiltered = 0;
  for (const auto& [name, totals] : g_totals) {
    if (totals.seconds <= 0) continue;
    if (totals.scanned == 0) {
      std::printf("  %-24s : %10.0f events/s\n", name.c_str(), totals.events / totals.seconds);
      continue;
    }
    const double events = totals.events / totals.seconds;
    std::printf("  %-24s : %10.0f events/s  %8.1f MB/s  %10.0f scanned/s\n", name.c_str(), events,
                totals.bytes / totals.seconds / 1e6, totals.scanned / totals.seconds);
    if (name.starts_with("no filter/")) best_unfiltered = std::max(best_unfiltered, events);
  }
  if (best_unfiltered > 0) {
    std::printf("  unfiltered replay vs the 500,000 events/s target: %.2fx\n",
                best_unfiltered / kTargetEventsPerSecond);
  }
  return 0;
}
