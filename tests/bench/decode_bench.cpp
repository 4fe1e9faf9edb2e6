// Decoding real relay frames to v1 JSON on one core, next to memcpy of the same bytes.
//
//   build/release/tests/bench/decode_bench [--benchmark_min_time=2]
//
// Prints Google Benchmark's table, then a summary: frames/s, events/s, the ratio of events/s to
// the 250,000 events/s target, and decode speed as a fraction of memcpy speed on the same bytes.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/firehose/capture.hpp"
#include "common/firehose/v1_encoder.hpp"
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

/// Captures each run's wall time so the summary can turn totals into rates.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      const double seconds = run.real_accumulated_time;
      if (seconds <= 0) continue;
      if (run.run_name.function_name == "BM_DecodeFramesToV1Json") decode_seconds = seconds;
      if (run.run_name.function_name == "BM_MemcpySameFrames") memcpy_seconds = seconds;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double decode_seconds = 0;
  double memcpy_seconds = 0;
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
  return 0;
}
