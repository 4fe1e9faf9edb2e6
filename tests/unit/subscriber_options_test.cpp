// Contracts of services/fanout/subscriber_options: the `/subscribe` query string and the
// `options_update` client messages (API.md "GET /subscribe", v1-spec §2-§4), error texts byte
// for byte.
#include "services/fanout/subscriber_options.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/text/utf8.hpp"
#include "common/websocket/codec.hpp"

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

// ---- Query strings (Go URL.Query()).

TEST(QueryString, SplitsOnAmpersandAndKeepsRepeatedKeysInOrder) {
  const QueryParseResult result = parse_query("a=1&b=2&a=3&c");
  ASSERT_TRUE(result.ok());
  const std::vector<QueryParam> expected = {{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", ""}};
  EXPECT_EQ(result.params, expected);
}

TEST(QueryString, NeverSplitsValuesOnCommas) {
  const QueryParseResult result = parse_query("wantedCollections=a.b.c,d.e.f");
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result.params.size(), 1u);
  EXPECT_EQ(result.params[0].value, "a.b.c,d.e.f");
}

TEST(QueryString, KeepsEverythingAfterTheFirstEqualsSignInTheValue) {
  const QueryParseResult result = parse_query("a=b=c");
  ASSERT_EQ(result.params.size(), 1u);
  EXPECT_EQ(result.params[0], (QueryParam{"a", "b=c"}));
}

TEST(QueryString, DecodesPlusAsSpaceAndPercentEscapesLikeGo) {
  const QueryParseResult result = parse_query("a=x+y&b=%2F%2f%41%20&c=%2B1&d=caf%C3%A9&e=%00");
  ASSERT_TRUE(result.ok());
  const std::vector<QueryParam> expected = {
      {"a", "x y"}, {"b", "//A "}, {"c", "+1"}, {"d", "caf\xC3\xA9"}, {"e", std::string(1, '\0')}};
  EXPECT_EQ(result.params, expected);
}

TEST(QueryString, DecodesKeysToo) {
  const QueryParseResult result = parse_query("wanted%43ollections=x&a+b=1");
  const std::vector<QueryParam> expected = {{"wantedCollections", "x"}, {"a b", "1"}};
  EXPECT_EQ(result.params, expected);
}

TEST(QueryString, KeepsRawBytesThatAreNotEscapes) {
  const QueryParseResult result = parse_query("a=caf\xC3\xA9 /?:@");
  ASSERT_EQ(result.params.size(), 1u);
  EXPECT_EQ(result.params[0].value, "caf\xC3\xA9 /?:@");
}

TEST(QueryString, BadPercentEscapeDropsOnlyThatPair) {
  for (const char* bad : {"a=%zz", "a=%4", "a=%", "a=1%", "a=%g0", "%zz=1", "a%=1"}) {
    const std::string query = std::string("x=1&") + bad + "&y=2";
    const QueryParseResult result = parse_query(query);
    ASSERT_TRUE(result.ok()) << query;
    const std::vector<QueryParam> expected = {{"x", "1"}, {"y", "2"}};
    EXPECT_EQ(result.params, expected) << query;
  }
}

TEST(QueryString, SemicolonIsNotASeparatorAndDropsItsPair) {
  const QueryParseResult result = parse_query("a=1;b=2&c=3&d=%3B");
  const std::vector<QueryParam> expected = {{"c", "3"}, {"d", ";"}};
  EXPECT_EQ(result.params, expected);
}

TEST(QueryString, SkipsEmptyPairs) {
  const QueryParseResult result = parse_query("&&a=1&&&b=&");
  const std::vector<QueryParam> expected = {{"a", "1"}, {"b", ""}};
  EXPECT_EQ(result.params, expected);
  EXPECT_TRUE(parse_query("").params.empty());
}

TEST(QueryString, AcceptsUpTo1MiBAndRejectsLongerWithA400Text) {
  std::string query = "a=" + std::string(kMaxQueryBytes - 2, 'x');
  EXPECT_TRUE(parse_query(query).ok());
  query += 'x';
  const QueryParseResult result = parse_query(query);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(result.params.empty());
  EXPECT_EQ(result.error, "invalid query: longer than 1048576 bytes");
  EXPECT_EQ(parse_error(query), "invalid query: longer than 1048576 bytes");
}

TEST(QueryString, AcceptsUpTo20000PairsAndRejectsMoreWithA400Text) {
  std::string query;
  for (std::size_t i = 0; i < kMaxQueryPairs; ++i) query += "a=1&&";
  EXPECT_TRUE(parse_query(query).ok()) << "empty pairs are not counted";
  EXPECT_EQ(parse_query(query).params.size(), kMaxQueryPairs);
  query += "b";
  const QueryParseResult result = parse_query(query);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.error, "invalid query: more than 20000 parameters");
  EXPECT_EQ(parse_error(query), "invalid query: more than 20000 parameters");
}

TEST(QueryString, BoundsAreCheckedBeforeEveryOtherParameter) {
  std::string query = "cursor=x&wantedCollections=bad&";
  for (std::size_t i = 0; i < kMaxQueryPairs; ++i) query += "a&";
  EXPECT_EQ(parse_error(query), kTooManyQueryPairsText);
}

// ---- parse_go_int64 (strconv.ParseInt(s, 10, 64)).

TEST(GoInt64, AcceptsAnOptionalSignThenDigitsOnly) {
  EXPECT_EQ(parse_go_int64("0"), 0);
  EXPECT_EQ(parse_go_int64("+5"), 5);
  EXPECT_EQ(parse_go_int64("-5"), -5);
  EXPECT_EQ(parse_go_int64("-0"), 0);
  EXPECT_EQ(parse_go_int64("007"), 7);
  EXPECT_EQ(parse_go_int64("1725911162329308"), 1725911162329308);
  EXPECT_EQ(parse_go_int64("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(parse_go_int64("-9223372036854775808"), INT64_MIN);
}

TEST(GoInt64, RejectsSpacesDecimalsExponentsUnderscoresAndOverflow) {
  for (const char* bad : {"", "+", "-", " 5", "5 ", "5.0", "1e6", "1_000", "0x10", "+-5", "--5",
                          "9223372036854775808", "-9223372036854775809", "99999999999999999999999",
                          "\xEF\xBC\x95" /* fullwidth 5 */}) {
    EXPECT_EQ(parse_go_int64(bad), std::nullopt) << bad;
  }
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

// ---- options_update messages.

UpdateResult message(std::string_view text) { return parse_client_message(text); }

OptionsUpdate update_ok(std::string_view text) {
  UpdateResult result = parse_client_message(text);
  EXPECT_EQ(result.action, UpdateAction::update) << text << " -> " << result.close_reason;
  EXPECT_TRUE(result.close_reason.empty());
  return result.update;
}

std::string close_reason(std::string_view text) {
  UpdateResult result = parse_client_message(text);
  EXPECT_EQ(result.action, UpdateAction::close) << text;
  EXPECT_LE(result.close_reason.size(), websocket::kMaxCloseReasonBytes) << result.close_reason;
  EXPECT_TRUE(jetstream::text::is_valid_utf8(result.close_reason));
  return result.close_reason;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

TEST(OptionsUpdate, ClientMessageLimitIsTenMillionBytes) {
  EXPECT_EQ(kMaxClientMessageBytes, 10'000'000u);
}

TEST(OptionsUpdate, ValidUpdateCarriesFiltersAndMaxSize) {
  const OptionsUpdate update =
      update_ok(R"({"type":"options_update","payload":{"wantedCollections":["app.bsky.feed.post",)"
                R"("app.bsky.graph.*","app.bsky.feed.post"],"wantedDids":["did:plc:abc"],)"
                R"("maxMessageSizeBytes":1000}})");
  EXPECT_EQ(update.filters.collections, strings({"app.bsky.feed.post"}));
  EXPECT_EQ(update.filters.collection_prefixes, strings({"app.bsky.graph."}));
  EXPECT_EQ(update.filters.dids.to_vector(), strings({"did:plc:abc"}));
  EXPECT_EQ(update.max_message_size_bytes, 1000u);
}

TEST(OptionsUpdate, NullOrEmptyPayloadMeansEverythingAndKeepsTheSizeLimit) {
  for (const char* text :
       {R"({"type":"options_update","payload":null})", R"({"type":"options_update","payload":{}})",
        R"({"type":"options_update","payload":{"wantedCollections":null,)"
        R"("wantedDids":[],"maxMessageSizeBytes":null}})",
        " {\"payload\" : null ,\n\t\"type\":\"options_update\"}\r\n"}) {
    const OptionsUpdate update = update_ok(text);
    EXPECT_TRUE(update.filters.wants_all_collections()) << text;
    EXPECT_TRUE(update.filters.wants_all_dids()) << text;
    EXPECT_EQ(update.max_message_size_bytes, std::nullopt) << text;
  }
}

TEST(OptionsUpdate, KeysMatchCaseInsensitivelyLikeGoEncodingJson) {
  const OptionsUpdate update =
      update_ok(R"({"TYPE":"options_update","PayLoad":{"WANTEDCOLLECTIONS":["a.b.c"],)"
                R"("wanteddids":["did:plc:x"],"MaxMessageSizeBYTES":7}})");
  EXPECT_EQ(update.filters.collections, strings({"a.b.c"}));
  EXPECT_EQ(update.filters.dids.to_vector(), strings({"did:plc:x"}));
  EXPECT_EQ(update.max_message_size_bytes, 7u);
}

TEST(OptionsUpdate, KeysMatchThroughGoUnicodeFoldingOfLongSAndEscapes) {
  // U+017F folds to `s` in Go's key matching; `\u0065` is just an `e`.
  const OptionsUpdate update = update_ok(
      "{\"typ\\u0065\":\"options_update\",\"payload\":{\"wantedDid\xC5\xBF\":[\"did:plc:x\"]}}");
  EXPECT_EQ(update.filters.dids.to_vector(), strings({"did:plc:x"}));
}

TEST(OptionsUpdate, TheTypeValueIsCaseSensitive) {
  EXPECT_EQ(message(R"({"type":"OPTIONS_UPDATE","payload":{"wantedCollections":["bad"]}})").action,
            UpdateAction::ignored);
}

TEST(OptionsUpdate, UnknownEmptyOrMissingTypeIsIgnored) {
  for (const char* text :
       {R"({"type":"ping"})", R"({"type":""})", R"({})", R"({"type":null})", "null",
        R"({"payload":{"wantedCollections":["bad"]}})", R"({"type":"hello","payload":5})",
        R"({"type":"hello","payload":{"wantedDids":7}})"}) {
    const UpdateResult result = message(text);
    EXPECT_EQ(result.action, UpdateAction::ignored) << text;
    EXPECT_TRUE(result.close_reason.empty()) << text;
  }
}

TEST(OptionsUpdate, UnknownKeysAreIgnoredAtAnyDepth) {
  const OptionsUpdate update = update_ok(
      R"({"id":1,"type":"options_update","extra":{"a":[1,{"b":null}]},)"
      R"("payload":{"cursor":5,"wantedCollections":["a.b.c"],"x":{"wantedDids":["bad"]}}})");
  EXPECT_EQ(update.filters.collections, strings({"a.b.c"}));
  EXPECT_TRUE(update.filters.wants_all_dids());
}

TEST(OptionsUpdate, TheLastOfRepeatedKeysWins) {
  OptionsUpdate update =
      update_ok(R"({"type":"ping","type":"options_update","payload":{"wantedCollections":["bad"]},)"
                R"("payload":{"wantedCollections":["x.y.z"],"wantedCollections":["a.b.c"]}})");
  EXPECT_EQ(update.filters.collections, strings({"a.b.c"}));
  update = update_ok(
      R"({"type":"options_update","payload":{"wantedDids":["did:plc:a"],"wantedDids":null,)"
      R"("maxMessageSizeBytes":5,"maxMessageSizeBytes":null}})");
  EXPECT_TRUE(update.filters.wants_all_dids()) << "null resets the list";
  EXPECT_EQ(update.max_message_size_bytes, 5u) << "null leaves an int as it was";
  EXPECT_EQ(message(R"({"type":"options_update","type":"ping"})").action, UpdateAction::ignored);
}

TEST(OptionsUpdate, MaxMessageSizeFollowsTheQueryRules) {
  const auto max_of = [](std::string_view value) {
    return update_ok(std::string(R"({"type":"options_update","payload":{"maxMessageSizeBytes":)") +
                     std::string(value) + "}}")
        .max_message_size_bytes;
  };
  EXPECT_EQ(max_of("500"), 500u);
  EXPECT_EQ(max_of("0"), 0u);
  EXPECT_EQ(max_of("-0"), 0u);
  EXPECT_EQ(max_of("-5"), 0u);
  EXPECT_EQ(max_of("4294967295"), 4294967295u);
  EXPECT_EQ(max_of("4294967296"), 0u);
  EXPECT_EQ(max_of("9223372036854775807"), 0u);
}

TEST(OptionsUpdate, InvalidJsonClosesWithTheSourcedMessageReason) {
  EXPECT_EQ(close_reason(""),
            "failed to unmarshal subscriber sourced message: unexpected end of JSON input");
  EXPECT_EQ(close_reason("   "),
            "failed to unmarshal subscriber sourced message: unexpected end of JSON input");
  EXPECT_EQ(close_reason(R"({"type":)"),
            "failed to unmarshal subscriber sourced message: unexpected end of JSON input");
  EXPECT_EQ(close_reason(R"({"type":"options_update")"),
            "failed to unmarshal subscriber sourced message: unexpected end of JSON input");
  for (const char* text :
       {"not json", "{'type':'x'}", R"({"type":"x"} {})", R"({"type":"x",})", R"({"type":"x\q"})",
        "{\"type\":\"a\tb\"}", R"([1,])", "NaN", R"({"a":01})"}) {
    const std::string reason = close_reason(text);
    EXPECT_TRUE(starts_with(reason, "failed to unmarshal subscriber sourced message: invalid JSON"))
        << text << " -> " << reason;
  }
}

TEST(OptionsUpdate, ANulByteAnywhereIsInvalidJson) {
  using namespace std::string_literals;
  EXPECT_EQ(close_reason("{\"type\":\"ping\"}\0"s),
            "failed to unmarshal subscriber sourced message: invalid character '\\x00' at offset "
            "15");
  EXPECT_EQ(close_reason("{\"type\":\"pi\0ng\"}"s),
            "failed to unmarshal subscriber sourced message: invalid character '\\x00' at offset "
            "11");
  EXPECT_TRUE(
      starts_with(close_reason("{]\0"s),
                  "failed to unmarshal subscriber sourced message: invalid JSON at offset 1"))
      << "an earlier syntax error wins";
}

TEST(OptionsUpdate, NestingIsLimitedTo10000LevelsLikeGo) {
  const auto nested = [](std::size_t arrays) {
    return R"({"type":"x","deep":)" + std::string(arrays, '[') + std::string(arrays, ']') + "}";
  };
  EXPECT_EQ(message(nested(9'999)).action, UpdateAction::ignored);
  EXPECT_EQ(close_reason(nested(10'000)),
            "failed to unmarshal subscriber sourced message: exceeded max depth of 10000");
  EXPECT_EQ(close_reason(std::string(1'000'000, '[')),
            "failed to unmarshal subscriber sourced message: exceeded max depth of 10000");
}

TEST(OptionsUpdate, WrongEnvelopeTypesCloseWithTheSourcedMessageReason) {
  EXPECT_EQ(close_reason("[]"),
            "failed to unmarshal subscriber sourced message: cannot unmarshal array into "
            "message of type object");
  EXPECT_EQ(close_reason(R"("options_update")"),
            "failed to unmarshal subscriber sourced message: cannot unmarshal string into "
            "message of type object");
  EXPECT_EQ(close_reason(R"({"type":5,"payload":null})"),
            "failed to unmarshal subscriber sourced message: cannot unmarshal number into "
            "field type of type string");
  EXPECT_EQ(close_reason(R"({"type":["options_update"]})"),
            "failed to unmarshal subscriber sourced message: cannot unmarshal array into "
            "field type of type string");
  // Go reports a wrong type even when a later repeated key is fine.
  EXPECT_EQ(close_reason(R"({"type":true,"type":"options_update","payload":null})"),
            "failed to unmarshal subscriber sourced message: cannot unmarshal bool into "
            "field type of type string");
}

TEST(OptionsUpdate, MissingPayloadClosesWithGosUnexpectedEnd) {
  EXPECT_EQ(close_reason(R"({"type":"options_update"})"),
            "failed to unmarshal subscriber options update: unexpected end of JSON input");
}

TEST(OptionsUpdate, WrongPayloadTypesCloseWithTheOptionsUpdateReason) {
  const auto reason_for = [](std::string_view payload) {
    return close_reason(std::string(R"({"type":"options_update","payload":)") +
                        std::string(payload) + "}");
  };
  const std::string prefix = "failed to unmarshal subscriber options update: cannot unmarshal ";
  EXPECT_EQ(reason_for(R"("x")"), prefix + "string into payload of type object");
  EXPECT_EQ(reason_for("[]"), prefix + "array into payload of type object");
  EXPECT_EQ(reason_for(R"({"wantedCollections":"app.bsky.feed.post"})"),
            prefix + "string into field wantedCollections of type []string");
  EXPECT_EQ(reason_for(R"({"wantedCollections":{}})"),
            prefix + "object into field wantedCollections of type []string");
  EXPECT_EQ(reason_for(R"({"wantedCollections":[5]})"),
            prefix + "number into field wantedCollections of type string");
  EXPECT_EQ(reason_for(R"({"wantedDids":[["did:plc:a"]]})"),
            prefix + "array into field wantedDids of type string");
  EXPECT_EQ(reason_for(R"({"maxMessageSizeBytes":"100"})"),
            prefix + "string into field maxMessageSizeBytes of type int");
  EXPECT_EQ(reason_for(R"({"maxMessageSizeBytes":1.5})"),
            prefix + "number 1.5 into field maxMessageSizeBytes of type int");
  EXPECT_EQ(reason_for(R"({"maxMessageSizeBytes":1e3})"),
            prefix + "number 1e3 into field maxMessageSizeBytes of type int");
  EXPECT_EQ(reason_for(R"({"maxMessageSizeBytes":9223372036854775808})"),
            (prefix + "number 9223372036854775808 into field maxMessageSizeBytes of type int")
                    .substr(0, 120) +
                "...");
  EXPECT_EQ(reason_for(R"({"maxMessageSizeBytes":true})"),
            prefix + "bool into field maxMessageSizeBytes of type int");
}

TEST(OptionsUpdate, ATypeErrorBeatsInvalidOptions) {
  EXPECT_EQ(close_reason(R"({"type":"options_update","payload":{"wantedCollections":["bad"],)"
                         R"("wantedDids":[1]}})"),
            "failed to unmarshal subscriber options update: cannot unmarshal number into "
            "field wantedDids of type string");
}

TEST(OptionsUpdate, InvalidOptionsCloseWithThe400Text) {
  const auto reason_for = [](std::string_view payload) {
    return close_reason(std::string(R"({"type":"options_update","payload":)") +
                        std::string(payload) + "}");
  };
  EXPECT_EQ(reason_for(R"({"wantedCollections":["foo"]})"),
            "failed to parse subscriber options: invalid subscriber options: invalid collection: "
            "foo");
  EXPECT_EQ(reason_for(R"({"wantedCollections":[null]})"),
            "failed to parse subscriber options: invalid subscriber options: invalid collection: ");
  EXPECT_EQ(reason_for(R"({"wantedDids":["did:plc:ok","nope"]})"),
            "failed to parse subscriber options: invalid subscriber options");
  std::string dids;
  for (std::size_t i = 0; i < 10'001; ++i) dids += (i ? ",\"" : "\"") + did(i) + "\"";
  EXPECT_EQ(reason_for(R"({"wantedDids":[)" + dids + "]}"),
            "failed to parse subscriber options: invalid subscriber options: too many wanted DIDs");
  std::string collections;
  for (std::size_t i = 0; i < 101; ++i) collections += (i ? ",\"" : "\"") + nsid(i) + "\"";
  EXPECT_EQ(reason_for(R"({"wantedCollections":[)" + collections + "]}"),
            "failed to parse subscriber options: invalid subscriber options: too many wanted "
            "collections");
}

TEST(OptionsUpdate, LongReasonIsTruncatedTo123BytesWithAnEllipsis) {
  const std::string value(200, 'a');
  const std::string reason = close_reason(
      R"({"type":"options_update","payload":{"wantedCollections":[")" + value + R"("]}})");
  const std::string full =
      "failed to parse subscriber options: invalid subscriber options: "
      "invalid collection: " +
      value;
  EXPECT_EQ(reason, full.substr(0, 120) + "...");
  EXPECT_EQ(reason.size(), 123u);
}

TEST(OptionsUpdate, LongReasonIsCutAtAUtf8Boundary) {
  // The prefix is 84 bytes; then 3-byte characters: 84 + 12 * 3 = 120 fits before "...",
  // so a cut at byte 121 or 122 would split a character.
  std::string value;
  for (int i = 0; i < 40; ++i) value += "\xE2\x82\xAC";  // €
  std::string reason = close_reason(
      R"({"type":"options_update","payload":{"wantedCollections":[")" + value + R"("]}})");
  EXPECT_EQ(reason.substr(reason.size() - 3), "...");
  EXPECT_EQ(reason.size(), 123u);
  // One ASCII byte more shifts the characters: 85 + 11 * 3 = 118, the next would end at 121.
  reason = close_reason(R"({"type":"options_update","payload":{"wantedCollections":["x)" + value +
                        R"("]}})");
  EXPECT_EQ(reason.size(), 121u);
  EXPECT_EQ(reason.substr(reason.size() - 3), "...");
}

TEST(OptionsUpdate, InvalidUtf8InAnEchoedValueBecomesReplacementCharacters) {
  const std::string reason =
      close_reason("{\"type\":\"options_update\",\"payload\":{\"wantedCollections\":[\"a\xFF\"]}}");
  EXPECT_EQ(reason,
            "failed to parse subscriber options: invalid subscriber options: invalid collection: "
            "a\xEF\xBF\xBD");
}

TEST(OptionsUpdate, ApplyReplacesFiltersWholesaleAndTheSizeOnlyWhenGiven) {
  SubscriberOptions options = parse_ok(
      "wantedCollections=a.b.c&wantedDids=did:plc:a&cursor=5&compress=true&requireHello=true"
      "&maxMessageSizeBytes=100");
  apply_update(options, update_ok(R"({"type":"options_update","payload":{"wantedDids":[]}})"));
  EXPECT_TRUE(options.filters.wants_all_collections());
  EXPECT_TRUE(options.filters.wants_all_dids());
  EXPECT_EQ(options.max_message_size_bytes, 100u) << "omitted keeps the current limit";
  EXPECT_EQ(options.cursor, 5);
  EXPECT_TRUE(options.compress);
  EXPECT_TRUE(options.require_hello);
  apply_update(options, update_ok(R"({"type":"options_update","payload":{"maxMessageSizeBytes":0,)"
                                  R"("wantedCollections":["x.*"]}})"));
  EXPECT_EQ(options.max_message_size_bytes, 0u) << "an explicit 0 removes the limit";
  EXPECT_EQ(options.filters.collection_prefixes, strings({"x."}));
}

}  // namespace
}  // namespace jetstream::fanout
