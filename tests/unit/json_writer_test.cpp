// Contracts of common/codec/json_writer: JSON strings escaped exactly as Go (v1) wrote them, per
// API.md "strings escaped as Go does", and integers in decimal.
#include "common/codec/json_writer.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>

namespace jetstream::codec {
namespace {

/// The JSON string literal (quotes included) for `text`.
std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

/// Expected output for `body` wrapped in quotes, for readability below.
std::string q(std::string_view body) { return "\"" + std::string(body) + "\""; }

constexpr std::string_view kFffd = "\\ufffd";

TEST(JsonString, WritesPlainAsciiRawInQuotes) {
  EXPECT_EQ(json_string(""), q(""));
  EXPECT_EQ(json_string("hello world"), q("hello world"));
  EXPECT_EQ(json_string("a'b`c~!@#$%^*()_+-={}[]|:;,.?"), q("a'b`c~!@#$%^*()_+-={}[]|:;,.?"));
}

TEST(JsonString, EscapesQuoteAndBackslash) {
  EXPECT_EQ(json_string("\""), q("\\\""));
  EXPECT_EQ(json_string("\\"), q("\\\\"));
  EXPECT_EQ(json_string("say \"hi\" \\o/"), q("say \\\"hi\\\" \\\\o/"));
}

TEST(JsonString, EscapesNewlineCarriageReturnAndTabShort) {
  EXPECT_EQ(json_string("\n"), q("\\n"));
  EXPECT_EQ(json_string("\r"), q("\\r"));
  EXPECT_EQ(json_string("\t"), q("\\t"));
  EXPECT_EQ(json_string("a\r\nb\tc"), q("a\\r\\nb\\tc"));
}

TEST(JsonString, EscapesOtherControlBytesAsLowercaseU00xx) {
  EXPECT_EQ(json_string(std::string_view("\0", 1)), q("\\u0000"));
  EXPECT_EQ(json_string("\x01"), q("\\u0001"));
  EXPECT_EQ(json_string("\x08"), q("\\u0008"));  // not \b
  EXPECT_EQ(json_string("\x0b"), q("\\u000b"));
  EXPECT_EQ(json_string("\x0c"), q("\\u000c"));  // not \f
  EXPECT_EQ(json_string("\x1b"), q("\\u001b"));  // lowercase hex
  EXPECT_EQ(json_string("\x1f"), q("\\u001f"));
}

TEST(JsonString, EscapesEveryByteBelow0x20) {
  for (int c = 0; c < 0x20; ++c) {
    const char byte = static_cast<char>(c);
    std::string expected;
    switch (c) {
      case '\n': expected = "\\n"; break;
      case '\r': expected = "\\r"; break;
      case '\t': expected = "\\t"; break;
      default: {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(c));
        expected = buffer;
      }
    }
    EXPECT_EQ(json_string(std::string_view(&byte, 1)), q(expected)) << "byte " << c;
  }
}

TEST(JsonString, EscapesHtmlSpecialCharacters) {
  EXPECT_EQ(json_string("<"), q("\\u003c"));
  EXPECT_EQ(json_string(">"), q("\\u003e"));
  EXPECT_EQ(json_string("&"), q("\\u0026"));
  EXPECT_EQ(json_string("<a href=\"x\">&amp;</a>"),
            q("\\u003ca href=\\\"x\\\"\\u003e\\u0026amp;\\u003c/a\\u003e"));
}

TEST(JsonString, LeavesSlashAndDeleteRaw) {
  EXPECT_EQ(json_string("/"), q("/"));
  EXPECT_EQ(json_string("https://bsky.app/profile"), q("https://bsky.app/profile"));
  EXPECT_EQ(json_string("\x7f"), q("\x7f"));
}

TEST(JsonString, EveryAsciiByteMatchesGo) {
  for (int c = 0x20; c < 0x80; ++c) {
    const char byte = static_cast<char>(c);
    std::string expected(1, byte);
    if (c == '"') expected = "\\\"";
    if (c == '\\') expected = "\\\\";
    if (c == '<') expected = "\\u003c";
    if (c == '>') expected = "\\u003e";
    if (c == '&') expected = "\\u0026";
    EXPECT_EQ(json_string(std::string_view(&byte, 1)), q(expected)) << "byte " << c;
  }
}

TEST(JsonString, EscapesLineAndParagraphSeparators) {
  EXPECT_EQ(json_string("\xe2\x80\xa8"), q("\\u2028"));
  EXPECT_EQ(json_string("\xe2\x80\xa9"), q("\\u2029"));
  EXPECT_EQ(json_string("a\xe2\x80\xa8"
                        "b\xe2\x80\xa9"
                        "c"),
            q("a\\u2028b\\u2029c"));
  // Their neighbours U+2027 and U+202A stay raw.
  EXPECT_EQ(json_string("\xe2\x80\xa7"), q("\xe2\x80\xa7"));
  EXPECT_EQ(json_string("\xe2\x80\xaa"), q("\xe2\x80\xaa"));
}

TEST(JsonString, WritesValidMultiByteUtf8Raw) {
  EXPECT_EQ(json_string("\xc3\xa9"), q("\xc3\xa9"));                  // é (2 bytes)
  EXPECT_EQ(json_string("\xe2\x82\xac"), q("\xe2\x82\xac"));          // € (3 bytes)
  EXPECT_EQ(json_string("\xf0\x9f\x98\x80"), q("\xf0\x9f\x98\x80"));  // 😀 (4 bytes)
  EXPECT_EQ(json_string("caf\xc3\xa9 \xe2\x82\xac"
                        "5 \xf0\x9f\x98\x80!"),
            q("caf\xc3\xa9 \xe2\x82\xac"
              "5 \xf0\x9f\x98\x80!"));
  // Boundaries of the valid ranges.
  EXPECT_EQ(json_string("\xc2\x80"), q("\xc2\x80"));                  // U+0080
  EXPECT_EQ(json_string("\xdf\xbf"), q("\xdf\xbf"));                  // U+07FF
  EXPECT_EQ(json_string("\xe0\xa0\x80"), q("\xe0\xa0\x80"));          // U+0800
  EXPECT_EQ(json_string("\xed\x9f\xbf"), q("\xed\x9f\xbf"));          // U+D7FF
  EXPECT_EQ(json_string("\xee\x80\x80"), q("\xee\x80\x80"));          // U+E000
  EXPECT_EQ(json_string("\xef\xbf\xbf"), q("\xef\xbf\xbf"));          // U+FFFF
  EXPECT_EQ(json_string("\xf0\x90\x80\x80"), q("\xf0\x90\x80\x80"));  // U+10000
  EXPECT_EQ(json_string("\xf4\x8f\xbf\xbf"), q("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST(JsonString, WritesReplacementCharacterItselfRaw) {
  EXPECT_EQ(json_string("\xef\xbf\xbd"), q("\xef\xbf\xbd"));
}

std::string fffd(int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += kFffd;
  return out;
}

TEST(JsonString, ReplacesALoneContinuationByte) {
  EXPECT_EQ(json_string("\x80"), q(fffd(1)));
  EXPECT_EQ(json_string("\xbf"), q(fffd(1)));
  EXPECT_EQ(json_string("a\x80z"), q("a" + fffd(1) + "z"));
  EXPECT_EQ(json_string("\x80\x80\x80"), q(fffd(3)));
}

TEST(JsonString, ReplacesOverlongEncodingsByteByByte) {
  EXPECT_EQ(json_string("\xc0\x80"), q(fffd(2)));
  EXPECT_EQ(json_string("\xc1\xbf"), q(fffd(2)));
  EXPECT_EQ(json_string("\xe0\x80\x80"), q(fffd(3)));
  EXPECT_EQ(json_string("\xe0\x9f\xbf"), q(fffd(3)));
  EXPECT_EQ(json_string("\xf0\x8f\xbf\xbf"), q(fffd(4)));
}

TEST(JsonString, ReplacesSurrogatesByteByByte) {
  EXPECT_EQ(json_string("\xed\xa0\x80"), q(fffd(3)));  // U+D800
  EXPECT_EQ(json_string("\xed\xbf\xbf"), q(fffd(3)));  // U+DFFF
  // A CESU-8 surrogate pair for U+1F600 is six invalid bytes.
  EXPECT_EQ(json_string("\xed\xa0\xbd\xed\xb8\x80"), q(fffd(6)));
}

TEST(JsonString, ReplacesTruncatedSequencesAndKeepsWhatFollows) {
  EXPECT_EQ(json_string("\xe2\x82"
                        "a"),
            q(fffd(2) + "a"));
  EXPECT_EQ(json_string("\xe2\x82"), q(fffd(2)));  // at the end of the string
  EXPECT_EQ(json_string("\xc3"), q(fffd(1)));
  EXPECT_EQ(json_string("\xc3"
                        "A"),
            q(fffd(1) + "A"));
  EXPECT_EQ(json_string("\xf0\x9f\x98"), q(fffd(3)));
  EXPECT_EQ(json_string("\xf0\x9f\x98"
                        "\xf0\x9f\x98\x80"),
            q(fffd(3) + "\xf0\x9f\x98\x80"));
  // A truncated sequence followed by a byte that needs escaping.
  EXPECT_EQ(json_string("\xe2\x82<"), q(fffd(2) + "\\u003c"));
  // A truncated U+2028 is not a separator.
  EXPECT_EQ(json_string("\xe2\x80"), q(fffd(2)));
}

TEST(JsonString, ReplacesBytesThatNeverStartUtf8) {
  EXPECT_EQ(json_string("\xf5\x80\x80\x80"), q(fffd(4)));  // would be above U+10FFFF
  EXPECT_EQ(json_string("\xf4\x90\x80\x80"), q(fffd(4)));  // U+110000
  EXPECT_EQ(json_string("\xf8\x88\x80\x80\x80"), q(fffd(5)));
  EXPECT_EQ(json_string("\xfe"), q(fffd(1)));
  EXPECT_EQ(json_string("\xff"), q(fffd(1)));
  EXPECT_EQ(json_string("x\xffy"), q("x" + fffd(1) + "y"));
}

TEST(JsonString, EveryHighByteAloneIsReplaced) {
  for (int c = 0x80; c < 0x100; ++c) {
    const char byte = static_cast<char>(c);
    EXPECT_EQ(json_string(std::string_view(&byte, 1)), q(fffd(1))) << "byte " << c;
  }
}

TEST(JsonString, AppendsWithoutTouchingExistingText) {
  std::string out = "{\"k\":";
  append_json_string(out, "v<");
  EXPECT_EQ(out, "{\"k\":\"v\\u003c\"");
}

TEST(JsonString, HandlesLongMixedInput) {
  std::string input;
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    input += "abc\xc3\xa9<\n\x80";
    expected += "abc\xc3\xa9\\u003c\\n\\ufffd";
  }
  EXPECT_EQ(json_string(input), q(expected));
}

TEST(JsonInt, WritesSignedDecimal) {
  auto text = [](std::int64_t value) {
    std::string out;
    append_json_int(out, value);
    return out;
  };
  EXPECT_EQ(text(0), "0");
  EXPECT_EQ(text(1), "1");
  EXPECT_EQ(text(-1), "-1");
  EXPECT_EQ(text(123456789), "123456789");
  EXPECT_EQ(text(std::numeric_limits<std::int64_t>::max()), "9223372036854775807");
  EXPECT_EQ(text(std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
}

TEST(JsonInt, WritesUnsignedDecimal) {
  auto text = [](std::uint64_t value) {
    std::string out;
    append_json_uint(out, value);
    return out;
  };
  EXPECT_EQ(text(0), "0");
  EXPECT_EQ(text(10000), "10000");
  EXPECT_EQ(text(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
}

TEST(JsonInt, AppendsWithoutTouchingExistingText) {
  std::string out = "[1,";
  append_json_int(out, -2);
  out.push_back(',');
  append_json_uint(out, 3);
  EXPECT_EQ(out, "[1,-2,3");
}

}  // namespace
}  // namespace jetstream::codec
