// Decoding real relay frames to v1 JSON on one core, next to memcpy of the same bytes; and a
// repository CAR (as getRepo sends it) read by CarStreamReader in 64 KiB chunks, and its records
// found through RepoRecordStream.
//
//   build/release/tests/bench/decode_bench [--benchmark_min_time=2]
//
// Prints Google Benchmark's table, then a summary: frames/s, events/s, the ratio of events/s to
// the 250,000 events/s target, and decode speed as a fraction of memcpy speed on the same bytes;
// the CAR stream's MiB/s (every block's CID checked), and the same CAR's records through
// RepoRecordStream, with their ratio to the backfill issue's 100 MiB/s per core.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/codec/car.hpp"
#include "common/codec/mst.hpp"
#include "common/firehose/capture.hpp"
#include "common/firehose/v1_encoder.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/repo_car.hpp"
#include "tests/support/shared_data.hpp"

namespace {

namespace codec = jetstream::codec;
namespace firehose = jetstream::firehose;
namespace support = jetstream::testing;
using jetstream::byte_view;

constexpr double kTargetEventsPerSecond = 250000.0;

struct Corpus {
  std::vector<std::uint8_t> bytes;
  std::vector<byte_view> frames;
  std::size_t frame_bytes = 0;
};

const Corpus& corpus() {
  static const Corpus loaded = [] {
    Corpus c;
    if (auto path = support::shared_file("corpus/dev.frames")) {
      c.bytes = support::read_binary_file(*path);
      if (auto frames = firehose::split_capture(c.bytes)) c.frames = *frames;
      for (const auto frame : c.frames) c.frame_bytes += frame.size();
    }
    return c;
  }();
  return loaded;
}

double g_events_per_second = 0;
double g_frames_per_second = 0;
double g_decode_bytes_per_second = 0;
double g_memcpy_bytes_per_second = 0;

void BM_DecodeFramesToV1Json(benchmark::State& state) {
  const Corpus& c = corpus();
  if (c.frames.empty()) {
    state.SkipWithError("../shared/corpus/dev.frames missing");
    return;
  }
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  std::string finalized;
  std::int64_t time_us = 0;
  std::uint64_t event_count = 0;
  for (auto _ : state) {
    for (const auto frame : c.frames) {
      events.clear();
      encoder.events_from_frame(frame, events);
      for (const auto& event : events) {
        finalized.clear();
        event.append_finalized(finalized, ++time_us);  // what the sequencer does per event
        benchmark::DoNotOptimize(finalized.data());
      }
      event_count += events.size();
    }
  }
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["frames/s"] = benchmark::Counter(iterations * static_cast<double>(c.frames.size()),
                                                  benchmark::Counter::kIsRate);
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(event_count), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(
      static_cast<std::int64_t>(iterations * static_cast<double>(c.frame_bytes)));
  g_events_per_second = static_cast<double>(event_count);
  g_frames_per_second = iterations * static_cast<double>(c.frames.size());
  g_decode_bytes_per_second = iterations * static_cast<double>(c.frame_bytes);
}
BENCHMARK(BM_DecodeFramesToV1Json)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MemcpySameFrames(benchmark::State& state) {
  const Corpus& c = corpus();
  if (c.frames.empty()) {
    state.SkipWithError("../shared/corpus/dev.frames missing");
    return;
  }
  std::vector<std::uint8_t> destination(c.frame_bytes);
  for (auto _ : state) {
    std::uint8_t* out = destination.data();
    for (const auto frame : c.frames) {
      std::memcpy(out, frame.data(), frame.size());
      out += frame.size();
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(c.frame_bytes));
  g_memcpy_bytes_per_second =
      static_cast<double>(state.iterations()) * static_cast<double>(c.frame_bytes);
}
BENCHMARK(BM_MemcpySameFrames)->Unit(benchmark::kMicrosecond)->UseRealTime();

double g_car_bytes = 0;
constexpr double kCarTargetBytesPerSecond = 100.0 * 1024 * 1024;

/// A repository of 50,000 posts as getRepo sends it: the records and every MST node, sorted by
/// CID as the reference PDS orders them (records mostly before the nodes that name them).
const std::vector<std::uint8_t>& repository_car() {
  static const std::vector<std::uint8_t> car =
      support::make_repository_car("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "3mabcdefghij2", 50000);
  return car;
}

double g_records_bytes = 0;

/// Feeds `car` to `reader` in 64 KiB chunks, as a getRepo body arrives; false when it fails.
bool stream_in_chunks(const std::vector<std::uint8_t>& car, codec::CarStreamReader& reader,
                      const codec::CarStreamReader::BlockVisitor& visit) {
  constexpr std::size_t kChunk = 64 * 1024;
  for (std::size_t at = 0; at < car.size(); at += kChunk) {
    if (reader.feed(byte_view(car).subspan(at, std::min(kChunk, car.size() - at)), visit)) {
      return false;
    }
  }
  return !reader.finish();
}

void BM_RepositoryRecordsFromTheStream(benchmark::State& state) {
  const auto& car = repository_car();
  std::uint64_t records = 0;
  for (auto _ : state) {
    codec::CarStreamReader reader;
    codec::RepoRecordStream repo({},
                                 [&records](std::string_view, byte_view, byte_view) { ++records; });
    bool rooted = false;
    const bool streamed =
        stream_in_chunks(car, reader, [&](const codec::CidView& cid, byte_view data) {
          if (!rooted) {
            repo.set_root(reader.roots().at(0).bytes);
            rooted = true;
          }
          if (auto refused = repo.add_block(cid.bytes, data)) {
            state.SkipWithError(
                std::string("a block was refused: ").append(codec::to_string(*refused)).c_str());
          }
        });
    if (!streamed) state.SkipWithError("the CAR did not stream");
    if (repo.finish()) state.SkipWithError("the repository did not end cleanly");
  }
  if (records != 50000ULL * static_cast<std::uint64_t>(state.iterations())) {
    state.SkipWithError("records missing");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(car.size()));
  g_records_bytes = static_cast<double>(state.iterations()) * static_cast<double>(car.size());
}
BENCHMARK(BM_RepositoryRecordsFromTheStream)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_StreamRepositoryCar(benchmark::State& state) {
  const auto& car = repository_car();
  std::uint64_t blocks = 0;
  for (auto _ : state) {
    codec::CarStreamReader reader;
    if (!stream_in_chunks(car, reader, [&blocks](const codec::CidView&, byte_view) { ++blocks; })) {
      state.SkipWithError("the CAR did not stream");
    }
  }
  benchmark::DoNotOptimize(blocks);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(car.size()));
  g_car_bytes = static_cast<double>(state.iterations()) * static_cast<double>(car.size());
}
BENCHMARK(BM_StreamRepositoryCar)->Unit(benchmark::kMillisecond)->UseRealTime();

/// Captures each run's wall time so the summary can turn totals into rates.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      const double seconds = run.real_accumulated_time;
      if (seconds <= 0) continue;
      if (run.run_name.function_name == "BM_DecodeFramesToV1Json") decode_seconds = seconds;
      if (run.run_name.function_name == "BM_MemcpySameFrames") memcpy_seconds = seconds;
      if (run.run_name.function_name == "BM_StreamRepositoryCar") car_seconds = seconds;
      if (run.run_name.function_name == "BM_RepositoryRecordsFromTheStream")
        records_seconds = seconds;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double decode_seconds = 0;
  double memcpy_seconds = 0;
  double car_seconds = 0;
  double records_seconds = 0;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (reporter.decode_seconds <= 0 || reporter.memcpy_seconds <= 0) {
    std::fprintf(stderr, "decode_bench: no summary (corpus missing or benchmarks filtered)\n");
    return corpus().frames.empty() ? 1 : 0;
  }
  const double events = g_events_per_second / reporter.decode_seconds;
  const double frames = g_frames_per_second / reporter.decode_seconds;
  const double decode_rate = g_decode_bytes_per_second / reporter.decode_seconds;
  const double memcpy_rate = g_memcpy_bytes_per_second / reporter.memcpy_seconds;
  std::printf("\nsummary (one core, real relay frames, CID check on):\n");
  std::printf("  decode to v1 JSON : %10.0f frames/s  %10.0f events/s  %8.1f MB/s of frames\n",
              frames, events, decode_rate / 1e6);
  std::printf("  memcpy same bytes : %10.1f MB/s\n", memcpy_rate / 1e6);
  std::printf("  events/s vs the 250,000 events/s target: %.2fx\n",
              events / kTargetEventsPerSecond);
  std::printf("  decode speed as a fraction of memcpy speed: %.4f\n", decode_rate / memcpy_rate);
  if (reporter.car_seconds > 0) {
    const double car_rate = g_car_bytes / reporter.car_seconds;
    std::printf(
        "  repository CAR streamed (%.1f MiB, 64 KiB chunks, every CID checked): %.0f MiB/s, "
        "%.2fx the 100 MiB/s per core target (the block layer of backfill's getRepo read)\n",
        static_cast<double>(repository_car().size()) / 1048576.0, car_rate / 1048576.0,
        car_rate / kCarTargetBytesPerSecond);
  }
  if (reporter.records_seconds > 0) {
    const double rate = g_records_bytes / reporter.records_seconds;
    std::printf(
        "  its 50,000 records through RepoRecordStream (blocks sorted by CID, as the PDS sends "
        "them: early records spilled to disk): %.0f MiB/s, %.2fx the 100 MiB/s per core target\n",
        rate / 1048576.0, rate / kCarTargetBytesPerSecond);
  }
  return 0;
}
