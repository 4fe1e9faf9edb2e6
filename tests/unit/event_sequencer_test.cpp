// decode's EventSequencer driven directly, with no actor and no socket (its header promises it):
// a real RocksDB store in a temp directory, a recording publisher and a scripted clock.
#include "services/decode/event_sequencer.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <stdlib.h>

#include <deque>
#include <filesystem>
#include <string>
#include <vector>

namespace jetstream::decode {
namespace {

class RecordingPublisher final : public EventPublisher {
 public:
  struct Published {
    std::int64_t time_us;
    std::int64_t prev_time_us;
    std::string did;
    std::string json;
  };
  void publish_events(std::span<const proto::EventView> events) override {
    for (const auto& e : events) {
      published.push_back({e.time_us, e.prev_time_us, std::string(e.did), std::string(e.json)});
    }
  }
  void publish_heartbeat(const proto::Heartbeat&) override { ++heartbeats; }
  void publish_state_info(const proto::StateInfo& info) override {
    state_infos.emplace_back(info.compacted);
  }
  std::vector<std::string> state_infos;

  std::vector<Published> published;
  int heartbeats = 0;
};

/// A batch of `dids.size()` commit events, one per DID, with upstream seqs from `first_seq`.
DecodedBatchPtr batch(std::uint64_t sequence, const std::vector<std::string>& dids,
                      std::int64_t first_seq) {
  auto out = std::make_shared<DecodedBatch>();
  out->sequence = sequence;
  std::int64_t seq = first_seq;
  for (const auto& did : dids) {
    firehose::PendingEvent event;
    event.kind = proto::EventKind::commit;
    event.upstream_seq = seq++;
    event.did = did;
    event.collection = "app.bsky.feed.like";
    const std::string head = R"({"did":")" + did + R"(","time_us":)";
    event.json = head + R"(,"kind":"commit"})";
    event.time_us_offset = static_cast<std::uint32_t>(head.size());
    out->events.push_back(std::move(event));
  }
  out->cursor = seq - 1;
  return out;
}

class EventSequencerTest : public ::testing::Test {
 protected:
  EventSequencerTest() {
    std::string pattern = "/tmp/event_sequencer_test.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    open_store();
  }
  ~EventSequencerTest() override {
    sequencer_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void open_store() {
    sequencer_.reset();
    store_.reset();
    EventStore::Options options;
    options.path = (dir_ / "db").string();
    std::string error;
    store_ = EventStore::open(options, error);
    ASSERT_TRUE(store_) << error;
    sequencer_ = std::make_unique<EventSequencer>(*store_, nullptr, probe_, counters_, publisher_,
                                                  [this] { return next_now(); });
  }

  /// The scripted clock: the values in `clock_`, then the last one forever.
  std::int64_t next_now() {
    if (clock_.size() > 1) {
      const std::int64_t value = clock_.front();
      clock_.pop_front();
      return value;
    }
    return clock_.front();
  }

  bool accept(DecodedBatchPtr b) {
    counters_.batches_in_flight.fetch_add(1);
    return sequencer_->accept(std::move(b), stopping_);
  }

  std::filesystem::path dir_;
  std::deque<std::int64_t> clock_{1'000'000};
  DecodeProbe probe_{std::make_shared<prometheus::Registry>(), "ws://test"};
  PipelineCounters counters_;
  RecordingPublisher publisher_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<EventSequencer> sequencer_;
};

TEST_F(EventSequencerTest, BatchesArrivingOutOfOrderAreCommittedInArrivalOrder) {
  ASSERT_TRUE(accept(batch(3, {"did:plc:c"}, 30)));
  EXPECT_TRUE(publisher_.published.empty()) << "batch 3 waits for 1 and 2";
  ASSERT_TRUE(accept(batch(1, {"did:plc:a1", "did:plc:a2"}, 10)));
  ASSERT_EQ(publisher_.published.size(), 2u);
  ASSERT_TRUE(accept(batch(2, {"did:plc:b"}, 20)));
  ASSERT_EQ(publisher_.published.size(), 4u);
  std::vector<std::string> order;
  for (const auto& p : publisher_.published) order.push_back(p.did);
  EXPECT_EQ(order,
            (std::vector<std::string>{"did:plc:a1", "did:plc:a2", "did:plc:b", "did:plc:c"}));
  EXPECT_EQ(sequencer_->next_sequence(), 4u);
  EXPECT_EQ(counters_.batches_in_flight.load(), 0);
}

TEST_F(EventSequencerTest, TimeUsIsUniqueIncreasingAndChainedWhenTheClockStandsStillOrStepsBack) {
  clock_ = {5'000, 5'000, 4'000, 6'000, 6'000};
  ASSERT_TRUE(accept(batch(1, {"a", "b", "c", "d", "e", "f"}, 1)));
  const auto& published = publisher_.published;
  ASSERT_EQ(published.size(), 6u);
  std::int64_t previous = 0;
  for (const auto& p : published) {
    EXPECT_GT(p.time_us, previous);
    EXPECT_EQ(p.prev_time_us, previous) << "the chain links every event to the one before";
    EXPECT_NE(p.json.find("\"time_us\":" + std::to_string(p.time_us) + ","), std::string::npos)
        << p.json;
    previous = p.time_us;
  }
  EXPECT_EQ(published.front().time_us, 5'000);
  EXPECT_EQ(published[2].time_us, 5'002) << "a clock stepping back does not go back";
  EXPECT_EQ(published[3].time_us, 6'000);
}

TEST_F(EventSequencerTest, EventsAndTheUpstreamCursorAreStoredTogetherBeforePublishing) {
  ASSERT_TRUE(accept(batch(1, {"a", "b"}, 41)));
  EXPECT_EQ(store_->upstream_cursor(), 42);
  EXPECT_EQ(counters_.durable_cursor.load(), 42);
  EXPECT_EQ(store_->last_time_us(), publisher_.published.back().time_us);
  EXPECT_EQ(counters_.newest_time_us.load(), publisher_.published.back().time_us);
}

TEST_F(EventSequencerTest, ARestartedSequencerContinuesTheChainAboveTheLastStoredTimeUs) {
  ASSERT_TRUE(accept(batch(1, {"a", "b"}, 1)));
  const std::int64_t last = publisher_.published.back().time_us;
  publisher_.published.clear();
  clock_ = {10};  // a clock far behind what is stored
  open_store();
  ASSERT_TRUE(accept(batch(1, {"c"}, 3)));
  ASSERT_EQ(publisher_.published.size(), 1u);
  EXPECT_EQ(publisher_.published[0].time_us, last + 1);
  EXPECT_EQ(publisher_.published[0].prev_time_us, last);
  EXPECT_EQ(store_->upstream_cursor(), 3);
}

TEST_F(EventSequencerTest, HeartbeatsGoToThePublisher) {
  sequencer_->publish_heartbeat();
  EXPECT_EQ(publisher_.heartbeats, 1);
  EXPECT_EQ(publisher_.state_infos, std::vector<std::string>{""}) << "no twin: an empty set";
}

}  // namespace
}  // namespace jetstream::decode
