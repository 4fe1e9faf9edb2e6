// Contracts of common/codec/dag_cbor_writer: the canonical DAG-CBOR encoding of a parsed item,
// which is what atproto hashes (CIDs) and signs (commits without `sig`).
#include "common/codec/dag_cbor_writer.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <vector>

#include "common/codec/cid.hpp"
#include "tests/support/atproto_json.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/shared_data.hpp"

namespace jetstream::codec {
namespace {

using testing::Bytes;
using testing::CborBuilder;

Bytes canonical(const Bytes& input, std::string_view omit_key = {}) {
  CborDocument document;
  const auto error = document.parse(input, CborLimits{});
  EXPECT_FALSE(error.has_value()) << (error ? to_string(*error) : "");
  Bytes out;
  if (!error) append_canonical_cbor(document, 0, out, omit_key);
  return out;
}

TEST(CanonicalCbor, ReencodesTheInteropFixturesToTheirOwnBytesAndCids) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/data-model/data-model-fixtures.json");
  rapidjson::Document fixtures;
  fixtures.Parse(testing::read_text_file(path).c_str());
  ASSERT_TRUE(fixtures.IsArray());
  for (const auto& fixture : fixtures.GetArray()) {
    const auto bytes = testing::detail::decode_base64(fixture["cbor_base64"].GetString());
    ASSERT_TRUE(bytes.has_value());
    const Bytes out = canonical(*bytes);
    EXPECT_EQ(out, *bytes) << fixture["cid"].GetString();
    const auto cid = compute_cid(kCodecDagCbor, out);
    EXPECT_EQ(cid_to_string(cid), fixture["cid"].GetString());
  }
}

TEST(CanonicalCbor, SortsMapKeysByLengthThenBytesAndShortensHeads) {
  // {"bb": 1, "a": 300, "ab": [true, null]} with every head in its longest form.
  CborBuilder input;
  input.raw({0xbb, 0, 0, 0, 0, 0, 0, 0, 3});
  input.raw({0x78, 2, 'b', 'b'}).raw({0x18, 1});
  input.raw({0x79, 0, 1, 'a'}).raw({0x1a, 0, 0, 0x01, 0x2c});
  input.raw({0x62, 'a', 'b'}).raw({0x98, 2, 0xf5, 0xf6});
  CborBuilder expected;
  expected.map(3).text("a").uint(300).text("ab").array(2).boolean(true).null();
  expected.text("bb").uint(1);
  EXPECT_EQ(canonical(input.take()), expected.take());
}

TEST(CanonicalCbor, KeepsEveryKindOfValueAsItWas) {
  CborBuilder input;
  input.map(6).text("i").integer(-70000).text("b").bytes(Bytes(30, 9)).text("l");
  input.link(testing::cid_of(kCodecDagCbor, {0xa0})).text("f").boolean(false);
  input.text("t").text(std::string(300, 'x')).text("n").uint(0xffffffffffULL);
  const Bytes bytes = input.take();
  const Bytes once = canonical(bytes);
  EXPECT_EQ(canonical(once), once);  // canonical output is a fixed point
  EXPECT_EQ(once.size(), bytes.size());
}

TEST(CanonicalCbor, OmitsTheNamedKeyOfTheTopMapOnly) {
  CborBuilder input;
  input.map(3).text("did").text("did:plc:a").text("sig").bytes(Bytes(64, 1));
  input.text("x").map(1).text("sig").uint(1);
  CborBuilder expected;
  expected.map(2).text("x").map(1).text("sig").uint(1).text("did").text("did:plc:a");
  EXPECT_EQ(canonical(input.take(), "sig"), expected.take());
}

}  // namespace
}  // namespace jetstream::codec
