// The real jetstream-decode binary against a scripted ingest (this file's FakeIngest, which plays
// ingest's side of proto §5.1 over real ZeroMQ sockets): every event of the dev corpus is stored
// and published exactly once, in order, also across kill -9 and dropped messages.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/firehose/capture.hpp"
#include "common/firehose/frame.hpp"
#include "common/zstd/zstd_dictionary.hpp"
#include "proto/proto.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/replay_client.hpp"
#include "tests/support/shared_data.hpp"

namespace {

namespace proto = jetstream::proto;
namespace support = jetstream::testing;
using namespace std::chrono_literals;

struct CorpusFrame {
  std::vector<std::uint8_t> bytes;
  std::int64_t seq;
};

std::vector<CorpusFrame> load_frames(const std::filesystem::path& path) {
  const auto capture = support::read_binary_file(path);
  const auto split = jetstream::firehose::split_capture(capture);
  std::vector<CorpusFrame> frames;
  if (!split) return frames;
  for (const auto frame : *split) {
    frames.push_back(
        {{frame.begin(), frame.end()}, jetstream::firehose::peek_frame_seq(frame).value_or(0)});
  }
  return frames;
}

/// Plays ingest: publishes status, obeys resume by streaming the corpus from the cursor.
class FakeIngest {
 public:
  /// `send_hwm` and `send_buffer` > 0 make the publisher drop when decode falls behind.
  FakeIngest(zmq::context_t& context, std::vector<CorpusFrame> frames,
             std::chrono::microseconds pace, int send_hwm = 1000000, int send_buffer = 0)
      : frames_(std::move(frames)),
        pace_(pace),
        publisher_(context, zmq::socket_type::pub),
        control_(context, zmq::socket_type::pull) {
    publisher_.set(zmq::sockopt::sndhwm, send_hwm);
    if (send_buffer > 0) publisher_.set(zmq::sockopt::sndbuf, send_buffer);
    publisher_.bind("tcp://127.0.0.1:*");
    control_.bind("tcp://127.0.0.1:*");
    frames_endpoint = publisher_.get(zmq::sockopt::last_endpoint);
    control_endpoint = control_.get(zmq::sockopt::last_endpoint);
    new_epoch();
    thread_ = std::thread([this] { run(); });
  }
  ~FakeIngest() {
    stopping_ = true;
    thread_.join();
  }

  /// Simulates an ingest restart: new epoch, ingest seqs from 1, no stream until a resume.
  void restart() {
    std::lock_guard lock(mutex_);
    new_epoch();
  }
  /// Drops `count` frame envelopes (as a full ZeroMQ queue would).
  void lose_next_frames(int count) { to_lose_ = count; }

  std::string frames_endpoint;
  std::string control_endpoint;
  std::atomic<bool> accept_resumes{true};  ///< false: ignore decode (as if not yet reachable)
  std::atomic<int> resumes{0};
  std::atomic<std::int64_t> last_cursor{-2};

 private:
  void new_epoch() {
    std::random_device device;
    epoch_ = (std::uint64_t{device()} << 32) | device() | 1;
    ingest_seq_ = 0;
    accepted_ = 0;
    streaming_ = false;
  }

  void publish_status() {
    proto::Status status;
    status.epoch = epoch_;
    status.last_ingest_seq = ingest_seq_;
    status.resume_id = accepted_;
    status.connected = streaming_;
    const auto body = proto::encode_status(status);
    publisher_.send(zmq::buffer(proto::topic(proto::MessageType::status)),
                    zmq::send_flags::sndmore);
    publisher_.send(zmq::buffer(body), zmq::send_flags::none);
  }

  void run() {
    auto next_status = std::chrono::steady_clock::now();
    while (!stopping_) {
      std::lock_guard lock(mutex_);
      std::vector<zmq::message_t> parts;
      if (zmq::recv_multipart(control_, std::back_inserter(parts), zmq::recv_flags::dontwait) &&
          parts.size() == 2) {
        const auto resume = proto::decode_resume(
            {static_cast<const std::uint8_t*>(parts[1].data()), parts[1].size()});
        if (resume && accept_resumes && resume.value().resume_id != accepted_) {
          ++resumes;
          accepted_ = resume.value().resume_id;
          last_cursor = resume.value().cursor;
          position_ = 0;
          while (position_ < frames_.size() && frames_[position_].seq <= resume.value().cursor) {
            ++position_;
          }
          streaming_ = true;
          stream_start_ = true;
          publish_status();
        }
      }
      if (std::chrono::steady_clock::now() >= next_status) {
        publish_status();
        next_status = std::chrono::steady_clock::now() + 50ms;
      }
      if (streaming_ && position_ < frames_.size()) {
        proto::FrameHeader header;
        header.epoch = epoch_;
        header.ingest_seq = ++ingest_seq_;
        header.resume_id = accepted_;
        header.upstream_seq = frames_[position_].seq;
        header.receive_time_us = 1;
        header.frame_size = static_cast<std::uint32_t>(frames_[position_].bytes.size());
        header.stream_start = stream_start_;
        stream_start_ = false;
        if (to_lose_ > 0) {
          --to_lose_;
        } else {
          const auto encoded = proto::encode_frame_header(header);
          publisher_.send(zmq::buffer(proto::topic(proto::MessageType::frame)),
                          zmq::send_flags::sndmore);
          publisher_.send(zmq::buffer(encoded), zmq::send_flags::sndmore);
          publisher_.send(zmq::buffer(frames_[position_].bytes), zmq::send_flags::none);
        }
        ++position_;
        std::this_thread::sleep_for(pace_);
      } else {
        std::this_thread::sleep_for(2ms);
      }
    }
  }

  std::vector<CorpusFrame> frames_;
  std::chrono::microseconds pace_;
  zmq::socket_t publisher_;
  zmq::socket_t control_;
  std::mutex mutex_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> to_lose_{0};
  std::uint64_t epoch_ = 0;
  std::uint64_t ingest_seq_ = 0;
  std::uint64_t accepted_ = 0;
  bool streaming_ = false;
  bool stream_start_ = false;
  std::size_t position_ = 0;
};

std::vector<std::string> expected_lines(const std::filesystem::path& path) {
  std::vector<std::string> lines;
  std::istringstream in(support::read_text_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string blank_time_us(const std::string& json) {
  static const std::regex time_us(R"("time_us":\d+)");
  return std::regex_replace(json, time_us, R"("time_us":0)",
                            std::regex_constants::format_first_only);
}

/// A decode process with its own data dir and ports.
class DecodeUnderTest {
 public:
  DecodeUnderTest(const FakeIngest& ingest, const std::string& name,
                  std::vector<std::string> extra = {})
      : data_dir_(std::filesystem::temp_directory_path() /
                  ("jetstream-decode-test-" + name + "-" + std::to_string(::getpid()))),
        ingest_(ingest),
        extra_(std::move(extra)) {
    std::filesystem::remove_all(data_dir_);
    events_endpoint = "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port());
    replay_endpoint = "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port());
    metrics_port = support::free_loopback_port();
  }
  ~DecodeUnderTest() {
    process.kill_now();
    std::filesystem::remove_all(data_dir_);
  }

  bool start() {
    std::vector<std::string> args = {"--data-dir",
                                     data_dir_.string(),
                                     "--frames-endpoint",
                                     ingest_.frames_endpoint,
                                     "--control-endpoint",
                                     ingest_.control_endpoint,
                                     "--events-endpoint",
                                     events_endpoint,
                                     "--replay-endpoint",
                                     replay_endpoint,
                                     "--metrics-listen-addr",
                                     "127.0.0.1:" + std::to_string(metrics_port),
                                     "--heartbeat-interval",
                                     "100ms"};
    if (auto dictionary = support::shared_file("zstd/jetstream-v1.zdict")) {
      args.push_back("--zstd-dictionary-path");
      args.push_back(dictionary->string());
    }
    args.insert(args.end(), extra_.begin(), extra_.end());
    return process.start(JETSTREAM_DECODE_BINARY, args, (data_dir_.string() + ".log"));
  }

  std::string events_endpoint;
  std::string replay_endpoint;
  std::uint16_t metrics_port;
  support::ChildProcess process;

 private:
  std::filesystem::path data_dir_;
  const FakeIngest& ingest_;
  std::vector<std::string> extra_;
};

/// Checks the whole stored log: every expected event once, in order, strictly increasing
/// time_us, an unbroken prev_time_us chain.
void expect_log_equals_corpus(const std::vector<support::OwnedEvent>& stored,
                              const std::vector<std::string>& expected) {
  ASSERT_EQ(stored.size(), expected.size());
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(blank_time_us(stored[i].json), blank_time_us(expected[i])) << "event " << i;
    EXPECT_NE(stored[i].json.find("\"time_us\":" + std::to_string(stored[i].time_us) + ","),
              std::string::npos);
    if (i > 0) {
      EXPECT_GT(stored[i].time_us, stored[i - 1].time_us);
      EXPECT_EQ(stored[i].prev_time_us, stored[i - 1].time_us);
    }
  }
}

class DecodeIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto frames_path = support::shared_file("corpus/dev.frames");
    const auto expected_path = support::shared_file("corpus/dev.expected.jsonl");
    if (!frames_path || !expected_path) {
      GTEST_SKIP() << "shared corpus missing under " << support::shared_dir();
    }
    frames_ = load_frames(*frames_path);
    ASSERT_FALSE(frames_.empty()) << "dev.frames could not be split into frames";
    expected_ = expected_lines(*expected_path);
  }

  std::vector<support::OwnedEvent> read_log(const std::string& replay_endpoint) {
    support::ReplayClient client(context_, replay_endpoint);
    return client.read_all({});
  }

  zmq::context_t context_;
  std::vector<CorpusFrame> frames_;
  std::vector<std::string> expected_;
};

TEST_F(DecodeIntegration, StoresAndPublishesEveryCorpusEventInOrder) {
  FakeIngest ingest(context_, frames_, 1ms);
  ingest.accept_resumes = false;
  DecodeUnderTest decode(ingest, "basic");
  zmq::socket_t events(context_, zmq::socket_type::sub);
  events.set(zmq::sockopt::subscribe, "E");
  events.set(zmq::sockopt::subscribe, "H");
  events.connect(decode.events_endpoint);
  ASSERT_TRUE(decode.start());
  // A subscriber only gets what is published after its subscription reached decode (ZeroMQ's
  // slow joiner): wait for a heartbeat before letting ingest stream.
  std::vector<zmq::message_t> parts;
  ASSERT_TRUE(support::eventually(
      [&] {
        parts.clear();
        return zmq::recv_multipart(events, std::back_inserter(parts), zmq::recv_flags::dontwait)
            .has_value();
      },
      10s))
      << decode.process.log();
  ingest.accept_resumes = true;

  std::vector<support::OwnedEvent> published;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (published.size() < expected_.size() && std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{events.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 100ms) <= 0) continue;
    parts.clear();
    ASSERT_TRUE(zmq::recv_multipart(events, std::back_inserter(parts)));
    ASSERT_EQ(parts.size(), 2u);
    if (parts[0].to_string_view() == "H") continue;
    const auto batch = proto::decode_event_batch(
        {static_cast<const std::uint8_t*>(parts[1].data()), parts[1].size()});
    ASSERT_TRUE(batch);
    for (const auto& event : batch.value()) published.push_back(support::own(event));
  }
  ASSERT_EQ(published.size(), expected_.size()) << decode.process.log();
  expect_log_equals_corpus(published, expected_);

  // The log holds the same bytes, and replay serves them.
  proto::ReplayRequest with_zstd;
  with_zstd.want_zstd = true;
  const auto stored = support::ReplayClient(context_, decode.replay_endpoint).read_all(with_zstd);
  ASSERT_EQ(stored.size(), published.size());
  for (std::size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].json, published[i].json);
    EXPECT_EQ(stored[i].zstd, published[i].zstd);
  }

  // Each compressed body decodes with the v1 dictionary into the same JSON.
  if (const auto dictionary_path = support::shared_file("zstd/jetstream-v1.zdict")) {
    std::string error;
    auto dictionary = jetstream::zstd::Dictionary::load(dictionary_path->string(), error);
    ASSERT_TRUE(dictionary) << error;
    jetstream::zstd::Decompressor decompressor(dictionary);
    for (const auto& event : stored) {
      const auto json = decompressor.decompress(
          {reinterpret_cast<const std::uint8_t*>(event.zstd.data()), event.zstd.size()});
      ASSERT_TRUE(json);
      EXPECT_EQ(*json, event.json);
    }
  }
  EXPECT_EQ(ingest.resumes.load(), 1);
  EXPECT_TRUE(decode.process.stop().has_value()) << "decode did not stop on SIGTERM";
}

TEST_F(DecodeIntegration, ReplayAppliesCollectionAndDidFiltersExactly) {
  FakeIngest ingest(context_, frames_, 0us);
  DecodeUnderTest decode(ingest, "filters");
  ASSERT_TRUE(decode.start());
  support::ReplayClient client(context_, decode.replay_endpoint);
  ASSERT_TRUE(
      support::eventually([&] { return client.read_all({}).size() == expected_.size(); }, 30s))
      << decode.process.log();
  const auto all = client.read_all({});

  proto::ReplayRequest likes;
  likes.collections = {"app.bsky.feed.like"};
  const auto liked = client.read_all(likes);
  std::size_t expected_likes = 0;
  for (const auto& event : all) {
    if (event.collection == "app.bsky.feed.like") ++expected_likes;
  }
  ASSERT_GT(expected_likes, 0u);
  EXPECT_EQ(liked.size(), expected_likes);
  for (const auto& event : liked) EXPECT_EQ(event.collection, "app.bsky.feed.like");

  proto::ReplayRequest feed_prefix;
  feed_prefix.collection_prefixes = {"app.bsky.feed."};
  for (const auto& event : client.read_all(feed_prefix)) {
    EXPECT_EQ(event.collection.rfind("app.bsky.feed.", 0), 0u);
  }

  proto::ReplayRequest one_did;
  one_did.dids = {all[3].did};
  const auto of_did = client.read_all(one_did);
  ASSERT_FALSE(of_did.empty());
  for (const auto& event : of_did) EXPECT_EQ(event.did, all[3].did);

  // From an arbitrary time_us on: exactly the suffix of the log.
  const auto from_middle = client.read_all({}, all[40].time_us);
  ASSERT_EQ(from_middle.size(), all.size() - 40u);
  EXPECT_EQ(from_middle.front().json, all[40].json);
}

TEST_F(DecodeIntegration, KillNineMidStreamThenRestartLosesAndDuplicatesNothing) {
  FakeIngest ingest(context_, frames_, 20ms);  // ~1.5 s for the corpus
  DecodeUnderTest decode(ingest, "kill9");
  ASSERT_TRUE(decode.start());
  support::ReplayClient client(context_, decode.replay_endpoint);
  ASSERT_TRUE(support::eventually([&] { return client.read_all({}).size() >= 10; }, 30s))
      << decode.process.log();
  decode.process.kill_now();  // SIGKILL: no flush, no goodbye
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(decode.start());
  support::ReplayClient after(context_, decode.replay_endpoint);
  ASSERT_TRUE(
      support::eventually([&] { return after.read_all({}).size() >= expected_.size(); }, 30s))
      << decode.process.log();
  std::this_thread::sleep_for(300ms);  // anything extra would show up now
  expect_log_equals_corpus(after.read_all({}), expected_);
  EXPECT_GE(ingest.resumes.load(), 2);
  EXPECT_GE(ingest.last_cursor.load(), frames_[8].seq);  // resumed from its durable cursor
}

TEST_F(DecodeIntegration, IngestRestartAndLostFramesAreRepairedByResume) {
  FakeIngest ingest(context_, frames_, 5ms);
  DecodeUnderTest decode(ingest, "repair");
  ASSERT_TRUE(decode.start());
  support::ReplayClient client(context_, decode.replay_endpoint);
  ASSERT_TRUE(support::eventually([&] { return client.read_all({}).size() >= 5; }, 30s))
      << decode.process.log();
  ingest.lose_next_frames(3);  // a gap in ingest seqs
  std::this_thread::sleep_for(100ms);
  ingest.restart();  // a new epoch, as after an ingest crash
  ASSERT_TRUE(
      support::eventually([&] { return client.read_all({}).size() >= expected_.size(); }, 30s))
      << decode.process.log();
  std::this_thread::sleep_for(300ms);
  expect_log_equals_corpus(client.read_all({}), expected_);
  EXPECT_GE(ingest.resumes.load(), 2);
}

TEST_F(DecodeIntegration, ASmallReceiveHighWaterMarkForcesDropsThatAreRepaired) {
  // Both ends queue at most a few messages and the kernel buffers are tiny, so a corpus sent at
  // full speed to a decode that takes two frames at a time overflows them: ZeroMQ drops.
  FakeIngest ingest(context_, frames_, 0us, 2, 4096);
  DecodeUnderTest decode(
      ingest, "hwm",
      {"--frames-receive-hwm", "2", "--frames-receive-buffer", "4096", "--max-batch-frames", "2",
       "--max-batches-in-flight", "1", "--sync-writes"});
  ASSERT_TRUE(decode.start());
  support::ReplayClient client(context_, decode.replay_endpoint);
  ASSERT_TRUE(
      support::eventually([&] { return client.read_all({}).size() >= expected_.size(); }, 60s))
      << decode.process.log();
  std::this_thread::sleep_for(300ms);
  expect_log_equals_corpus(client.read_all({}), expected_);
  EXPECT_GE(ingest.resumes.load(), 2) << "nothing was dropped: the repair was not exercised";
}

}  // namespace
