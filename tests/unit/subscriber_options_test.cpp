// Contracts of services/fanout/subscriber_options: the `/subscribe` query string (API.md
// "GET /subscribe", v1-spec §2-§3), error texts byte for byte.
#include "services/fanout/subscriber_options.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "services/fanout/query_string.hpp"

namespace jetstream::fanout {
namespace {

// ---- Helpers.

SubscriberOptions parse_ok(std::string_view query,
                           std::optional<std::string_view> socket_encoding = std::nullopt) {
  ParseResult result = parse_subscribe_request(query, socket_encoding);
  EXPECT_TRUE(result.ok()) << "query " << query << " -> " << result.error;
  EXPECT_TRUE(result.error.empty());
  return result.options.value_or(SubscriberOptions{});
}

std::string parse_error(std::string_view query) {
  ParseResult result = parse_subscribe_request(query, std::nullopt);
  EXPECT_FALSE(result.ok()) << "query " << query << " was accepted";
  EXPECT_FALSE(result.options.has_value());
  return result.error;
}

std::vector<std::string> strings(std::initializer_list<std::string_view> values) {
  return {values.begin(), values.end()};
}

/// `count` distinct valid NSIDs: `com.example.cN` with N spelled in letters (the name segment
/// must start with a letter; digits after it are fine).
std::string nsid(std::size_t n) { return "com.example.c" + std::to_string(n); }
std::string did(std::size_t n) { return "did:plc:user" + std::to_string(n); }

std::string repeat_param(std::string_view key, std::size_t count,
                         std::string (*value)(std::size_t)) {
  std::string query;
  for (std::size_t i = 0; i < count; ++i) {
    if (!query.empty()) query += '&';
    query.append(key).append("=").append(value(i));
  }
  return query;
}

// ---- Query bounds (query_string.hpp) answer 400 before anything else is read.

TEST(SubscribeQueryBounds, AreAnsweredWithTheirTexts) {
  const std::string too_long = "a=" + std::string(kMaxQueryBytes - 1, 'x');
  EXPECT_EQ(parse_error(too_long), "invalid query: longer than 1048576 bytes");
  std::string too_many;
  for (std::size_t i = 0; i <= kMaxQueryPairs; ++i) too_many += "a=1&";
  EXPECT_EQ(parse_error(too_many), "invalid query: more than 20000 parameters");
}

TEST(SubscribeQueryBounds, AreCheckedBeforeEveryOtherParameter) {
  std::string query = "cursor=x&wantedCollections=bad&";
  for (std::size_t i = 0; i < kMaxQueryPairs; ++i) query += "a&";
  EXPECT_EQ(parse_error(query), kTooManyQueryPairsText);
}

// ---- cursor.

TEST(SubscribeCursor, AbsentOrEmptyMeansLive) {
  EXPECT_EQ(parse_ok("").cursor, std::nullopt);
  EXPECT_EQ(parse_ok("cursor=").cursor, std::nullopt);
  EXPECT_EQ(parse_ok("cursor").cursor, std::nullopt);
}

TEST(SubscribeCursor, ParsesSignedDecimalLikeGoParseInt) {
  EXPECT_EQ(parse_ok("cursor=1725911162329308").cursor, 1725911162329308);
  EXPECT_EQ(parse_ok("cursor=0").cursor, 0);
  EXPECT_EQ(parse_ok("cursor=-5").cursor, -5);
  EXPECT_EQ(parse_ok("cursor=%2B5").cursor, 5) << "an escaped + is a sign";
}

TEST(SubscribeCursor, RejectsAnythingElseWithTheRawDecodedValue) {
  EXPECT_EQ(parse_error("cursor=+5"), "invalid cursor:  5") << "a raw + decodes to a space";
  EXPECT_EQ(parse_error("cursor=%205"), "invalid cursor:  5");
  EXPECT_EQ(parse_error("cursor=5.0"), "invalid cursor: 5.0");
  EXPECT_EQ(parse_error("cursor=1e6"), "invalid cursor: 1e6");
  EXPECT_EQ(parse_error("cursor=abc"), "invalid cursor: abc");
  EXPECT_EQ(parse_error("cursor=9223372036854775808"), "invalid cursor: 9223372036854775808");
  EXPECT_EQ(parse_error("cursor=%2F"), "invalid cursor: /");
}

TEST(SubscribeCursor, OnlyTheFirstValueCounts) {
  EXPECT_EQ(parse_ok("cursor=7&cursor=abc").cursor, 7);
  EXPECT_EQ(parse_ok("cursor=&cursor=abc").cursor, std::nullopt);
  EXPECT_EQ(parse_error("cursor=abc&cursor=7"), "invalid cursor: abc");
}

TEST(SubscribeCursor, IsCheckedBeforeTheFilters) {
  EXPECT_EQ(parse_error("wantedCollections=bad&wantedDids=bad&cursor=x"), "invalid cursor: x");
}

// ---- wantedCollections.

TEST(SubscribeCollections, AbsentMeansEveryCollection) {
  const SubscriberOptions options = parse_ok("");
  EXPECT_TRUE(options.filters.wants_all_collections());
  EXPECT_TRUE(options.filters.wants_all_dids());
}

TEST(SubscribeCollections, SplitsExactNsidsAndPrefixesKeepingTheDotOfPrefixes) {
  const SubscriberOptions options = parse_ok(
      "wantedCollections=app.bsky.feed.post&wantedCollections=app.bsky.graph.*"
      "&wantedCollections=app.*&wantedCollections=app.bsky.feed.like");
  EXPECT_EQ(options.filters.collections, strings({"app.bsky.feed.post", "app.bsky.feed.like"}));
  EXPECT_EQ(options.filters.collection_prefixes, strings({"app.bsky.graph.", "app."}));
}

TEST(SubscribeCollections, RepeatedValuesAreDeduplicatedInFirstSeenOrder) {
  const SubscriberOptions options = parse_ok(
      "wantedCollections=b.b.b&wantedCollections=a.a.a&wantedCollections=b.b.b"
      "&wantedCollections=x.*&wantedCollections=x.*");
  EXPECT_EQ(options.filters.collections, strings({"b.b.b", "a.a.a"}));
  EXPECT_EQ(options.filters.collection_prefixes, strings({"x."}));
}

TEST(SubscribeCollections, InvalidValueGetsTheV1TextWithTheRawValue) {
  EXPECT_EQ(parse_error("wantedCollections=app.bsky.graph.fo*"),
            "invalid subscriber options: invalid collection: app.bsky.graph.fo*");
  EXPECT_EQ(parse_error("wantedCollections=a.b.c,d.e.f"),
            "invalid subscriber options: invalid collection: a.b.c,d.e.f");
  EXPECT_EQ(parse_error("wantedCollections=app.bsky"),
            "invalid subscriber options: invalid collection: app.bsky");
  EXPECT_EQ(parse_error("wantedCollections="), "invalid subscriber options: invalid collection: ");
  EXPECT_EQ(parse_error("wantedCollections=app%20bsky.feed.post"),
            "invalid subscriber options: invalid collection: app bsky.feed.post");
}

TEST(SubscribeCollections, PrefixHeadMustBeNsidAuthoritySegmentsUnlikeV1) {
  EXPECT_EQ(parse_error("wantedCollections=.*"),
            "invalid subscriber options: invalid collection: .*");
  EXPECT_EQ(parse_error("wantedCollections=*"),
            "invalid subscriber options: invalid collection: *");
  EXPECT_EQ(parse_error("wantedCollections=app..*"),
            "invalid subscriber options: invalid collection: app..*");
}

TEST(SubscribeCollections, TheFirstInvalidValueIsReported) {
  EXPECT_EQ(parse_error("wantedCollections=a.b.c&wantedCollections=bad1&wantedCollections=bad2"),
            "invalid subscriber options: invalid collection: bad1");
}

TEST(SubscribeCollections, AcceptsExactly100DistinctPatterns) {
  std::string query = repeat_param("wantedCollections", 99, nsid) + "&wantedCollections=app.*";
  const SubscriberOptions options = parse_ok(query);
  EXPECT_EQ(options.filters.collections.size(), 99u);
  EXPECT_EQ(options.filters.collection_prefixes.size(), 1u);
}

TEST(SubscribeCollections, Rejects101DistinctPatterns) {
  EXPECT_EQ(parse_error(repeat_param("wantedCollections", 101, nsid)),
            "invalid subscriber options: too many wanted collections");
  EXPECT_EQ(parse_error(repeat_param("wantedCollections", 100, nsid) + "&wantedCollections=x.*"),
            "invalid subscriber options: too many wanted collections");
}

TEST(SubscribeCollections, RepeatsDoNotCountTowardsTheLimitExactOrPrefix) {
  std::string query;
  for (int i = 0; i < 150; ++i) query += "wantedCollections=a.b.c&wantedCollections=app.bsky.*&";
  const SubscriberOptions options = parse_ok(query);
  EXPECT_EQ(options.filters.collections, strings({"a.b.c"}));
  EXPECT_EQ(options.filters.collection_prefixes, strings({"app.bsky."}));
}

TEST(SubscribeCollections, AnInvalidValueAfterTheLimitStillWins) {
  EXPECT_EQ(parse_error(repeat_param("wantedCollections", 150, nsid) + "&wantedCollections=bad"),
            "invalid subscriber options: invalid collection: bad");
}

TEST(SubscribeCollections, KeysAreCaseSensitive) {
  EXPECT_TRUE(parse_ok("wantedcollections=bad&WANTEDDIDS=bad").filters.wants_all_collections());
}

// ---- wantedDids.

TEST(SubscribeDids, KeepsDistinctDidsInFirstSeenOrder) {
  const SubscriberOptions options =
      parse_ok("wantedDids=did:plc:b&wantedDids=did%3Aplc%3Aa&wantedDids=did:plc:b");
  EXPECT_EQ(options.filters.dids.to_vector(), strings({"did:plc:b", "did:plc:a"}));
}

TEST(SubscribeDids, InvalidDidGetsTheBareText) {
  EXPECT_EQ(parse_error("wantedDids=did:plc:ok&wantedDids=not-a-did"),
            "invalid subscriber options");
  EXPECT_EQ(parse_error("wantedDids="), "invalid subscriber options");
  EXPECT_EQ(parse_error("wantedDids=did:plc:a,did:plc:b"), "invalid subscriber options");
}

TEST(SubscribeDids, Accepts10000DistinctAndRejects10001) {
  EXPECT_EQ(parse_ok(repeat_param("wantedDids", 10'000, did)).filters.dids.size(), 10'000u);
  EXPECT_EQ(parse_error(repeat_param("wantedDids", 10'001, did)),
            "invalid subscriber options: too many wanted DIDs");
}

TEST(SubscribeDids, DuplicatesDoNotCountTowardsTheLimit) {
  std::string query = repeat_param("wantedDids", 10'000, did);
  query += "&" + repeat_param("wantedDids", 5'000, did);
  EXPECT_EQ(parse_ok(query).filters.dids.size(), 10'000u);
}

TEST(SubscribeErrors, AreCheckedInV1Order) {
  const std::string too_many_collections = repeat_param("wantedCollections", 101, nsid);
  const std::string too_many_dids = repeat_param("wantedDids", 10'001, did);
  // collections (validity) -> DIDs (validity) -> DID count -> collection count.
  EXPECT_EQ(parse_error(too_many_dids + "&wantedDids=bad&wantedCollections=bad"),
            "invalid subscriber options: invalid collection: bad");
  EXPECT_EQ(parse_error(too_many_collections + "&" + too_many_dids + "&wantedDids=bad"),
            "invalid subscriber options");
  EXPECT_EQ(parse_error(too_many_collections + "&" + too_many_dids),
            "invalid subscriber options: too many wanted DIDs");
  EXPECT_EQ(parse_error(too_many_collections + "&wantedDids=did:plc:a"),
            "invalid subscriber options: too many wanted collections");
}

// ---- maxMessageSizeBytes.

TEST(SubscribeMaxMessageSize, PositiveIntegersUpToUint32MaxAreTheLimit) {
  EXPECT_EQ(parse_ok("maxMessageSizeBytes=1000").max_message_size_bytes, 1000u);
  EXPECT_EQ(parse_ok("maxMessageSizeBytes=1").max_message_size_bytes, 1u);
  EXPECT_EQ(parse_ok("maxMessageSizeBytes=%2B100").max_message_size_bytes, 100u);
  EXPECT_EQ(parse_ok("maxMessageSizeBytes=4294967295").max_message_size_bytes, 4294967295u);
}

TEST(SubscribeMaxMessageSize, EverythingElseMeansNoLimitAndIsNeverAnError) {
  for (const char* value :
       {"", "0", "-1", "-4294967297", "abc", "1e3", "1.5", "+100" /* space */, "4294967296",
        "4294967297" /* v1 wrapped to 1 */, "99999999999999999999"}) {
    EXPECT_EQ(parse_ok(std::string("maxMessageSizeBytes=") + value).max_message_size_bytes, 0u)
        << value;
  }
  EXPECT_EQ(parse_ok("").max_message_size_bytes, 0u);
}

TEST(SubscribeMaxMessageSize, OnlyTheFirstValueCounts) {
  EXPECT_EQ(parse_ok("maxMessageSizeBytes=10&maxMessageSizeBytes=20").max_message_size_bytes, 10u);
  EXPECT_EQ(parse_ok("maxMessageSizeBytes=x&maxMessageSizeBytes=20").max_message_size_bytes, 0u);
}

// ---- compress, Socket-Encoding, requireHello, unknown parameters.

TEST(SubscribeCompress, OnlyExactlyTrueTurnsItOn) {
  EXPECT_TRUE(parse_ok("compress=true").compress);
  EXPECT_FALSE(parse_ok("").compress);
  for (const char* value : {"TRUE", "True", "1", "yes", "true ", ""}) {
    EXPECT_FALSE(parse_ok(std::string("compress=") + value).compress) << value;
  }
  EXPECT_FALSE(parse_ok("compress=false&compress=true").compress) << "first value only";
}

TEST(SubscribeCompress, SocketEncodingHeaderContainingZstdTurnsItOn) {
  EXPECT_TRUE(parse_ok("", "zstd").compress);
  EXPECT_TRUE(parse_ok("", "gzip, zstd").compress);
  EXPECT_TRUE(parse_ok("compress=false", "zstd").compress);
  EXPECT_FALSE(parse_ok("", "ZSTD").compress) << "case-sensitive substring, as v1";
  EXPECT_FALSE(parse_ok("", "gzip").compress);
  EXPECT_FALSE(parse_ok("", "").compress);
}

TEST(SubscribeRequireHello, OnlyExactlyTrueTurnsItOn) {
  EXPECT_TRUE(parse_ok("requireHello=true").require_hello);
  EXPECT_FALSE(parse_ok("requireHello=True").require_hello);
  EXPECT_FALSE(parse_ok("requireHello=1").require_hello);
  EXPECT_FALSE(parse_ok("").require_hello);
}

TEST(SubscribeRequest, IgnoresUnknownParametersAndReadsEverythingTogether) {
  const SubscriberOptions options = parse_ok(
      "foo=bar&wantedCollections=app.bsky.feed.post&wantedDids=did:plc:abc&cursor=123"
      "&maxMessageSizeBytes=4096&compress=true&requireHello=true&maxSize=1&bar");
  SubscriberOptions expected;
  expected.filters.collections = {"app.bsky.feed.post"};
  expected.filters.dids = DidSet({"did:plc:abc"});
  expected.cursor = 123;
  expected.max_message_size_bytes = 4096;
  expected.compress = true;
  expected.require_hello = true;
  EXPECT_EQ(options, expected);
}

// ---- snapshot (API.md "State").

syntax::CollectionSet compacted(std::string_view text) {
  std::string error;
  return syntax::CollectionSet::parse(text, error).value();
}

TEST(SubscribeSnapshot, OnlyExactlyTrueAsksForIt) {
  EXPECT_TRUE(parse_ok("snapshot=true").snapshot);
  EXPECT_FALSE(parse_ok("snapshot=1").snapshot);
  EXPECT_FALSE(parse_ok("").snapshot);
}

TEST(SubscribeSnapshot, CollectionsOutsideTheCompactedSetGetTheApiText) {
  SubscriberOptions options = parse_ok(
      "snapshot=true&wantedCollections=app.bsky.feed.post&"
      "wantedCollections=chat.bsky.*");
  EXPECT_EQ(apply_snapshot_collections(options.filters, compacted("app.bsky.*")),
            "snapshot unavailable for collection: chat.bsky.*");
  EXPECT_EQ(apply_snapshot_collections(options.filters, compacted("")),
            "snapshot unavailable: no compacted collections configured");
  SubscriberOptions narrower = parse_ok("snapshot=true&wantedCollections=app.bsky.feed.*");
  EXPECT_EQ(apply_snapshot_collections(narrower.filters, compacted("app.bsky.*")), "");
  EXPECT_EQ(narrower.filters.collection_prefixes, strings({"app.bsky.feed."})) << "kept as asked";
}

TEST(SubscribeSnapshot, NoCollectionMeansTheCompactedOnes) {
  SubscriberOptions options = parse_ok("snapshot=true");
  EXPECT_EQ(apply_snapshot_collections(options.filters,
                                       compacted("app.bsky.*,chat.bsky.actor.declaration")),
            "");
  EXPECT_EQ(options.filters.collections, strings({"chat.bsky.actor.declaration"}));
  EXPECT_EQ(options.filters.collection_prefixes, strings({"app.bsky."}));
}

TEST(SubscribeSnapshot, ACollectionStillBeingBuiltIsUnavailableForNowNotForGood) {
  const auto set = compacted("app.bsky.*,chat.bsky.actor.declaration");
  const auto building = compacted("chat.bsky.actor.declaration");
  SubscriberOptions everything = parse_ok("snapshot=true");
  ASSERT_EQ(apply_snapshot_collections(everything.filters, set), "");
  EXPECT_EQ(snapshot_being_built(everything.filters, building),
            "snapshot unavailable while the state of chat.bsky.actor.declaration is being built "
            "from the log; try again later");
  SubscriberOptions wide = parse_ok("snapshot=true&wantedCollections=chat.*");
  ASSERT_EQ(apply_snapshot_collections(wide.filters, compacted("chat.*")), "");
  EXPECT_TRUE(snapshot_being_built(wide.filters, building)) << "a prefix over a building name";
  SubscriberOptions posts = parse_ok("snapshot=true&wantedCollections=app.bsky.feed.post");
  ASSERT_EQ(apply_snapshot_collections(posts.filters, set), "");
  EXPECT_EQ(snapshot_being_built(posts.filters, building), std::nullopt) << "complete already";
  EXPECT_EQ(snapshot_being_built(everything.filters, compacted("")), std::nullopt);
}

}  // namespace
}  // namespace jetstream::fanout
