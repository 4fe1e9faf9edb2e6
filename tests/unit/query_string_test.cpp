// Contracts of services/fanout/query_string: Go's URL.Query() and strconv.ParseInt, as v1 read
// the `/subscribe` query string.
#include "services/fanout/query_string.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetstream::fanout {
namespace {

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

TEST(QueryString, AcceptsUpTo1MiBAndRejectsLongerWithAnError) {
  std::string query = "a=" + std::string(kMaxQueryBytes - 2, 'x');
  EXPECT_TRUE(parse_query(query).ok());
  query += 'x';
  const QueryParseResult result = parse_query(query);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(result.params.empty());
  EXPECT_EQ(result.error, "invalid query: longer than 1048576 bytes");
}

TEST(QueryString, AcceptsUpTo20000PairsAndRejectsMoreWithAnError) {
  std::string query;
  for (std::size_t i = 0; i < kMaxQueryPairs; ++i) query += "a=1&&";
  EXPECT_TRUE(parse_query(query).ok()) << "empty pairs are not counted";
  EXPECT_EQ(parse_query(query).params.size(), kMaxQueryPairs);
  query += "b";
  const QueryParseResult result = parse_query(query);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.error, "invalid query: more than 20000 parameters");
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

}  // namespace
}  // namespace jetstream::fanout
