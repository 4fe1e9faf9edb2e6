// decode's event log (services/decode/event_store.hpp) on a real RocksDB, one fresh directory
// under /tmp per test, removed afterwards: what is appended reads back byte for byte, the cursor
// is atomic with the events, pages tile the log with no repeat and no gap whatever their limits
// and filters, retention deletes exactly what is older, and readers run beside the writer.
#include "services/decode/event_store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proto/events.hpp"
#include "proto/replay.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace decode = jetstream::decode;
namespace proto = jetstream::proto;
using decode::EventStore;
using decode::ReplayPageBuffer;
using proto::EventKind;
using proto::ReplayStatus;

/// A fresh directory under /tmp (tests/support/temp_dir.hpp).
class TempDir : public jetstream::testing::TempDir {
 public:
  TempDir() : jetstream::testing::TempDir("event_store_test") {}
};

/// An event that owns its bytes.
struct Event {
  std::int64_t time_us = 0;
  std::int64_t prev_time_us = 0;
  EventKind kind = EventKind::commit;
  std::string did;
  std::string collection;
  std::string json;
  std::vector<std::uint8_t> zstd;

  proto::EventView view() const {
    return {time_us, prev_time_us, kind, did, collection, json, zstd};
  }
  static Event from(const proto::EventView& view) {
    return {view.time_us,
            view.prev_time_us,
            view.kind,
            std::string(view.did),
            std::string(view.collection),
            std::string(view.json),
            {view.zstd.begin(), view.zstd.end()}};
  }
  friend bool operator==(const Event&, const Event&) = default;
};

std::ostream& operator<<(std::ostream& out, const Event& event) {
  return out << "{time_us " << event.time_us << ", prev " << event.prev_time_us << ", kind "
             << static_cast<int>(event.kind) << ", " << event.did << ", " << event.collection
             << ", json " << event.json.size() << " B, zstd " << event.zstd.size() << " B}";
}

const std::vector<std::string> kCollections = {
    "app.bsky.feed.like",   "app.bsky.feed.post",     "app.bsky.graph.follow",
    "app.bsky.feed.repost", "app.bsky.actor.profile", "chat.bsky.actor.declaration"};

/// A deterministic log: time_us from `first_time_us` with gaps of 1..3, mixed kinds, 7 DIDs, JSON
/// of varied sizes, a pseudo-zstd frame on every event.
std::vector<Event> make_events(std::size_t count, std::int64_t first_time_us = 1'000'000,
                               std::int64_t prev_time_us = 0) {
  std::vector<Event> events;
  events.reserve(count);
  std::int64_t time_us = first_time_us;
  std::uint64_t state = 0x9e3779b97f4a7c15ull ^ static_cast<std::uint64_t>(first_time_us);
  const auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (std::size_t i = 0; i < count; ++i) {
    Event event;
    event.time_us = time_us;
    event.prev_time_us = prev_time_us;
    const std::uint64_t r = next();
    event.did = "did:plc:user" + std::to_string(r % 7);
    if (r % 11 == 0) {
      event.kind = EventKind::identity;
    } else if (r % 13 == 0) {
      event.kind = EventKind::account;
    } else {
      event.kind = EventKind::commit;
      event.collection = kCollections[(r >> 8) % kCollections.size()];
    }
    event.json = "{\"did\":\"" + event.did + "\",\"time_us\":" + std::to_string(time_us) +
                 ",\"pad\":\"" + std::string((r >> 16) % 300, 'x') + "\"}";
    event.zstd.resize((r >> 24) % 120 + 1);
    for (std::size_t b = 0; b < event.zstd.size(); ++b) {
      event.zstd[b] = static_cast<std::uint8_t>(r >> (b % 56));
    }
    events.push_back(std::move(event));
    prev_time_us = time_us;
    time_us += static_cast<std::int64_t>(1 + (r >> 40) % 3);
  }
  return events;
}

std::vector<proto::EventView> views_of(const std::vector<Event>& events, std::size_t begin,
                                       std::size_t end) {
  std::vector<proto::EventView> views;
  for (std::size_t i = begin; i < end; ++i) views.push_back(events[i].view());
  return views;
}

std::unique_ptr<EventStore> open_store(const std::string& path,
                                       std::size_t max_scan_keys = 200'000) {
  EventStore::Options options;
  options.path = path;
  options.block_cache_bytes = std::size_t{8} << 20;
  options.max_scan_keys = max_scan_keys;
  std::string error;
  auto store = EventStore::open(options, error);
  EXPECT_NE(store, nullptr) << error;
  return store;
}

/// Appends events in batches of `batch`, the cursor being the index of the batch's last event.
void append_all(EventStore& store, const std::vector<Event>& events, std::size_t batch = 64) {
  for (std::size_t i = 0; i < events.size(); i += batch) {
    const std::size_t end = std::min(events.size(), i + batch);
    const auto views = views_of(events, i, end);
    std::string error;
    ASSERT_TRUE(store.append(views, static_cast<std::int64_t>(end), error)) << error;
  }
}

proto::ReplayRequest request_all(std::int64_t start = 1) {
  proto::ReplayRequest request;
  request.request_id = 7;
  request.start_time_us = start;
  request.max_events = proto::kMaxEventsPerMessage;
  request.max_bytes = proto::kMaxPageBytes;
  request.want_zstd = true;
  return request;
}

/// What a filtered scan of `events` must return for `request` (ignoring paging limits).
std::vector<Event> expected(const std::vector<Event>& events, const proto::ReplayRequest& request) {
  std::vector<Event> out;
  for (const Event& event : events) {
    if (event.time_us < request.start_time_us) continue;
    if (request.end_time_us > 0 && event.time_us >= request.end_time_us) continue;
    if (!request.dids.empty() &&
        std::find(request.dids.begin(), request.dids.end(), event.did) == request.dids.end()) {
      continue;
    }
    const bool any_collection_filter =
        !request.collections.empty() || !request.collection_prefixes.empty();
    if (any_collection_filter && event.kind == EventKind::commit) {
      bool hit = std::find(request.collections.begin(), request.collections.end(),
                           event.collection) != request.collections.end();
      for (const auto& prefix : request.collection_prefixes) {
        hit = hit || event.collection.starts_with(prefix);
      }
      if (!hit) continue;
    }
    Event copy = event;
    if (!request.want_zstd) copy.zstd.clear();
    out.push_back(std::move(copy));
  }
  return out;
}

struct Scan {
  std::vector<Event> events;
  std::size_t pages = 0;
  std::int64_t next_time_us = 0;
};

/// Pages through the store from request.start_time_us until a done page, checking every page's
/// own invariants on the way.
Scan read_all(const EventStore& store, proto::ReplayRequest request) {
  Scan scan;
  ReplayPageBuffer buffer;
  for (;;) {
    const ReplayStatus status = store.read_page(request, buffer);
    const proto::ReplayPageView& page = buffer.page();
    EXPECT_EQ(status, ReplayStatus::ok) << buffer.error();
    EXPECT_EQ(page.status, status);
    EXPECT_EQ(page.request_id, request.request_id);
    EXPECT_FALSE(proto::validate(page).has_value());
    if (status != ReplayStatus::ok) break;
    EXPECT_LE(page.events.size(), request.max_events);
    std::size_t payload = 0;
    for (const auto& event : page.events) {
      payload += event.json.size() + event.zstd.size();
      EXPECT_GE(event.time_us, request.start_time_us);
      scan.events.push_back(Event::from(event));
    }
    if (page.events.size() > 1) {
      EXPECT_LE(payload, request.max_bytes);
    }
    EXPECT_GE(page.next_time_us, request.start_time_us);
    ++scan.pages;
    scan.next_time_us = page.next_time_us;
    if (page.done) break;
    if (scan.pages > 1'000'000) {
      ADD_FAILURE() << "paging does not terminate";
      break;
    }
    request.start_time_us = page.next_time_us;
  }
  return scan;
}

// ---- Append and read back

TEST(EventStore, AppendedEventsReadBackByteExactWithJsonAndZstd) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(500);
  append_all(*store, events);

  EXPECT_EQ(read_all(*store, request_all()).events, events);

  auto without_zstd = request_all();
  without_zstd.want_zstd = false;
  const auto scan = read_all(*store, without_zstd);
  ASSERT_EQ(scan.events.size(), events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(scan.events[i].json, events[i].json);
    EXPECT_TRUE(scan.events[i].zstd.empty());
  }
}

TEST(EventStore, EventsWithoutZstdFrameReadBackWithAnEmptyOne) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  auto events = make_events(10);
  for (auto& event : events) event.zstd.clear();
  append_all(*store, events);
  EXPECT_EQ(read_all(*store, request_all()).events, events);
}

TEST(EventStore, UnfilteredPagesChainPrevTimeUsLikeTheLiveStream) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(300);
  append_all(*store, events);
  // Start in the middle: the first event's prev_time_us is still the stored predecessor.
  auto request = request_all(events[137].time_us);
  request.max_events = 10;
  const auto scan = read_all(*store, request);
  ASSERT_EQ(scan.events.size(), 300u - 137u);
  EXPECT_EQ(scan.events.front().prev_time_us, events[136].time_us);
  for (std::size_t i = 1; i < scan.events.size(); ++i) {
    EXPECT_EQ(scan.events[i].prev_time_us, scan.events[i - 1].time_us);
  }
}

TEST(EventStore, EmptyStoreReportsNothingAndADonePage) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->upstream_cursor(), -1);
  EXPECT_EQ(store->last_time_us(), 0);
  EXPECT_EQ(store->oldest_time_us(), 0);
  EXPECT_EQ(store->newest_time_us(), 0);
  ReplayPageBuffer buffer;
  EXPECT_EQ(store->read_page(request_all(), buffer), ReplayStatus::ok);
  EXPECT_TRUE(buffer.page().done);
  EXPECT_TRUE(buffer.page().events.empty());
  EXPECT_EQ(buffer.page().next_time_us, 1);
  EXPECT_EQ(buffer.page().oldest_time_us, 0);
  EXPECT_EQ(buffer.page().newest_time_us, 0);
}

// ---- Cursor, head and reopen

TEST(EventStore, CursorAndLastTimeUsAreStoredWithTheEventsAndSurviveReopen) {
  TempDir dir;
  const auto events = make_events(100);
  {
    auto store = open_store(dir.db());
    ASSERT_NE(store, nullptr);
    std::string error;
    const auto first = views_of(events, 0, 60);
    ASSERT_TRUE(store->append(first, 4242, error)) << error;
    EXPECT_EQ(store->upstream_cursor(), 4242);
    EXPECT_EQ(store->last_time_us(), events[59].time_us);
    EXPECT_EQ(store->newest_time_us(), events[59].time_us);
    EXPECT_EQ(store->oldest_time_us(), events[0].time_us);
    // A frame that yields no event still advances the cursor, and nothing else.
    ASSERT_TRUE(store->append({}, 4250, error)) << error;
    EXPECT_EQ(store->upstream_cursor(), 4250);
    EXPECT_EQ(store->last_time_us(), events[59].time_us);
  }
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->upstream_cursor(), 4250);
  EXPECT_EQ(store->last_time_us(), events[59].time_us);
  EXPECT_EQ(store->oldest_time_us(), events[0].time_us);
  const std::vector<Event> first(events.begin(), events.begin() + 60);
  EXPECT_EQ(read_all(*store, request_all()).events, first);
}

TEST(EventStore, ReopeningResumesTheSameStateAndTheChainContinues) {
  TempDir dir;
  const auto events = make_events(400);
  {
    auto store = open_store(dir.db());
    ASSERT_NE(store, nullptr);
    append_all(*store, std::vector<Event>(events.begin(), events.begin() + 250));
    std::string error;
    ASSERT_TRUE(store->delete_before(events[100].time_us, error)) << error;
  }
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->upstream_cursor(), 250);
  EXPECT_EQ(store->last_time_us(), events[249].time_us);
  EXPECT_EQ(store->oldest_time_us(), events[100].time_us);
  EXPECT_EQ(store->deleted_through_time_us(), events[99].time_us);
  EXPECT_EQ(store->retention_floor_time_us(), events[100].time_us);
  // The sequencer continues from last_time_us(): the rest of the chain appends.
  std::string error;
  for (std::size_t i = 250; i < events.size(); i += 50) {
    const auto views = views_of(events, i, i + 50);
    ASSERT_TRUE(store->append(views, static_cast<std::int64_t>(i + 50), error)) << error;
  }
  const std::vector<Event> kept(events.begin() + 100, events.end());
  auto request = request_all();
  request.clamp_to_oldest = true;
  EXPECT_EQ(read_all(*store, request).events, kept);
}

using EventStoreDeathTest = ::testing::Test;

TEST(EventStoreDeathTest, TimeUsNotAboveThePreviousOneAbortsLoudly) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  auto events = make_events(3);
  append_all(*store, events);
  // Equal to the stored head.
  Event same = events.back();
  same.prev_time_us = events.back().time_us;
  const std::vector<proto::EventView> repeat{same.view()};
  std::string error;
  EXPECT_DEATH((void)store->append(repeat, 9, error), "not above the previous time_us");
  // Decreasing within one batch.
  auto more = make_events(2, events.back().time_us + 10, events.back().time_us);
  more[1].time_us = more[0].time_us - 1;
  more[1].prev_time_us = more[0].time_us;
  const auto backwards = views_of(more, 0, 2);
  EXPECT_DEATH((void)store->append(backwards, 9, error), "event 1 of 2 has time_us");
}

TEST(EventStoreDeathTest, PrevTimeUsThatDoesNotChainAbortsLoudly) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  auto events = make_events(3);
  append_all(*store, events);
  auto next = make_events(1, events.back().time_us + 5, events.back().time_us - 1);
  const auto views = views_of(next, 0, 1);
  std::string error;
  EXPECT_DEATH((void)store->append(views, 9, error), "prev_time_us");
}

// ---- Paging

struct PagingCase {
  std::uint32_t max_events;
  std::uint32_t max_bytes;
  std::size_t max_scan_keys;
};

TEST(EventStore, ConcatenatedPagesEqualOneFullFilteredScanForAnyLimits) {
  TempDir dir;
  const auto events = make_events(2000);
  {
    auto store = open_store(dir.db());
    ASSERT_NE(store, nullptr);
    append_all(*store, events, 37);
  }
  std::vector<proto::ReplayRequest> filters;
  filters.push_back(request_all());
  {
    auto request = request_all();
    request.collections = {"app.bsky.feed.like"};
    filters.push_back(request);
  }
  {
    auto request = request_all();
    request.collection_prefixes = {"app.bsky.graph.", "chat."};
    request.want_zstd = false;
    filters.push_back(request);
  }
  {
    auto request = request_all();
    request.dids = {"did:plc:user3", "did:plc:user5"};
    request.collections = {"app.bsky.feed.post"};
    filters.push_back(request);
  }
  {
    auto request = request_all(events[777].time_us + 1);  // a start between two events
    request.end_time_us = events[1500].time_us;
    filters.push_back(request);
  }
  const std::vector<PagingCase> cases = {
      {1, proto::kMaxPageBytes, 200'000},
      {7, proto::kMaxPageBytes, 200'000},
      {100'000, 1, 200'000},
      {100'000, 900, 200'000},
      {13, 2000, 200'000},
      {50, proto::kMaxPageBytes, 31},
      {3, 700, 5},
      {100'000, proto::kMaxPageBytes, 200'000},
  };
  for (const PagingCase& limits : cases) {
    auto store = open_store(dir.db(), limits.max_scan_keys);
    ASSERT_NE(store, nullptr);
    for (auto request : filters) {
      request.max_events = limits.max_events;
      request.max_bytes = limits.max_bytes;
      SCOPED_TRACE("max_events " + std::to_string(limits.max_events) + ", max_bytes " +
                   std::to_string(limits.max_bytes) + ", max_scan_keys " +
                   std::to_string(limits.max_scan_keys) + ", start " +
                   std::to_string(request.start_time_us));
      const auto want = expected(events, request);
      ASSERT_FALSE(want.empty());
      const auto scan = read_all(*store, request);
      EXPECT_EQ(scan.events, want);
      if (limits.max_events == 1) {
        EXPECT_GE(scan.pages, want.size());
      }
    }
  }
}

TEST(EventStore, AnEventLargerThanMaxBytesStillFillsAPageAlone) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(20);
  append_all(*store, events);
  auto request = request_all();
  request.max_bytes = 1;
  ReplayPageBuffer buffer;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  ASSERT_EQ(buffer.page().events.size(), 1u);
  EXPECT_EQ(Event::from(buffer.page().events[0]), events[0]);
  EXPECT_EQ(buffer.page().next_time_us, events[0].time_us + 1);
  EXPECT_FALSE(buffer.page().done);
}

TEST(EventStore, PayloadLimitCountsZstdOnlyWhenWanted) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(50);
  append_all(*store, events);
  const std::size_t two_json = events[0].json.size() + events[1].json.size();
  auto request = request_all();
  request.want_zstd = false;
  request.max_bytes = static_cast<std::uint32_t>(two_json);
  ReplayPageBuffer buffer;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_EQ(buffer.page().events.size(), 2u);
  EXPECT_EQ(buffer.payload_bytes(), two_json);
  request.want_zstd = true;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_EQ(buffer.page().events.size(), 1u);
}

TEST(EventStore, DoneIsTrueOnlyWhenNothingIsLeftInRange) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(10);
  append_all(*store, events);
  ReplayPageBuffer buffer;
  auto request = request_all();
  request.max_events = 10;  // exactly the rest of the log: done without another request
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_EQ(buffer.page().events.size(), 10u);
  EXPECT_TRUE(buffer.page().done);
  EXPECT_EQ(buffer.page().next_time_us, events.back().time_us + 1);
  EXPECT_EQ(buffer.page().oldest_time_us, events.front().time_us);
  EXPECT_EQ(buffer.page().newest_time_us, events.back().time_us);
  request.max_events = 9;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_FALSE(buffer.page().done);
  // A start past the newest event: nothing, done, continue from the start.
  request.start_time_us = events.back().time_us + 100;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_TRUE(buffer.page().events.empty());
  EXPECT_TRUE(buffer.page().done);
  EXPECT_EQ(buffer.page().next_time_us, events.back().time_us + 100);
}

// ---- Filters

TEST(EventStore, IdentityAndAccountEventsPassEveryCollectionFilter) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(1000);
  append_all(*store, events);
  auto request = request_all();
  request.collections = {"app.bsky.feed.like"};
  const auto exact = read_all(*store, request).events;
  request.collections.clear();
  request.collection_prefixes = {"app.bsky.feed.l"};
  const auto prefix = read_all(*store, request).events;
  EXPECT_EQ(exact, prefix);
  std::size_t likes = 0, identity = 0, account = 0;
  for (const auto& event : exact) {
    if (event.kind == EventKind::commit) {
      EXPECT_EQ(event.collection, "app.bsky.feed.like");
      ++likes;
    }
    if (event.kind == EventKind::identity) ++identity;
    if (event.kind == EventKind::account) ++account;
  }
  EXPECT_GT(likes, 0u);
  EXPECT_EQ(identity, static_cast<std::size_t>(std::count_if(
                          events.begin(), events.end(),
                          [](const Event& e) { return e.kind == EventKind::identity; })));
  EXPECT_EQ(account, static_cast<std::size_t>(std::count_if(
                         events.begin(), events.end(),
                         [](const Event& e) { return e.kind == EventKind::account; })));
}

TEST(EventStore, DidFilterAppliesToEveryKind) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(1000);
  append_all(*store, events);
  auto request = request_all();
  request.dids = {"did:plc:user2"};
  request.collection_prefixes = {"app.bsky.feed."};
  const auto scan = read_all(*store, request).events;
  EXPECT_EQ(scan, expected(events, request));
  bool saw_identity_or_account = false;
  for (const auto& event : scan) {
    EXPECT_EQ(event.did, "did:plc:user2");
    saw_identity_or_account = saw_identity_or_account || event.kind != EventKind::commit;
  }
  EXPECT_TRUE(saw_identity_or_account);
}

TEST(EventStore, ExactAndPrefixCollectionFiltersCombine) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(1000);
  append_all(*store, events);
  auto request = request_all();
  request.collections = {"app.bsky.actor.profile", "no.such.collection"};
  request.collection_prefixes = {"app.bsky.graph."};
  const auto scan = read_all(*store, request).events;
  EXPECT_EQ(scan, expected(events, request));
  for (const auto& event : scan) {
    if (event.kind != EventKind::commit) continue;
    EXPECT_TRUE(event.collection == "app.bsky.actor.profile" ||
                event.collection == "app.bsky.graph.follow")
        << event;
  }
}

TEST(EventStore, EndTimeUsIsAnExclusiveBound) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(100);
  append_all(*store, events);
  auto request = request_all(events[10].time_us);
  request.end_time_us = events[20].time_us;
  const auto scan = read_all(*store, request);
  const std::vector<Event> want(events.begin() + 10, events.begin() + 20);
  EXPECT_EQ(scan.events, want);
  EXPECT_EQ(scan.next_time_us, events[19].time_us + 1);
  // An unfiltered bounded page is done as soon as the range is exhausted, even with more stored.
  ReplayPageBuffer buffer;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_TRUE(buffer.page().done);
  EXPECT_EQ(buffer.page().events.size(), 10u);
}

TEST(EventStore, ScanBoundStopsAFilterThatMatchesNothingWithProgress) {
  TempDir dir;
  const auto events = make_events(5000);
  {
    auto store = open_store(dir.db());
    ASSERT_NE(store, nullptr);
    append_all(*store, events, 500);
  }
  auto store = open_store(dir.db(), 1000);
  ASSERT_NE(store, nullptr);
  auto request = request_all();
  request.dids = {"did:plc:nobody"};
  ReplayPageBuffer buffer;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_TRUE(buffer.page().events.empty());
  EXPECT_FALSE(buffer.page().done);
  EXPECT_EQ(buffer.scanned(), 1000u);
  EXPECT_EQ(buffer.page().next_time_us, events[999].time_us + 1);
  const auto scan = read_all(*store, request);
  EXPECT_TRUE(scan.events.empty());
  EXPECT_EQ(scan.pages, 5u);  // the fifth page consumes the last 1000 keys and sees the end
  EXPECT_EQ(scan.next_time_us, events.back().time_us + 1);
}

TEST(EventStore, InvalidRequestIsABadRequestPage) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  auto request = request_all();
  request.max_events = 0;
  ReplayPageBuffer buffer;
  EXPECT_EQ(store->read_page(request, buffer), ReplayStatus::bad_request);
  EXPECT_EQ(buffer.page().status, ReplayStatus::bad_request);
  EXPECT_FALSE(buffer.error().empty());
}

// ---- Retention

TEST(EventStore, DeleteBeforeRemovesExactlyTheOlderEventsAndMovesOldest) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(3000);
  append_all(*store, events);
  EXPECT_GT(store->approximate_event_count(), 0u);
  EXPECT_GT(store->disk_usage_bytes(), 0u);

  std::string error;
  const std::int64_t cutoff = events[1200].time_us;
  ASSERT_TRUE(store->delete_before(cutoff, error)) << error;
  EXPECT_EQ(store->oldest_time_us(), events[1200].time_us);
  EXPECT_EQ(store->newest_time_us(), events.back().time_us);
  EXPECT_EQ(store->deleted_through_time_us(), events[1199].time_us);
  EXPECT_EQ(store->retention_floor_time_us(), cutoff);

  auto request = request_all();
  request.clamp_to_oldest = true;
  const std::vector<Event> kept(events.begin() + 1200, events.end());
  const auto scan = read_all(*store, request);
  EXPECT_EQ(scan.events, kept);  // the oldest keeps its stored prev_time_us
  EXPECT_EQ(scan.events.front().prev_time_us, events[1199].time_us);
  EXPECT_LE(store->approximate_event_count(), 1900u);

  // A cutoff at or below the oldest deletes nothing.
  ASSERT_TRUE(store->delete_before(cutoff, error)) << error;
  EXPECT_EQ(store->oldest_time_us(), events[1200].time_us);
  EXPECT_EQ(read_all(*store, request).events, kept);
}

TEST(EventStore, DeleteBeforeNeverDeletesTheNewestEvent) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(100);
  append_all(*store, events);
  std::string error;
  ASSERT_TRUE(store->delete_before(events.back().time_us + 1'000'000, error)) << error;
  EXPECT_EQ(store->oldest_time_us(), events.back().time_us);
  EXPECT_EQ(store->newest_time_us(), events.back().time_us);
  EXPECT_EQ(store->deleted_through_time_us(), events[98].time_us);
  auto request = request_all();
  request.clamp_to_oldest = true;
  EXPECT_EQ(read_all(*store, request).events, std::vector<Event>{events.back()});
}

TEST(EventStore, StartAtOrBelowWhatRetentionDeletedIsTooOldUnlessClamped) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(200);
  append_all(*store, events);
  // Nothing deleted yet: any start, even 0 or negative, reads from the oldest.
  for (const std::int64_t start : {std::int64_t{-5}, std::int64_t{0}, std::int64_t{1}}) {
    auto request = request_all(start);
    EXPECT_EQ(read_all(*store, request).events, events) << start;
  }
  std::string error;
  ASSERT_TRUE(store->delete_before(events[50].time_us, error)) << error;

  ReplayPageBuffer buffer;
  for (const std::int64_t start :
       {std::int64_t{-1}, std::int64_t{0}, events[0].time_us, events[49].time_us}) {
    auto request = request_all(start);
    EXPECT_EQ(store->read_page(request, buffer), ReplayStatus::too_old) << start;
    EXPECT_TRUE(buffer.page().events.empty());
    EXPECT_EQ(buffer.page().oldest_time_us, events[50].time_us);
    EXPECT_EQ(buffer.page().newest_time_us, events.back().time_us);
    EXPECT_FALSE(proto::validate(buffer.page()).has_value());

    request.clamp_to_oldest = true;
    request.max_events = 5;
    ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok) << start;
    ASSERT_EQ(buffer.page().events.size(), 5u);
    EXPECT_EQ(Event::from(buffer.page().events[0]), events[50]);
  }
  // Just above the last deleted event nothing in range is gone: served, not too_old.
  auto request = request_all(events[49].time_us + 1);
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_EQ(Event::from(buffer.page().events.at(0)), events[50]);
  // Clamped with an empty page range: the clamped start is where to continue.
  request = request_all(events[10].time_us);
  request.clamp_to_oldest = true;
  request.end_time_us = events[20].time_us;
  ASSERT_EQ(store->read_page(request, buffer), ReplayStatus::ok);
  EXPECT_TRUE(buffer.page().events.empty());
  EXPECT_TRUE(buffer.page().done);
}

// ---- Concurrency

TEST(EventStore, ConcurrentReadersPageInOrderWhileTheWriterAppends) {
  TempDir dir;
  auto store = open_store(dir.db(), 5000);
  ASSERT_NE(store, nullptr);
  constexpr std::size_t kEvents = 50'000;
  const auto events = make_events(kEvents);
  std::atomic<bool> writer_done{false};
  std::thread writer([&] {
    for (std::size_t i = 0; i < events.size(); i += 50) {
      const auto views = views_of(events, i, std::min(events.size(), i + 50));
      std::string error;
      if (!store->append(views, static_cast<std::int64_t>(i), error)) {
        ADD_FAILURE() << error;
        break;
      }
    }
    writer_done.store(true);
  });

  struct ReaderResult {
    std::vector<std::int64_t> times;
    std::size_t chain_breaks = 0;
    std::size_t order_errors = 0;
    std::size_t pages = 0;
  };
  std::vector<ReaderResult> results(4);
  std::vector<std::thread> readers;
  for (std::size_t r = 0; r < results.size(); ++r) {
    readers.emplace_back([&, r] {
      ReaderResult& result = results[r];
      ReplayPageBuffer buffer;
      auto request = request_all();
      request.max_events = static_cast<std::uint32_t>(50 + 97 * r);
      if (r == 3) request.collection_prefixes = {"app.bsky.feed."};
      std::int64_t last = 0;
      for (;;) {
        const bool finished = writer_done.load();
        if (store->read_page(request, buffer) != ReplayStatus::ok) {
          ADD_FAILURE() << buffer.error();
          return;
        }
        ++result.pages;
        for (const auto& event : buffer.page().events) {
          if (event.time_us <= last) ++result.order_errors;
          if (r != 3 && event.prev_time_us != last && last != 0) ++result.chain_breaks;
          last = event.time_us;
          result.times.push_back(event.time_us);
        }
        request.start_time_us = buffer.page().next_time_us;
        if (buffer.page().done && finished) return;
      }
    });
  }
  writer.join();
  for (auto& reader : readers) reader.join();

  std::vector<std::int64_t> all_times;
  for (const auto& event : events) all_times.push_back(event.time_us);
  std::vector<std::int64_t> feed_times;
  for (const auto& event : events) {
    if (event.kind != EventKind::commit || event.collection.starts_with("app.bsky.feed.")) {
      feed_times.push_back(event.time_us);
    }
  }
  for (std::size_t r = 0; r < results.size(); ++r) {
    SCOPED_TRACE("reader " + std::to_string(r));
    EXPECT_EQ(results[r].order_errors, 0u);
    EXPECT_EQ(results[r].chain_breaks, 0u);
    EXPECT_EQ(results[r].times, r == 3 ? feed_times : all_times);
    EXPECT_GT(results[r].pages, 1u);
  }
  EXPECT_EQ(store->last_time_us(), events.back().time_us);
}

TEST(EventStore, ReadersSeeAConsistentLogWhileRetentionDeletes) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  const auto events = make_events(20'000);
  append_all(*store, events, 200);
  std::atomic<bool> stop{false};
  std::thread retention([&] {
    std::string error;
    for (std::size_t i = 1000; i < events.size() && !stop.load(); i += 1000) {
      if (!store->delete_before(events[i].time_us, error)) ADD_FAILURE() << error;
    }
  });
  // Every page either is too_old or holds events that chain to the stored predecessor.
  ReplayPageBuffer buffer;
  std::size_t too_old = 0, ok = 0;
  for (int round = 0; round < 200; ++round) {
    auto request = request_all(events[static_cast<std::size_t>(round) * 97].time_us);
    request.max_events = 300;
    const auto status = store->read_page(request, buffer);
    if (status == ReplayStatus::too_old) {
      ++too_old;
      continue;
    }
    ASSERT_EQ(status, ReplayStatus::ok) << buffer.error();
    ++ok;
    const auto& page = buffer.page();
    ASSERT_FALSE(page.events.empty());
    for (const auto& event : page.events) {
      const auto it =
          std::lower_bound(events.begin(), events.end(), event.time_us,
                           [](const Event& e, std::int64_t t) { return e.time_us < t; });
      ASSERT_NE(it, events.end());
      EXPECT_EQ(Event::from(event), *it);
    }
  }
  stop.store(true);
  retention.join();
  EXPECT_GT(ok, 0u);
}

// ---- Open errors

TEST(EventStore, UnwritablePathGivesAnErrorNotACrash) {
  TempDir dir;
  const auto file = dir.path() / "a-file";
  std::ofstream(file) << "not a directory";
  EventStore::Options options;
  options.path = (file / "db").string();
  std::string error;
  EXPECT_EQ(EventStore::open(options, error), nullptr);
  EXPECT_NE(error.find("cannot create event store directory"), std::string::npos) << error;

  options.path.clear();
  EXPECT_EQ(EventStore::open(options, error), nullptr);
  EXPECT_FALSE(error.empty());
}

TEST(EventStore, SecondOpenOfALockedStoreGivesAnErrorNotACrash) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  EventStore::Options options;
  options.path = dir.db();
  std::string error;
  EXPECT_EQ(EventStore::open(options, error), nullptr);
  EXPECT_NE(error.find("is locked"), std::string::npos) << error;
  // Closing releases the lock.
  store.reset();
  EXPECT_NE(EventStore::open(options, error), nullptr) << error;
}

TEST(EventStore, ReplayPageBufferKeepsItsViewsValidAcrossAMove) {
  TempDir dir;
  auto store = open_store(dir.db());
  ASSERT_NE(store, nullptr);
  auto events = make_events(5);
  events[0].did = "did:plc:a";  // short strings: within a small-string buffer if one were used
  events[0].json = "{}";
  append_all(*store, events);
  ReplayPageBuffer buffer;
  ASSERT_EQ(store->read_page(request_all(), buffer), ReplayStatus::ok);
  ReplayPageBuffer moved(std::move(buffer));
  ASSERT_EQ(moved.page().events.size(), 5u);
  EXPECT_EQ(Event::from(moved.page().events[0]), events[0]);
  ReplayPageBuffer assigned;
  assigned = std::move(moved);
  EXPECT_EQ(Event::from(assigned.page().events[4]), events[4]);
}

}  // namespace

// ---- Read-only (a disk too full to open RocksDB for writing)

TEST(EventStore, AReadOnlyOpenOfNothingIsAnEmptyLogUntilReopenedForWriting) {
  TempDir dir;
  EventStore::Options options;
  options.path = dir.db();
  options.read_only = true;
  std::string error;
  auto store = EventStore::open(options, error);
  ASSERT_NE(store, nullptr) << error;
  EXPECT_FALSE(store->writable());
  EXPECT_FALSE(std::filesystem::exists(dir.db())) << "a read-only open writes nothing";
  ReplayPageBuffer buffer;
  EXPECT_EQ(store->read_page(request_all(), buffer), ReplayStatus::ok);
  EXPECT_TRUE(buffer.page().done);
  EXPECT_TRUE(buffer.page().events.empty());
  const auto events = make_events(10);
  EXPECT_FALSE(store->append(views_of(events, 0, 10), 7, error));
  EXPECT_NE(error.find("read-only"), std::string::npos) << error;
  EXPECT_TRUE(store->delete_before(events[5].time_us, error)) << "retention waits, no error";

  ASSERT_TRUE(store->reopen_writable(error)) << error;
  EXPECT_TRUE(store->writable());
  ASSERT_TRUE(store->append(views_of(events, 0, 10), 7, error)) << error;
  EXPECT_EQ(read_all(*store, request_all()).events, events);
  EXPECT_EQ(store->upstream_cursor(), 7);
}

TEST(EventStore, AReadOnlyOpenServesTheLogAndReopensForWritingUnderReaders) {
  TempDir dir;
  const auto events = make_events(3000);
  {
    auto store = open_store(dir.db());
    ASSERT_NE(store, nullptr);
    append_all(*store, std::vector<Event>(events.begin(), events.begin() + 2000));
  }
  EventStore::Options options;
  options.path = dir.db();
  options.read_only = true;
  std::string error;
  auto store = EventStore::open(options, error);
  ASSERT_NE(store, nullptr) << error;
  EXPECT_FALSE(store->writable());
  const std::vector<Event> first(events.begin(), events.begin() + 2000);
  EXPECT_EQ(read_all(*store, request_all()).events, first);
  EXPECT_EQ(store->last_time_us(), events[1999].time_us);

  // Readers page through the log while it switches to writing: every scan is whole and in order.
  std::atomic<bool> stop{false};
  std::atomic<int> bad_scans{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        const auto scan = read_all(*store, request_all()).events;
        if (scan.size() < 2000 ||
            !std::equal(first.begin(), first.end(), scan.begin(), scan.begin() + 2000)) {
          bad_scans.fetch_add(1);
        }
      }
    });
  }
  ASSERT_TRUE(store->reopen_writable(error)) << error;
  std::string append_error;
  EXPECT_TRUE(store->append(views_of(events, 2000, 3000), 99, append_error)) << append_error;
  stop.store(true);
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(bad_scans.load(), 0);
  EXPECT_EQ(read_all(*store, request_all()).events, events);
}
