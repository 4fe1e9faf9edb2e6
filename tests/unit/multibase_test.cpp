// Contracts of common/codec/multibase: RFC 4648 base32 (lowercase, unpadded; the body of a CID's
// multibase "b" text form), RFC 4648 base64 with the standard alphabet, unpadded (`$bytes`), and
// base58btc (the body of a multibase "z" string: `did:key` and multikey public keys).
#include "common/codec/multibase.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"

namespace jetstream::codec {
namespace {

std::string base32(std::string_view data) {
  std::string out;
  append_base32_lower(out, as_bytes(data));
  return out;
}

std::string base64(std::string_view data) {
  std::string out;
  append_base64_std_unpadded(out, as_bytes(data));
  return out;
}

std::vector<std::uint8_t> to_vector(std::string_view data) {
  const byte_view view = as_bytes(data);
  return {view.begin(), view.end()};
}

struct Vector {
  std::string_view data;
  std::string_view encoded;
};

// RFC 4648 section 10 test vectors, with the padding removed (and lowercased for base32).
constexpr Vector kBase32Vectors[] = {
    {"", ""},
    {"f", "my"},
    {"fo", "mzxq"},
    {"foo", "mzxw6"},
    {"foob", "mzxw6yq"},
    {"fooba", "mzxw6ytb"},
    {"foobar", "mzxw6ytboi"},
};
constexpr Vector kBase64Vectors[] = {
    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

TEST(Base32, EncodesRfc4648VectorsLowercaseWithoutPadding) {
  for (const auto& [data, encoded] : kBase32Vectors) {
    EXPECT_EQ(base32(data), encoded) << "input \"" << data << "\"";
  }
}

TEST(Base32, DecodesRfc4648Vectors) {
  for (const auto& [data, encoded] : kBase32Vectors) {
    const auto decoded = decode_base32(encoded);
    ASSERT_TRUE(decoded.has_value()) << encoded;
    EXPECT_EQ(*decoded, to_vector(data)) << encoded;
  }
}

TEST(Base32, DecodesUppercaseAsWell) {
  const auto decoded = decode_base32("MZXW6YTBOI");
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, to_vector("foobar"));
}

TEST(Base32, EncodeAppendsWithoutTouchingExistingText) {
  std::string out = "prefix:";
  append_base32_lower(out, as_bytes("foobar"));
  EXPECT_EQ(out, "prefix:mzxw6ytboi");
}

TEST(Base32, UsesTheWholeAlphabetForAllOnesAndAllZeros) {
  EXPECT_EQ(base32(std::string_view("\xff\xff\xff\xff\xff", 5)), "77777777");
  EXPECT_EQ(base32(std::string_view("\0\0\0\0\0", 5)), "aaaaaaaa");
  // 00000 00001 00010 ... covers the letters; 0x84 0x21 0x08 0x42 0x10 is 1,1,1,... in 5-bit
  // groups.
  EXPECT_EQ(base32(std::string_view("\x08\x42\x10\x84\x21", 5)), "bbbbbbbb");
}

TEST(Base32, RoundTripsEveryLengthAndByteValue) {
  std::vector<std::uint8_t> data;
  for (std::size_t length = 0; length <= 300; ++length) {
    data.resize(length);
    for (std::size_t i = 0; i < length; ++i) {
      data[i] = static_cast<std::uint8_t>((i * 167 + length * 13) & 0xff);
    }
    std::string encoded;
    append_base32_lower(encoded, data);
    ASSERT_EQ(encoded.size(), (length * 8 + 4) / 5) << "length " << length;
    for (const char c : encoded) {
      ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << encoded;
    }
    const auto decoded = decode_base32(encoded);
    ASSERT_TRUE(decoded.has_value()) << "length " << length;
    EXPECT_EQ(*decoded, data) << "length " << length;
  }
}

TEST(Base32, RejectsCharactersOutsideTheAlphabet) {
  // '0', '1', '8', '9' are not base32 digits; '=' padding is not accepted; nor is whitespace,
  // punctuation or any byte >= 0x80.
  for (const std::string_view bad :
       {"mzxw6yt0", "mzxw6yt1", "mzxw6yt8", "mzxw6yt9", "my======", "my=", "mzx w6", "mzxw6\n",
        "mz-xq", "mzxq\x80", "\xffmzxq", "mz.q"}) {
    EXPECT_FALSE(decode_base32(bad).has_value()) << "accepted \"" << bad << "\"";
  }
  EXPECT_FALSE(decode_base32(std::string_view("mz\0q", 4)).has_value());
}

TEST(Base32, RejectsNonZeroPadBits) {
  // "my" is 01100 11000: one byte 'f' and two zero pad bits. "mz" sets a pad bit.
  ASSERT_TRUE(decode_base32("my").has_value());
  EXPECT_FALSE(decode_base32("mz").has_value());
  EXPECT_FALSE(decode_base32("m7").has_value());
  // "mzxq" = "fo" with 4 zero pad bits; "mzxr" sets the lowest one.
  ASSERT_TRUE(decode_base32("mzxq").has_value());
  EXPECT_FALSE(decode_base32("mzxr").has_value());
  // "mzxw6yq" = "foob" with 3 pad bits; "mzxw6yr" sets one.
  ASSERT_TRUE(decode_base32("mzxw6yq").has_value());
  EXPECT_FALSE(decode_base32("mzxw6yr").has_value());
  // "mzxw6" = "foo" with 1 pad bit ('6' = 11110); "mzxw7" sets it.
  ASSERT_TRUE(decode_base32("mzxw6").has_value());
  EXPECT_FALSE(decode_base32("mzxw7").has_value());
}

TEST(Base32, RejectsLengthsThatLeaveADanglingSymbol) {
  // 1, 3 and 6 symbols (mod 8) cannot come from whole bytes.
  EXPECT_FALSE(decode_base32("m").has_value());
  EXPECT_FALSE(decode_base32("a").has_value());
  EXPECT_FALSE(decode_base32("aaa").has_value());
  EXPECT_FALSE(decode_base32("aaaaaa").has_value());
  EXPECT_FALSE(decode_base32("aaaaaaaaa").has_value());
  EXPECT_TRUE(decode_base32("aa").has_value());
  EXPECT_TRUE(decode_base32("aaaa").has_value());
  EXPECT_TRUE(decode_base32("aaaaa").has_value());
  EXPECT_TRUE(decode_base32("aaaaaaa").has_value());
}

TEST(Base32, DecodesEmptyTextToNoBytes) {
  const auto decoded = decode_base32("");
  ASSERT_TRUE(decoded.has_value());
  EXPECT_TRUE(decoded->empty());
}

TEST(Base64, EncodesRfc4648VectorsWithoutPadding) {
  for (const auto& [data, encoded] : kBase64Vectors) {
    EXPECT_EQ(base64(data), encoded) << "input \"" << data << "\"";
  }
}

TEST(Base64, UsesTheStandardAlphabetPlusAndSlash) {
  EXPECT_EQ(base64("\xfb\xef\xbe"), "++++");
  EXPECT_EQ(base64("\xff\xff\xff"), "////");
  EXPECT_EQ(base64("\xfb\xff"), "+/8");
  EXPECT_EQ(base64(std::string_view("\0\0\0", 3)), "AAAA");
  // Never the URL-safe alphabet.
  std::string all;
  std::vector<std::uint8_t> every_byte(256);
  for (std::size_t i = 0; i < every_byte.size(); ++i) every_byte[i] = static_cast<std::uint8_t>(i);
  append_base64_std_unpadded(all, every_byte);
  EXPECT_EQ(all.find_first_of("-_="), std::string::npos);
  EXPECT_EQ(all.size(), 342u);  // ceil(256 * 4 / 3) without padding
  EXPECT_EQ(all.substr(0, 8), "AAECAwQF");
  EXPECT_EQ(all.substr(all.size() - 6), "/P3+/w");
}

TEST(Base64, EncodeAppendsWithoutTouchingExistingText) {
  std::string out = "x=";
  append_base64_std_unpadded(out, as_bytes("foobar"));
  EXPECT_EQ(out, "x=Zm9vYmFy");
}

TEST(Base64, OutputLengthIsCeilFourThirds) {
  std::vector<std::uint8_t> data;
  for (std::size_t length = 0; length < 64; ++length) {
    data.assign(length, 0x5a);
    std::string out;
    append_base64_std_unpadded(out, data);
    EXPECT_EQ(out.size(), (length * 4 + 2) / 3) << "length " << length;
  }
}

// The base58 vectors of draft-msporny-base58 (section 5), and its leading-zero example.
TEST(Base58btc, DecodesTheDraftVectors) {
  EXPECT_EQ(decode_base58btc("2NEpo7TZRRrLZSi2U"), to_vector("Hello World!"));
  EXPECT_EQ(decode_base58btc("USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"),
            to_vector("The quick brown fox jumps over the lazy dog."));
  EXPECT_EQ(decode_base58btc("11233QC4"),
            (std::vector<std::uint8_t>{0x00, 0x00, 0x28, 0x7f, 0xb4, 0xcd}));
  EXPECT_EQ(decode_base58btc(""), std::vector<std::uint8_t>{});
}

TEST(Base58btc, EncodesTheDraftVectors) {
  std::string out = "z";
  append_base58btc(out, as_bytes("Hello World!"));
  EXPECT_EQ(out, "z2NEpo7TZRRrLZSi2U");
  out.clear();
  append_base58btc(out, std::vector<std::uint8_t>{0x00, 0x00, 0x28, 0x7f, 0xb4, 0xcd});
  EXPECT_EQ(out, "11233QC4");
}

TEST(Base58btc, RoundTripsEveryLengthWithLeadingZeros) {
  std::vector<std::uint8_t> data;
  for (std::size_t length = 0; length < 48; ++length) {
    data.assign(length, 0);
    for (std::size_t i = length / 3; i < length; ++i)
      data[i] = static_cast<std::uint8_t>(i * 37 + 1);
    std::string text;
    append_base58btc(text, data);
    EXPECT_EQ(decode_base58btc(text), data) << "length " << length;
  }
}

TEST(Base58btc, RejectsCharactersOutsideTheAlphabetAndOverlongOutput) {
  for (const std::string_view text : {"0abc", "Oabc", "Iabc", "labc", "ab+c", "ab c"}) {
    EXPECT_EQ(decode_base58btc(text), std::nullopt) << text;
  }
  const std::string long_text(200, 'z');
  EXPECT_EQ(decode_base58btc(long_text), std::nullopt);
  EXPECT_EQ(decode_base58btc(std::string(129, '1')), std::nullopt);
  EXPECT_TRUE(decode_base58btc(long_text, 1024).has_value());
}

}  // namespace
}  // namespace jetstream::codec
