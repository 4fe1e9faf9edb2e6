// Contracts of common/codec/cid: unsigned varints, binary CIDv1 parsing, the base32 text form,
// and computing / checking sha2-256 CIDs of block bytes.
#include "common/codec/cid.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"

namespace jetstream::codec {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes from_hex(std::string_view hex) {
  Bytes out;
  auto nibble = [](char c) { return static_cast<std::uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>((nibble(hex[i]) << 4) | nibble(hex[i + 1])));
  }
  return out;
}

Bytes to_vector(byte_view view) { return {view.begin(), view.end()}; }

// CC0 vectors from the atproto interop suite (data-model-fixtures.json): a dag-cbor record CID and
// a raw blob CID, with their binary forms (decoded independently with Python's base64.b32decode).
constexpr std::string_view kDagCborCid =
    "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq";
constexpr std::string_view kDagCborCidHex =
    "017112204b7f39b582ae354e9d8f4e0e857096921351a5752af84814e4df51d7b24801b4";
constexpr std::string_view kRawCid = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity";
constexpr std::string_view kRawCidHex =
    "015512204258cfff78f613697697563f926c91e5d3574d2ea25ae7ed92d6ebfc23a3889e";

// Computed independently: python3 -c "hashlib.sha256(b'\xa0')" wrapped as 01 71 12 20 <digest>,
// then base32. The well-known CID of the empty DAG-CBOR map.
constexpr std::string_view kEmptyMapCid =
    "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua";
constexpr std::string_view kEmptyMapCidHex =
    "01711220c19a797fa1fd590cd2e5b42d1cf5f246e29b91684e2f87404b81dc345c7a56a0";
// sha256 of no bytes under the raw codec.
constexpr std::string_view kEmptyRawCid =
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
// sha256("hello") under the raw codec.
constexpr std::string_view kHelloRawCid =
    "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq";

// ---- varints ---------------------------------------------------------------------------------

TEST(Uvarint, ReadsSingleByteValues) {
  std::uint64_t value = 99;
  const Bytes zero{0x00};
  EXPECT_EQ(read_uvarint(zero, value), 1u);
  EXPECT_EQ(value, 0u);
  const Bytes max_one{0x7f};
  EXPECT_EQ(read_uvarint(max_one, value), 1u);
  EXPECT_EQ(value, 127u);
}

TEST(Uvarint, ReadsMultiByteValuesLittleEndianGroups) {
  std::uint64_t value = 0;
  const Bytes v128{0x80, 0x01};
  EXPECT_EQ(read_uvarint(v128, value), 2u);
  EXPECT_EQ(value, 128u);
  const Bytes v300{0xac, 0x02};
  EXPECT_EQ(read_uvarint(v300, value), 2u);
  EXPECT_EQ(value, 300u);
  const Bytes v65535{0xff, 0xff, 0x03};
  EXPECT_EQ(read_uvarint(v65535, value), 3u);
  EXPECT_EQ(value, 65535u);
  const Bytes blake2b{0xa0, 0xe4, 0x02};
  EXPECT_EQ(read_uvarint(blake2b, value), 3u);
  EXPECT_EQ(value, 0xb220u);
}

TEST(Uvarint, ReadsOnlyItsOwnBytesFromALongerInput) {
  std::uint64_t value = 0;
  const Bytes input{0x05, 0xff, 0xff};
  EXPECT_EQ(read_uvarint(input, value), 1u);
  EXPECT_EQ(value, 5u);
}

TEST(Uvarint, AcceptsNineBytesUpTo63Bits) {
  std::uint64_t value = 0;
  const Bytes max63{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  EXPECT_EQ(read_uvarint(max63, value), 9u);
  EXPECT_EQ(value, 0x7fffffffffffffffULL);
  const Bytes two56{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  EXPECT_EQ(read_uvarint(two56, value), 9u);
  EXPECT_EQ(value, 1ULL << 56);
}

TEST(Uvarint, RejectsOverflowBeyondNineBytes) {
  std::uint64_t value = 0;
  const Bytes ten{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  EXPECT_EQ(read_uvarint(ten, value), 0u);
  const Bytes two63{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  EXPECT_EQ(read_uvarint(two63, value), 0u);
}

TEST(Uvarint, RejectsNonMinimalEncodings) {
  std::uint64_t value = 0;
  for (const Bytes& input :
       {Bytes{0x80, 0x00}, Bytes{0x81, 0x00}, Bytes{0xff, 0x80, 0x00}, Bytes{0x80, 0x80, 0x00}}) {
    EXPECT_EQ(read_uvarint(input, value), 0u) << "accepted a trailing zero group";
  }
}

TEST(Uvarint, RejectsTruncatedAndEmptyInput) {
  std::uint64_t value = 0;
  EXPECT_EQ(read_uvarint(byte_view{}, value), 0u);
  const Bytes continuation_only{0x80};
  EXPECT_EQ(read_uvarint(continuation_only, value), 0u);
  const Bytes two_continuations{0xff, 0xff};
  EXPECT_EQ(read_uvarint(two_continuations, value), 0u);
}

// ---- binary and text forms -------------------------------------------------------------------

TEST(Cid, ParsesTextFormOfDagCborCidToKnownBytes) {
  const auto bytes = parse_cid_string(kDagCborCid);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(*bytes, from_hex(kDagCborCidHex));
  const auto cid = parse_cid(*bytes);
  ASSERT_TRUE(cid.has_value());
  EXPECT_EQ(cid->version, 1u);
  EXPECT_EQ(cid->codec, kCodecDagCbor);
  EXPECT_EQ(cid->hash_code, kMultihashSha256);
  EXPECT_EQ(cid->digest.size(), 32u);
  EXPECT_EQ(cid->bytes.size(), kSha256CidSize);
  EXPECT_EQ(to_vector(cid->digest), Bytes(bytes->begin() + 4, bytes->end()));
}

TEST(Cid, ParsesTextFormOfRawCidToKnownBytes) {
  const auto bytes = parse_cid_string(kRawCid);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(*bytes, from_hex(kRawCidHex));
  const auto cid = parse_cid(*bytes);
  ASSERT_TRUE(cid.has_value());
  EXPECT_EQ(cid->codec, kCodecRaw);
}

TEST(Cid, WritesKnownBytesAsMultibaseBase32Text) {
  EXPECT_EQ(cid_to_string(from_hex(kDagCborCidHex)), kDagCborCid);
  EXPECT_EQ(cid_to_string(from_hex(kRawCidHex)), kRawCid);
  std::string out = "link=";
  append_cid_string(out, from_hex(kRawCidHex));
  EXPECT_EQ(out, std::string("link=") + std::string(kRawCid));
}

TEST(Cid, ParsedViewsPointIntoTheInputBuffer) {
  const Bytes bytes = from_hex(kDagCborCidHex);
  const auto cid = parse_cid(bytes);
  ASSERT_TRUE(cid.has_value());
  EXPECT_EQ(cid->bytes.data(), bytes.data());
  EXPECT_EQ(cid->digest.data(), bytes.data() + 4);
}

TEST(Cid, ComputesDagCborCidOfEmptyMap) {
  const Bytes empty_map{0xa0};
  const auto cid = compute_cid(kCodecDagCbor, empty_map);
  EXPECT_EQ(Bytes(cid.begin(), cid.end()), from_hex(kEmptyMapCidHex));
  EXPECT_EQ(cid_to_string(cid), kEmptyMapCid);
}

TEST(Cid, ComputesRawCidsOfKnownData) {
  EXPECT_EQ(cid_to_string(compute_cid(kCodecRaw, byte_view{})), kEmptyRawCid);
  EXPECT_EQ(cid_to_string(compute_cid(kCodecRaw, as_bytes("hello"))), kHelloRawCid);
}

TEST(Cid, ComputedCidsParseBack) {
  const auto cid_bytes = compute_cid(kCodecRaw, as_bytes("hello"));
  const auto cid = parse_cid(cid_bytes);
  ASSERT_TRUE(cid.has_value());
  EXPECT_EQ(cid->codec, kCodecRaw);
  EXPECT_EQ(cid->hash_code, kMultihashSha256);
  EXPECT_EQ(cid->digest.size(), 32u);
}

TEST(Cid, MatchesReportsWhetherDataHashesToTheDigest) {
  const Bytes empty_map{0xa0};
  const Bytes bytes = from_hex(kEmptyMapCidHex);
  const auto cid = parse_cid(bytes);
  ASSERT_TRUE(cid.has_value());
  EXPECT_TRUE(cid_matches(*cid, empty_map));
  const Bytes empty_array{0x80};
  EXPECT_FALSE(cid_matches(*cid, empty_array));
  EXPECT_FALSE(cid_matches(*cid, byte_view{}));
  const Bytes longer{0xa0, 0x00};
  EXPECT_FALSE(cid_matches(*cid, longer));
}

TEST(Cid, MatchesIgnoresTheCodec) {
  // The digest covers the bytes only: the same bytes under raw and dag-cbor both match.
  const Bytes data{0xa0};
  const auto raw = compute_cid(kCodecRaw, data);
  const auto cid = parse_cid(raw);
  ASSERT_TRUE(cid.has_value());
  EXPECT_TRUE(cid_matches(*cid, data));
}

TEST(Cid, MatchesIsFalseForOtherHashFunctions) {
  // Same 32 digest bytes, but labelled blake2b-256 (0xb220): never a sha2-256 match.
  Bytes bytes{0x01, 0x71, 0xa0, 0xe4, 0x02, 0x20};
  const Bytes sha = from_hex(kEmptyMapCidHex);
  bytes.insert(bytes.end(), sha.begin() + 4, sha.end());
  const auto cid = parse_cid(bytes);
  ASSERT_TRUE(cid.has_value());
  EXPECT_EQ(cid->hash_code, 0xb220u);
  const Bytes empty_map{0xa0};
  EXPECT_FALSE(cid_matches(*cid, empty_map));
}

TEST(Cid, MatchesIsFalseForAShortSha256Digest) {
  // sha2-256 label but a 31-byte digest (the prefix of the real one).
  Bytes bytes{0x01, 0x71, 0x12, 0x1f};
  const Bytes sha = from_hex(kEmptyMapCidHex);
  bytes.insert(bytes.end(), sha.begin() + 4, sha.end() - 1);
  const auto cid = parse_cid(bytes);
  ASSERT_TRUE(cid.has_value());
  const Bytes empty_map{0xa0};
  EXPECT_FALSE(cid_matches(*cid, empty_map));
}

TEST(Cid, ParsePrefixReportsConsumedLengthAndLeavesTheRest) {
  Bytes input = from_hex(kDagCborCidHex);
  input.push_back(0xa0);
  input.push_back(0x01);
  std::size_t consumed = 0;
  const auto cid = parse_cid_prefix(input, consumed);
  ASSERT_TRUE(cid.has_value());
  EXPECT_EQ(consumed, kSha256CidSize);
  EXPECT_EQ(cid->bytes.size(), kSha256CidSize);
  // parse_cid insists on the CID spanning the whole input.
  EXPECT_FALSE(parse_cid(input).has_value());
}

TEST(Cid, RejectsCidV0) {
  // A CIDv0 is a bare sha2-256 multihash: 0x12 0x20 <32 bytes> ("Qm..." in base58).
  Bytes v0{0x12, 0x20};
  v0.resize(34, 0xab);
  EXPECT_FALSE(parse_cid(v0).has_value());
  // An explicit version 0 is not accepted either.
  Bytes explicit_v0 = from_hex(kDagCborCidHex);
  explicit_v0[0] = 0x00;
  EXPECT_FALSE(parse_cid(explicit_v0).has_value());
  EXPECT_FALSE(parse_cid_string("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n").has_value());
}

TEST(Cid, RejectsVersionsAboveOne) {
  Bytes v2 = from_hex(kDagCborCidHex);
  v2[0] = 0x02;
  EXPECT_FALSE(parse_cid(v2).has_value());
  v2[0] = 0x03;
  EXPECT_FALSE(parse_cid(v2).has_value());
}

TEST(Cid, RejectsEveryTruncation) {
  const Bytes bytes = from_hex(kDagCborCidHex);
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    const byte_view prefix(bytes.data(), length);
    std::size_t consumed = 12345;
    EXPECT_FALSE(parse_cid_prefix(prefix, consumed).has_value()) << "length " << length;
    EXPECT_FALSE(parse_cid(prefix).has_value()) << "length " << length;
  }
}

TEST(Cid, RejectsDigestLongerThanTheInput) {
  // Declares 33 digest bytes but carries 32.
  Bytes bytes = from_hex(kDagCborCidHex);
  bytes[3] = 0x21;
  EXPECT_FALSE(parse_cid(bytes).has_value());
}

TEST(Cid, RejectsNonMinimalVarintFields) {
  // Version 1 written as 0x81 0x00.
  Bytes bytes{0x81, 0x00, 0x71, 0x12, 0x20};
  const Bytes digest = from_hex(kDagCborCidHex);
  bytes.insert(bytes.end(), digest.begin() + 4, digest.end());
  EXPECT_FALSE(parse_cid(bytes).has_value());
}

TEST(Cid, ParseStringRejectsOtherMultibasesAndGarbage) {
  for (const std::string_view text :
       {"", "b", "B", "bafy", "z2DrjgbFdhNiSJghe5hgFmdpu8xmJ6nVVsLZEATNPVNzZkGX4P1",
        "fafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq",
        "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq=",
        "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabw",
        "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwqaa",
        " bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq", ".", "bmzxw6ytboi"}) {
    EXPECT_FALSE(parse_cid_string(text).has_value()) << "accepted \"" << text << "\"";
  }
}

TEST(Cid, TextRoundTripsForComputedCids) {
  for (const std::string_view data : {"", "a", "hello", "\xa0"}) {
    for (const std::uint64_t codec : {kCodecRaw, kCodecDagCbor}) {
      const auto cid = compute_cid(codec, as_bytes(data));
      const std::string text = cid_to_string(cid);
      const auto parsed = parse_cid_string(text);
      ASSERT_TRUE(parsed.has_value()) << text;
      EXPECT_EQ(*parsed, Bytes(cid.begin(), cid.end())) << text;
    }
  }
}

}  // namespace
}  // namespace jetstream::codec
