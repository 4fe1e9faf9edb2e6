// Contracts of common/codec/record_json: record DAG-CBOR → v1 JSON (API.md "Record conversion"):
// key order, blob shape, links and bytes, data-model validation, output untouched on error; and
// the official atproto data-model vectors (../shared/interop/data-model/) read at run time.
#include "common/codec/record_json.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/cid.hpp"
#include "common/codec/dag_cbor.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/shared_data.hpp"

namespace jetstream::codec {

/// Prints error names in assertion messages (found by GoogleTest through ADL).
[[maybe_unused]] static void PrintTo(RecordError error, std::ostream* os) {
  *os << to_string(error);
}
[[maybe_unused]] static void PrintTo(CborError error, std::ostream* os) { *os << to_string(error); }

namespace {

using testing::Bytes;
using testing::CborBuilder;
using testing::cid_of;

// A raw-codec blob CID from the interop fixtures, and a dag-cbor record CID.
constexpr std::string_view kBlobCid = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity";
constexpr std::string_view kRecordCid =
    "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq";

Bytes cid_bytes(std::string_view text) {
  auto bytes = parse_cid_string(text);
  if (!bytes) ADD_FAILURE() << "bad CID literal " << text;
  return bytes.value_or(Bytes{});
}

struct Converted {
  std::optional<RecordError> error;
  std::string json;
  std::optional<CborError> cbor_error;  // set when error == malformed_cbor
};

Converted convert(const Bytes& cbor, const CborLimits& limits = {}) {
  RecordConverter converter(limits);
  Converted result;
  result.error = converter.append_json(result.json, cbor);
  if (result.error == RecordError::malformed_cbor) result.cbor_error = converter.last_cbor_error();
  return result;
}

/// The JSON of a valid record, or a failure naming the error.
std::string json_of(const Bytes& cbor) {
  const Converted result = convert(cbor);
  EXPECT_EQ(result.error, std::nullopt);
  return result.json;
}

std::optional<RecordError> error_of(const Bytes& cbor) { return convert(cbor).error; }

/// A well-formed blob map, keys written in DAG-CBOR canonical order (ref, size, $type, mimeType).
CborBuilder& blob(CborBuilder& b, std::string_view mime = "image/jpeg",
                  std::uint64_t size = 10000) {
  return b.map(4)
      .text("ref")
      .link(cid_bytes(kBlobCid))
      .text("size")
      .uint(size)
      .text("$type")
      .text("blob")
      .text("mimeType")
      .text(mime);
}

// ---- key order -------------------------------------------------------------------------------

TEST(RecordJson, SortsKeysByByteOrder) {
  CborBuilder b;
  b.map(8).text("b").uint(0).text("a").uint(1).text("B").uint(2).text("$type").text("x.y.z");
  b.text("aa").uint(4).text("A").uint(5).text("_").uint(6).text("0").uint(7);
  EXPECT_EQ(json_of(b.take()), R"({"$type":"x.y.z","0":7,"A":5,"B":2,"_":6,"a":1,"aa":4,"b":0})");
}

TEST(RecordJson, SortsShorterPrefixFirst) {
  CborBuilder b;
  b.map(4).text("abc").uint(3).text("ab").uint(2).text("abd").uint(4).text("a").uint(1);
  EXPECT_EQ(json_of(b.take()), R"({"a":1,"ab":2,"abc":3,"abd":4})");
}

TEST(RecordJson, SortsKeysAtEveryLevelIncludingInsideArrays) {
  CborBuilder b;
  b.map(2).text("z").map(2).text("b").uint(1).text("a").uint(2);
  b.text("y")
      .array(2)
      .map(2)
      .text("d")
      .uint(1)
      .text("c")
      .uint(2)
      .array(1)
      .map(2)
      .text("f")
      .null()
      .text("e")
      .boolean(true);
  EXPECT_EQ(json_of(b.take()), R"({"y":[{"c":2,"d":1},[{"e":true,"f":null}]],"z":{"a":2,"b":1}})");
}

TEST(RecordJson, SortsNonAsciiKeysByUtf8BytesAfterAscii) {
  CborBuilder b;
  b.map(4)
      .text("\xc3\xa9")
      .uint(3)
      .text("~")
      .uint(2)
      .text("z")
      .uint(1)
      .text("\xe2\x82\xac")
      .uint(4);
  EXPECT_EQ(json_of(b.take()), "{\"z\":1,\"~\":2,\"\xc3\xa9\":3,\"\xe2\x82\xac\":4}");
}

TEST(RecordJson, SortsByRawKeyBytesAndEscapesKeysLikeStrings) {
  CborBuilder b;
  b.map(3).text("a<b").uint(1).text("\n").uint(2).text("A").uint(3);
  EXPECT_EQ(json_of(b.take()), R"({"\n":2,"A":3,"a\u003cb":1})");
}

// ---- blobs -----------------------------------------------------------------------------------

TEST(RecordJson, WritesBlobsInFixedOrder) {
  CborBuilder b;
  b.map(2).text("$type").text("com.example.file").text("file");
  blob(b);
  EXPECT_EQ(json_of(b.take()),
            R"({"$type":"com.example.file","file":{"$type":"blob","ref":{"$link":")" +
                std::string(kBlobCid) + R"("},"mimeType":"image/jpeg","size":10000}})");
}

TEST(RecordJson, WritesBlobsInFixedOrderWhateverTheInputOrder) {
  CborBuilder b;
  b.map(1)
      .text("f")
      .map(4)
      .text("mimeType")
      .text("a/b")
      .text("$type")
      .text("blob")
      .text("size")
      .uint(1)
      .text("ref")
      .link(cid_bytes(kBlobCid));
  EXPECT_EQ(json_of(b.take()), R"({"f":{"$type":"blob","ref":{"$link":")" + std::string(kBlobCid) +
                                   R"("},"mimeType":"a/b","size":1}})");
}

TEST(RecordJson, WritesBlobsNestedInArraysAndEscapesTheMimeType) {
  CborBuilder b;
  b.map(1).text("images").array(2);
  blob(b, "image/png", 0);
  blob(b, "text/<html>", 7);
  const std::string link = R"({"$link":")" + std::string(kBlobCid) + R"("})";
  EXPECT_EQ(json_of(b.take()), R"({"images":[{"$type":"blob","ref":)" + link +
                                   R"(,"mimeType":"image/png","size":0},{"$type":"blob","ref":)" +
                                   link + R"(,"mimeType":"text/\u003chtml\u003e","size":7}]})");
}

TEST(RecordJson, RejectsBlobsMissingAKey) {
  const Bytes link = cid_bytes(kBlobCid);
  CborBuilder no_ref, no_mime, no_size, only_type;
  no_ref.map(1)
      .text("b")
      .map(3)
      .text("size")
      .uint(1)
      .text("$type")
      .text("blob")
      .text("mimeType")
      .text("a/b");
  no_mime.map(1).text("b").map(3).text("ref").link(link).text("size").uint(1).text("$type").text(
      "blob");
  no_size.map(1)
      .text("b")
      .map(3)
      .text("ref")
      .link(link)
      .text("$type")
      .text("blob")
      .text("mimeType")
      .text("a/b");
  only_type.map(1).text("b").map(1).text("$type").text("blob");
  EXPECT_EQ(error_of(no_ref.take()), RecordError::bad_blob);
  EXPECT_EQ(error_of(no_mime.take()), RecordError::bad_blob);
  EXPECT_EQ(error_of(no_size.take()), RecordError::bad_blob);
  EXPECT_EQ(error_of(only_type.take()), RecordError::bad_blob);
}

TEST(RecordJson, RejectsBlobsWithAnExtraOrUnknownKey) {
  const Bytes link = cid_bytes(kBlobCid);
  CborBuilder extra, renamed;
  extra.map(1)
      .text("b")
      .map(5)
      .text("alt")
      .text("")
      .text("ref")
      .link(link)
      .text("size")
      .uint(1)
      .text("$type")
      .text("blob")
      .text("mimeType")
      .text("a/b");
  renamed.map(1)
      .text("b")
      .map(4)
      .text("ref")
      .link(link)
      .text("sizes")
      .uint(1)
      .text("$type")
      .text("blob")
      .text("mimeType")
      .text("a/b");
  EXPECT_EQ(error_of(extra.take()), RecordError::bad_blob);
  EXPECT_EQ(error_of(renamed.take()), RecordError::bad_blob);
}

TEST(RecordJson, RejectsBlobsWithMistypedFields) {
  const Bytes link = cid_bytes(kBlobCid);
  auto make = [&](auto&& write_ref, auto&& write_size, auto&& write_mime) {
    CborBuilder b;
    b.map(1).text("b").map(4).text("ref");
    write_ref(b);
    b.text("size");
    write_size(b);
    b.text("$type").text("blob").text("mimeType");
    write_mime(b);
    return b.take();
  };
  auto good_ref = [&](CborBuilder& b) { b.link(link); };
  auto good_size = [](CborBuilder& b) { b.uint(10000); };
  auto good_mime = [](CborBuilder& b) { b.text("image/jpeg"); };
  ASSERT_EQ(error_of(make(good_ref, good_size, good_mime)), std::nullopt);
  // ref not a link: the CID as text, as bytes, as a {"$link"} map, null.
  EXPECT_EQ(error_of(make([](CborBuilder& b) { b.text(kBlobCid); }, good_size, good_mime)),
            RecordError::bad_blob);
  EXPECT_EQ(error_of(make([&](CborBuilder& b) { b.bytes(link); }, good_size, good_mime)),
            RecordError::bad_blob);
  EXPECT_EQ(error_of(make([](CborBuilder& b) { b.map(1).text("$link").text(kBlobCid); }, good_size,
                          good_mime)),
            RecordError::bad_blob);
  EXPECT_EQ(error_of(make([](CborBuilder& b) { b.null(); }, good_size, good_mime)),
            RecordError::bad_blob);
  // size not an integer: string (the official invalid vector), null, boolean.
  EXPECT_EQ(error_of(make(
                good_ref, [](CborBuilder& b) { b.text("10000"); }, good_mime)),
            RecordError::bad_blob);
  EXPECT_EQ(error_of(make(
                good_ref, [](CborBuilder& b) { b.null(); }, good_mime)),
            RecordError::bad_blob);
  EXPECT_EQ(error_of(make(
                good_ref, [](CborBuilder& b) { b.boolean(true); }, good_mime)),
            RecordError::bad_blob);
  // mimeType not a string.
  EXPECT_EQ(error_of(make(good_ref, good_size, [](CborBuilder& b) { b.uint(1); })),
            RecordError::bad_blob);
  EXPECT_EQ(error_of(make(good_ref, good_size, [](CborBuilder& b) { b.null(); })),
            RecordError::bad_blob);
}

TEST(RecordJson, RejectsAMalformedBlobAtTheTopLevel) {
  CborBuilder b;
  b.map(2).text("$type").text("blob").text("size").uint(1);
  EXPECT_EQ(error_of(b.take()), RecordError::bad_blob);
}

// ---- $type -----------------------------------------------------------------------------------

TEST(RecordJson, RejectsTypeThatIsNotANonEmptyString) {
  auto with_type = [](auto&& write) {
    CborBuilder b;
    b.map(2).text("a").uint(1).text("$type");
    write(b);
    return b.take();
  };
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.null(); })), RecordError::bad_type_field);
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.uint(123); })), RecordError::bad_type_field);
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.text(""); })), RecordError::bad_type_field);
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.boolean(true); })),
            RecordError::bad_type_field);
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.array(1).text("x"); })),
            RecordError::bad_type_field);
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.map(0); })), RecordError::bad_type_field);
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.bytes({'x'}); })),
            RecordError::bad_type_field);
  EXPECT_EQ(error_of(with_type([](CborBuilder& b) { b.link(cid_bytes(kRecordCid)); })),
            RecordError::bad_type_field);
}

TEST(RecordJson, ChecksTypeInNestedMapsToo) {
  CborBuilder nested, in_array;
  nested.map(2).text("$type").text("a.b.c").text("embed").map(1).text("$type").text("");
  in_array.map(1).text("items").array(2).map(0).map(1).text("$type").null();
  EXPECT_EQ(error_of(nested.take()), RecordError::bad_type_field);
  EXPECT_EQ(error_of(in_array.take()), RecordError::bad_type_field);
}

TEST(RecordJson, AcceptsAnyNonEmptyTypeString) {
  CborBuilder b;
  b.map(2).text("$type").text("x").text("o").map(1).text("$type").text(
      "app.bsky.embed.images#image");
  EXPECT_EQ(json_of(b.take()), R"({"$type":"x","o":{"$type":"app.bsky.embed.images#image"}})");
}

// ---- $link / $bytes keys, duplicates ----------------------------------------------------------

TEST(RecordJson, RejectsMapsWithLinkOrBytesKeys) {
  CborBuilder link_text, link_link, bytes_text, top, in_array, with_others;
  link_text.map(1).text("lnk").map(1).text("$link").text(kBlobCid);
  link_link.map(1).text("lnk").map(1).text("$link").link(cid_bytes(kBlobCid));
  bytes_text.map(1).text("b").map(1).text("$bytes").text("AAAA");
  top.map(2).text("$bytes").bytes({1}).text("a").uint(1);
  in_array.map(1).text("l").array(1).map(1).text("$link").uint(1234);
  with_others.map(1).text("l").map(2).text("$link").text(kBlobCid).text("other").text("blah");
  EXPECT_EQ(error_of(link_text.take()), RecordError::reserved_key);
  EXPECT_EQ(error_of(link_link.take()), RecordError::reserved_key);
  EXPECT_EQ(error_of(bytes_text.take()), RecordError::reserved_key);
  EXPECT_EQ(error_of(top.take()), RecordError::reserved_key);
  EXPECT_EQ(error_of(in_array.take()), RecordError::reserved_key);
  EXPECT_EQ(error_of(with_others.take()), RecordError::reserved_key);
}

TEST(RecordJson, AcceptsKeysThatMerelyResembleLinkOrBytes) {
  CborBuilder b;
  b.map(4).text("$linked").uint(1).text("$byte").uint(2).text("link").uint(3).text("$Link").uint(4);
  EXPECT_EQ(json_of(b.take()), R"({"$Link":4,"$byte":2,"$linked":1,"link":3})");
}

TEST(RecordJson, RejectsDuplicateKeys) {
  CborBuilder adjacent, apart, nested, type_twice;
  adjacent.map(2).text("a").uint(1).text("a").uint(2);
  apart.map(3).text("a").uint(1).text("b").uint(2).text("a").uint(1);
  nested.map(1).text("m").map(2).text("k").null().text("k").null();
  type_twice.map(2).text("$type").text("x").text("$type").text("x");
  EXPECT_EQ(error_of(adjacent.take()), RecordError::duplicate_key);
  EXPECT_EQ(error_of(apart.take()), RecordError::duplicate_key);
  EXPECT_EQ(error_of(nested.take()), RecordError::duplicate_key);
  EXPECT_EQ(error_of(type_twice.take()), RecordError::duplicate_key);
}

// ---- values ----------------------------------------------------------------------------------

TEST(RecordJson, WritesBytesAsBase64StdUnpadded) {
  CborBuilder b;
  b.map(3)
      .text("a")
      .bytes({'f', 'o', 'o', 'b', 'a', 'r'})
      .text("b")
      .bytes({})
      .text("c")
      .bytes({0xfb, 0xff});
  EXPECT_EQ(json_of(b.take()),
            R"({"a":{"$bytes":"Zm9vYmFy"},"b":{"$bytes":""},"c":{"$bytes":"+/8"}})");
}

TEST(RecordJson, WritesLinksAsBase32Cids) {
  CborBuilder b;
  b.map(2).text("r").link(cid_bytes(kRecordCid)).text("e").link(cid_of(kCodecDagCbor, {0xa0}));
  EXPECT_EQ(json_of(b.take()),
            R"({"e":{"$link":"bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"},)"
            R"("r":{"$link":")" +
                std::string(kRecordCid) + R"("}})");
}

TEST(RecordJson, WritesScalarsAsIs) {
  CborBuilder b;
  b.map(8).text("n").null().text("t").boolean(true).text("f").boolean(false).text("s").text("hi");
  b.text("i").integer(-42).text("u").uint(42).text("max").integer(INT64_MAX).text("min").integer(
      INT64_MIN);
  EXPECT_EQ(json_of(b.take()),
            R"({"f":false,"i":-42,"max":9223372036854775807,"min":-9223372036854775808,)"
            R"("n":null,"s":"hi","t":true,"u":42})");
}

TEST(RecordJson, EscapesStringValuesAsGoDoes) {
  CborBuilder b;
  b.map(1).text("text").text("a<b>&\"\\\n\x1b/\xe2\x80\xa8\xc3\xa9\x80");
  EXPECT_EQ(json_of(b.take()),
            "{\"text\":\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u001b/\\u2028\xc3\xa9\\ufffd\"}");
}

TEST(RecordJson, KeepsNullsAndEmptyContainers) {
  CborBuilder b;
  b.map(4)
      .text("n")
      .null()
      .text("a")
      .array(0)
      .text("m")
      .map(0)
      .text("l")
      .array(3)
      .null()
      .null()
      .null();
  EXPECT_EQ(json_of(b.take()), R"({"a":[],"l":[null,null,null],"m":{},"n":null})");
}

TEST(RecordJson, WritesNestedArrays) {
  CborBuilder b;
  b.map(1)
      .text("arr")
      .array(3)
      .array(2)
      .uint(1)
      .array(1)
      .uint(2)
      .array(0)
      .array(1)
      .array(1)
      .array(1)
      .text("deep");
  EXPECT_EQ(json_of(b.take()), R"({"arr":[[1,[2]],[],[[["deep"]]]]})");
}

TEST(RecordJson, WritesAnEmptyRecord) { EXPECT_EQ(json_of({0xa0}), "{}"); }

// ---- errors ----------------------------------------------------------------------------------

TEST(RecordJson, RejectsATopLevelThatIsNotAMap) {
  EXPECT_EQ(error_of({0x80}), RecordError::not_a_map);
  EXPECT_EQ(error_of({0x01}), RecordError::not_a_map);
  EXPECT_EQ(error_of({0xf6}), RecordError::not_a_map);
  EXPECT_EQ(error_of(CborBuilder().text("blah").take()), RecordError::not_a_map);
  EXPECT_EQ(error_of(CborBuilder().link(cid_bytes(kRecordCid)).take()), RecordError::not_a_map);
  EXPECT_EQ(error_of(CborBuilder().bytes({1}).take()), RecordError::not_a_map);
}

TEST(RecordJson, RejectsFloatsAtAnyDepth) {
  const Bytes top{0xa1, 0x61, 0x61, 0xfb, 0x40, 0x5e, 0xdd, 0x2f, 0x1a, 0x9f, 0xbe, 0x77};
  const Bytes deep{0xa1, 0x61, 0x61, 0x81, 0xa1, 0x61, 0x62, 0xf9, 0x3c, 0x00};
  const Bytes integral{0xa1, 0x61, 0x61, 0xfb, 0x40, 0x5e, 0xc0, 0, 0, 0, 0, 0};  // 123.0
  for (const Bytes& input : {top, deep, integral}) {
    const Converted result = convert(input);
    EXPECT_EQ(result.error, RecordError::malformed_cbor);
    EXPECT_EQ(result.cbor_error, CborError::float_value);
  }
}

TEST(RecordJson, ReportsTheCborErrorOfMalformedInput) {
  const Converted truncated = convert({0xa1, 0x61});
  EXPECT_EQ(truncated.error, RecordError::malformed_cbor);
  EXPECT_EQ(truncated.cbor_error, CborError::truncated);
  const Converted trailing = convert({0xa0, 0xa0});
  EXPECT_EQ(trailing.error, RecordError::malformed_cbor);
  EXPECT_EQ(trailing.cbor_error, CborError::trailing_bytes);
  const Converted tag = convert({0xa1, 0x61, 0x61, 0xc1, 0x00});
  EXPECT_EQ(tag.error, RecordError::malformed_cbor);
  EXPECT_EQ(tag.cbor_error, CborError::unsupported_tag);
  EXPECT_EQ(convert({}).error, RecordError::malformed_cbor);
}

TEST(RecordJson, LeavesTheOutputUnchangedOnEveryError) {
  const Bytes link = cid_bytes(kBlobCid);
  std::vector<Bytes> bad;
  bad.push_back({0xa1, 0x61});                                      // truncated
  bad.push_back({0x80});                                            // not a map
  bad.push_back({0xa1, 0x61, 0x61, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0});  // float
  // Errors found only after part of the record was written.
  bad.push_back(
      CborBuilder().map(2).text("a").uint(1).text("z").map(1).text("$type").text("").take());
  bad.push_back(CborBuilder()
                    .map(2)
                    .text("a")
                    .text("xxxxxxxx")
                    .text("b")
                    .array(2)
                    .uint(1)
                    .map(2)
                    .text("k")
                    .uint(1)
                    .text("k")
                    .uint(2)
                    .take());
  bad.push_back(CborBuilder()
                    .map(2)
                    .text("a")
                    .bytes({1, 2, 3})
                    .text("b")
                    .map(1)
                    .text("$link")
                    .link(link)
                    .take());
  bad.push_back(CborBuilder()
                    .map(2)
                    .text("a")
                    .uint(1)
                    .text("b")
                    .map(2)
                    .text("$type")
                    .text("blob")
                    .text("ref")
                    .link(link)
                    .take());
  for (std::size_t i = 0; i < bad.size(); ++i) {
    RecordConverter converter;
    std::string out = "PREFIX{\"kept\":true}";
    const std::string before = out;
    EXPECT_NE(converter.append_json(out, bad[i]), std::nullopt) << "case " << i;
    EXPECT_EQ(out, before) << "case " << i;
  }
}

TEST(RecordJson, AppendsAfterExistingOutput) {
  RecordConverter converter;
  std::string out = "{\"record\":";
  ASSERT_EQ(converter.append_json(out, CborBuilder().map(1).text("a").uint(1).take()),
            std::nullopt);
  EXPECT_EQ(out, R"({"record":{"a":1})");
}

TEST(RecordJson, ConverterIsReusableAfterAnError) {
  RecordConverter converter;
  std::string out;
  const Bytes bad = CborBuilder()
                        .map(1)
                        .text("m")
                        .map(3)
                        .text("c")
                        .uint(1)
                        .text("b")
                        .uint(2)
                        .text("b")
                        .uint(3)
                        .take();
  EXPECT_EQ(converter.append_json(out, bad), RecordError::duplicate_key);
  EXPECT_EQ(out, "");
  const Bytes good = CborBuilder()
                         .map(2)
                         .text("y")
                         .map(2)
                         .text("b")
                         .uint(2)
                         .text("a")
                         .uint(1)
                         .text("x")
                         .uint(0)
                         .take();
  ASSERT_EQ(converter.append_json(out, good), std::nullopt);
  EXPECT_EQ(out, R"({"x":0,"y":{"a":1,"b":2}})");
  out.clear();
  ASSERT_EQ(converter.append_json(out, good), std::nullopt);
  EXPECT_EQ(out, R"({"x":0,"y":{"a":1,"b":2}})");
}

TEST(RecordJson, AppendValueJsonConvertsAnyValueOfAParsedDocument) {
  const Bytes input = CborBuilder()
                          .array(3)
                          .uint(1)
                          .map(2)
                          .text("b")
                          .null()
                          .text("a")
                          .bytes({'f'})
                          .text("s")
                          .take();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  RecordConverter converter;
  std::string out;
  ASSERT_EQ(converter.append_value_json(out, document, 0), std::nullopt);
  EXPECT_EQ(out, R"([1,{"a":{"$bytes":"Zg"},"b":null},"s"])");
  out.clear();
  ASSERT_EQ(converter.append_value_json(out, document, 2), std::nullopt);  // the inner map
  EXPECT_EQ(out, R"({"a":{"$bytes":"Zg"},"b":null})");
}

TEST(RecordJson, AppendValueJsonStillValidatesNestedMaps) {
  const Bytes input = CborBuilder().array(2).uint(1).map(1).text("$type").uint(1).take();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  RecordConverter converter;
  std::string out = "x";
  EXPECT_EQ(converter.append_value_json(out, document, 0), RecordError::bad_type_field);
  EXPECT_EQ(out, "x");
}

TEST(RecordJson, AppliesTheConfiguredDepthLimit) {
  CborLimits limits;
  limits.max_depth = 3;
  const Bytes ok = CborBuilder().map(1).text("a").array(1).array(1).uint(1).take();
  const Bytes deep = CborBuilder().map(1).text("a").array(1).array(1).array(1).uint(1).take();
  EXPECT_EQ(convert(ok, limits).error, std::nullopt);
  const Converted result = convert(deep, limits);
  EXPECT_EQ(result.error, RecordError::malformed_cbor);
  EXPECT_EQ(result.cbor_error, CborError::too_deep);
}

TEST(RecordJson, RejectsRecordsOverOneMebibyteByDefault) {
  // A map holding one string: 1 (map) + 2 (key "s") + 5 (text head) + string bytes.
  const std::size_t fits = (1u << 20) - 8;
  const Converted ok = convert(CborBuilder().map(1).text("s").text(std::string(fits, 'x')).take());
  EXPECT_EQ(ok.error, std::nullopt);
  const Converted big =
      convert(CborBuilder().map(1).text("s").text(std::string(fits + 1, 'x')).take());
  EXPECT_EQ(big.error, RecordError::malformed_cbor);
  EXPECT_EQ(big.cbor_error, CborError::document_too_large);
}

TEST(RecordJson, ErrorNamesAreDistinct) {
  std::set<std::string_view> names;
  for (int e = 0; e <= static_cast<int>(RecordError::duplicate_key); ++e) {
    const std::string_view name = to_string(static_cast<RecordError>(e));
    EXPECT_NE(name, "unknown");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(RecordError::duplicate_key) + 1);
}

// ---- official vectors: ../shared/interop/data-model/ ------------------------------------------

/// RFC 4648 base64, standard alphabet, padding optional. nullopt on any other character.
std::optional<Bytes> decode_base64(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  Bytes out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    int value = -1;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    if (c >= '0' && c <= '9') value = c - '0' + 52;
    if (c == '+') value = 62;
    if (c == '/') value = 63;
    if (value < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(buffer >> bits));
      buffer &= (1u << bits) - 1;
    }
  }
  if (bits >= 6) return std::nullopt;
  return out;
}

std::string_view view_of(const rapidjson::Value& value) {
  return {value.GetString(), value.GetStringLength()};
}

/// Test-only atproto JSON → DAG-CBOR: maps with keys in canonical order (shorter first, then
/// bytewise); {"$link": "<cid>"} → tag 42; {"$bytes": "<base64>"} → bytes; any other
/// `$link`/`$bytes`-shaped object stays a plain map; integral numbers → ints; others → float64.
void encode_atproto_json(const rapidjson::Value& value, CborBuilder& out) {
  switch (value.GetType()) {
    case rapidjson::kNullType: out.null(); return;
    case rapidjson::kFalseType: out.boolean(false); return;
    case rapidjson::kTrueType: out.boolean(true); return;
    case rapidjson::kStringType: out.text(view_of(value)); return;
    case rapidjson::kNumberType: {
      if (value.IsInt64()) {
        out.integer(value.GetInt64());
      } else if (value.IsUint64()) {
        out.uint(value.GetUint64());
      } else if (const double d = value.GetDouble(); std::trunc(d) == d && std::fabs(d) < 9e18) {
        out.integer(static_cast<std::int64_t>(d));  // 123.0: JSON cannot tell it from 123
      } else {
        const auto bits = std::bit_cast<std::uint64_t>(d);
        out.raw({0xfb});
        for (int shift = 56; shift >= 0; shift -= 8) {
          out.raw({static_cast<std::uint8_t>(bits >> shift)});
        }
      }
      return;
    }
    case rapidjson::kArrayType:
      out.array(value.Size());
      for (const auto& item : value.GetArray()) encode_atproto_json(item, out);
      return;
    case rapidjson::kObjectType: {
      if (value.MemberCount() == 1 && value.MemberBegin()->value.IsString()) {
        const std::string_view key = view_of(value.MemberBegin()->name);
        const std::string_view text = view_of(value.MemberBegin()->value);
        if (key == "$link") {
          if (auto cid = parse_cid_string(text)) {
            out.link(*cid);
            return;
          }
        } else if (key == "$bytes") {
          if (auto bytes = decode_base64(text)) {
            out.bytes(*bytes);
            return;
          }
        }
      }
      std::vector<const rapidjson::Value::Member*> members;
      for (const auto& member : value.GetObject()) members.push_back(&member);
      std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
        const std::string_view ka = view_of(a->name);
        const std::string_view kb = view_of(b->name);
        return ka.size() != kb.size() ? ka.size() < kb.size() : ka < kb;
      });
      out.map(members.size());
      for (const auto* member : members) {
        out.text(view_of(member->name));
        encode_atproto_json(member->value, out);
      }
      return;
    }
  }
}

Bytes encode_atproto_json(const rapidjson::Value& value) {
  CborBuilder out;
  encode_atproto_json(value, out);
  return out.take();
}

/// Empty when `actual` has the same structure and values as `expected` (numbers compared as
/// int64, an integral double in `expected` included); else where and how they differ.
std::string json_difference(const rapidjson::Value& expected, const rapidjson::Value& actual,
                            const std::string& path = "$") {
  if (expected.IsNumber()) {
    if (!actual.IsInt64()) return path + ": expected an integer";
    if (expected.IsInt64()) {
      return expected.GetInt64() == actual.GetInt64() ? "" : path + ": integers differ";
    }
    const double d = expected.GetDouble();
    if (std::trunc(d) != d) return path + ": expected holds a non-integral number";
    return static_cast<std::int64_t>(d) == actual.GetInt64() ? "" : path + ": numbers differ";
  }
  if (expected.GetType() != actual.GetType()) return path + ": types differ";
  switch (expected.GetType()) {
    case rapidjson::kNullType:
    case rapidjson::kFalseType:
    case rapidjson::kTrueType: return "";
    case rapidjson::kNumberType: return "";  // handled above
    case rapidjson::kStringType:
      return view_of(expected) == view_of(actual) ? "" : path + ": strings differ";
    case rapidjson::kArrayType: {
      if (expected.Size() != actual.Size()) return path + ": array sizes differ";
      for (rapidjson::SizeType i = 0; i < expected.Size(); ++i) {
        std::string diff =
            json_difference(expected[i], actual[i], path + "[" + std::to_string(i) + "]");
        if (!diff.empty()) return diff;
      }
      return "";
    }
    case rapidjson::kObjectType: {
      if (expected.MemberCount() != actual.MemberCount()) return path + ": member counts differ";
      std::set<std::string_view> seen;
      for (const auto& member : actual.GetObject()) {
        if (!seen.insert(view_of(member.name)).second) {
          return path + ": duplicate key " + std::string(view_of(member.name));
        }
      }
      for (const auto& member : expected.GetObject()) {
        const std::string key(view_of(member.name));
        const auto found = actual.FindMember(member.name);
        if (found == actual.MemberEnd()) return path + ": missing key " + key;
        std::string diff = json_difference(member.value, found->value, path + "." + key);
        if (!diff.empty()) return diff;
      }
      return "";
    }
  }
  return path + ": unknown type";
}

/// Empty when every object in `value` has its keys in v1 order: blobs `$type, ref, mimeType,
/// size`, every other object strictly increasing by bytes.
std::string key_order_problem(const rapidjson::Value& value, const std::string& path = "$") {
  if (value.IsArray()) {
    for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
      std::string problem = key_order_problem(value[i], path + "[" + std::to_string(i) + "]");
      if (!problem.empty()) return problem;
    }
  }
  if (!value.IsObject()) return "";
  std::vector<std::string_view> keys;
  for (const auto& member : value.GetObject()) keys.push_back(view_of(member.name));
  const auto type = value.FindMember("$type");
  if (type != value.MemberEnd() && type->value.IsString() && view_of(type->value) == "blob") {
    const std::vector<std::string_view> blob_order{"$type", "ref", "mimeType", "size"};
    if (keys != blob_order) return path + ": blob keys out of order";
  } else {
    for (std::size_t i = 1; i < keys.size(); ++i) {
      if (!(keys[i - 1] < keys[i])) return path + ": keys out of byte order";
    }
  }
  for (const auto& member : value.GetObject()) {
    std::string problem =
        key_order_problem(member.value, path + "." + std::string(view_of(member.name)));
    if (!problem.empty()) return problem;
  }
  return "";
}

/// The whole shared file, parsed; fails the test if it is not JSON.
bool load_json(const std::filesystem::path& path, rapidjson::Document& document) {
  const std::string text = testing::read_text_file(path);
  document.Parse(text.data(), text.size());
  EXPECT_FALSE(document.HasParseError()) << path;
  EXPECT_TRUE(document.IsArray()) << path;
  return !document.HasParseError() && document.IsArray();
}

TEST(RecordJsonVectors, FixturesHaveTheirCidAndConvertToTheirJson) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/data-model/data-model-fixtures.json");
  rapidjson::Document fixtures;
  ASSERT_TRUE(load_json(path, fixtures));
  RecordConverter converter;
  std::size_t checked = 0;
  for (const auto& fixture : fixtures.GetArray()) {
    SCOPED_TRACE("fixture " + std::to_string(checked));
    ASSERT_TRUE(fixture.IsObject());
    ASSERT_TRUE(fixture.HasMember("cbor_base64") && fixture["cbor_base64"].IsString());
    ASSERT_TRUE(fixture.HasMember("cid") && fixture["cid"].IsString());
    ASSERT_TRUE(fixture.HasMember("json"));
    const auto cbor = decode_base64(view_of(fixture["cbor_base64"]));
    ASSERT_TRUE(cbor.has_value());

    EXPECT_EQ(cid_to_string(compute_cid(kCodecDagCbor, *cbor)), view_of(fixture["cid"]));

    std::string out = "prefix";
    ASSERT_EQ(converter.append_json(out, *cbor), std::nullopt);
    ASSERT_EQ(out.substr(0, 6), "prefix");
    const std::string json = out.substr(6);
    rapidjson::Document ours;
    ours.Parse(json.data(), json.size());
    ASSERT_FALSE(ours.HasParseError()) << json;
    EXPECT_EQ(json_difference(fixture["json"], ours), "") << json;
    EXPECT_EQ(key_order_problem(ours), "") << json;
    ++checked;
  }
  EXPECT_EQ(checked, fixtures.Size());
  EXPECT_EQ(checked, 3u);
}

TEST(RecordJsonVectors, TestEncoderReproducesTheFixtureBytes) {
  // Checks the test-only JSON → DAG-CBOR encoder used for the valid/invalid documents below.
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/data-model/data-model-fixtures.json");
  rapidjson::Document fixtures;
  ASSERT_TRUE(load_json(path, fixtures));
  std::size_t checked = 0;
  for (const auto& fixture : fixtures.GetArray()) {
    const auto cbor = decode_base64(view_of(fixture["cbor_base64"]));
    ASSERT_TRUE(cbor.has_value());
    EXPECT_EQ(encode_atproto_json(fixture["json"]), *cbor) << "fixture " << checked;
    ++checked;
  }
  EXPECT_EQ(checked, 3u);
}

TEST(RecordJsonVectors, EveryValidDocumentConverts) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/data-model/data-model-valid.json");
  rapidjson::Document cases;
  ASSERT_TRUE(load_json(path, cases));
  RecordConverter converter;
  std::size_t checked = 0;
  for (const auto& entry : cases.GetArray()) {
    const std::string note = entry.HasMember("note") ? std::string(view_of(entry["note"])) : "?";
    SCOPED_TRACE(note);
    ASSERT_TRUE(entry.HasMember("json") && entry["json"].IsObject());
    const rapidjson::Value& document = entry["json"];

    // The whole document is a map: a record.
    std::string whole;
    ASSERT_EQ(converter.append_json(whole, encode_atproto_json(document)), std::nullopt);
    rapidjson::Document parsed;
    parsed.Parse(whole.data(), whole.size());
    ASSERT_FALSE(parsed.HasParseError()) << whole;
    EXPECT_EQ(json_difference(document, parsed), "") << whole;
    EXPECT_EQ(key_order_problem(parsed), "") << whole;

    // Each value on its own: maps as records, anything else as a value.
    for (const auto& member : document.GetObject()) {
      const Bytes cbor = encode_atproto_json(member.value);
      std::string out;
      if (member.value.IsObject()) {
        ASSERT_EQ(converter.append_json(out, cbor), std::nullopt) << view_of(member.name);
      } else {
        CborDocument value;
        ASSERT_EQ(value.parse(cbor, {}), std::nullopt);
        ASSERT_EQ(converter.append_value_json(out, value, 0), std::nullopt) << view_of(member.name);
      }
      rapidjson::Document value_json;
      value_json.Parse(out.data(), out.size());
      ASSERT_FALSE(value_json.HasParseError()) << out;
      EXPECT_EQ(json_difference(member.value, value_json), "") << out;
    }
    ++checked;
  }
  EXPECT_EQ(checked, cases.Size());
  EXPECT_EQ(checked, 5u);
}

struct ExpectedRejection {
  RecordError error;
  std::optional<CborError> cbor_error;
  std::string_view reason;
};

TEST(RecordJsonVectors, EveryInvalidDocumentIsRejected) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/data-model/data-model-invalid.json");
  // The reason each official invalid case must fail, keyed by its note.
  const std::map<std::string_view, ExpectedRejection> expected{
      {"top-level not an object", {RecordError::not_a_map, {}, "a record is a map"}},
      {"float", {RecordError::malformed_cbor, CborError::float_value, "123.456 is a float"}},
      {"record with $type null", {RecordError::bad_type_field, {}, "$type must be a string"}},
      {"record with $type wrong type", {RecordError::bad_type_field, {}, "$type must be a string"}},
      {"record with empty $type string",
       {RecordError::bad_type_field, {}, "$type must be non-empty"}},
      {"blob with string size", {RecordError::bad_blob, {}, "blob size must be an integer"}},
      {"blob with missing key", {RecordError::bad_blob, {}, "blob lacks ref"}},
      {"bytes with wrong field type",
       {RecordError::reserved_key, {}, "$bytes with an array is a plain map with a $bytes key"}},
      {"bytes with extra fields",
       {RecordError::reserved_key,
        {},
        "$bytes beside other keys is a plain map with a $bytes key"}},
      {"link with wrong field type",
       {RecordError::reserved_key, {}, "$link with a number is a plain map with a $link key"}},
      {"link with bogus CID",
       {RecordError::reserved_key, {}, "$link with a non-CID is a plain map with a $link key"}},
      {"link with extra fields",
       {RecordError::reserved_key, {}, "$link beside other keys is a plain map with a $link key"}},
  };
  rapidjson::Document cases;
  ASSERT_TRUE(load_json(path, cases));
  RecordConverter converter;
  std::size_t checked = 0;
  for (const auto& entry : cases.GetArray()) {
    ASSERT_TRUE(entry.HasMember("note") && entry["note"].IsString());
    const std::string_view note = view_of(entry["note"]);
    SCOPED_TRACE(std::string(note));
    const auto want = expected.find(note);
    ASSERT_NE(want, expected.end()) << "no expected reason for this case";
    ASSERT_TRUE(entry.HasMember("json"));
    const rapidjson::Value& document = entry["json"];

    std::string out = "unchanged";
    EXPECT_EQ(converter.append_json(out, encode_atproto_json(document)), want->second.error)
        << want->second.reason;
    if (want->second.cbor_error) {
      EXPECT_EQ(converter.last_cbor_error(), *want->second.cbor_error) << want->second.reason;
    }
    EXPECT_EQ(out, "unchanged");

    // The offending value on its own (every member of these documents is a map) fails the same.
    if (document.IsObject()) {
      for (const auto& member : document.GetObject()) {
        ASSERT_TRUE(member.value.IsObject());
        EXPECT_EQ(converter.append_json(out, encode_atproto_json(member.value)), want->second.error)
            << want->second.reason;
        EXPECT_EQ(out, "unchanged");
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, cases.Size());
  EXPECT_EQ(checked, expected.size());
}

}  // namespace
}  // namespace jetstream::codec
