// Contracts of services/fanout/options_update: the messages a client sends after the upgrade
// (API.md "Client messages", v1-spec §4), close reasons byte for byte.
#include "services/fanout/options_update.hpp"

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

std::vector<std::string> strings(std::initializer_list<std::string_view> values) {
  return {values.begin(), values.end()};
}
std::string nsid(std::size_t n) { return "com.example.c" + std::to_string(n); }
std::string did(std::size_t n) { return "did:plc:user" + std::to_string(n); }

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
  SubscriberOptions options = parse_subscribe_request(
                                  "wantedCollections=a.b.c&wantedDids=did:plc:a&cursor=5"
                                  "&compress=true&requireHello=true&maxMessageSizeBytes=100",
                                  std::nullopt)
                                  .options.value();
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
