// End-to-end throughput of the real processes on this machine:
//
//   build/release/tests/bench/pipeline_bench [--frames 60000] [--compact 'app.bsky.*']
//
// 1. Catch-up: a capture of N real relay frames (the dev corpus repeated under fresh seqs) is
//    served at full speed by `jetstream-frames serve` to `jetstream-ingest`, which publishes to
//    `jetstream-decode`: frames/s and events/s from the first stored frame to the last one
//    (decoded, sequenced, compressed, stored in RocksDB and published), read off decode's
//    consumer_last_seq metric. The limit: >= 20,000 frames/s.
// 2. Replay: one reader pages through decode's whole log over ZeroMQ (no filter): events/s and
//    MB/s. The limit: >= 500,000 events/s.
// 3. With --compact PATTERNS: the catch-up without the twin, then with decode's compacted twin of
//    PATTERNS on records of new repositories every pass (the DIDs rewritten per pass: the
//    firehose's shape, where most events create records), then on the corpus's own records every
//    pass (each event updates a record the twin holds: the worst case), with the ratios. The
//    issue's limit: >= 40,000 frames/s with app.bsky.* compacted.
// Each figure is printed with its ratio to the limit. Exit status 0 unless the pipeline failed.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/firehose/capture.hpp"
#include "proto/replay.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/shared_data.hpp"

namespace {

namespace support = jetstream::testing;
namespace proto = jetstream::proto;
using Clock = std::chrono::steady_clock;

constexpr double kFramesPerSecondLimit = 20000;
constexpr double kCompactedFramesPerSecondLimit = 40000;  // issue "State": app.bsky.* compacted
constexpr double kReplayEventsPerSecondLimit = 500000;

/// The value of `name` (first sample) in decode's /metrics, or -1.
double scrape(std::uint16_t port, const std::string& name) {
  return support::metric_value(support::http_get(port, "/metrics").body, name);
}

/// One run of the stack on `capture` (in `dir`): serve → ingest → decode (with `compact` as its
/// --compact-collections when set), the catch-up rate, then (`measure_replay`) one replay reader.
struct CatchUp {
  int status = 0;
  double frames_per_second = 0;
};

CatchUp catch_up(const std::filesystem::path& dir, const std::filesystem::path& capture,
                 const std::string& records, std::size_t frame_count, std::size_t expected_events,
                 const std::string& compact, bool measure_replay) {
  CatchUp result;
  const auto upstream_port = support::free_loopback_port();
  const auto frames_port = support::free_loopback_port();
  const auto control_port = support::free_loopback_port();
  const auto replay_port = support::free_loopback_port();
  const auto events_port = support::free_loopback_port();
  const auto decode_metrics = support::free_loopback_port();
  const auto ingest_metrics = support::free_loopback_port();

  support::ChildProcess serve, ingest, decode;
  serve.start(support::StackUnderTest::binary("tools/frames/jetstream-frames"),
              {"serve", capture.string(), "--listen", "127.0.0.1:" + std::to_string(upstream_port),
               "--keep-open"},
              (dir / "serve.log").string());
  std::vector<std::string> decode_args = {
      "--data-dir",
      (dir / "data").string(),
      "--frames-endpoint",
      "tcp://127.0.0.1:" + std::to_string(frames_port),
      "--control-endpoint",
      "tcp://127.0.0.1:" + std::to_string(control_port),
      "--events-endpoint",
      "tcp://127.0.0.1:" + std::to_string(events_port),
      "--replay-endpoint",
      "tcp://127.0.0.1:" + std::to_string(replay_port),
      "--backfill-endpoint",
      "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port()),
      "--metrics-listen-addr",
      "127.0.0.1:" + std::to_string(decode_metrics)};
  if (const auto dictionary = support::shared_file("zstd/jetstream-v1.zdict")) {
    decode_args.push_back("--zstd-dictionary-path");
    decode_args.push_back(dictionary->string());
  }
  if (!compact.empty()) {
    decode_args.push_back("--compact-collections");
    decode_args.push_back(compact);
  }
  std::filesystem::remove_all(dir / "data");
  decode.start(support::StackUnderTest::binary("services/decode/jetstream-decode"), decode_args,
               (dir / "decode.log").string());
  support::start_ingest(ingest, upstream_port, frames_port, control_port, ingest_metrics,
                        dir / "ingest.log");

  std::printf("catch-up: %zu real relay frames (%zu events, %s) served at full speed, %s\n",
              frame_count, expected_events, records.c_str(),
              compact.empty() ? "no compacted twin" : ("compacted twin of " + compact).c_str());
  Clock::time_point first{}, last{};
  double first_seq = 0;
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  double seq = 0;
  while (Clock::now() < deadline) {
    seq = scrape(decode_metrics, "consumer_last_seq");
    const auto now = Clock::now();
    if (seq > 0 && first_seq == 0) {
      first = now;
      first_seq = seq;
    }
    if (seq >= static_cast<double>(frame_count)) {
      last = now;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (last == Clock::time_point{}) {
    std::fprintf(stderr, "pipeline_bench: decode stored only up to seq %.0f of %zu\n%s\n", seq,
                 frame_count, decode.log().c_str());
    result.status = 1;
  } else {
    const double seconds = std::chrono::duration<double>(last - first).count();
    const double frames = (static_cast<double>(frame_count) - first_seq) / seconds;
    const double events = frames * 77.0 / 75.0;
    std::printf("  ingest -> decode -> stored and published: %10.0f frames/s  %10.0f events/s\n",
                frames, events);
    std::printf(
        "  frames/s vs the %s frames/s limit: %.2fx\n", compact.empty() ? "20,000" : "40,000",
        frames / (compact.empty() ? kFramesPerSecondLimit : kCompactedFramesPerSecondLimit));
    result.frames_per_second = frames;
  }
  if (result.status == 0 && measure_replay) {
    // The reader decodes every page (zero-copy views) and counts; it keeps nothing.
    zmq::context_t context;
    zmq::socket_t reader(context, zmq::socket_type::dealer);
    reader.set(zmq::sockopt::linger, 0);
    reader.connect("tcp://127.0.0.1:" + std::to_string(replay_port));
    proto::ReplayRequest request;
    request.max_events = 4000;  // ~2 MiB pages stay in the CPU caches on both ends
    request.max_bytes = 8u << 20;
    request.clamp_to_oldest = true;
    std::size_t replayed = 0, bytes = 0;
    const auto start = Clock::now();
    for (std::uint64_t id = 1; Clock::now() < deadline; ++id) {
      request.request_id = id;
      const auto body = proto::encode_replay_request(request);
      reader.send(zmq::buffer(proto::topic(proto::MessageType::replay_request)),
                  zmq::send_flags::sndmore);
      reader.send(zmq::buffer(body), zmq::send_flags::none);
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(reader, std::back_inserter(parts)) || parts.size() != 2) break;
      const auto page = proto::decode_replay_page(
          {static_cast<const std::uint8_t*>(parts[1].data()), parts[1].size()});
      if (!page || page.value().status != proto::ReplayStatus::ok) break;
      replayed += page.value().events.size();
      for (const auto& event : page.value().events) bytes += event.json.size();
      if (page.value().done) break;
      request.start_time_us = page.value().next_time_us;
    }
    const double replay_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double replay_rate = static_cast<double>(replayed) / replay_seconds;
    std::printf("replay: one reader, no filter, %zu events\n", replayed);
    std::printf("  %10.0f events/s  %8.1f MB/s of JSON\n", replay_rate,
                static_cast<double>(bytes) / replay_seconds / 1e6);
    std::printf("  events/s vs the 500,000 events/s limit: %.2fx\n",
                replay_rate / kReplayEventsPerSecondLimit);
    if (replayed != expected_events) {
      std::fprintf(stderr, "pipeline_bench: the log holds %zu events, expected %zu\n", replayed,
                   expected_events);
      result.status = 1;
    }
  }
  ingest.stop();
  decode.stop();
  serve.stop();
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t frame_count = 60000;
  std::string compact;  // --compact PATTERNS: also run with the twin, and print the ratio
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--frames") == 0) frame_count = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--compact") == 0) compact = argv[i + 1];
  }
  frame_count = frame_count / 75 * 75;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("jetstream-pipeline-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto same = dir / "same-records.frames";
  const auto distinct = dir / "distinct-records.frames";
  const auto capture_events = support::write_repeated_capture(same, frame_count);
  const std::size_t expected_events = capture_events.value_or(0);
  if (!capture_events ||
      (!compact.empty() && !support::write_repeated_capture(distinct, frame_count,
                                                            support::RepeatedRecords::distinct))) {
    std::fprintf(stderr, "pipeline_bench: ../shared/corpus/dev.frames missing or unreadable\n");
    return 1;
  }
  const std::string same_text = "the corpus's records on every pass";
  int status = 0;
  if (!compact.empty()) {
    // The same catch-up without the twin first: the ratios are measured on this machine, now.
    // With the twin, on records of other repositories every pass (the firehose's shape: new
    // records, the figure the limit applies to), then on the corpus's own records every pass
    // (every event an update of a record already held: the twin's worst case).
    const std::string distinct_text = "records of new repositories on every pass";
    const CatchUp baseline = catch_up(dir, distinct, distinct_text, frame_count, expected_events,
                                      "", /*measure_replay=*/true);
    const CatchUp compacted =
        catch_up(dir, distinct, distinct_text, frame_count, expected_events, compact, false);
    const CatchUp updates =
        catch_up(dir, same, same_text, frame_count, expected_events, compact, false);
    status = baseline.status | compacted.status | updates.status;
    if (status == 0) {
      std::printf("compacted twin of %s, new records: %.2fx the frames/s without it\n",
                  compact.c_str(), compacted.frames_per_second / baseline.frames_per_second);
      std::printf("compacted twin of %s, every event an update: %.2fx the frames/s without it\n",
                  compact.c_str(), updates.frames_per_second / baseline.frames_per_second);
    }
  } else {
    status = catch_up(dir, same, same_text, frame_count, expected_events, compact, true).status;
  }
  std::filesystem::remove_all(dir);
  return status;
}
