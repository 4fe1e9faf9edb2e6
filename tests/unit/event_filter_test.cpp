// Contracts of services/fanout/event_filter: which events a subscriber's filters let through
// (API.md "GET /subscribe"), the maxMessageSizeBytes check, and the replay request filters.
#include "services/fanout/event_filter.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "proto/replay.hpp"
#include "proto/wire.hpp"
#include "services/fanout/options_update.hpp"
#include "services/fanout/subscriber_options.hpp"

namespace jetstream::fanout {
namespace {

using proto::EventKind;

EventFilter filter_for(std::string_view query) {
  const ParseResult result = parse_subscribe_request(query, std::nullopt);
  EXPECT_TRUE(result.ok()) << result.error;
  return EventFilter(result.options.value_or(SubscriberOptions{}));
}

bool commit(const EventFilter& filter, std::string_view collection,
            std::string_view did = "did:plc:alice") {
  return filter.matches(EventKind::commit, did, collection);
}

TEST(EventFilter, DefaultMatchesEveryEventAndSize) {
  const EventFilter filter;
  EXPECT_TRUE(filter.matches_every_event());
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post"));
  EXPECT_TRUE(filter.matches(EventKind::identity, "did:plc:x", ""));
  EXPECT_TRUE(filter.matches(EventKind::account, "did:plc:x", ""));
  EXPECT_TRUE(filter.accepts_size(0));
  EXPECT_TRUE(filter.accepts_size(std::size_t{1} << 40));
  EXPECT_TRUE(filter_for("").matches_every_event());
}

TEST(EventFilter, ExactCollectionMatchesOnlyThatCollectionCaseSensitively) {
  const EventFilter filter = filter_for("wantedCollections=app.bsky.feed.post");
  EXPECT_FALSE(filter.matches_every_event());
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.like"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.posts"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.pos"));
  EXPECT_FALSE(commit(filter, "App.bsky.feed.post"));
}

TEST(EventFilter, PrefixMatchesCollectionsStartingWithIt) {
  const EventFilter filter = filter_for("wantedCollections=app.bsky.feed.*");
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post"));
  EXPECT_TRUE(commit(filter, "app.bsky.feed.like"));
  EXPECT_TRUE(commit(filter, "app.bsky.feed.generator.sub"));
  EXPECT_FALSE(commit(filter, "app.bsky.feedx.post"));
  EXPECT_FALSE(commit(filter, "app.bsky.graph.follow"));
}

TEST(EventFilter, PrefixDoesNotMatchItsOwnHead) {
  const EventFilter filter = filter_for("wantedCollections=app.bsky.feed.post.*");
  EXPECT_FALSE(commit(filter, "app.bsky.feed.post"));
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post.draft"));
}

TEST(EventFilter, ExactAndPrefixCombineWithOr) {
  const EventFilter filter =
      filter_for("wantedCollections=app.bsky.feed.post&wantedCollections=app.bsky.graph.*");
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post"));
  EXPECT_TRUE(commit(filter, "app.bsky.graph.follow"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.like"));
}

TEST(EventFilter, IdentityAndAccountPassEveryCollectionFilter) {
  const EventFilter filter = filter_for("wantedCollections=app.bsky.feed.post");
  EXPECT_TRUE(filter.matches(EventKind::identity, "did:plc:alice", ""));
  EXPECT_TRUE(filter.matches(EventKind::account, "did:plc:alice", ""));
  // Even if one carried a collection, only commits are filtered by collection.
  EXPECT_TRUE(filter.matches(EventKind::identity, "did:plc:alice", "x.y.z"));
}

TEST(EventFilter, CommitWithAnEmptyCollectionPassesTheCollectionFilter) {
  EXPECT_TRUE(commit(filter_for("wantedCollections=app.bsky.feed.post"), ""));
}

TEST(EventFilter, DidFilterAppliesToEveryKind) {
  const EventFilter filter = filter_for("wantedDids=did:plc:alice&wantedDids=did:web:bob.test");
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post", "did:plc:alice"));
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post", "did:web:bob.test"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.post", "did:plc:carol"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.post", "did:plc:alicE"));
  EXPECT_TRUE(filter.matches(EventKind::identity, "did:plc:alice", ""));
  EXPECT_FALSE(filter.matches(EventKind::identity, "did:plc:carol", ""));
  EXPECT_TRUE(filter.matches(EventKind::account, "did:web:bob.test", ""));
  EXPECT_FALSE(filter.matches(EventKind::account, "did:plc:carol", ""));
}

TEST(EventFilter, DidAndCollectionFiltersCombineWithAnd) {
  const EventFilter filter =
      filter_for("wantedDids=did:plc:alice&wantedCollections=app.bsky.feed.post");
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post", "did:plc:alice"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.like", "did:plc:alice"));
  EXPECT_FALSE(commit(filter, "app.bsky.feed.post", "did:plc:bob"));
}

TEST(EventFilter, LargeSetsUseTheHashPathWithTheSameAnswers) {
  SubscriberFilters filters;
  std::vector<std::string> dids;
  for (int i = 0; i < 1000; ++i) dids.push_back("did:plc:u" + std::to_string(i));
  filters.dids = DidSet(dids);
  for (int i = 0; i < 90; ++i) filters.collections.push_back("com.example.c" + std::to_string(i));
  filters.collection_prefixes = {"app.bsky."};
  const EventFilter filter(filters);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(filter.matches(EventKind::account, "did:plc:u" + std::to_string(i), ""));
  }
  EXPECT_FALSE(filter.matches(EventKind::account, "did:plc:u1000", ""));
  EXPECT_TRUE(commit(filter, "com.example.c89", "did:plc:u5"));
  EXPECT_FALSE(commit(filter, "com.example.c90", "did:plc:u5"));
  EXPECT_TRUE(commit(filter, "app.bsky.feed.post", "did:plc:u5"));
}

TEST(EventFilter, MatchesAnEventView) {
  const EventFilter filter = filter_for("wantedCollections=app.bsky.feed.post");
  proto::EventView event;
  event.kind = EventKind::commit;
  event.did = "did:plc:alice";
  event.collection = "app.bsky.feed.post";
  EXPECT_TRUE(filter.matches(event));
  event.collection = "app.bsky.feed.like";
  EXPECT_FALSE(filter.matches(event));
}

TEST(EventFilter, MaxMessageSizeSkipsLargerSentPayloadsOnly) {
  const EventFilter filter = filter_for("maxMessageSizeBytes=1000");
  EXPECT_EQ(filter.max_message_size_bytes(), 1000u);
  EXPECT_TRUE(filter.accepts_size(0));
  EXPECT_TRUE(filter.accepts_size(1000));
  EXPECT_FALSE(filter.accepts_size(1001));
  EXPECT_TRUE(filter.matches_every_event()) << "the size limit is not an event filter";
  EXPECT_TRUE(filter_for("maxMessageSizeBytes=0").accepts_size(std::size_t{1} << 40));
  EXPECT_FALSE(filter_for("maxMessageSizeBytes=4294967295").accepts_size(4294967296u));
}

TEST(EventFilter, FollowsAnOptionsUpdate) {
  SubscriberOptions options =
      parse_subscribe_request("wantedCollections=app.bsky.feed.post", std::nullopt).options.value();
  const UpdateResult update = parse_client_message(
      R"({"type":"options_update","payload":{"wantedCollections":["app.bsky.graph.*"],)"
      R"("maxMessageSizeBytes":10}})");
  ASSERT_EQ(update.action, UpdateAction::update);
  apply_update(options, update.update);
  const EventFilter filter(options);
  EXPECT_FALSE(commit(filter, "app.bsky.feed.post"));
  EXPECT_TRUE(commit(filter, "app.bsky.graph.follow"));
  EXPECT_FALSE(filter.accepts_size(11));
}

TEST(ReplayFilters, CarryExactCollectionsPrefixesWithoutStarAndDids) {
  const ParseResult parsed = parse_subscribe_request(
      "wantedCollections=app.bsky.feed.post&wantedCollections=app.bsky.graph.*"
      "&wantedDids=did:plc:alice&cursor=5&compress=true",
      std::nullopt);
  ASSERT_TRUE(parsed.ok());
  const proto::ReplayRequest request = to_replay_filters(parsed.options->filters);
  EXPECT_EQ(request.collections, std::vector<std::string>{"app.bsky.feed.post"});
  EXPECT_EQ(request.collection_prefixes, std::vector<std::string>{"app.bsky.graph."});
  EXPECT_EQ(request.dids, std::vector<std::string>{"did:plc:alice"});
  EXPECT_EQ(request.request_id, 0u) << "everything else is the caller's";
  EXPECT_EQ(request.start_time_us, 0);
  EXPECT_FALSE(request.want_zstd);
}

TEST(ReplayFilters, TheLargestAcceptedFiltersPassProtoValidation) {
  std::string query;
  for (int i = 0; i < 99; ++i) query += "wantedCollections=com.example.c" + std::to_string(i) + "&";
  query += "wantedCollections=app.*";
  for (int i = 0; i < 10'000; ++i) query += "&wantedDids=did:plc:u" + std::to_string(i);
  const ParseResult parsed = parse_subscribe_request(query, std::nullopt);
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  proto::ReplayRequest request = to_replay_filters(parsed.options->filters);
  request.request_id = 1;
  request.start_time_us = 1;
  request.max_events = 100;
  request.max_bytes = 1 << 20;
  EXPECT_EQ(request.collections.size() + request.collection_prefixes.size(),
            proto::kMaxCollectionPatterns);
  EXPECT_EQ(request.dids.size(), proto::kMaxWantedDids);
  EXPECT_EQ(proto::validate(request), std::nullopt);
}

}  // namespace
}  // namespace jetstream::fanout
