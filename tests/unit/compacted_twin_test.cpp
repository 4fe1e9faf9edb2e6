// decode's compacted twin: the pure parts (services/decode/compacted_twin.hpp) and the twin the
// EventStore keeps beside its log on a real RocksDB under /tmp. The oracle everywhere is
// TwinFold, the fold of events into state that `--check-state` uses: the stored twin must equal
// it after appends, reopen, retention, tombstone expiry and collection-set changes.
#include "services/decode/compacted_twin.hpp"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/replay.hpp"
#include "services/decode/event_store.hpp"
#include "tests/support/temp_dir.hpp"

namespace jetstream::decode {
namespace {

using proto::EventKind;

CollectionSet set_of(std::string_view text) {
  std::string error;
  auto set = CollectionSet::parse(text, error);
  EXPECT_TRUE(set.has_value()) << error;
  return set.value_or(CollectionSet{});
}

// ---- CollectionSet

TEST(CollectionSet, ParsesExactNamesAndPrefixesSortedAndDeduplicated) {
  const CollectionSet set = set_of(" app.bsky.feed.post, app.bsky.graph.* ,,app.bsky.feed.post");
  EXPECT_EQ(set.canonical(), "app.bsky.feed.post,app.bsky.graph.*");
  EXPECT_TRUE(set.matches("app.bsky.feed.post"));
  EXPECT_TRUE(set.matches("app.bsky.graph.follow"));
  EXPECT_FALSE(set.matches("app.bsky.feed.like"));
  EXPECT_TRUE(set_of("").empty());
}

TEST(CollectionSet, AnInvalidItemIsNamed) {
  std::string error;
  EXPECT_FALSE(CollectionSet::parse("app.bsky.feed.post,not a collection", error));
  EXPECT_NE(error.find("'not a collection'"), std::string::npos) << error;
}

TEST(CollectionSet, CoversAndMinusSpeakOfPatterns) {
  const CollectionSet set = set_of("app.bsky.*,chat.bsky.actor.declaration");
  std::string error;
  EXPECT_TRUE(set.covers(*syntax::parse_collection_pattern("app.bsky.feed.post")));
  EXPECT_TRUE(set.covers(*syntax::parse_collection_pattern("app.bsky.feed.*")));
  EXPECT_FALSE(set.covers(*syntax::parse_collection_pattern("chat.bsky.*")));
  EXPECT_EQ(set.minus(set_of("app.bsky.*")).canonical(), "chat.bsky.actor.declaration");
  // Overlap: some collection both match.
  const auto pattern = [](const char* text) { return *syntax::parse_collection_pattern(text); };
  EXPECT_TRUE(set.overlaps(pattern("app.bsky.feed.post")));  // under a prefix
  EXPECT_TRUE(set.overlaps(pattern("app.*")));               // a wider prefix
  EXPECT_TRUE(set.overlaps(pattern("chat.bsky.*")));         // holds an exact name
  EXPECT_TRUE(set.overlaps(pattern("chat.bsky.actor.declaration")));
  EXPECT_FALSE(set.overlaps(pattern("chat.bsky.convo.message")));
  EXPECT_FALSE(set.overlaps(pattern("com.example.*")));
  EXPECT_FALSE(set_of("app.bsky.feed.post").overlaps(pattern("app.bsky.feed.postgate")));
}

// ---- Keys and entries

TEST(TwinKey, RoundTripsRecordsAndDidEvents) {
  const std::string record_key = twin_key("did:plc:a", "app.bsky.feed.post", "3k2a");
  const auto record = parse_twin_key(record_key);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->kind, EventKind::commit);
  EXPECT_EQ(record->did, "did:plc:a");
  EXPECT_EQ(record->collection, "app.bsky.feed.post");
  EXPECT_EQ(record->rkey, "3k2a");
  const std::string identity_key = twin_key(EventKind::identity, "did:plc:a");
  const auto identity = parse_twin_key(identity_key);
  ASSERT_TRUE(identity);
  EXPECT_EQ(identity->kind, EventKind::identity);
  EXPECT_EQ(parse_twin_key(twin_key(EventKind::account, "did:plc:a"))->kind, EventKind::account);
  for (const std::string& bad :
       {std::string(""), std::string("did:plc:a"), std::string("\0x\0y", 4),
        std::string("d\0c\0", 4), std::string("d\0c\0r\0z", 7)}) {
    EXPECT_FALSE(parse_twin_key(bad)) << bad;
  }
}

TEST(TwinEntry, RoundTripsAndRejectsWhatItDidNotWrite) {
  const TwinEntry entry{1'700'000'000'000'000, true, "3kabc"};
  EXPECT_EQ(parse_twin_entry(encode_twin_entry(entry)), entry);
  EXPECT_FALSE(parse_twin_entry("short"));
  std::string bad_flags = encode_twin_entry(entry);
  bad_flags[8] = 0x7f;
  EXPECT_FALSE(parse_twin_entry(bad_flags));
  EXPECT_FALSE(parse_twin_entry(std::string(9, '\0'))) << "time_us 0 is never an event's";
}

TEST(ChangeFromJson, ReadsTheV1CommitFields) {
  const auto change = change_from_json(
      R"({"did":"did:plc:a","time_us":5,"kind":"commit","commit":{"rev":"3kr","operation":)"
      R"("delete","collection":"app.bsky.feed.post","rkey":"k\u00e9"}})");
  ASSERT_TRUE(change);
  EXPECT_EQ(change->rkey, "k\xC3\xA9");
  EXPECT_EQ(change->rev, "3kr");
  EXPECT_TRUE(change->is_delete);
  EXPECT_FALSE(change_from_json(R"({"did":"did:plc:a","kind":"identity","identity":{}})"));
  EXPECT_FALSE(change_from_json("not json"));
  EXPECT_FALSE(change_from_json(R"({"commit":{"operation":"create"}})")) << "no rkey";
}

// ---- The fold

/// An event that owns its bytes, with its record change.
struct Event {
  std::int64_t time_us = 0;
  std::int64_t prev_time_us = 0;
  EventKind kind = EventKind::commit;
  std::string did, collection, json, rkey, rev;
  bool is_delete = false;
  std::vector<std::uint8_t> zstd{0x28, 0xb5};

  proto::EventView view() const {
    return {time_us, prev_time_us, kind, did, collection, json, zstd};
  }
  RecordChange change() const { return {rkey, rev, is_delete}; }
};

/// A log under construction: each event chained to the previous one.
class Log {
 public:
  Event& commit(std::string did, std::string collection, std::string rkey, std::string operation,
                std::string rev = "3kaaa") {
    Event& event = next();
    event.did = std::move(did);
    event.collection = std::move(collection);
    event.rkey = std::move(rkey);
    event.rev = std::move(rev);
    event.is_delete = operation == "delete";
    event.json = R"({"did":")" + event.did + R"(","time_us":)" + std::to_string(event.time_us) +
                 R"(,"kind":"commit","commit":{"rev":")" + event.rev + R"(","operation":")" +
                 operation + R"(","collection":")" + event.collection + R"(","rkey":")" +
                 event.rkey + R"("}})";
    return event;
  }
  Event& identity(std::string did) {
    Event& event = next();
    event.kind = EventKind::identity;
    event.did = std::move(did);
    event.json = R"({"did":")" + event.did + R"(","time_us":)" + std::to_string(event.time_us) +
                 R"(,"kind":"identity","identity":{}})";
    return event;
  }

  std::vector<Event> take() { return std::exchange(pending_, {}); }
  std::int64_t now() const { return time_us_; }
  void skip_to(std::int64_t time_us) { time_us_ = time_us; }

 private:
  Event& next() {
    Event& event = pending_.emplace_back();
    event.prev_time_us = last_;
    time_us_ += 10;
    event.time_us = time_us_;
    last_ = time_us_;
    return event;
  }
  std::vector<Event> pending_;
  std::int64_t time_us_ = 1'000'000;
  std::int64_t last_ = 0;
};

TEST(TwinFold, TheLatestEventOfEachRecordWinsAndDeletesLeaveTombstones) {
  TwinFold fold(set_of("app.bsky.feed.*"));
  Log log;
  log.commit("did:plc:a", "app.bsky.feed.post", "1", "create");
  log.commit("did:plc:a", "app.bsky.feed.post", "1", "update", "3kbbb");
  log.commit("did:plc:a", "app.bsky.feed.post", "2", "create");
  log.commit("did:plc:a", "app.bsky.feed.post", "2", "delete");
  log.commit("did:plc:a", "app.bsky.graph.follow", "3", "create");  // not compacted
  log.identity("did:plc:a");
  for (const Event& event : log.take()) fold.apply(event.view(), event.change());
  const auto& entries = fold.entries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries.at(twin_key("did:plc:a", "app.bsky.feed.post", "1")),
            (TwinEntry{1'000'020, false, "3kbbb"}));
  EXPECT_EQ(entries.at(twin_key("did:plc:a", "app.bsky.feed.post", "2")),
            (TwinEntry{1'000'040, true, "3kaaa"}));
  EXPECT_EQ(entries.at(twin_key(EventKind::identity, "did:plc:a")).time_us, 1'000'060);
  fold.expire_tombstones(1'000'041);
  EXPECT_EQ(fold.entries().size(), 2u);
}

// ---- The stored twin

/// A fresh directory under /tmp (tests/support/temp_dir.hpp).
class TempDir : public jetstream::testing::TempDir {
 public:
  TempDir() : jetstream::testing::TempDir("compacted_twin_test") {}
};

class StoredTwin : public ::testing::Test {
 protected:
  std::unique_ptr<EventStore> open(std::string_view collections, bool read_only = false) {
    EventStore::Options options;
    options.path = dir_.db();
    options.compact = set_of(collections);
    options.read_only = read_only;
    std::string error;
    auto store = EventStore::open(options, error);
    EXPECT_TRUE(store) << error;
    return store;
  }

  void append(EventStore& store, const std::vector<Event>& events) {
    std::vector<proto::EventView> views;
    std::vector<RecordChange> changes;
    for (const Event& event : events) {
      views.push_back(event.view());
      changes.push_back(event.change());
      all_.push_back(event);
    }
    std::string error;
    ASSERT_TRUE(store.append(views, changes, static_cast<std::int64_t>(all_.size()), error))
        << error;
  }

  /// The twin every event appended so far implies for `collections`.
  TwinFold expected(std::string_view collections, std::int64_t tombstone_horizon = 0) {
    TwinFold fold(set_of(collections));
    for (const Event& event : all_) fold.apply(event.view(), event.change());
    fold.expire_tombstones(tombstone_horizon);
    return fold;
  }

  static void expect_check_ok(const EventStore& store) {
    const auto check = store.check_twin();
    EXPECT_TRUE(check.ok()) << (check.problems.empty() ? "" : check.problems.front());
  }

  TempDir dir_;
  Log log_;
  std::vector<Event> all_;
};

TEST_F(StoredTwin, IsWrittenWithTheLogAndSurvivesReopen) {
  {
    auto store = open("app.bsky.feed.*");
    log_.commit("did:plc:a", "app.bsky.feed.post", "1", "create");
    log_.commit("did:plc:b", "app.bsky.feed.like", "1", "create");
    log_.commit("did:plc:a", "app.bsky.graph.follow", "9", "create");
    append(*store, log_.take());
    log_.commit("did:plc:a", "app.bsky.feed.post", "1", "update");
    log_.commit("did:plc:b", "app.bsky.feed.like", "1", "delete");
    log_.identity("did:plc:b");
    append(*store, log_.take());
    const auto counts = store->twin_counts();
    EXPECT_EQ(counts.at("app.bsky.feed.*"), (EventStore::TwinCounts{1, 1}));
    EXPECT_EQ(counts.at("#identity"), (EventStore::TwinCounts{1, 0}));
    expect_check_ok(*store);
  }
  auto store = open("app.bsky.feed.*");
  const auto check = store->check_twin();
  EXPECT_TRUE(check.ok());
  EXPECT_EQ(check.entries_checked, expected("app.bsky.feed.*").entries().size());
  EXPECT_EQ(store->twin_counts().at("app.bsky.feed.*"), (EventStore::TwinCounts{1, 1}));
}

TEST_F(StoredTwin, CreateUpdateDeleteRecreateOfOneRkeyInOneBatchAndAcross) {
  auto store = open("app.bsky.feed.post");
  log_.commit("did:plc:a", "app.bsky.feed.post", "k", "create");
  log_.commit("did:plc:a", "app.bsky.feed.post", "k", "update");
  log_.commit("did:plc:a", "app.bsky.feed.post", "k", "delete");
  append(*store, log_.take());
  EXPECT_EQ(store->twin_counts().at("app.bsky.feed.post"), (EventStore::TwinCounts{0, 1}));
  log_.commit("did:plc:a", "app.bsky.feed.post", "k", "create", "3kzzz");
  append(*store, log_.take());
  EXPECT_EQ(store->twin_counts().at("app.bsky.feed.post"), (EventStore::TwinCounts{1, 0}));
  const auto check = store->check_twin();
  EXPECT_TRUE(check.ok()) << (check.problems.empty() ? "" : check.problems.front());
  EXPECT_EQ(check.entries_checked, 1u) << "one record, one entry, whatever its history";
}

TEST_F(StoredTwin, RetentionDeletesLogEventsButNeverARecordsLatestEntry) {
  auto store = open("app.bsky.feed.post");
  log_.commit("did:plc:a", "app.bsky.feed.post", "old", "create");
  append(*store, log_.take());
  const std::int64_t after_old = log_.now() + 1;
  for (int i = 0; i < 5; ++i) log_.commit("did:plc:b", "app.bsky.feed.like", "x", "create");
  append(*store, log_.take());
  std::string error;
  ASSERT_TRUE(store->delete_before(after_old + 20, error)) << error;
  ASSERT_GT(store->oldest_time_us(), after_old) << "the old record's event left the log";
  EXPECT_EQ(store->twin_counts().at("app.bsky.feed.post").records, 1);
  expect_check_ok(*store);
}

TEST_F(StoredTwin, TombstonesExpireAfterTheirTtlAndMoveTheHorizon) {
  auto store = open("app.bsky.feed.post");
  log_.commit("did:plc:a", "app.bsky.feed.post", "1", "create");
  log_.commit("did:plc:a", "app.bsky.feed.post", "1", "delete");
  log_.commit("did:plc:a", "app.bsky.feed.post", "2", "create");
  log_.commit("did:plc:a", "app.bsky.feed.post", "2", "delete");
  append(*store, log_.take());
  const std::int64_t between = all_[1].time_us + 1;  // after the first delete, before the second
  std::string error;
  EXPECT_EQ(store->expire_tombstones(between, error), 1) << error;
  EXPECT_EQ(store->tombstone_horizon_us(), all_[1].time_us) << "the newest expired tombstone";
  EXPECT_EQ(store->twin_counts().at("app.bsky.feed.post"), (EventStore::TwinCounts{0, 1}));
  expect_check_ok(*store);
  EXPECT_EQ(store->expire_tombstones(between, error), 0) << "nothing twice";
  auto reopened = std::move(store);
  reopened.reset();
  store = open("app.bsky.feed.post");
  EXPECT_EQ(store->tombstone_horizon_us(), all_[1].time_us) << "the horizon is durable";
}

TEST_F(StoredTwin, ARemovedCollectionIsDroppedAndAnAddedOneIsBuiltFromTheLog) {
  {
    auto store = open("app.bsky.feed.post");
    log_.commit("did:plc:a", "app.bsky.feed.post", "1", "create");
    log_.commit("did:plc:a", "app.bsky.feed.like", "1", "create");
    log_.commit("did:plc:a", "app.bsky.feed.like", "2", "create");
    log_.commit("did:plc:a", "app.bsky.feed.like", "2", "delete");
    log_.identity("did:plc:a");
    append(*store, log_.take());
  }
  auto store = open("app.bsky.feed.like");
  EXPECT_FALSE(store->twin_counts().contains("app.bsky.feed.post")) << "dropped at open";
  ASSERT_TRUE(store->twin_build().pending);
  // A live change to a record being built arrives before the build reads its older events.
  log_.commit("did:plc:a", "app.bsky.feed.like", "1", "update", "3klive");
  append(*store, log_.take());
  std::string error;
  for (int step = 0; step < 100 && store->twin_build().pending; ++step) {
    ASSERT_TRUE(store->build_twin_step(2, error)) << error;  // small steps: many of them
  }
  EXPECT_FALSE(store->twin_build().pending);
  // The oracle says the live update won; the check says the store equals the oracle.
  const TwinFold built = expected("app.bsky.feed.like");
  EXPECT_EQ(built.entries().at(twin_key("did:plc:a", "app.bsky.feed.like", "1")).rev, "3klive");
  EXPECT_EQ(store->twin_counts().at("app.bsky.feed.like"), (EventStore::TwinCounts{1, 1}));
  EXPECT_EQ(store->twin_counts().at("#identity").records, 1) << "kept across the change";
  expect_check_ok(*store);
}

TEST_F(StoredTwin, SnapshotPagesReadTheLatestEventOfEachRecordInTimeOrder) {
  auto store = open("app.bsky.feed.post");
  log_.commit("did:plc:a", "app.bsky.feed.post", "1", "create");  // superseded below
  log_.commit("did:plc:a", "app.bsky.feed.post", "2", "create");
  log_.commit("did:plc:a", "app.bsky.feed.like", "3", "create");  // not compacted
  log_.commit("did:plc:a", "app.bsky.feed.post", "1", "update");
  log_.commit("did:plc:b", "app.bsky.feed.post", "4", "delete");
  append(*store, log_.take());
  proto::ReplayRequest request;
  request.request_id = 1;
  request.start_time_us = 0;
  request.max_events = 2;
  request.max_bytes = 1 << 20;
  request.snapshot = true;
  std::vector<std::int64_t> times;
  ReplayPageBuffer page;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(store->read_page(request, page), proto::ReplayStatus::ok) << page.error();
    for (const auto& event : page.page().events) times.push_back(event.time_us);
    if (page.page().done) break;
    request.start_time_us = page.page().next_time_us;
  }
  EXPECT_EQ(times, (std::vector<std::int64_t>{all_[1].time_us, all_[3].time_us, all_[4].time_us}));
  // A cursor: only what changed after it.
  request.start_time_us = all_[3].time_us;
  ASSERT_EQ(store->read_page(request, page), proto::ReplayStatus::ok);
  ASSERT_EQ(page.page().events.size(), 2u);
  EXPECT_EQ(page.page().events[0].json, all_[3].json) << "byte for byte the log's event";
  // Below the tombstone horizon a snapshot cannot resume: too_old.
  std::string error;
  ASSERT_EQ(store->expire_tombstones(all_[4].time_us + 1, error), 1) << error;
  request.start_time_us = all_[2].time_us;
  request.clamp_to_oldest = false;
  EXPECT_EQ(store->read_page(request, page), proto::ReplayStatus::too_old);
  request.clamp_to_oldest = true;  // a snapshot under way goes on
  EXPECT_EQ(store->read_page(request, page), proto::ReplayStatus::ok);
  request.clamp_to_oldest = false;
  request.start_time_us = 0;
  EXPECT_EQ(store->read_page(request, page), proto::ReplayStatus::ok) << "from 0 it restarts";
}

TEST_F(StoredTwin, NoSetKeepsNothing) {
  auto store = open("");
  log_.commit("did:plc:a", "app.bsky.feed.post", "1", "create");
  append(*store, log_.take());
  EXPECT_TRUE(store->twin_counts().empty());
  EXPECT_EQ(store->check_twin().entries_checked, 0u);
}

/// Opens the store's RocksDB directly (no EventStore) and runs `edit` on its twin_keys family.
void edit_twin_keys(const std::string& path,
                    const std::function<void(rocksdb::DB&, rocksdb::ColumnFamilyHandle*)>& edit) {
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const char* name :
       {"default", "events", "meta", "twin_keys", "twin_events", "twin_tombstones"}) {
    families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &db).ok());
  edit(*db, handles[3]);
  for (auto* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  delete db;
}

TEST_F(StoredTwin, TheCheckNamesWhatDisagreesWithTheLog) {
  {
    auto store = open("app.bsky.feed.post");
    log_.commit("did:plc:a", "app.bsky.feed.post", "1", "create");
    log_.commit("did:plc:a", "app.bsky.feed.post", "2", "create");
    append(*store, log_.take());
  }
  edit_twin_keys(dir_.db(), [](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* keys) {
    ASSERT_TRUE(
        db.Delete(rocksdb::WriteOptions(), keys, twin_key("did:plc:a", "app.bsky.feed.post", "1"))
            .ok());
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), keys,
                       twin_key("did:plc:a", "app.bsky.feed.post", "2"), "garbage")
                    .ok());
  });
  auto store = open("app.bsky.feed.post", /*read_only=*/true);
  const auto check = store->check_twin();
  ASSERT_FALSE(check.ok());
  std::string all;
  for (const auto& problem : check.problems) all += problem + "\n";
  EXPECT_NE(all.find("did:plc:a/app.bsky.feed.post/2': the key or its entry does not parse"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("did:plc:a/app.bsky.feed.post/1' (time_us 1000010): in the log, missing"),
            std::string::npos)
      << all;
}

TEST_F(StoredTwin, AnUnreadableEntryFailsTheAppendWithItsKeyNotACrash) {
  {
    auto store = open("app.bsky.feed.post");
    log_.commit("did:plc:a", "app.bsky.feed.post", "1", "create");
    append(*store, log_.take());
  }
  edit_twin_keys(dir_.db(), [](rocksdb::DB& db, rocksdb::ColumnFamilyHandle* keys) {
    ASSERT_TRUE(
        db.Put(rocksdb::WriteOptions(), keys, twin_key("did:plc:a", "app.bsky.feed.post", "1"), "x")
            .ok());
  });
  auto store = open("app.bsky.feed.post");
  log_.commit("did:plc:a", "app.bsky.feed.post", "1", "update");
  const auto events = log_.take();
  std::vector<proto::EventView> views{events[0].view()};
  std::vector<RecordChange> changes{events[0].change()};
  std::string error;
  EXPECT_FALSE(store->append(views, changes, 2, error));
  EXPECT_NE(error.find("'did:plc:a/app.bsky.feed.post/1' does not parse"), std::string::npos)
      << error;
  EXPECT_EQ(store->last_time_us(), all_.back().time_us) << "nothing of the batch was stored";
}

}  // namespace
}  // namespace jetstream::decode
