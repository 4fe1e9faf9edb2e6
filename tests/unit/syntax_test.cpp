// Contracts of common/syntax: the official atproto interop vectors (read at run time from
// ../shared/interop/syntax/), plus the wantedCollections pattern rules of this project.
#include "common/syntax/syntax.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ios>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/shared_data.hpp"

namespace jetstream::syntax {
namespace {

using Validator = bool (*)(std::string_view) noexcept;

static_assert(noexcept(is_valid_nsid({})));
static_assert(noexcept(is_valid_did({})));
static_assert(noexcept(is_valid_handle({})));
static_assert(noexcept(is_valid_record_key({})));
static_assert(noexcept(is_valid_tid({})));

/// `value` with every byte outside printable ASCII shown as \xNN, so a failing vector with
/// trailing spaces, NULs or UTF-8 is readable in the assertion message.
std::string printable(std::string_view value) {
  std::string out = "\"";
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02X", static_cast<unsigned>(byte));
      out += escaped;
    }
  }
  out += '"';
  if (value.size() > 80) out += " (" + std::to_string(value.size()) + " bytes)";
  return out;
}

/// The whole file. (Not testing::read_text_file: its istreambuf_iterator trips GCC 12's
/// -Wnull-dereference inside libstdc++ at -O1 and above.)
std::string read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<std::size_t>(std::filesystem::file_size(path)), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

struct VectorLine {
  std::size_t line_number;
  std::string value;
};

/// The vectors of an interop file: every line except empty ones and those starting with `#`.
/// Lines are split on '\n' only and kept byte for byte (some vectors end in a space on purpose).
std::vector<VectorLine> read_vectors(const std::filesystem::path& path) {
  const std::string text = read_whole_file(path);
  std::vector<VectorLine> vectors;
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    const std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.front() != '#') vectors.push_back({line_number, std::string(line)});
    start = end + 1;
  }
  return vectors;
}

/// Checks every vector of `path` against `validator`; names the failing line in the message.
void expect_every_vector(const std::filesystem::path& path, Validator validator, bool expected) {
  const std::vector<VectorLine> vectors = read_vectors(path);
  for (const VectorLine& vector : vectors) {
    EXPECT_EQ(validator(vector.value), expected)
        << path.filename().string() << ":" << vector.line_number << " " << printable(vector.value)
        << " should be " << (expected ? "valid" : "invalid");
  }
  EXPECT_GT(vectors.size(), 0U) << "no vectors found in " << path;
}

bool is_valid_collection_pattern(std::string_view value) noexcept {
  return parse_collection_pattern(value).has_value();
}

/// `a.b.b....b.c`-shaped NSID of exactly `length` bytes (length >= 5).
std::string nsid_of_length(std::size_t length) {
  std::string nsid = "a";
  while (nsid.size() + 2 + (length % 2 == 0 ? 3 : 2) <= length) nsid += ".b";
  nsid += length % 2 == 0 ? ".cc" : ".c";
  return nsid;
}

// ---------------------------------------------------------------------------------------------
// Official interop vectors

TEST(Nsid, AcceptsEveryOfficialValidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/nsid_syntax_valid.txt");
  expect_every_vector(path, is_valid_nsid, true);
}

TEST(Nsid, RejectsEveryOfficialInvalidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/nsid_syntax_invalid.txt");
  expect_every_vector(path, is_valid_nsid, false);
}

TEST(Did, AcceptsEveryOfficialValidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/did_syntax_valid.txt");
  expect_every_vector(path, is_valid_did, true);
}

TEST(Did, RejectsEveryOfficialInvalidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/did_syntax_invalid.txt");
  expect_every_vector(path, is_valid_did, false);
}

TEST(Handle, AcceptsEveryOfficialValidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/handle_syntax_valid.txt");
  expect_every_vector(path, is_valid_handle, true);
}

TEST(Handle, RejectsEveryOfficialInvalidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/handle_syntax_invalid.txt");
  expect_every_vector(path, is_valid_handle, false);
}

TEST(RecordKey, AcceptsEveryOfficialValidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/recordkey_syntax_valid.txt");
  expect_every_vector(path, is_valid_record_key, true);
}

TEST(RecordKey, RejectsEveryOfficialInvalidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/recordkey_syntax_invalid.txt");
  expect_every_vector(path, is_valid_record_key, false);
}

TEST(Tid, AcceptsEveryOfficialValidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/tid_syntax_valid.txt");
  expect_every_vector(path, is_valid_tid, true);
}

TEST(Tid, RejectsEveryOfficialInvalidVector) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/tid_syntax_invalid.txt");
  expect_every_vector(path, is_valid_tid, false);
}

TEST(Tid, CarriesItsTimeInMicroseconds) {
  // A real commit rev of 2024-11-24T19:45:13.858156Z (clock id 31).
  EXPECT_EQ(tid_time_us("3lbprhgqz5g2z"), 1732477513858156);
  EXPECT_EQ(tid_time_us("2222222222222"), 0);
  EXPECT_EQ(*tid_time_us("3lbprhgqz5g22"), 1732477513858156)
      << "the last two chars are the clock id";
  EXPECT_LT(*tid_time_us("3lbprhgqz5g2z"), *tid_time_us("3lbprhgqz5h2z"));
  EXPECT_EQ(tid_time_us("3lbprhgqz5g2"), std::nullopt);
  EXPECT_EQ(tid_time_us("klbprhgqz5g2z"), std::nullopt) << "the top bit set";
}

TEST(CollectionPattern, AcceptsEveryOfficialValidNsidAsAnExactPattern) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/nsid_syntax_valid.txt");
  const std::vector<VectorLine> vectors = read_vectors(path);
  for (const VectorLine& vector : vectors) {
    const auto pattern = parse_collection_pattern(vector.value);
    ASSERT_TRUE(pattern.has_value())
        << "line " << vector.line_number << " " << printable(vector.value);
    EXPECT_EQ(pattern->kind, CollectionPatternKind::kExact) << "line " << vector.line_number;
    EXPECT_EQ(pattern->value, vector.value) << "line " << vector.line_number;
  }
  EXPECT_GT(vectors.size(), 0U);
}

TEST(CollectionPattern, AcceptsEveryOfficialValidNsidFollowedByDotStarAsAPrefix) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/nsid_syntax_valid.txt");
  const std::vector<VectorLine> vectors = read_vectors(path);
  for (const VectorLine& vector : vectors) {
    const auto pattern = parse_collection_pattern(vector.value + ".*");
    ASSERT_TRUE(pattern.has_value())
        << "line " << vector.line_number << " " << printable(vector.value);
    EXPECT_EQ(pattern->kind, CollectionPatternKind::kPrefix) << "line " << vector.line_number;
    EXPECT_EQ(pattern->value, vector.value + ".") << "line " << vector.line_number;
  }
  EXPECT_GT(vectors.size(), 0U);
}

TEST(CollectionPattern, RejectsEveryOfficialInvalidNsidThatIsNotAPrefixPattern) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/syntax/nsid_syntax_invalid.txt");
  std::size_t checked = 0;
  for (const VectorLine& vector : read_vectors(path)) {
    if (std::string_view(vector.value).ends_with(".*")) continue;  // `com.example.foo.*` is one
    ++checked;
    EXPECT_FALSE(is_valid_collection_pattern(vector.value))
        << "line " << vector.line_number << " " << printable(vector.value);
  }
  EXPECT_GT(checked, 0U);
}

// ---------------------------------------------------------------------------------------------
// NSID: where the rules are easy to get wrong

TEST(Nsid, AllowsDigitsInTheNameSegmentButNotAsItsFirstCharacter) {
  // The 2024 indigo regex v1 used allowed letters only; the current spec and vectors allow digits.
  EXPECT_TRUE(is_valid_nsid("com.example.f00"));
  EXPECT_TRUE(is_valid_nsid("com.example.fooBarV2"));
  EXPECT_FALSE(is_valid_nsid("com.example.2foo"));
  EXPECT_FALSE(is_valid_nsid("com.example.foo-bar"));
}

TEST(Nsid, RequiresAFirstSegmentStartingWithALetterAndAtLeastThreeSegments) {
  EXPECT_TRUE(is_valid_nsid("a.b.c"));
  EXPECT_TRUE(is_valid_nsid("a.0.c"));
  EXPECT_FALSE(is_valid_nsid("0a.b.c"));
  EXPECT_FALSE(is_valid_nsid("a.b"));
  EXPECT_FALSE(is_valid_nsid("abc"));
  EXPECT_FALSE(is_valid_nsid(""));
  EXPECT_FALSE(is_valid_nsid("."));
  EXPECT_FALSE(is_valid_nsid(".."));
  EXPECT_FALSE(is_valid_nsid("a.b.c."));
}

TEST(Nsid, AcceptsExactly317BytesAndRejects318) {
  ASSERT_EQ(nsid_of_length(kMaxNsidLength).size(), kMaxNsidLength);
  ASSERT_EQ(nsid_of_length(kMaxNsidLength + 1).size(), kMaxNsidLength + 1);
  EXPECT_TRUE(is_valid_nsid(nsid_of_length(kMaxNsidLength)));
  EXPECT_FALSE(is_valid_nsid(nsid_of_length(kMaxNsidLength + 1)));
}

TEST(Nsid, AcceptsSegmentsOf63BytesAndRejects64) {
  const std::string s63(63, 'a');
  const std::string s64(64, 'a');
  EXPECT_TRUE(is_valid_nsid(s63 + ".b.c"));
  EXPECT_TRUE(is_valid_nsid("a." + s63 + ".c"));
  EXPECT_TRUE(is_valid_nsid("a.b." + s63));
  EXPECT_FALSE(is_valid_nsid(s64 + ".b.c"));
  EXPECT_FALSE(is_valid_nsid("a." + s64 + ".c"));
  EXPECT_FALSE(is_valid_nsid("a.b." + s64));
}

TEST(Nsid, RejectsEmbeddedNulAndEveryNonAsciiByte) {
  EXPECT_FALSE(is_valid_nsid(std::string_view("app.bsky.feed.post\0", 19)));
  EXPECT_FALSE(is_valid_nsid(std::string_view("app.bs\0ky.feed.post", 19)));
  for (int byte = 0x80; byte <= 0xff; ++byte) {
    const std::string value = std::string("app.bsky.po") + static_cast<char>(byte) + "st";
    EXPECT_FALSE(is_valid_nsid(value)) << printable(value);
  }
}

TEST(Nsid, AcceptsExactlyTheSpecBytesInEachSegmentPosition) {
  for (int byte = 0; byte <= 0xff; ++byte) {
    const char c = static_cast<char>(byte);
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool alnum = alpha || (c >= '0' && c <= '9');
    const std::string name_tail = std::string("app.bsky.p") + c;
    const std::string name_head = std::string("app.bsky.") + c + "p";
    const std::string authority = std::string("app.b") + c + "y.post";
    EXPECT_EQ(is_valid_nsid(name_tail), alnum) << printable(name_tail);
    EXPECT_EQ(is_valid_nsid(name_head), alpha) << printable(name_head);
    // '.' there splits `b.y` into two valid labels.
    EXPECT_EQ(is_valid_nsid(authority), alnum || c == '-' || c == '.') << printable(authority);
  }
}

// ---------------------------------------------------------------------------------------------
// DID

TEST(Did, AcceptsExactly2048BytesAndRejects2049) {
  const std::string prefix = "did:plc:";
  EXPECT_TRUE(is_valid_did(prefix + std::string(kMaxDidLength - prefix.size(), 'a')));
  EXPECT_FALSE(is_valid_did(prefix + std::string(kMaxDidLength - prefix.size() + 1, 'a')));
}

TEST(Did, AcceptsExactlyTheIdentifierBytesOfTheRegex) {
  for (int byte = 0; byte <= 0xff; ++byte) {
    const char c = static_cast<char>(byte);
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    const bool last_ok = alnum || c == '.' || c == '_' || c == '-';
    const bool middle_ok = last_ok || c == ':' || c == '%';
    const std::string last = std::string("did:plc:ab") + c;
    const std::string middle = std::string("did:plc:a") + c + "b";
    EXPECT_EQ(is_valid_did(last), last_ok) << printable(last);
    EXPECT_EQ(is_valid_did(middle), middle_ok) << printable(middle);
  }
}

TEST(Did, RequiresALowercaseMethodAndANonEmptyIdentifier) {
  EXPECT_TRUE(is_valid_did("did:plc:ewvi7nxzyoun6zhxrhs64oiz"));
  EXPECT_TRUE(is_valid_did("did:web:example.com"));
  EXPECT_FALSE(is_valid_did("did::abc"));
  EXPECT_FALSE(is_valid_did("did:Plc:abc"));
  EXPECT_FALSE(is_valid_did("did:pl2:abc"));
  EXPECT_FALSE(is_valid_did("did:plc"));
  EXPECT_FALSE(is_valid_did("did:plc:"));
  EXPECT_FALSE(is_valid_did("did:"));
  EXPECT_FALSE(is_valid_did(""));
  EXPECT_FALSE(is_valid_did(std::string_view("did:plc:abc\0", 12)));
  EXPECT_FALSE(is_valid_did(std::string_view("did:plc:a\0c", 11)));
}

// ---------------------------------------------------------------------------------------------
// Handle, record key, TID

TEST(Handle, AcceptsExactly253BytesAndRejects254) {
  // 3 labels of 63 + 1 of 61 + 3 dots = 253.
  const std::string label(63, 'a');
  const std::string h253 = label + "." + label + "." + label + "." + std::string(61, 'b');
  ASSERT_EQ(h253.size(), kMaxHandleLength);
  EXPECT_TRUE(is_valid_handle(h253));
  EXPECT_FALSE(is_valid_handle(h253 + "b"));
}

TEST(Handle, RequiresATopLevelLabelStartingWithALetter) {
  EXPECT_TRUE(is_valid_handle("alice.bsky.social"));
  EXPECT_TRUE(is_valid_handle("8.cn"));
  EXPECT_FALSE(is_valid_handle("cn.8"));
  EXPECT_FALSE(is_valid_handle("127.0.0.1"));
  EXPECT_FALSE(is_valid_handle("social"));
  EXPECT_FALSE(is_valid_handle(""));
  EXPECT_FALSE(is_valid_handle(std::string_view("alice.bsky.social\0", 18)));
}

TEST(RecordKey, AcceptsExactly512BytesAndRejectsDotAndDotDot) {
  EXPECT_TRUE(is_valid_record_key(std::string(kMaxRecordKeyLength, 'a')));
  EXPECT_FALSE(is_valid_record_key(std::string(kMaxRecordKeyLength + 1, 'a')));
  EXPECT_FALSE(is_valid_record_key(""));
  EXPECT_FALSE(is_valid_record_key("."));
  EXPECT_FALSE(is_valid_record_key(".."));
  EXPECT_TRUE(is_valid_record_key("..."));
  EXPECT_TRUE(is_valid_record_key("3jzfcijpj2z2a"));
  EXPECT_FALSE(is_valid_record_key("a/b"));
  EXPECT_FALSE(is_valid_record_key(std::string_view("ab\0", 3)));
  EXPECT_FALSE(is_valid_record_key("\xC3\xA9t\xC3\xA9"));
}

TEST(Tid, RequiresThirteenBase32SortableCharsWithTheTopBitClear) {
  EXPECT_TRUE(is_valid_tid("3jzfcijpj2z2a"));
  EXPECT_TRUE(is_valid_tid("jzzzzzzzzzzzz"));
  EXPECT_FALSE(is_valid_tid("kzzzzzzzzzzzz"));
  EXPECT_FALSE(is_valid_tid("3jzfcijpj2z2"));
  EXPECT_FALSE(is_valid_tid("3jzfcijpj2z2aa"));
  EXPECT_FALSE(is_valid_tid("3jzfcijpj2z21"));
  EXPECT_FALSE(is_valid_tid(std::string_view("3jzfcijpj2z2\0", 13)));
  EXPECT_FALSE(is_valid_tid(""));
}

// ---------------------------------------------------------------------------------------------
// wantedCollections patterns

TEST(CollectionPattern, ParsesAFullNsidAsAnExactPattern) {
  const auto pattern = parse_collection_pattern("app.bsky.feed.post");
  ASSERT_TRUE(pattern.has_value());
  EXPECT_EQ(pattern->kind, CollectionPatternKind::kExact);
  EXPECT_EQ(pattern->value, "app.bsky.feed.post");
}

TEST(CollectionPattern, ParsesDotStarAsAPrefixKeepingTheTrailingDot) {
  for (const auto& [input, prefix] : std::vector<std::pair<std::string, std::string>>{
           {"app.*", "app."},
           {"app.bsky.*", "app.bsky."},
           {"app.bsky.feed.*", "app.bsky.feed."},
           {"app.bsky.feed.post.*", "app.bsky.feed.post."},
           {"org.4chan.*", "org.4chan."},
           {"a-b.c-d.*", "a-b.c-d."},
       }) {
    const auto pattern = parse_collection_pattern(input);
    ASSERT_TRUE(pattern.has_value()) << input;
    EXPECT_EQ(pattern->kind, CollectionPatternKind::kPrefix) << input;
    EXPECT_EQ(pattern->value, prefix) << input;
  }
}

TEST(CollectionPattern, RejectsAPrefixWhoseHeadIsNotASequenceOfNsidSegments) {
  for (const std::string_view input : {
           ".*",         // empty head (v1 accepted it as prefix ".")
           "*",          // no dot
           "..*",        // empty segments
           "app..*",     // empty segment
           ".app.*",     // leading dot
           "-x.*",       // segment starts with a hyphen
           "app.-x.*",   // segment starts with a hyphen
           "app-.*",     // segment ends with a hyphen
           "0app.*",     // first segment starts with a digit
           "app.b_c.*",  // underscore
           "app.*.*",    // wildcard inside the head
           "app.b*.*",   // wildcard inside the head
           "app .*",     // space
       }) {
    EXPECT_FALSE(is_valid_collection_pattern(input)) << printable(input);
  }
}

TEST(CollectionPattern, RejectsValuesThatAreNeitherAPrefixNorAFullNsid) {
  for (const std::string_view input : {
           "", ".",
           "app.bsky",                               // two segments
           "app.bsky*",                              // wildcard without the dot
           "app.bsky.feed.po*",                      // partial segment wildcard
           "app.bsky.feed.*x",                       // junk after the wildcard
           "app.bsky.*.post",                        // wildcard in the middle
           "app.bsky.feed.post ",                    // trailing space
           "app.bsky.feed.post,app.bsky.feed.like",  // not comma-split
           "App.bsky.feed.post.",                    // trailing dot without star
       }) {
    EXPECT_FALSE(is_valid_collection_pattern(input)) << printable(input);
  }
}

TEST(CollectionPattern, RejectsEmbeddedNulAndNonAsciiBytes) {
  EXPECT_FALSE(is_valid_collection_pattern(std::string_view("app.bsky.feed.post\0", 19)));
  EXPECT_FALSE(is_valid_collection_pattern(std::string_view("app\0.bsky.*", 11)));
  EXPECT_FALSE(is_valid_collection_pattern(std::string_view("app.bsky.*\0", 11)));
  EXPECT_FALSE(is_valid_collection_pattern(std::string_view("\0.*", 3)));
  EXPECT_FALSE(is_valid_collection_pattern("app.bsk\xC3\xBF.*"));
  EXPECT_FALSE(is_valid_collection_pattern("app.bsky.feed.p\xC3\xB6st"));
  for (int byte = 0x80; byte <= 0xff; ++byte) {
    const std::string prefix = std::string("app.b") + static_cast<char>(byte) + ".*";
    EXPECT_FALSE(is_valid_collection_pattern(prefix)) << printable(prefix);
  }
}

TEST(CollectionPattern, AcceptsAnExactNsidOf317BytesAndRejects318) {
  EXPECT_TRUE(is_valid_collection_pattern(nsid_of_length(kMaxNsidLength)));
  EXPECT_FALSE(is_valid_collection_pattern(nsid_of_length(kMaxNsidLength + 1)));
}

TEST(CollectionPattern, AcceptsAPrefixOnlyWhenSomeValidNsidCanStartWithIt) {
  // Head of >= 2 segments: head + ".x" must fit in 317, so the longest head is 315 bytes and the
  // longest prefix value is 317 bytes including ".*".
  std::string head315 = "a";
  while (head315.size() < 315) head315 += ".b";
  ASSERT_EQ(head315.size(), 315U);
  const auto longest = parse_collection_pattern(head315 + ".*");
  ASSERT_TRUE(longest.has_value());
  EXPECT_EQ(longest->value, head315 + ".");
  EXPECT_TRUE(is_valid_nsid(head315 + ".x"));
  EXPECT_FALSE(is_valid_collection_pattern(head315 + "b.*"));  // 316-byte head

  // One segment: at most 63 bytes, like any NSID segment.
  EXPECT_TRUE(is_valid_collection_pattern(std::string(63, 'a') + ".*"));
  EXPECT_FALSE(is_valid_collection_pattern(std::string(64, 'a') + ".*"));
  EXPECT_TRUE(is_valid_collection_pattern("a." + std::string(63, 'b') + ".*"));
  EXPECT_FALSE(is_valid_collection_pattern("a." + std::string(64, 'b') + ".*"));

  // Very long inputs are rejected without scanning past the cap.
  EXPECT_FALSE(is_valid_collection_pattern(std::string(100000, 'a') + ".*"));
  EXPECT_FALSE(is_valid_collection_pattern(std::string(100000, 'a')));
}

TEST(CollectionPattern, ExactMatchesOnlyTheSameCollectionCaseSensitively) {
  const auto pattern = parse_collection_pattern("app.bsky.feed.post");
  ASSERT_TRUE(pattern.has_value());
  EXPECT_TRUE(pattern->matches("app.bsky.feed.post"));
  EXPECT_FALSE(pattern->matches("app.bsky.feed.Post"));
  EXPECT_FALSE(pattern->matches("app.bsky.feed.posts"));
  EXPECT_FALSE(pattern->matches("app.bsky.feed"));
  EXPECT_FALSE(pattern->matches(""));
}

TEST(CollectionPattern, PrefixMatchesCollectionsStartingWithTheDottedHeadButNotTheHeadItself) {
  const auto pattern = parse_collection_pattern("app.bsky.feed.*");
  ASSERT_TRUE(pattern.has_value());
  EXPECT_TRUE(pattern->matches("app.bsky.feed.post"));
  EXPECT_TRUE(pattern->matches("app.bsky.feed.generator.thing"));
  EXPECT_FALSE(pattern->matches("app.bsky.feed"));
  EXPECT_FALSE(pattern->matches("app.bsky.feedx.post"));
  EXPECT_FALSE(pattern->matches("App.bsky.feed.post"));
  EXPECT_FALSE(pattern->matches(""));

  const auto post = parse_collection_pattern("app.bsky.feed.post.*");
  ASSERT_TRUE(post.has_value());
  EXPECT_FALSE(post->matches("app.bsky.feed.post"));  // as in v1
}

}  // namespace
}  // namespace jetstream::syntax
