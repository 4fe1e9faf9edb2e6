// ingest → decode as real processes, fed by `jetstream-frames serve` with the real relay capture:
// the log and the published stream equal production v1's output for those frames, and stay so
// through kill -9 of either process and an upstream that keeps dropping the connection. Garbage
// from upstream is counted and skipped.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/replay_client.hpp"
#include "tests/support/state_fold.hpp"
#include "tests/support/ws_client.hpp"

namespace {

namespace support = jetstream::testing;
using namespace std::chrono_literals;
using support::StackUnderTest;

std::string blank_time_us(const std::string& json) {
  static const std::regex time_us(R"("time_us":\d+)");
  return std::regex_replace(json, time_us, R"("time_us":0)",
                            std::regex_constants::format_first_only);
}

class Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto frames = support::shared_file("corpus/dev.frames");
    const auto expected = support::shared_file("corpus/dev.expected.jsonl");
    if (!frames || !expected)
      GTEST_FAIL() << "shared corpus missing under " << support::shared_dir();
    frames_path_ = *frames;
    std::istringstream in(support::read_text_file(*expected));
    for (std::string line; std::getline(in, line);) expected_.push_back(line);
  }

  std::vector<support::OwnedEvent> log_of(const StackUnderTest& stack) {
    support::ReplayClient client(context_, "tcp://127.0.0.1:" + std::to_string(stack.replay_port));
    return client.read_all({});
  }

  /// Waits for the whole corpus in the log, then checks it event by event.
  void expect_log_is_the_corpus(const StackUnderTest& stack) {
    std::vector<support::OwnedEvent> log;
    support::eventually([&] { return (log = log_of(stack)).size() >= expected_.size(); }, 60s);
    std::this_thread::sleep_for(500ms);  // a duplicate, if any, would be stored by now
    log = log_of(stack);
    ASSERT_EQ(log.size(), expected_.size())
        << stack.decode.log() << stack.ingest.log() << stack.serve.log();
    for (std::size_t i = 0; i < log.size(); ++i) {
      EXPECT_EQ(blank_time_us(log[i].json), blank_time_us(expected_[i])) << "event " << i;
      if (i > 0) {
        EXPECT_GT(log[i].time_us, log[i - 1].time_us);
      }
    }
  }

  StackUnderTest::Options options(double rate, std::filesystem::path capture = {}) {
    StackUnderTest::Options o;
    o.capture = capture.empty() ? frames_path_ : capture;
    o.rate = rate;
    return o;
  }

  zmq::context_t context_;
  std::filesystem::path frames_path_;
  std::vector<std::string> expected_;
};

TEST_F(Pipeline, StoredAndPublishedEventsEqualTheV1CorpusInOrder) {
  StackUnderTest stack("corpus");
  ASSERT_TRUE(stack.start(options(0)));
  expect_log_is_the_corpus(stack);
  EXPECT_EQ(StackUnderTest::metric(
                stack.decode_metrics_port,
                R"(consumer_events_processed_total{event_type="commit",socket_url="upstream"})"),
            77);
}

/// A `snapshot=true` client of fanout's websocket that keeps its state and cursor across
/// connections, as a real one does: each connection resumes at the last time_us it received.
struct ResumingSnapshotClient {
  /// Connects (again while fanout answers 503 during decode's restart) and reads until it has
  /// `events` more events or one at or after `until_time_us`; then leaves. False on a failure.
  bool read(std::uint16_t port, std::size_t events, std::int64_t until_time_us = 0) {
    support::WsTestClient client;
    std::string target = "/subscribe?snapshot=true";
    if (cursor) target += "&cursor=" + std::to_string(*cursor);
    int status = -1;
    if (!support::eventually([&] { return (status = client.connect(port, target)) == 101; }, 30s)) {
      ADD_FAILURE() << "handshake answered " << status << ": " << client.response();
      return false;
    }
    ++connections;
    static const std::regex time_us(R"("time_us":(\d+))");
    for (std::size_t got = 0; got < events || (until_time_us > 0 && cursor < until_time_us);) {
      const auto message = client.read(30s);
      if (!message || message->opcode != 1) {
        ADD_FAILURE() << "the connection ended after " << got << " events";
        return false;
      }
      if (message->payload.find(R"("name":"SnapshotRestarted")") != std::string::npos) {
        fold = {};
        cursor.reset();
      }
      if (!fold.apply(message->payload)) continue;  // an info message
      std::smatch match;
      if (!std::regex_search(message->payload, match, time_us)) return false;
      const std::int64_t t = std::stoll(match[1]);
      EXPECT_TRUE(!cursor || t > *cursor) << "time_us goes back across a resume";
      cursor = t;
      ++got;
    }
    return true;
  }
  support::StateFold fold;
  std::optional<std::int64_t> cursor;
  int connections = 0;
};

TEST_F(Pipeline, KillNineOfDecodeMidStreamLosesAndDuplicatesNothing) {
  // With a compacted twin: after every kill -9 the twin equals what the log implies, and a
  // snapshot client that reconnects with its cursor ends with the state the log implies.
  constexpr const char* kCompacted = "app.bsky.*";
  StackUnderTest stack("kill-decode");
  auto o = options(40);  // ~2 s of upstream
  o.decode_args = {"--compact-collections", kCompacted};
  ASSERT_TRUE(stack.start(o));
  ResumingSnapshotClient snapshot;
  for (const std::size_t stored : {15u, 40u, 70u}) {
    ASSERT_TRUE(snapshot.read(stack.fanout_port, 4)) << stack.fanout.log();
    ASSERT_TRUE(support::eventually([&] { return log_of(stack).size() >= stored; }, 30s))
        << stack.decode.log();
    stack.decode.kill_now();
    std::string report;
    EXPECT_EQ(stack.check_state(kCompacted, report), 0) << report;
    ASSERT_TRUE(stack.restart_decode());
  }
  expect_log_is_the_corpus(stack);
  const auto log = log_of(stack);
  support::StateFold from_log;
  std::int64_t last_compacted = 0;
  for (const auto& event : log) {
    if (event.kind != jetstream::proto::EventKind::commit ||
        event.collection.starts_with("app.bsky.")) {
      from_log.apply(event.json);
      last_compacted = event.time_us;
    }
  }
  ASSERT_TRUE(snapshot.read(stack.fanout_port, 0, last_compacted)) << stack.fanout.log();
  EXPECT_EQ(snapshot.connections, 4);
  EXPECT_EQ(snapshot.fold.state().size(), from_log.state().size());
  EXPECT_TRUE(snapshot.fold.state() == from_log.state());
  stack.decode.kill_now();
  std::string report;
  EXPECT_EQ(stack.check_state(kCompacted, report), 0) << report;
  EXPECT_NE(report.find("app.bsky.*: "), std::string::npos) << report;
  EXPECT_EQ(report.find("app.bsky.*: 0 records"), std::string::npos) << report;
}

TEST_F(Pipeline, ACollectionAddedOnRestartIsBuiltFromTheLogWithItsProgressShown) {
  StackUnderTest stack("twin-build");
  auto o = options(0);
  o.decode_args = {"--compact-collections", "app.bsky.feed.post"};
  ASSERT_TRUE(stack.start(o));
  expect_log_is_the_corpus(stack);
  const auto log = log_of(stack);
  stack.decode.stop();
  // The whole app.bsky.* now: every other app.bsky collection is built from the log decode holds.
  ASSERT_TRUE(stack.restart_decode(
      {"--compact-collections", "app.bsky.*", "--twin-build-step-events", "5"}));
  // Until the build is done a snapshot of a collection being built is refused for now (503),
  // never served from a twin that lacks records.
  int status = 0;
  std::string last_response;
  ASSERT_TRUE(support::eventually(
      [&] {
        support::WsTestClient client;
        status = client.connect(stack.fanout_port,
                                "/subscribe?snapshot=true&wantedCollections=app.bsky.feed.like");
        last_response = client.response().substr(0, 400);
        if (status == 503 && client.response().find("snapshot unavailable") != std::string::npos) {
          EXPECT_NE(client.response().find("is being built from the log"), std::string::npos)
              << client.response();
        }
        return status == 101;
      },
      60s))
      << status << " " << last_response << "\n"
      << stack.decode.log() << "\n"
      << stack.fanout.log();
  EXPECT_TRUE(support::eventually(
      [&] {
        return StackUnderTest::metric(stack.decode_metrics_port,
                                      "jetstream_decode_twin_building") == 0;
      },
      60s));
  EXPECT_EQ(StackUnderTest::metric(stack.decode_metrics_port,
                                   "jetstream_decode_twin_build_progress_ratio"),
            1);
  EXPECT_GE(StackUnderTest::metric(stack.decode_metrics_port,
                                   "jetstream_decode_twin_build_events_read_total"),
            static_cast<double>(log.size()))
      << "the build read the whole log";
  EXPECT_NE(stack.decode.log().find("compacted twin built from the log"), std::string::npos);

  // The snapshot is the state of the whole log, and the stored twin checks.
  ResumingSnapshotClient snapshot;
  std::int64_t last_compacted = 0;
  support::StateFold from_log;
  for (const auto& event : log) {
    if (event.kind != jetstream::proto::EventKind::commit ||
        event.collection.starts_with("app.bsky.")) {
      from_log.apply(event.json);
      last_compacted = event.time_us;
    }
  }
  ASSERT_TRUE(snapshot.read(stack.fanout_port, 0, last_compacted));
  EXPECT_TRUE(snapshot.fold.state() == from_log.state());
  stack.decode.stop();
  std::string report;
  EXPECT_EQ(stack.check_state("app.bsky.*", report), 0) << report;
}

TEST_F(Pipeline, KillNineOfIngestMidStreamLosesAndDuplicatesNothing) {
  StackUnderTest stack("kill-ingest");
  ASSERT_TRUE(stack.start(options(40)));
  ASSERT_TRUE(support::eventually([&] { return log_of(stack).size() >= 15; }, 30s))
      << stack.decode.log();
  stack.ingest.kill_now();
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(stack.restart_ingest());
  expect_log_is_the_corpus(stack);
}

TEST_F(Pipeline, AnUpstreamThatKeepsDroppingTheConnectionLosesNothing) {
  StackUnderTest stack("drops");
  auto o = options(0);
  o.serve_args = {"--drop-after", "10"};  // every connection ends after 10 frames, no close frame
  ASSERT_TRUE(stack.start(o));
  expect_log_is_the_corpus(stack);
  // 75 frames, 10 per connection: ingest reconnected at least 7 times and resumed each time.
  EXPECT_GE(StackUnderTest::metric_sum(stack.ingest_metrics_port,
                                       "jetstream_ingest_upstream_reconnects_total"),
            7);
}

TEST_F(Pipeline, ZeroMqDropsBetweenIngestAndDecodeAreRepairedByResume) {
#if defined(__SANITIZE_ADDRESS__)
  // Forcing drops depends on upstream outrunning decode; under the sanitizers every process is
  // several times slower and decode keeps up. The ci stage runs this test; the sanitizer stage
  // covers drops with DecodeIntegration's scripted ingest, which forces them deterministically.
  GTEST_SKIP() << "drop forcing is timing-dependent under sanitizers (run in the ci stage)";
#endif
  StackUnderTest stack("hwm");
  auto o = options(0);
  // Ten-message high-water marks and a tiny kernel buffer between ingest and decode, and a decode
  // that stores two frames at a time with an fsync each: the full-speed upstream overflows them.
  // (With two-message marks the repair still converges, but at a frame or two per resume.)
  o.ingest_args = {"--frames-send-hwm", "10", "--status-interval", "50ms"};
  o.decode_args = {"--frames-receive-hwm", "10", "--frames-receive-buffer", "4096",
                   "--max-batch-frames",   "2",  "--max-batches-in-flight", "1",
                   "--sync-writes"};
  ASSERT_TRUE(stack.start(o));
  expect_log_is_the_corpus(stack);
  EXPECT_GE(StackUnderTest::metric(stack.decode_metrics_port, "jetstream_decode_resumes_total"), 2)
      << "nothing was dropped: the repair was not exercised";
}

TEST_F(Pipeline, MalformedFramesFromUpstreamAreCountedAndSkipped) {
  StackUnderTest stack("garbage");
  // The corpus with garbage between its frames: random bytes, a truncated frame, an unknown type.
  const auto bytes = support::read_binary_file(frames_path_);
  const auto frames = jetstream::firehose::split_capture(bytes);
  ASSERT_TRUE(frames);
  const auto capture = stack.dir() / "garbage.frames";
  {
    std::ofstream out(capture, std::ios::binary);
    std::uint32_t state = 7;
    for (std::size_t i = 0; i < frames->size(); ++i) {
      jetstream::firehose::write_capture_frame(out, (*frames)[i]);
      if (i % 10 == 0) {
        std::vector<std::uint8_t> junk(200);
        for (auto& b : junk)
          b = static_cast<std::uint8_t>((state = state * 1103515245u + 12345u) >> 24);
        jetstream::firehose::write_capture_frame(out, junk);
        jetstream::firehose::write_capture_frame(out, (*frames)[i].first((*frames)[i].size() / 2));
      }
    }
  }
  ASSERT_TRUE(stack.start(options(0, capture)));
  expect_log_is_the_corpus(stack);
  EXPECT_GE(StackUnderTest::metric(stack.decode_metrics_port,
                                   R"(jetstream_decode_drops_total{reason="malformed_frame"})"),
            16);
  EXPECT_TRUE(stack.decode.running());
  EXPECT_TRUE(stack.ingest.running());
}

/// A tmpfs of `bytes` mounted on `dir` for the test's life (needs root, as CI has): a disk that
/// can really be filled. Unmounted lazily, so processes still holding files do not block it.
class SmallDisk {
 public:
  SmallDisk(std::filesystem::path dir, std::size_t bytes) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    const std::string data = "size=" + std::to_string(bytes);
    mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, data.c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

  /// Writes a filler file until the file system has no byte left.
  void fill() {
    std::FILE* file = std::fopen((dir_ / "filler").c_str(), "ab");
    ASSERT_NE(file, nullptr);
    std::setvbuf(file, nullptr, _IONBF, 0);
    const std::string chunk(64 * 1024, 'x');
    for (std::size_t size = chunk.size(); size > 0; size /= 2) {
      while (std::fwrite(chunk.data(), 1, size, file) == size) {
      }
      std::clearerr(file);
    }
    std::fclose(file);
  }
  void free_space() { std::filesystem::remove(dir_ / "filler"); }

 private:
  std::filesystem::path dir_;
  bool mounted_ = false;
  std::string error_;
};

// A disk that fills while decode runs, then decode restarted on it again and again: it never
// aborts (RocksDB would, opened for writing on a full disk), it serves the replay it holds, it
// says why it is not ready, and once space returns it stores everything ingest kept for it.
TEST_F(Pipeline, AFullDiskPausesDecodeRestartsOnItServeReplayAndNothingIsLost) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs (CI runs as root)";
  StackUnderTest stack("disk-full");
  SmallDisk disk(stack.dir() / "data", std::size_t{256} << 20);
  ASSERT_TRUE(disk.mounted()) << "mount tmpfs: " << disk.error();
  const auto capture = stack.dir() / "upstream.frames";
  const auto expected = support::write_repeated_capture(capture, 600);
  ASSERT_TRUE(expected.has_value());
  StackUnderTest::Options o = options(100, capture);  // ~6 s of upstream
  o.decode_args = {"--min-free-bytes", std::to_string(8 << 20), "--disk-check-interval", "50ms"};
  ASSERT_TRUE(stack.start(o));
  ASSERT_TRUE(support::eventually([&] { return log_of(stack).size() >= 50; }, 60s))
      << stack.decode.log();

  disk.fill();
  const auto readyz = [&] {
    return StackUnderTest::http_get(stack.decode_metrics_port, "/readyz");
  };
  ASSERT_TRUE(
      support::eventually([&] { return readyz().find("disk full: ") != std::string::npos; }, 30s))
      << readyz() << stack.decode.log();
  // Once decode restarts on the full disk its log is read-only: what it holds then is what every
  // later restart must serve (a state, not a quiet interval).
  std::optional<std::size_t> held;
  for (int restart = 0; restart < 3; ++restart) {
    const auto status = stack.decode.stop(SIGTERM, 30s);
    ASSERT_TRUE(status.has_value()) << stack.decode.log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "decode on a full disk ended with wait status " << *status << "\n"
        << stack.decode.log();
    ASSERT_TRUE(stack.restart_decode());
    ASSERT_TRUE(support::eventually(
        [&] {
          const std::string answer = readyz();
          return answer.find(" 503 ") != std::string::npos &&
                 answer.find("disk full: ") != std::string::npos &&
                 answer.find("bytes free, need 8388608") != std::string::npos;
        },
        30s))
        << readyz() << stack.decode.log();
    EXPECT_EQ(StackUnderTest::metric(stack.decode_metrics_port, "jetstream_decode_log_writable"),
              0.0);
    const std::size_t serving = log_of(stack).size();
    if (!held) held = serving;
    EXPECT_EQ(serving, *held) << "replay serves what the log holds";
    EXPECT_LT(serving, *expected) << "the disk was full before everything was stored";
    EXPECT_TRUE(stack.decode.running()) << stack.decode.log();
  }

  disk.free_space();
  std::vector<support::OwnedEvent> log;
  ASSERT_TRUE(support::eventually([&] { return (log = log_of(stack)).size() >= *expected; }, 90s))
      << log.size() << " of " << *expected << "\n"
      << stack.decode.log() << stack.ingest.log();
  std::this_thread::sleep_for(500ms);  // a duplicate, if any, would be stored by now
  log = log_of(stack);
  EXPECT_EQ(log.size(), *expected);
  for (std::size_t i = 1; i < log.size(); ++i) ASSERT_GT(log[i].time_us, log[i - 1].time_us);
  EXPECT_TRUE(support::eventually([&] { return readyz().find(" 200 ") != std::string::npos; }, 30s))
      << readyz();
  EXPECT_EQ(StackUnderTest::metric(stack.decode_metrics_port, "jetstream_decode_log_writable"),
            1.0);
  stack.decode.kill_now();  // before the tmpfs goes
}

}  // namespace
