// decode applying backfill's repository batches (proto/README.md §3.9, API.md "Backfill"),
// driven through the EventSequencer with a real RocksDB store and a recording publisher: which
// records become events, which a live commit keeps, what the last batch tombstones, that a
// batch applied twice changes nothing, that v1 replay never sees backfilled events, and that the
// stored twin stays what the log implies (`--check-state`).
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "services/decode/event_sequencer.hpp"
#include "tests/support/cbor_builder.hpp"

namespace jetstream::decode {
namespace {

using testing::Bytes;

class RecordingPublisher final : public EventPublisher {
 public:
  struct Published {
    std::int64_t time_us;
    bool backfill;
    std::string did;
    std::string collection;
    std::string json;
  };
  void publish_events(std::span<const proto::EventView> events) override {
    for (const auto& e : events) {
      published.push_back({e.time_us, e.backfill, std::string(e.did), std::string(e.collection),
                           std::string(e.json)});
    }
  }
  void publish_heartbeat(const proto::Heartbeat&) override {}
  void publish_state_info(const proto::StateInfo&) override {}
  std::vector<Published> published;
};

constexpr std::string_view kDid = "did:plc:alice";
constexpr std::string_view kPost = "app.bsky.feed.post";
constexpr std::string_view kLike = "app.bsky.feed.like";
constexpr std::string_view kFollow = "app.bsky.graph.follow";  // not compacted

Bytes post_record(std::string_view text) {
  testing::CborBuilder record;
  record.map(3)
      .text("text")
      .text(text)
      .text("$type")
      .text(kPost)
      .text("createdAt")
      .text("2024-01-01T00:00:00.000Z");
  return record.take();
}

/// One record of a batch, owning its bytes.
struct OwnedRecord {
  std::string collection;
  std::string rkey;
  Bytes cid;
  Bytes record;
};

OwnedRecord record_of(std::string_view collection, std::string_view rkey, std::string_view text) {
  OwnedRecord out{std::string(collection), std::string(rkey), {}, post_record(text)};
  out.cid = testing::cid_of(0x71, out.record);
  return out;
}

class BackfillApplyTest : public ::testing::Test {
 protected:
  BackfillApplyTest() {
    std::string pattern = "/tmp/backfill_apply_test.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    open_store("app.bsky.feed.*");
  }
  ~BackfillApplyTest() override {
    sequencer_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void open_store(std::string_view compact) {
    sequencer_.reset();
    store_.reset();
    EventStore::Options options;
    options.path = (dir_ / "db").string();
    std::string error;
    if (!compact.empty()) {
      auto set = CollectionSet::parse(compact, error);
      ASSERT_TRUE(set) << error;
      options.compact = *set;
    }
    store_ = EventStore::open(options, error);
    ASSERT_TRUE(store_) << error;
    sequencer_ = std::make_unique<EventSequencer>(*store_, nullptr, probe_, counters_, publisher_,
                                                  [this] { return ++now_; });
  }

  proto::BatchAck apply(std::uint64_t id, std::string_view rev,
                        const std::vector<OwnedRecord>& records, bool last = false,
                        std::string_view collections = "app.bsky.feed.*") {
    proto::RepoBatchView batch;
    batch.batch_id = id;
    batch.last = last;
    batch.did = kDid;
    batch.rev = rev;
    batch.collections = collections;
    for (const auto& r : records) batch.records.push_back({r.collection, r.rkey, r.cid, r.record});
    // Through the wire format, as decode receives it.
    const auto bytes = proto::encode_repo_batch(batch);
    const auto decoded = proto::decode_repo_batch(bytes);
    EXPECT_TRUE(decoded.ok());
    return sequencer_->apply_backfill(decoded.value());
  }

  /// A live commit creating (or deleting) one record at `rev`, as the encoder makes it.
  void live(std::string_view collection, std::string_view rkey, std::string_view rev,
            bool is_delete = false) {
    auto batch = std::make_shared<DecodedBatch>();
    batch->sequence = next_sequence_++;
    const OwnedRecord record = record_of(collection, rkey, "live");
    encoder_.record_event(kDid, rev, collection, rkey, record.cid,
                          is_delete ? Bytes{} : record.record, batch->events);
    ASSERT_EQ(batch->events.size(), 1u);
    batch->events.back().backfill = false;
    batch->events.back().upstream_seq = ++seq_;
    batch->cursor = seq_;
    counters_.batches_in_flight.fetch_add(1);
    ASSERT_TRUE(sequencer_->accept(std::move(batch), stopping_));
  }

  std::optional<TwinEntry> entry(std::string_view collection, std::string_view rkey) {
    std::string error;
    auto entries = store_->twin_entries({twin_key(kDid, collection, rkey)}, error);
    EXPECT_TRUE(error.empty()) << error;
    return entries.empty() ? std::nullopt : entries.front();
  }

  void expect_twin_checks() {
    const auto check = store_->check_twin();
    EXPECT_TRUE(check.ok()) << (check.problems.empty() ? "" : check.problems.front());
  }

  std::filesystem::path dir_;
  std::int64_t now_ = 1'000'000;
  DecodeProbe probe_{std::make_shared<prometheus::Registry>(), "ws://test"};
  PipelineCounters counters_;
  RecordingPublisher publisher_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<EventSequencer> sequencer_;
  firehose::V1Encoder encoder_;
  std::uint64_t next_sequence_ = 1;
  std::int64_t seq_ = 0;
};

TEST_F(BackfillApplyTest, RecordsBecomeBackfillEventsOnceAndTheTwinHoldsThemAtTheRepositorysRev) {
  const std::vector<OwnedRecord> records{record_of(kPost, "3k1", "one"),
                                         record_of(kPost, "3k2", "two"),
                                         record_of(kLike, "3k3", "three")};
  const auto ack = apply(7, "3laaaaaaaaa2a", records);
  EXPECT_EQ(ack.batch_id, 7u);
  EXPECT_EQ(ack.outcome, proto::BatchOutcome::stored);
  EXPECT_EQ(ack.applied, 3u);
  EXPECT_EQ(ack.unchanged, 0u);
  ASSERT_EQ(publisher_.published.size(), 3u);
  for (const auto& event : publisher_.published) {
    EXPECT_TRUE(event.backfill);
    EXPECT_EQ(event.did, kDid);
    EXPECT_NE(
        event.json.find(R"("kind":"commit","commit":{"rev":"3laaaaaaaaa2a","operation":"create")"),
        std::string::npos)
        << event.json;
  }
  EXPECT_EQ(
      publisher_.published[0].json,
      R"({"did":"did:plc:alice","time_us":)" + std::to_string(publisher_.published[0].time_us) +
          R"(,"kind":"commit","commit":{"rev":"3laaaaaaaaa2a","operation":"create",)"
          R"("collection":"app.bsky.feed.post","rkey":"3k1","record":{)"
          R"("$type":"app.bsky.feed.post","createdAt":"2024-01-01T00:00:00.000Z",)"
          R"("text":"one"},"cid":")" +
          [&] {
            std::string cid;
            codec::append_cid_string(cid, records[0].cid);
            return cid;
          }() +
          R"("}})");
  const auto stored = entry(kPost, "3k2");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->rev, "3laaaaaaaaa2a");
  EXPECT_FALSE(stored->tombstone);

  // The same batch again (a resend after a lost ack): nothing changes.
  const auto again = apply(7, "3laaaaaaaaa2a", records);
  EXPECT_EQ(again.outcome, proto::BatchOutcome::stored);
  EXPECT_EQ(again.applied, 0u);
  EXPECT_EQ(again.unchanged, 3u);
  EXPECT_EQ(publisher_.published.size(), 3u);
  expect_twin_checks();
}

TEST_F(BackfillApplyTest, ALiveCommitAtALaterRevWinsWhicheverArrivesFirst) {
  // The live commit first, then a fetch made before it: the fetch's record is older.
  live(kPost, "3k1", "3laaaaaaaaa2c");
  publisher_.published.clear();
  auto ack = apply(1, "3laaaaaaaaa2b", {record_of(kPost, "3k1", "fetched")});
  EXPECT_EQ(ack.applied, 0u);
  EXPECT_EQ(ack.unchanged, 1u);
  EXPECT_TRUE(publisher_.published.empty());
  EXPECT_EQ(entry(kPost, "3k1")->rev, "3laaaaaaaaa2c");

  // A fetch made after it: newer, applied.
  ack = apply(2, "3laaaaaaaaa2d", {record_of(kPost, "3k1", "fetched later")});
  EXPECT_EQ(ack.applied, 1u);
  EXPECT_EQ(entry(kPost, "3k1")->rev, "3laaaaaaaaa2d");

  // The fetch first, then a live commit: the live event is the newest event, and wins.
  live(kPost, "3k1", "3laaaaaaaaa2e");
  EXPECT_EQ(entry(kPost, "3k1")->rev, "3laaaaaaaaa2e");
  // A live delete at a rev the fetch follows, then the fetch that still had the record at an
  // older rev: the tombstone stays.
  live(kPost, "3k9", "3laaaaaaaaa2g", /*is_delete=*/true);
  ack = apply(3, "3laaaaaaaaa2f", {record_of(kPost, "3k9", "resurrected?")});
  EXPECT_EQ(ack.unchanged, 1u);
  EXPECT_TRUE(entry(kPost, "3k9")->tombstone);
  expect_twin_checks();
}

TEST_F(BackfillApplyTest, TheLastBatchTombstonesWhatTheRepositoryNoLongerHoldsAndNothingNewer) {
  live(kPost, "gone", "3laaaaaaaaa2a");                    // deleted before the fetch's rev
  live(kPost, "kept", "3laaaaaaaaa2a");                    // still in the repository
  live(kPost, "after", "3laaaaaaaaa2z");                   // created after the fetch's rev
  live("app.bsky.feed.repost", "other", "3laaaaaaaaa2a");  // outside the fetch's collections
  publisher_.published.clear();

  auto ack = apply(1, "3laaaaaaaaa2m", {record_of(kPost, "kept", "still here")});
  EXPECT_EQ(ack.applied, 1u);
  ack = apply(2, "3laaaaaaaaa2m", {}, /*last=*/true, "app.bsky.feed.post");
  EXPECT_EQ(ack.outcome, proto::BatchOutcome::stored);
  EXPECT_EQ(ack.tombstoned, 1u);
  ASSERT_EQ(publisher_.published.size(), 2u);
  const auto& tombstone = publisher_.published.back();
  EXPECT_TRUE(tombstone.backfill);
  EXPECT_NE(
      tombstone.json.find(
          R"("rev":"3laaaaaaaaa2m","operation":"delete","collection":"app.bsky.feed.post","rkey":"gone"}})"),
      std::string::npos)
      << tombstone.json;
  EXPECT_TRUE(entry(kPost, "gone")->tombstone);
  EXPECT_FALSE(entry(kPost, "kept")->tombstone);
  EXPECT_FALSE(entry(kPost, "after")->tombstone);
  EXPECT_FALSE(entry("app.bsky.feed.repost", "other")->tombstone);

  // The last batch again: nothing more.
  ack = apply(2, "3laaaaaaaaa2m", {}, /*last=*/true, "app.bsky.feed.post");
  EXPECT_EQ(ack.tombstoned, 0u);
  EXPECT_EQ(publisher_.published.size(), 2u);

  // A last batch that carries records itself does not tombstone them.
  ack = apply(3, "3laaaaaaaaa3a", {record_of(kPost, "kept", "x"), record_of(kPost, "after", "y")},
              /*last=*/true, "app.bsky.feed.post");
  EXPECT_EQ(ack.applied, 2u);
  EXPECT_EQ(ack.tombstoned, 0u);
  expect_twin_checks();
}

TEST_F(BackfillApplyTest, RecordsOutsideBothSetsAreLeftAndInvalidOnesCounted) {
  OwnedRecord broken = record_of(kPost, "bad", "x");
  broken.record = {0xf9, 0x3c, 0x00};  // a float16: not atproto data
  broken.cid = testing::cid_of(0x71, broken.record);
  const auto ack = apply(1, "3laaaaaaaaa2a",
                         {record_of(kFollow, "f1", "x"), record_of(kLike, "l1", "x"), broken},
                         /*last=*/false, "app.bsky.feed.post,app.bsky.graph.follow");
  EXPECT_EQ(ack.outcome, proto::BatchOutcome::stored);
  EXPECT_EQ(ack.applied, 0u);
  EXPECT_EQ(ack.unchanged, 2u) << "follow is not compacted here, like is not in the fetch's set";
  EXPECT_EQ(ack.invalid, 1u);
  EXPECT_TRUE(publisher_.published.empty());
}

TEST_F(BackfillApplyTest, V1ReplayNeverSeesBackfilledEventsSnapshotReadsDo) {
  live(kPost, "live", "3laaaaaaaaa2a");
  apply(1, "3laaaaaaaaa2b", {record_of(kPost, "fetched", "x")});
  live(kPost, "live2", "3laaaaaaaaa2c");

  const auto read = [&](bool include_backfill, bool snapshot) {
    proto::ReplayRequest request;
    request.request_id = 1;
    request.start_time_us = 0;
    request.max_events = 100;
    request.max_bytes = 1 << 20;
    request.include_backfill = include_backfill;
    request.snapshot = snapshot;
    ReplayPageBuffer buffer;
    EXPECT_EQ(store_->read_page(request, buffer), proto::ReplayStatus::ok);
    std::vector<bool> flags;
    std::int64_t previous = 0;
    for (const auto& event : buffer.page().events) {
      flags.push_back(event.backfill);
      EXPECT_GT(event.time_us, previous);
      previous = event.time_us;
    }
    return flags;
  };
  EXPECT_EQ(read(false, false), (std::vector<bool>{false, false}));
  EXPECT_EQ(read(true, false), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(read(false, true), (std::vector<bool>{false, true, false}));
}

TEST_F(BackfillApplyTest, WithoutATwinBatchesAreRejectedAndOnAFullDiskTheyWait) {
  auto ack = apply(1, "3laaaaaaaaa2a", {record_of(kPost, "3k1", "x")});
  EXPECT_EQ(ack.outcome, proto::BatchOutcome::stored);
  counters_.disk_has_room.store(false);
  ack = apply(2, "3laaaaaaaaa2b", {record_of(kPost, "3k1", "x")});
  EXPECT_EQ(ack.outcome, proto::BatchOutcome::busy);
  EXPECT_EQ(entry(kPost, "3k1")->rev, "3laaaaaaaaa2a") << "nothing of a busy batch is stored";
  counters_.disk_has_room.store(true);

  open_store("");
  publisher_.published.clear();
  ack = apply(3, "3laaaaaaaaa2c", {record_of(kPost, "3k1", "x")});
  EXPECT_EQ(ack.outcome, proto::BatchOutcome::rejected);
  EXPECT_TRUE(publisher_.published.empty());
}

TEST_F(BackfillApplyTest, TheChainGoesOnAfterBackfillEventsAcrossARestart) {
  apply(1, "3laaaaaaaaa2a", {record_of(kPost, "a", "x"), record_of(kPost, "b", "y")});
  const std::int64_t last = store_->last_time_us();
  EXPECT_EQ(last, publisher_.published.back().time_us);
  open_store("app.bsky.feed.*");
  live(kPost, "c", "3laaaaaaaaa2b");
  EXPECT_GT(publisher_.published.back().time_us, last);
  expect_twin_checks();
}

}  // namespace
}  // namespace jetstream::decode
