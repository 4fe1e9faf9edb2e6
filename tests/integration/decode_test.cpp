// The real jetstream-decode binary against a scripted ingest (this file's FakeIngest, which plays
// ingest's side of proto §5.1 over real ZeroMQ sockets): every event of the dev corpus is stored
// and published exactly once, in order, also across kill -9 and dropped messages.
#include <gtest/gtest.h>

#include <algorithm>
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
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/refused_flags.hpp"
#include "tests/support/replay_client.hpp"
#include "tests/support/shared_data.hpp"

namespace {

namespace proto = jetstream::proto;
namespace support = jetstream::testing;
using namespace std::chrono_literals;
using support::CorpusFrame;
using support::DecodeUnderTest;
using support::FakeIngest;
using support::load_frames;

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
      GTEST_FAIL() << "shared corpus missing under " << support::shared_dir();
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

// Broken messages on the frame socket are dropped and counted by message and reason (the checks
// of proto/zmq_message.hpp), and cost nothing else: the log still holds every event once.
TEST_F(DecodeIntegration, BrokenMessagesFromIngestAreCountedByReasonAndLoseNothing) {
  FakeIngest ingest(context_, frames_, 5ms);
  DecodeUnderTest decode(ingest, "broken");
  ASSERT_TRUE(decode.start());
  support::ReplayClient client(context_, decode.replay_endpoint);
  ASSERT_TRUE(support::eventually([&] { return client.read_all({}).size() >= 5; }, 30s))
      << decode.process.log();
  // A status body of an unknown version: only decoded once the envelope passes its checks.
  const std::string status_body = "\x09Sabc";
  ingest.publish_raw({"S", status_body, "an extra part"});  // a status with three parts
  ingest.publish_raw({"S"});                                // and with one
  ingest.publish_raw({"F", "a frame header without its frame"});
  ingest.publish_raw({"SX", status_body});  // a topic that is not one known letter
  ingest.publish_raw({"S", status_body});   // the right shape, a body that does not decode
  const auto series = [&](const char* message, const char* reason) {
    return support::StackUnderTest::metric(
        decode.metrics_port, std::string("jetstream_proto_rejected_total{message=\"") + message +
                                 "\",reason=\"" + reason + "\"}");
  };
  ASSERT_TRUE(support::eventually(
      [&] {
        return series("status", "wrong_part_count") == 2 &&
               series("frame", "wrong_part_count") == 1 && series("frames", "unknown_topic") == 1 &&
               series("status", "unknown_version") == 1;
      },
      30s))
      << support::StackUnderTest::http_get(decode.metrics_port, "/metrics");
  // Stored up to the corpus's last frame: from then on any duplicate would already be in the log.
  std::int64_t last_seq = 0;
  for (const auto& frame : frames_) last_seq = std::max(last_seq, frame.seq);
  ASSERT_TRUE(support::eventually(
      [&] {
        return support::StackUnderTest::metric_sum(decode.metrics_port, "consumer_last_seq") ==
               static_cast<double>(last_seq);
      },
      30s))
      << decode.process.log();
  expect_log_equals_corpus(client.read_all({}), expected_);
}

TEST_F(DecodeIntegration, ASmallReceiveHighWaterMarkForcesDropsThatAreRepaired) {
  // Both ends queue at most a few messages and the kernel buffers are tiny, so a corpus sent at
  // 5,000 frames/s to a decode that takes two frames at a time and fsyncs each batch overflows
  // them: ZeroMQ drops. (Not faster: each resumed stream must still get its first frames through,
  // also on a loaded machine under sanitizers.)
  FakeIngest ingest(context_, frames_, 200us, 2, 4096);
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

// Out-of-range settings are refused at start with the flag's name (a zero batch size or reader
// count would otherwise stall decode without a word).
TEST(DecodeFlags, OutOfRangeValuesAreRefusedAtStartWithTheFlagNamed) {
  const auto data = std::filesystem::temp_directory_path() /
                    ("jetstream-decode-flags-" + std::to_string(::getpid()));
  support::expect_refused_at_start(
      support::StackUnderTest::binary("services/decode/jetstream-decode"),
      {"--data-dir", data.string(), "--events-endpoint", "tcp://127.0.0.1:0", "--replay-endpoint",
       "tcp://127.0.0.1:0", "--backfill-endpoint", "tcp://127.0.0.1:0", "--metrics-listen-addr",
       "127.0.0.1:0"},
      {
          {{"--max-batch-frames", "0"}, "--max-batch-frames"},
          {{"--max-batches-in-flight", "-1"}, "--max-batches-in-flight"},
          {{"--replay-readers", "0"}, "--replay-readers"},
          {{"--workers", "-3"}, "--workers"},
          {{"--events-send-hwm", "5000000000"}, "--events-send-hwm"},
          {{"--frames-receive-hwm", "-1"}, "--frames-receive-hwm"},
          {{"--event-ttl", "0s"}, "--event-ttl"},
          {{"--heartbeat-interval", "0s"}, "--heartbeat-interval"},
      });
  std::filesystem::remove_all(data);
}

}  // namespace
