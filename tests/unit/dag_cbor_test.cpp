// Contracts of common/codec/dag_cbor: a strict DAG-CBOR reader producing a flat pre-order node
// array. Every major type, the node tree (`end` indices, `find`), and every strictness rule and
// limit of the atproto data model, including hostile declared lengths and every truncation.
#include "common/codec/dag_cbor.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/cid.hpp"
#include "tests/support/cbor_builder.hpp"

namespace jetstream::codec {

/// Prints error names in assertion messages (found by GoogleTest through ADL).
[[maybe_unused]] static void PrintTo(CborError error, std::ostream* os) { *os << to_string(error); }

namespace {

using testing::Bytes;
using testing::CborBuilder;
using testing::cid_of;

const Bytes& sample_cid() {
  static const Bytes cid = cid_of(kCodecDagCbor, Bytes{0xa0});
  return cid;
}

/// Parses `input` whole and returns the error (nullopt on success).
std::optional<CborError> parse_error(const Bytes& input, const CborLimits& limits = {}) {
  CborDocument document;
  return document.parse(input, limits);
}

testing::Bytes rich_document() {
  // {"a": 1, "b": [-1, "x", h'0102', true, false, null, link], "c": {"d": {}}, "e": []}
  CborBuilder b;
  b.map(4).text("a").uint(1);
  b.text("b").array(7).integer(-1).text("x").bytes({0x01, 0x02}).boolean(true).boolean(false);
  b.null().link(sample_cid());
  b.text("c").map(1).text("d").map(0);
  b.text("e").array(0);
  return b.take();
}

// ---- every major type ------------------------------------------------------------------------

TEST(DagCbor, ParsesUnsignedIntegersOfEveryWidth) {
  for (const std::uint64_t value : {0ULL, 1ULL, 23ULL, 24ULL, 255ULL, 256ULL, 65535ULL, 65536ULL,
                                    0xffffffffULL, 0x100000000ULL, 0x7fffffffffffffffULL}) {
    CborDocument document;
    const Bytes input = CborBuilder().uint(value).take();
    ASSERT_EQ(document.parse(input, {}), std::nullopt) << value;
    ASSERT_EQ(document.nodes().size(), 1u);
    EXPECT_EQ(document.root().kind, CborKind::unsigned_integer);
    EXPECT_EQ(document.root().integer, value);
    EXPECT_EQ(document.root().end, 1u);
  }
}

TEST(DagCbor, ParsesNegativeIntegersAsMinusOneMinusArgument) {
  struct Case {
    Bytes input;
    std::uint64_t argument;
  };
  const Case cases[] = {
      {{0x20}, 0},                                                                      // -1
      {{0x37}, 23},                                                                     // -24
      {{0x38, 0x18}, 24},                                                               // -25
      {{0x39, 0x01, 0x00}, 256},                                                        // -257
      {{0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x7fffffffffffffffULL},  // INT64_MIN
  };
  for (const Case& c : cases) {
    CborDocument document;
    ASSERT_EQ(document.parse(c.input, {}), std::nullopt);
    EXPECT_EQ(document.root().kind, CborKind::negative_integer);
    EXPECT_EQ(document.root().integer, c.argument);
  }
}

TEST(DagCbor, AcceptsNonMinimalIntegerEncodingsAsV1Did) {
  // 5 written with a one-byte and an eight-byte argument (documented decision: v1 accepted them).
  for (const Bytes& input :
       {Bytes{0x18, 0x05}, Bytes{0x1b, 0, 0, 0, 0, 0, 0, 0, 0x05}, Bytes{0x19, 0x00, 0x05}}) {
    CborDocument document;
    ASSERT_EQ(document.parse(input, {}), std::nullopt);
    EXPECT_EQ(document.root().integer, 5u);
  }
}

TEST(DagCbor, ParsesByteAndTextStringsZeroCopy) {
  const Bytes bytes_input = CborBuilder().bytes({0xde, 0xad, 0xbe, 0xef}).take();
  CborDocument document;
  ASSERT_EQ(document.parse(bytes_input, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::bytes);
  EXPECT_EQ(document.root().size, 4u);
  EXPECT_EQ(document.root().data, bytes_input.data() + 1);
  EXPECT_EQ(Bytes(document.root().bytes().begin(), document.root().bytes().end()),
            (Bytes{0xde, 0xad, 0xbe, 0xef}));

  const std::string long_text(300, 'q');
  const Bytes text_input = CborBuilder().text(long_text).take();
  ASSERT_EQ(document.parse(text_input, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::text);
  EXPECT_EQ(document.root().text(), long_text);
  EXPECT_EQ(document.root().data, text_input.data() + 3);  // 0x79 + two length bytes
}

TEST(DagCbor, ParsesEmptyStrings) {
  CborDocument document;
  const Bytes empty_bytes{0x40};
  ASSERT_EQ(document.parse(empty_bytes, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::bytes);
  EXPECT_EQ(document.root().size, 0u);
  const Bytes empty_text{0x60};
  ASSERT_EQ(document.parse(empty_text, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::text);
  EXPECT_EQ(document.root().text(), "");
}

TEST(DagCbor, ParsesBooleansAndNull) {
  CborDocument document;
  const Bytes f{0xf4}, t{0xf5}, n{0xf6};
  ASSERT_EQ(document.parse(f, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::boolean);
  EXPECT_EQ(document.root().integer, 0u);
  ASSERT_EQ(document.parse(t, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::boolean);
  EXPECT_EQ(document.root().integer, 1u);
  ASSERT_EQ(document.parse(n, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::null);
}

TEST(DagCbor, ParsesCidLinkWithoutTheIdentityPrefix) {
  const Bytes input = CborBuilder().link(sample_cid()).take();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  const CborNode& node = document.root();
  EXPECT_EQ(node.kind, CborKind::cid_link);
  EXPECT_EQ(node.size, kSha256CidSize);
  EXPECT_EQ(Bytes(node.bytes().begin(), node.bytes().end()), sample_cid());
  // d8 2a 58 25 00 <cid>: the view starts after the 0x00.
  EXPECT_EQ(node.data, input.data() + 5);
}

TEST(DagCbor, ParsesEmptyContainers) {
  CborDocument document;
  const Bytes array{0x80}, map{0xa0};
  ASSERT_EQ(document.parse(array, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::array);
  EXPECT_EQ(document.root().count, 0u);
  EXPECT_EQ(document.root().end, 1u);
  ASSERT_EQ(document.parse(map, {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::map);
  EXPECT_EQ(document.root().count, 0u);
  EXPECT_EQ(document.root().end, 1u);
}

// ---- the node tree ---------------------------------------------------------------------------

TEST(DagCbor, NestedStructuresAreFlattenedInPreOrderWithCorrectEnds) {
  const Bytes input = rich_document();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  const auto& n = document.nodes();
  // 0 map{4}; 1 "a"; 2 1; 3 "b"; 4 array{7}; 5 -1; 6 "x"; 7 h'0102'; 8 true; 9 false; 10 null;
  // 11 link; 12 "c"; 13 map{1}; 14 "d"; 15 map{0}; 16 "e"; 17 array{0}.
  ASSERT_EQ(n.size(), 18u);
  const CborKind kinds[] = {CborKind::map,     CborKind::text,  CborKind::unsigned_integer,
                            CborKind::text,    CborKind::array, CborKind::negative_integer,
                            CborKind::text,    CborKind::bytes, CborKind::boolean,
                            CborKind::boolean, CborKind::null,  CborKind::cid_link,
                            CborKind::text,    CborKind::map,   CborKind::text,
                            CborKind::map,     CborKind::text,  CborKind::array};
  for (std::size_t i = 0; i < n.size(); ++i) EXPECT_EQ(n[i].kind, kinds[i]) << "node " << i;
  EXPECT_EQ(n[0].count, 4u);
  EXPECT_EQ(n[0].end, 18u);
  EXPECT_EQ(n[4].count, 7u);
  EXPECT_EQ(n[4].end, 12u);
  EXPECT_EQ(n[13].count, 1u);
  EXPECT_EQ(n[13].end, 16u);
  EXPECT_EQ(n[15].end, 16u);
  EXPECT_EQ(n[17].end, 18u);
  for (const std::uint32_t leaf : {1u, 2u, 3u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 14u, 16u}) {
    EXPECT_EQ(n[leaf].end, leaf + 1) << "leaf " << leaf;
  }
  EXPECT_EQ(n[1].text(), "a");
  EXPECT_EQ(n[2].integer, 1u);
  EXPECT_EQ(n[5].integer, 0u);
  EXPECT_EQ(n[6].text(), "x");
  EXPECT_EQ(n[8].integer, 1u);
  EXPECT_EQ(n[9].integer, 0u);
  EXPECT_EQ(CborDocument::first_child(4), 5u);
  EXPECT_EQ(document.next_sibling(4), 12u);
  EXPECT_EQ(document.next_sibling(13), 16u);
}

TEST(DagCbor, ClosesSeveralContainersEndingOnTheSameLeaf) {
  // [[[[1]]], 2]: three containers close on the leaf `1`.
  const Bytes input = CborBuilder().array(2).array(1).array(1).array(1).uint(1).uint(2).take();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  const auto& n = document.nodes();
  ASSERT_EQ(n.size(), 6u);
  EXPECT_EQ(n[0].end, 6u);
  EXPECT_EQ(n[1].end, 5u);
  EXPECT_EQ(n[2].end, 5u);
  EXPECT_EQ(n[3].end, 5u);
  EXPECT_EQ(n[5].integer, 2u);
}

TEST(DagCbor, FindReturnsTheValueIndexOfAKey) {
  const Bytes input = rich_document();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  EXPECT_EQ(document.find(0, "a"), 2u);
  EXPECT_EQ(document.find(0, "b"), 4u);
  EXPECT_EQ(document.find(0, "c"), 13u);  // found after skipping the whole "b" subtree
  EXPECT_EQ(document.find(0, "e"), 17u);
  EXPECT_EQ(document.find(13, "d"), 15u);
}

TEST(DagCbor, FindReturnsNulloptForMissingKeysAndNonMaps) {
  const Bytes input = rich_document();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  EXPECT_EQ(document.find(0, "z"), std::nullopt);
  EXPECT_EQ(document.find(0, ""), std::nullopt);
  EXPECT_EQ(document.find(0, "aa"), std::nullopt);
  EXPECT_EQ(document.find(0, "d"), std::nullopt);   // only in a nested map
  EXPECT_EQ(document.find(4, "a"), std::nullopt);   // an array
  EXPECT_EQ(document.find(2, "a"), std::nullopt);   // an integer
  EXPECT_EQ(document.find(15, "a"), std::nullopt);  // an empty map
}

TEST(DagCbor, FindComparesWholeKeysNotPrefixes) {
  const Bytes input =
      CborBuilder().map(3).text("ab").uint(1).text("a").uint(2).text("abc").uint(3).take();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  ASSERT_TRUE(document.find(0, "a").has_value());
  EXPECT_EQ(document.node(*document.find(0, "a")).integer, 2u);
  EXPECT_EQ(document.node(*document.find(0, "ab")).integer, 1u);
  EXPECT_EQ(document.node(*document.find(0, "abc")).integer, 3u);
  EXPECT_EQ(document.find(0, "abcd"), std::nullopt);
}

TEST(DagCbor, AcceptsNonCanonicalKeyOrderAndDuplicateKeys) {
  // Documented decision: key order is not enforced here (the CID pins record bytes); duplicates
  // are left to the record converter. `find` returns the first occurrence.
  const Bytes input =
      CborBuilder().map(3).text("bb").uint(1).text("a").uint(2).text("a").uint(3).take();
  CborDocument document;
  ASSERT_EQ(document.parse(input, {}), std::nullopt);
  EXPECT_EQ(document.node(*document.find(0, "a")).integer, 2u);
}

TEST(DagCbor, ReusesTheDocumentAcrossParses) {
  CborDocument document;
  const Bytes big = rich_document();
  ASSERT_EQ(document.parse(big, {}), std::nullopt);
  const Bytes bad{0x9f};
  EXPECT_EQ(document.parse(bad, {}), CborError::indefinite_length);
  const Bytes small{0x07};
  ASSERT_EQ(document.parse(small, {}), std::nullopt);
  ASSERT_EQ(document.nodes().size(), 1u);
  EXPECT_EQ(document.root().integer, 7u);
}

// ---- strictness ------------------------------------------------------------------------------

TEST(DagCbor, RejectsIndefiniteLengthItems) {
  EXPECT_EQ(parse_error({0x9f, 0x01, 0xff}), CborError::indefinite_length);              // array
  EXPECT_EQ(parse_error({0xbf, 0x61, 0x61, 0x01, 0xff}), CborError::indefinite_length);  // map
  EXPECT_EQ(parse_error({0x5f, 0x41, 0x00, 0xff}), CborError::indefinite_length);        // bytes
  EXPECT_EQ(parse_error({0x7f, 0x61, 0x61, 0xff}), CborError::indefinite_length);        // text
  EXPECT_EQ(parse_error({0x81, 0x9f, 0xff}), CborError::indefinite_length);              // nested
  EXPECT_EQ(parse_error({0xff}), CborError::indefinite_length);              // a stray break
  EXPECT_EQ(parse_error({0x82, 0x01, 0xff}), CborError::indefinite_length);  // break as an item
}

TEST(DagCbor, RejectsIndefiniteMarkerOnIntegersAndTags) {
  // Additional info 31 on majors 0, 1 and 6 is malformed CBOR: any error, never success.
  for (const int initial : {0x1f, 0x3f, 0xdf}) {
    const auto error = parse_error({static_cast<std::uint8_t>(initial), 0x00});
    EXPECT_TRUE(error.has_value()) << "initial byte " << initial;
  }
}

TEST(DagCbor, RejectsFloatsOfEveryWidth) {
  EXPECT_EQ(parse_error({0xf9, 0x3c, 0x00}), CborError::float_value);                    // half 1.0
  EXPECT_EQ(parse_error({0xfa, 0x3f, 0x80, 0x00, 0x00}), CborError::float_value);        // single
  EXPECT_EQ(parse_error({0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}), CborError::float_value);  // double
  EXPECT_EQ(parse_error({0xfb, 0x40, 0x5e, 0xc0, 0, 0, 0, 0, 0}), CborError::float_value);  // 123.0
  EXPECT_EQ(parse_error({0xa1, 0x61, 0x66, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0}), CborError::float_value);
}

TEST(DagCbor, RejectsUndefined) {
  EXPECT_EQ(parse_error({0xf7}), CborError::undefined_value);
  EXPECT_EQ(parse_error({0x81, 0xf7}), CborError::undefined_value);
}

TEST(DagCbor, RejectsReservedAdditionalInfo28To30OnEveryMajorType) {
  for (std::uint8_t major = 0; major < 8; ++major) {
    for (std::uint8_t info = 28; info <= 30; ++info) {
      const auto initial = static_cast<std::uint8_t>((major << 5) | info);
      EXPECT_EQ(parse_error({initial, 0, 0, 0, 0, 0, 0, 0, 0}), CborError::reserved_encoding)
          << "initial byte 0x" << std::hex << int{initial};
    }
  }
}

TEST(DagCbor, RejectsSimpleValuesOtherThanFalseTrueNull) {
  for (std::uint8_t simple = 0; simple < 20; ++simple) {
    const auto initial = static_cast<std::uint8_t>(0xe0 | simple);
    EXPECT_EQ(parse_error({initial}), CborError::reserved_encoding) << "simple " << int{simple};
  }
  // Two-byte simple values (0xf8 xx), including ones that spell false/true/null.
  for (const int simple : {0x00, 0x14, 0x15, 0x16, 0x20, 0xff}) {
    EXPECT_EQ(parse_error({0xf8, static_cast<std::uint8_t>(simple)}), CborError::reserved_encoding)
        << simple;
  }
}

TEST(DagCbor, RejectsTagsOtherThan42) {
  EXPECT_EQ(parse_error({0xc0, 0x60}), CborError::unsupported_tag);              // tag 0: date text
  EXPECT_EQ(parse_error({0xc1, 0x00}), CborError::unsupported_tag);              // tag 1: epoch
  EXPECT_EQ(parse_error({0xc2, 0x41, 0x01}), CborError::unsupported_tag);        // bignum
  EXPECT_EQ(parse_error({0xd8, 0x29, 0x40}), CborError::unsupported_tag);        // 41
  EXPECT_EQ(parse_error({0xd8, 0x2b, 0x40}), CborError::unsupported_tag);        // 43
  EXPECT_EQ(parse_error({0xd9, 0xd9, 0xf7, 0x80}), CborError::unsupported_tag);  // self-describe
  EXPECT_EQ(parse_error({0xdb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x40}),
            CborError::unsupported_tag);
  // 42 in a wider argument than needed is still tag 42.
  Bytes wide{0xd9, 0x00, 0x2a, 0x58, 0x25, 0x00};
  wide.insert(wide.end(), sample_cid().begin(), sample_cid().end());
  EXPECT_EQ(parse_error(wide), std::nullopt);
}

TEST(DagCbor, RejectsTag42WhoseContentIsNotAByteString) {
  Bytes text{0xd8, 0x2a, 0x78, 0x25, 0x00};  // text string with the right length
  text.insert(text.end(), sample_cid().begin(), sample_cid().end());
  EXPECT_EQ(parse_error(text), CborError::bad_cid);
  EXPECT_EQ(parse_error({0xd8, 0x2a, 0x01}), CborError::bad_cid);
  EXPECT_EQ(parse_error({0xd8, 0x2a, 0xf6}), CborError::bad_cid);
  EXPECT_EQ(parse_error({0xd8, 0x2a, 0x80}), CborError::bad_cid);
  // Tag 42 around tag 42.
  Bytes nested{0xd8, 0x2a, 0xd8, 0x2a, 0x58, 0x25, 0x00};
  nested.insert(nested.end(), sample_cid().begin(), sample_cid().end());
  EXPECT_EQ(parse_error(nested), CborError::bad_cid);
}

TEST(DagCbor, RejectsTag42WithoutTheZeroPrefix) {
  Bytes no_prefix{0xd8, 0x2a, 0x58, 0x24};
  no_prefix.insert(no_prefix.end(), sample_cid().begin(), sample_cid().end());
  EXPECT_EQ(parse_error(no_prefix), CborError::bad_cid);
  Bytes wrong_prefix{0xd8, 0x2a, 0x58, 0x25, 0x01};
  wrong_prefix.insert(wrong_prefix.end(), sample_cid().begin(), sample_cid().end());
  EXPECT_EQ(parse_error(wrong_prefix), CborError::bad_cid);
  EXPECT_EQ(parse_error({0xd8, 0x2a, 0x40}), CborError::bad_cid);        // empty
  EXPECT_EQ(parse_error({0xd8, 0x2a, 0x41, 0x00}), CborError::bad_cid);  // the prefix alone
}

TEST(DagCbor, RejectsTag42WithABadCid) {
  auto wrap = [](const Bytes& cid) {
    Bytes out{0xd8, 0x2a};
    CborBuilder b;
    Bytes content{0x00};
    content.insert(content.end(), cid.begin(), cid.end());
    b.bytes(content);
    out.insert(out.end(), b.bytes_out().begin(), b.bytes_out().end());
    return out;
  };
  Bytes v0{0x12, 0x20};
  v0.insert(v0.end(), sample_cid().begin() + 4, sample_cid().end());
  EXPECT_EQ(parse_error(wrap(v0)), CborError::bad_cid) << "CIDv0";
  Bytes short_digest(sample_cid().begin(), sample_cid().end() - 1);
  EXPECT_EQ(parse_error(wrap(short_digest)), CborError::bad_cid) << "truncated digest";
  Bytes trailing = sample_cid();
  trailing.push_back(0x00);
  EXPECT_EQ(parse_error(wrap(trailing)), CborError::bad_cid) << "bytes after the CID";
  EXPECT_EQ(parse_error(wrap({0x01})), CborError::bad_cid) << "version only";
  Bytes v2 = sample_cid();
  v2[0] = 0x02;
  EXPECT_EQ(parse_error(wrap(v2)), CborError::bad_cid) << "version 2";
  // Sanity: the wrapper itself produces a valid link for a good CID.
  EXPECT_EQ(parse_error(wrap(sample_cid())), std::nullopt);
}

TEST(DagCbor, RejectsNonTextMapKeys) {
  EXPECT_EQ(parse_error({0xa1, 0x01, 0x01}), CborError::non_text_map_key);        // int
  EXPECT_EQ(parse_error({0xa1, 0x20, 0x01}), CborError::non_text_map_key);        // negative int
  EXPECT_EQ(parse_error({0xa1, 0x41, 0x61, 0x01}), CborError::non_text_map_key);  // bytes
  EXPECT_EQ(parse_error({0xa1, 0x80, 0x01}), CborError::non_text_map_key);        // array
  EXPECT_EQ(parse_error({0xa1, 0xa0, 0x01}), CborError::non_text_map_key);        // map
  EXPECT_EQ(parse_error({0xa1, 0xf6, 0x01}), CborError::non_text_map_key);        // null
  EXPECT_EQ(parse_error({0xa1, 0xf5, 0x01}), CborError::non_text_map_key);        // bool
  const Bytes link_key = CborBuilder().map(1).link(sample_cid()).uint(1).take();
  EXPECT_EQ(parse_error(link_key), CborError::non_text_map_key);
  // The second key of a nested map.
  const Bytes nested =
      CborBuilder().map(1).text("m").map(2).text("a").uint(1).uint(2).uint(3).take();
  EXPECT_EQ(parse_error(nested), CborError::non_text_map_key);
  // A text *value* is fine in the value slot, and an int value is fine too.
  EXPECT_EQ(parse_error({0xa1, 0x61, 0x61, 0x61, 0x62}), std::nullopt);
}

TEST(DagCbor, RejectsIntegersBeyondInt64) {
  EXPECT_EQ(parse_error({0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0}), CborError::integer_out_of_range);
  EXPECT_EQ(parse_error({0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
            CborError::integer_out_of_range);
  // -1 - 2^63 = INT64_MIN - 1.
  EXPECT_EQ(parse_error({0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0}), CborError::integer_out_of_range);
  EXPECT_EQ(parse_error({0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
            CborError::integer_out_of_range);
  EXPECT_EQ(parse_error({0x81, 0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0}), CborError::integer_out_of_range);
}

// ---- limits ----------------------------------------------------------------------------------

Bytes nested_arrays(std::size_t depth, bool innermost_empty) {
  CborBuilder b;
  for (std::size_t i = 0; i + 1 < depth; ++i) b.array(1);
  if (innermost_empty) {
    b.array(0);
  } else {
    b.array(1).uint(0);
  }
  return b.take();
}

TEST(DagCbor, AcceptsNestingUpToTheDepthLimit) {
  CborLimits limits;
  limits.max_depth = 3;
  EXPECT_EQ(parse_error(nested_arrays(3, false), limits), std::nullopt);  // [[[0]]]
  EXPECT_EQ(parse_error(nested_arrays(3, true), limits), std::nullopt);   // [[[]]]
  const Bytes maps =
      CborBuilder().map(1).text("a").map(1).text("b").map(1).text("c").uint(1).take();
  EXPECT_EQ(parse_error(maps, limits), std::nullopt);
}

TEST(DagCbor, RejectsNonEmptyContainersDeeperThanTheLimit) {
  CborLimits limits;
  limits.max_depth = 3;
  EXPECT_EQ(parse_error(nested_arrays(4, false), limits), CborError::too_deep);  // [[[[0]]]]
  const Bytes maps = CborBuilder()
                         .map(1)
                         .text("a")
                         .map(1)
                         .text("b")
                         .map(1)
                         .text("c")
                         .map(1)
                         .text("d")
                         .uint(1)
                         .take();
  EXPECT_EQ(parse_error(maps, limits), CborError::too_deep);
  const Bytes mixed = CborBuilder().array(1).map(1).text("a").array(1).array(1).uint(1).take();
  EXPECT_EQ(parse_error(mixed, limits), CborError::too_deep);
}

TEST(DagCbor, RejectsEmptyContainersDeeperThanTheLimit) {
  // [[[[]]]] nests four containers, one more than max_depth = 3, exactly like [[[[0]]]] which is
  // rejected: an empty innermost container must count towards the depth too.
  CborLimits limits;
  limits.max_depth = 3;
  EXPECT_EQ(parse_error(nested_arrays(4, true), limits), CborError::too_deep);
  const Bytes maps = CborBuilder().map(1).text("a").map(1).text("b").map(1).text("c").map(0).take();
  EXPECT_EQ(parse_error(maps, limits), CborError::too_deep);
}

TEST(DagCbor, DefaultDepthLimitIs256) {
  EXPECT_EQ(parse_error(nested_arrays(256, false)), std::nullopt);
  EXPECT_EQ(parse_error(nested_arrays(257, false)), CborError::too_deep);
  // Far deeper than the limit fails fast instead of recursing.
  EXPECT_EQ(parse_error(nested_arrays(100000, false)), CborError::too_deep);
}

TEST(DagCbor, EnforcesTheContainerItemLimit) {
  CborLimits limits;
  limits.max_container_items = 3;
  EXPECT_EQ(parse_error(CborBuilder().array(3).uint(1).uint(2).uint(3).take(), limits),
            std::nullopt);
  EXPECT_EQ(parse_error(CborBuilder().array(4).uint(1).uint(2).uint(3).uint(4).take(), limits),
            CborError::too_many_items);
  CborBuilder map3;
  map3.map(3).text("a").uint(1).text("b").uint(2).text("c").uint(3);
  EXPECT_EQ(parse_error(map3.take(), limits), std::nullopt);
  CborBuilder map4;
  map4.map(4).text("a").uint(1).text("b").uint(2).text("c").uint(3).text("d").uint(4);
  EXPECT_EQ(parse_error(map4.take(), limits), CborError::too_many_items);
  // Nested containers are limited individually.
  EXPECT_EQ(
      parse_error(CborBuilder().array(1).array(4).uint(1).uint(2).uint(3).uint(4).take(), limits),
      CborError::too_many_items);
}

TEST(DagCbor, EnforcesTheStringLimitOnBytesAndText) {
  CborLimits limits;
  limits.max_string_bytes = 4;
  EXPECT_EQ(parse_error(CborBuilder().text("abcd").take(), limits), std::nullopt);
  EXPECT_EQ(parse_error(CborBuilder().text("abcde").take(), limits), CborError::string_too_long);
  EXPECT_EQ(parse_error(CborBuilder().bytes({1, 2, 3, 4}).take(), limits), std::nullopt);
  EXPECT_EQ(parse_error(CborBuilder().bytes({1, 2, 3, 4, 5}).take(), limits),
            CborError::string_too_long);
  EXPECT_EQ(parse_error(CborBuilder().map(1).text("k").text("abcde").take(), limits),
            CborError::string_too_long);
}

TEST(DagCbor, EnforcesTheKeyLimitOnMapKeysOnly) {
  CborLimits limits;
  limits.max_key_bytes = 2;
  EXPECT_EQ(parse_error(CborBuilder().map(1).text("ab").text("long value").take(), limits),
            std::nullopt);
  EXPECT_EQ(parse_error(CborBuilder().map(1).text("abc").uint(1).take(), limits),
            CborError::key_too_long);
  EXPECT_EQ(parse_error(CborBuilder().array(1).text("abc").take(), limits), std::nullopt);
  EXPECT_EQ(parse_error(CborBuilder().map(1).text("a").map(1).text("abc").uint(1).take(), limits),
            CborError::key_too_long);
}

TEST(DagCbor, EnforcesTheDocumentSizeLimit) {
  CborLimits limits;
  limits.max_document_bytes = 8;
  const Bytes eight = CborBuilder().text("abcdefg").take();  // 1 + 7 bytes
  ASSERT_EQ(eight.size(), 8u);
  EXPECT_EQ(parse_error(eight, limits), std::nullopt);
  const Bytes nine = CborBuilder().text("abcdefgh").take();
  EXPECT_EQ(parse_error(nine, limits), CborError::document_too_large);
  const Bytes many_items = CborBuilder()
                               .array(9)
                               .uint(1)
                               .uint(1)
                               .uint(1)
                               .uint(1)
                               .uint(1)
                               .uint(1)
                               .uint(1)
                               .uint(1)
                               .uint(1)
                               .take();
  EXPECT_EQ(parse_error(many_items, limits), CborError::document_too_large);
}

TEST(DagCbor, DocumentSizeLimitAppliesToTheItemNotToTheInput) {
  CborLimits limits;
  limits.max_document_bytes = 8;
  Bytes input = CborBuilder().text("abcdefg").take();
  input.resize(64, 0x00);
  CborDocument document;
  std::size_t consumed = 0;
  EXPECT_EQ(document.parse_prefix(input, limits, consumed), std::nullopt);
  EXPECT_EQ(consumed, 8u);
}

TEST(DagCbor, HugeDeclaredLengthsFailWithoutAllocating) {
  CborLimits unlimited_items;
  unlimited_items.max_container_items = 0xffffffffu;
  struct Case {
    Bytes input;
    CborLimits limits;
    CborError expected;
  };
  const Case cases[] = {
      // Array of 2^32 - 1 items in 5 bytes.
      {{0x9a, 0xff, 0xff, 0xff, 0xff}, {}, CborError::too_many_items},
      {{0x9a, 0xff, 0xff, 0xff, 0xff}, unlimited_items, CborError::truncated},
      // Array and map of 2^32 and 2^64 - 1 items.
      {{0x9b, 0, 0, 0, 1, 0, 0, 0, 0}, unlimited_items, CborError::too_many_items},
      {{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
       unlimited_items,
       CborError::too_many_items},
      {{0xba, 0xff, 0xff, 0xff, 0xff}, unlimited_items, CborError::truncated},
      // Byte and text strings declaring 4 GiB and 2^64 - 1 bytes.
      {{0x5a, 0xff, 0xff, 0xff, 0xff, 0x00}, {}, CborError::truncated},
      {{0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x61}, {}, CborError::truncated},
      {{0xd8, 0x2a, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00},
       {},
       CborError::truncated},
  };
  for (const Case& c : cases) {
    CborDocument document;
    EXPECT_EQ(document.parse(c.input, c.limits), c.expected);
    // Nothing was reserved in proportion to the declared length.
    EXPECT_LE(document.nodes().capacity(), 16u);
  }
}

TEST(DagCbor, ContainerCountBeyondTheRemainingBytesIsTruncated) {
  // 3 items declared, 2 present.
  EXPECT_EQ(parse_error({0x83, 0x01, 0x02}), CborError::truncated);
  // A map whose last value is missing.
  EXPECT_EQ(parse_error({0xa1, 0x61, 0x61}), CborError::truncated);
}

TEST(DagCbor, EmptyInputIsTruncated) { EXPECT_EQ(parse_error({}), CborError::truncated); }

TEST(DagCbor, EveryTruncationOfAValidDocumentIsTruncated) {
  const Bytes full = rich_document();
  CborDocument document;
  ASSERT_EQ(document.parse(full, {}), std::nullopt);
  for (std::size_t length = 0; length < full.size(); ++length) {
    // A heap copy of exactly `length` bytes, so AddressSanitizer sees any read past the end.
    const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_EQ(document.parse(prefix, {}), CborError::truncated) << "length " << length;
    std::size_t consumed = 99;
    EXPECT_EQ(document.parse_prefix(prefix, {}, consumed), CborError::truncated)
        << "length " << length;
  }
}

TEST(DagCbor, EveryTruncationOfEachScalarIsTruncated) {
  const Bytes samples[] = {
      CborBuilder().uint(0x1234567890ULL).take(),      CborBuilder().integer(-70000).take(),
      CborBuilder().text(std::string(30, 'x')).take(), CborBuilder().bytes(Bytes(300, 7)).take(),
      CborBuilder().link(sample_cid()).take(),
  };
  for (const Bytes& full : samples) {
    ASSERT_EQ(parse_error(full), std::nullopt);
    for (std::size_t length = 0; length < full.size(); ++length) {
      const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(length));
      EXPECT_EQ(parse_error(prefix), CborError::truncated) << "length " << length;
    }
  }
}

TEST(DagCbor, ParseRejectsTrailingBytesButParsePrefixReportsTheLength) {
  const Bytes one = rich_document();
  Bytes two = one;
  two.push_back(0x01);
  two.push_back(0x02);
  CborDocument document;
  EXPECT_EQ(document.parse(two, {}), CborError::trailing_bytes);
  std::size_t consumed = 0;
  ASSERT_EQ(document.parse_prefix(two, {}, consumed), std::nullopt);
  EXPECT_EQ(consumed, one.size());
  EXPECT_EQ(document.root().count, 4u);
  EXPECT_EQ(document.root().end, 18u);
}

TEST(DagCbor, ParsePrefixReadsConcatenatedDocumentsOneAtATime) {
  // Like a firehose frame: header then body.
  Bytes frame = CborBuilder().map(1).text("op").uint(1).take();
  const std::size_t header_size = frame.size();
  const Bytes body = CborBuilder().array(2).text("x").null().take();
  frame.insert(frame.end(), body.begin(), body.end());
  CborDocument document;
  std::size_t consumed = 0;
  ASSERT_EQ(document.parse_prefix(frame, {}, consumed), std::nullopt);
  EXPECT_EQ(consumed, header_size);
  ASSERT_EQ(document.parse(byte_view(frame).subspan(consumed), {}), std::nullopt);
  EXPECT_EQ(document.root().kind, CborKind::array);
}

TEST(DagCbor, ErrorNamesAreDistinct) {
  std::set<std::string_view> names;
  for (int e = 0; e <= static_cast<int>(CborError::document_too_large); ++e) {
    const std::string_view name = to_string(static_cast<CborError>(e));
    EXPECT_FALSE(name.empty());
    EXPECT_NE(name, "unknown");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(CborError::document_too_large) + 1);
  EXPECT_EQ(to_string(CborError::float_value), "float_value");
}

}  // namespace
}  // namespace jetstream::codec
