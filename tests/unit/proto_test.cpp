// The wire contracts of proto/README.md, pinned byte for byte.
//
// Every golden array below is written out by hand from the byte tables in proto/README.md (one
// line per field, little-endian), never produced by the encoder under test.
#include "proto/proto.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jetstream::proto {
namespace {

using Bytes = std::vector<std::uint8_t>;

/// Parses hex digit pairs, ignoring whitespace.
Bytes hex(std::string_view text) {
  Bytes out;
  int high = -1;
  for (const char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) != 0) continue;
    const int digit = std::isdigit(static_cast<unsigned char>(c)) != 0
                          ? c - '0'
                          : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    if (high < 0) {
      high = digit;
    } else {
      out.push_back(static_cast<std::uint8_t>(high * 16 + digit));
      high = -1;
    }
  }
  if (high != -1) throw std::invalid_argument("odd number of hex digits");
  return out;
}

/// The decoder's error, or nullopt when it accepted the input (so a test fails, not aborts).
template <typename T>
std::optional<DecodeError> error_of(const DecodeResult<T>& result) {
  if (result) return std::nullopt;
  return result.error();
}

Bytes to_bytes(std::span<const std::uint8_t> span) { return {span.begin(), span.end()}; }

/// Overwrites a little-endian u32 at `offset` (to build malformed inputs from a golden one).
void put_u32(Bytes& bytes, std::size_t offset, std::uint32_t value) {
  for (std::size_t i = 0; i < 4; ++i)
    bytes.at(offset + i) = static_cast<std::uint8_t>(value >> (8 * i));
}

/// Appends little-endian values and length-prefixed strings (malformed inputs only).
struct Builder {
  Bytes bytes;
  Builder& u8(std::uint8_t value) {
    bytes.push_back(value);
    return *this;
  }
  Builder& u32(std::uint32_t value) {
    for (std::size_t i = 0; i < 4; ++i)
      bytes.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    return *this;
  }
  Builder& u64(std::uint64_t value) {
    for (std::size_t i = 0; i < 8; ++i)
      bytes.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    return *this;
  }
  Builder& text(std::string_view value) {
    u32(static_cast<std::uint32_t>(value.size()));
    bytes.insert(bytes.end(), value.begin(), value.end());
    return *this;
  }
};

// ---- The values the golden messages carry.

constexpr std::uint64_t kEpoch = 0x0123456789ABCDEF;
constexpr std::int64_t kT0 = 1'725'000'000'000'000;  // 00 d0 3c dc e0 20 06 00
constexpr std::int64_t kT1 = kT0 + 250;              // fa d0 3c dc e0 20 06 00
constexpr std::int64_t kT2 = kT1 + 1;                // fb d0 3c dc e0 20 06 00
constexpr std::array<std::uint8_t, 4> kZstd = {0x28, 0xb5, 0x2f, 0xfd};

EventView commit_event() {
  return EventView{.time_us = kT1,
                   .prev_time_us = kT0,
                   .kind = EventKind::commit,
                   .did = "did:plc:ab",
                   .collection = "app.bsky.feed.post",
                   .json = R"({"a":1})",
                   .zstd = kZstd};
}

EventView identity_event() {
  return EventView{.time_us = kT2,
                   .prev_time_us = kT1,
                   .kind = EventKind::identity,
                   .did = "did:plc:ab",
                   .collection = "",
                   .json = "{}",
                   .zstd = {}};
}

// The per-event layout, as hex, for the two events above.
constexpr std::string_view kCommitEventHex =
    "fa d0 3c dc e0 20 06 00"                                // time_us       kT1
    "00 d0 3c dc e0 20 06 00"                                // prev_time_us  kT0
    "01"                                                     // kind          commit
    "0a 00 00 00"                                            // did length    10
    "64 69 64 3a 70 6c 63 3a 61 62"                          // "did:plc:ab"
    "12 00 00 00"                                            // collection length 18
    "61 70 70 2e 62 73 6b 79 2e 66 65 65 64 2e 70 6f 73 74"  // "app.bsky.feed.post"
    "07 00 00 00"                                            // json length 7
    "7b 22 61 22 3a 31 7d"                                   // {"a":1}
    "04 00 00 00"                                            // zstd length 4
    "28 b5 2f fd";                                           // zstd bytes
constexpr std::string_view kIdentityEventHex =
    "fb d0 3c dc e0 20 06 00"        // time_us       kT2
    "fa d0 3c dc e0 20 06 00"        // prev_time_us  kT1
    "02"                             // kind          identity
    "0a 00 00 00"                    // did length    10
    "64 69 64 3a 70 6c 63 3a 61 62"  // "did:plc:ab"
    "00 00 00 00"                    // collection length 0
    "02 00 00 00"                    // json length 2
    "7b 7d"                          // {}
    "00 00 00 00";                   // zstd length 0

FrameHeader golden_frame_header() {
  return FrameHeader{.epoch = kEpoch,
                     .ingest_seq = 42,
                     .resume_id = 7,
                     .upstream_seq = 1'000'000,
                     .receive_time_us = 1'700'000'000'000'000,
                     .frame_size = 5,
                     .stream_start = true};
}
const Bytes kGoldenFrameHeader =
    hex("01"                       // version
        "46"                       // type 'F'
        "01"                       // flags: stream_start
        "ef cd ab 89 67 45 23 01"  // epoch 0x0123456789ABCDEF
        "2a 00 00 00 00 00 00 00"  // ingest_seq 42
        "07 00 00 00 00 00 00 00"  // resume_id 7
        "40 42 0f 00 00 00 00 00"  // upstream_seq 1,000,000
        "00 40 1e 18 24 0a 06 00"  // receive_time_us 1,700,000,000,000,000
        "05 00 00 00");            // frame_size 5

Status golden_status() {
  return Status{.epoch = kEpoch,
                .last_ingest_seq = 42,
                .resume_id = 7,
                .last_upstream_seq = 1'000'000,
                .sent_time_us = 1'700'000'000'000'001,
                .connected = true};
}
const Bytes kGoldenStatus =
    hex("01"                         // version
        "53"                         // type 'S'
        "01"                         // connected
        "ef cd ab 89 67 45 23 01"    // epoch
        "2a 00 00 00 00 00 00 00"    // last_ingest_seq 42
        "07 00 00 00 00 00 00 00"    // resume_id 7
        "40 42 0f 00 00 00 00 00"    // last_upstream_seq 1,000,000
        "01 40 1e 18 24 0a 06 00");  // sent_time_us 1,700,000,000,000,001

Resume golden_resume() { return Resume{.resume_id = 7, .seen_epoch = kEpoch, .cursor = -1}; }
const Bytes kGoldenResume =
    hex("01"                         // version
        "52"                         // type 'R'
        "07 00 00 00 00 00 00 00"    // resume_id 7
        "ef cd ab 89 67 45 23 01"    // seen_epoch
        "ff ff ff ff ff ff ff ff");  // cursor -1 (live)

std::vector<EventView> golden_events() { return {commit_event(), identity_event()}; }
const Bytes kGoldenEventBatch =
    hex(std::string("01"            // version
                    "45"            // type 'E'
                    "02 00 00 00")  // count 2
        + std::string(kCommitEventHex) + std::string(kIdentityEventHex));

Heartbeat golden_heartbeat() {
  return Heartbeat{.newest_time_us = 1'700'000'000'000'123,
                   .oldest_time_us = 1'699'900'000'000'000};
}
const Bytes kGoldenHeartbeat =
    hex("01"                         // version
        "48"                         // type 'H'
        "7b 40 1e 18 24 0a 06 00"    // newest_time_us 1,700,000,000,000,123
        "00 58 a7 cf 0c 0a 06 00");  // oldest_time_us 1,699,900,000,000,000

ReplayRequest golden_request() {
  return ReplayRequest{.request_id = 0x1122334455667788,
                       .start_time_us = kT1,
                       .end_time_us = 0,
                       .max_events = 500,
                       .max_bytes = 1u << 20,
                       .want_zstd = true,
                       .clamp_to_oldest = true,
                       .collections = {"app.bsky.feed.post"},
                       .collection_prefixes = {"app.bsky.graph."},
                       .dids = {"did:plc:ab", "did:web:x.com"}};
}
const Bytes kGoldenReplayRequest =
    hex("01"                       // version
        "51"                       // type 'Q'
        "88 77 66 55 44 33 22 11"  // request_id 0x1122334455667788
        "fa d0 3c dc e0 20 06 00"  // start_time_us kT1
        "00 00 00 00 00 00 00 00"  // end_time_us 0 (up to newest)
        "f4 01 00 00"              // max_events 500
        "00 00 10 00"              // max_bytes 1 MiB
        "03"                       // flags: want_zstd | clamp_to_oldest
        "01 00 00 00"              // 1 exact collection
        "12 00 00 00"              //   length 18
        "61 70 70 2e 62 73 6b 79 2e 66 65 65 64 2e 70 6f 73 74"  // "app.bsky.feed.post"
        "01 00 00 00"                                            // 1 collection prefix
        "0f 00 00 00"                                            //   length 15
        "61 70 70 2e 62 73 6b 79 2e 67 72 61 70 68 2e"           // "app.bsky.graph."
        "02 00 00 00"                                            // 2 DIDs
        "0a 00 00 00"                                            //   length 10
        "64 69 64 3a 70 6c 63 3a 61 62"                          //   "did:plc:ab"
        "0d 00 00 00"                                            //   length 13
        "64 69 64 3a 77 65 62 3a 78 2e 63 6f 6d");               //   "did:web:x.com"

ReplayPageView golden_page() {
  return ReplayPageView{.request_id = 0x1122334455667788,
                        .status = ReplayStatus::ok,
                        .done = true,
                        .next_time_us = kT2 + 1,
                        .oldest_time_us = kT0,
                        .newest_time_us = kT2,
                        .events = {commit_event()}};
}
const Bytes kGoldenReplayPage = hex(std::string("01"                       // version
                                                "50"                       // type 'P'
                                                "88 77 66 55 44 33 22 11"  // request_id
                                                "00"                       // status ok
                                                "01"                       // done
                                                "fc d0 3c dc e0 20 06 00"  // next_time_us kT2 + 1
                                                "00 d0 3c dc e0 20 06 00"  // oldest_time_us kT0
                                                "fb d0 3c dc e0 20 06 00"  // newest_time_us kT2
                                                "01 00 00 00")             // 1 event
                                    + std::string(kCommitEventHex));

// ---- One table of every message, for the properties all decoders share.

/// A decoder seen from outside: its error, or the bytes its message re-encodes to.
using Outcome = std::pair<std::optional<DecodeError>, Bytes>;

template <typename T, typename Encode>
Outcome outcome(const DecodeResult<T>& result, Encode encode) {
  if (!result) return {result.error(), {}};
  return {std::nullopt, to_bytes(encode(*result))};
}

struct MessageCase {
  std::string name;
  MessageType type;
  Bytes golden;
  std::function<Outcome(std::span<const std::uint8_t>)> decode;
};

std::vector<MessageCase> every_message() {
  return {
      {"frame_header", MessageType::frame, kGoldenFrameHeader,
       [](auto in) { return outcome(decode_frame_header(in), encode_frame_header); }},
      {"status", MessageType::status, kGoldenStatus,
       [](auto in) { return outcome(decode_status(in), encode_status); }},
      {"resume", MessageType::resume, kGoldenResume,
       [](auto in) { return outcome(decode_resume(in), encode_resume); }},
      {"event_batch", MessageType::event_batch, kGoldenEventBatch,
       [](auto in) {
         return outcome(decode_event_batch(in),
                        [](const std::vector<EventView>& e) { return encode_event_batch(e); });
       }},
      {"heartbeat", MessageType::heartbeat, kGoldenHeartbeat,
       [](auto in) { return outcome(decode_heartbeat(in), encode_heartbeat); }},
      {"replay_request", MessageType::replay_request, kGoldenReplayRequest,
       [](auto in) { return outcome(decode_replay_request(in), encode_replay_request); }},
      {"replay_page", MessageType::replay_page, kGoldenReplayPage,
       [](auto in) { return outcome(decode_replay_page(in), encode_replay_page); }},
  };
}

/// Decodes a heap copy of exactly `bytes.size()` bytes, so AddressSanitizer sees any overread.
Outcome decode_copy(const MessageCase& message, const Bytes& bytes) {
  const auto copy = std::make_unique<std::uint8_t[]>(bytes.size() + 1);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  return message.decode(std::span<const std::uint8_t>(copy.get(), bytes.size()));
}

// ---- Shared properties.

TEST(EveryMessage, GoldenBytesDecodeAndReencodeToThemselves) {
  for (const auto& message : every_message()) {
    SCOPED_TRACE(message.name);
    const auto [error, reencoded] = decode_copy(message, message.golden);
    ASSERT_FALSE(error) << to_string(*error);
    EXPECT_EQ(reencoded, message.golden);
  }
}

TEST(EveryMessage, StartsWithTheVersionThenTheTopicLetter) {
  for (const auto& message : every_message()) {
    SCOPED_TRACE(message.name);
    ASSERT_GE(message.golden.size(), 2u);
    EXPECT_EQ(message.golden[0], kVersion);
    EXPECT_EQ(message.golden[1], static_cast<std::uint8_t>(topic(message.type)[0]));
  }
}

TEST(EveryMessage, EveryTruncationIsRejectedAsTruncated) {
  for (const auto& message : every_message()) {
    SCOPED_TRACE(message.name);
    for (std::size_t length = 0; length < message.golden.size(); ++length) {
      const Bytes prefix(message.golden.begin(),
                         message.golden.begin() + static_cast<std::ptrdiff_t>(length));
      const auto [error, reencoded] = decode_copy(message, prefix);
      ASSERT_TRUE(error) << "a " << length << "-byte prefix was accepted";
      EXPECT_EQ(*error, DecodeError::truncated) << "prefix length " << length;
    }
  }
}

TEST(EveryMessage, UnknownVersionIsRejectedWithTheVersionErrorBeforeAnythingElse) {
  for (const auto& message : every_message()) {
    SCOPED_TRACE(message.name);
    for (const std::uint8_t version : std::array<std::uint8_t, 4>{0x00, 0x02, 0x7f, 0xff}) {
      Bytes bytes = message.golden;
      bytes[0] = version;
      EXPECT_EQ(decode_copy(message, bytes).first, DecodeError::unknown_version);
      // A future version may be shorter or longer: the version byte alone decides.
      EXPECT_EQ(decode_copy(message, Bytes{version}).first, DecodeError::unknown_version);
      bytes.push_back(0);
      EXPECT_EQ(decode_copy(message, bytes).first, DecodeError::unknown_version);
    }
  }
}

TEST(EveryMessage, TrailingBytesAreRejected) {
  for (const auto& message : every_message()) {
    SCOPED_TRACE(message.name);
    Bytes bytes = message.golden;
    bytes.push_back(0x00);
    EXPECT_EQ(decode_copy(message, bytes).first, DecodeError::trailing_bytes);
  }
}

TEST(EveryMessage, AnotherMessagesTypeByteIsRejectedAsWrongType) {
  for (const auto& message : every_message()) {
    SCOPED_TRACE(message.name);
    for (const auto& other : every_message()) {
      if (other.type == message.type) continue;
      EXPECT_EQ(decode_copy(message, other.golden).first, DecodeError::wrong_type) << other.name;
    }
  }
}

TEST(EveryMessage, RandomCorruptionIsRejectedOrReencodesToTheSameBytes) {
  // Run under AddressSanitizer this also shows no decoder reads out of bounds. An accepted
  // mutation must re-encode to exactly its bytes: the layout is canonical.
  std::mt19937 random(20240830);
  for (const auto& message : every_message()) {
    SCOPED_TRACE(message.name);
    for (int round = 0; round < 3000; ++round) {
      Bytes bytes = message.golden;
      const int edits = 1 + round % 4;
      for (int e = 0; e < edits; ++e) {
        const std::size_t at = random() % bytes.size();
        switch (random() % 4) {
          case 0: bytes[at] = static_cast<std::uint8_t>(random()); break;
          case 1: bytes[at] ^= static_cast<std::uint8_t>(1u << (random() % 8)); break;
          case 2: bytes.resize(at + 1); break;
          default: bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), 0xff); break;
        }
      }
      const auto [error, reencoded] = decode_copy(message, bytes);
      if (!error) {
        EXPECT_EQ(reencoded, bytes);
      }
    }
  }
}

// ---- State info.

TEST(StateInfo, RoundTripsAndRejectsWhatTheSpecForbids) {
  const StateInfo info{"app.bsky.*,chat.bsky.actor.declaration", 1'700'000'000'000'000,
                       "chat.bsky.actor.declaration"};
  const auto body = encode_state_info(info);
  ASSERT_EQ(body.size(), 2u + 8u + 4u + info.compacted.size() + 4u + info.building.size());
  EXPECT_EQ(body[1], 'C');
  const auto decoded = decode_state_info(body);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, info);
  EXPECT_EQ(decode_state_info(std::span(body).first(body.size() - 1)).error(),
            DecodeError::truncated);
  auto negative = body;
  negative[9] = 0x80;  // the horizon's sign bit
  EXPECT_EQ(decode_state_info(negative).error(), DecodeError::invalid_value);
  auto longer = body;
  longer.push_back(0);
  EXPECT_EQ(decode_state_info(longer).error(), DecodeError::trailing_bytes);
  EXPECT_TRUE(decode_state_info(encode_state_info(StateInfo{})));
}

TEST(ReplayRequest, TheSnapshotFlagRoundTrips) {
  ReplayRequest request;
  request.request_id = 7;
  request.start_time_us = 5;
  request.max_events = 10;
  request.max_bytes = 100;
  request.snapshot = true;
  const auto decoded = decode_replay_request(encode_replay_request(request));
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(decoded->snapshot);
  EXPECT_EQ(*decoded, request);
}

// ---- Topics, errors, results.

TEST(Topics, EachMessageTypeTravelsUnderItsOneLetterTopic) {
  const std::vector<std::pair<MessageType, std::string_view>> expected = {
      {MessageType::frame, "F"},       {MessageType::status, "S"},
      {MessageType::resume, "R"},      {MessageType::event_batch, "E"},
      {MessageType::heartbeat, "H"},   {MessageType::replay_request, "Q"},
      {MessageType::replay_page, "P"}, {MessageType::state_info, "C"},
  };
  for (const auto& [type, letter] : expected) {
    EXPECT_EQ(topic(type), letter);
    const auto decoded = decode_topic(
        std::span(reinterpret_cast<const std::uint8_t*>(letter.data()), letter.size()));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, type);
    EXPECT_EQ(part_count(type), type == MessageType::frame ? 3u : 2u);
  }
}

TEST(Topics, AnythingButExactlyOneKnownLetterIsAnUnknownTopic) {
  for (const Bytes& frame : {Bytes{}, Bytes{'E', 'E'}, Bytes{'X'}, Bytes{'e'}, Bytes{0}}) {
    const auto decoded = decode_topic(frame);
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error(), DecodeError::unknown_topic);
  }
}

TEST(DecodeErrors, EachHasTheReasonLabelOfTheRejectedMetric) {
  EXPECT_EQ(to_string(DecodeError::truncated), "truncated");
  EXPECT_EQ(to_string(DecodeError::unknown_version), "unknown_version");
  EXPECT_EQ(to_string(DecodeError::wrong_type), "wrong_type");
  EXPECT_EQ(to_string(DecodeError::trailing_bytes), "trailing_bytes");
  EXPECT_EQ(to_string(DecodeError::limit_exceeded), "limit_exceeded");
  EXPECT_EQ(to_string(DecodeError::invalid_value), "invalid_value");
  EXPECT_EQ(to_string(DecodeError::unknown_topic), "unknown_topic");
  EXPECT_EQ(to_string(DecodeError::wrong_part_count), "wrong_part_count");
  EXPECT_EQ(to_string(MessageType::event_batch), "event_batch");
  EXPECT_EQ(to_string(MessageType::replay_request), "replay_request");
  const std::error_code code = DecodeError::unknown_version;
  EXPECT_EQ(code.message(), "unknown_version");
  EXPECT_STREQ(code.category().name(), "jetstream.proto");
}

// ---- ingest → decode: frame envelope.

TEST(FrameEnvelope, HeaderEncodesToTheDocumentedBytes) {
  const auto encoded = encode_frame_header(golden_frame_header());
  EXPECT_EQ(to_bytes(encoded), kGoldenFrameHeader);
  EXPECT_EQ(kGoldenFrameHeader.size(), kFrameHeaderSize);
}

TEST(FrameEnvelope, UpstreamBytesAreASeparatePartViewedWithoutCopying) {
  const Bytes upstream = {0xa2, 0x61, 0x74, 0x61, 0x23};
  const auto decoded = decode_frame(kGoldenFrameHeader, upstream);
  ASSERT_TRUE(decoded) << to_string(decoded.error());
  EXPECT_EQ(decoded->header, golden_frame_header());
  EXPECT_EQ(decoded->frame.data(), upstream.data());
  EXPECT_EQ(decoded->frame.size(), upstream.size());
}

TEST(FrameEnvelope, RoundTripsEveryField) {
  for (const FrameHeader& header : {golden_frame_header(), FrameHeader{.epoch = ~0ull,
                                                           .ingest_seq = ~0ull,
                                                           .resume_id = 1,
                                                           .upstream_seq = 0,
                                                           .receive_time_us = -5,
                                                           .frame_size = kMaxUpstreamFrameBytes,
                                                           .stream_start = false}}) {
    const auto decoded = decode_frame_header(encode_frame_header(header));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, header);
  }
}

TEST(FrameEnvelope, AFramePartShorterThanFrameSizeIsTruncatedAndLongerIsTrailing) {
  EXPECT_EQ(error_of(decode_frame(kGoldenFrameHeader, Bytes(4))), DecodeError::truncated);
  EXPECT_EQ(error_of(decode_frame(kGoldenFrameHeader, Bytes(6))), DecodeError::trailing_bytes);
}

TEST(FrameEnvelope, UnknownFlagBitsZeroIdsAndNegativeUpstreamSeqAreInvalid) {
  auto with_byte = [](std::size_t offset, std::uint8_t value) {
    Bytes bytes = kGoldenFrameHeader;
    bytes[offset] = value;
    return bytes;
  };
  EXPECT_EQ(error_of(decode_frame_header(with_byte(2, 0x02))), DecodeError::invalid_value);
  EXPECT_EQ(error_of(decode_frame_header(with_byte(2, 0x81))), DecodeError::invalid_value);
  Bytes zero_epoch = kGoldenFrameHeader;
  std::fill(zero_epoch.begin() + 3, zero_epoch.begin() + 11, 0);
  EXPECT_EQ(error_of(decode_frame_header(zero_epoch)), DecodeError::invalid_value);
  Bytes zero_seq = kGoldenFrameHeader;
  std::fill(zero_seq.begin() + 11, zero_seq.begin() + 19, 0);
  EXPECT_EQ(error_of(decode_frame_header(zero_seq)), DecodeError::invalid_value);
  Bytes zero_resume = kGoldenFrameHeader;
  std::fill(zero_resume.begin() + 19, zero_resume.begin() + 27, 0);
  EXPECT_EQ(error_of(decode_frame_header(zero_resume)), DecodeError::invalid_value);
  EXPECT_EQ(error_of(decode_frame_header(with_byte(34, 0x80))), DecodeError::invalid_value);
}

TEST(FrameEnvelope, FrameSizeAboveSixteenMebibytesIsRejected) {
  Bytes bytes = kGoldenFrameHeader;
  put_u32(bytes, 43, kMaxUpstreamFrameBytes + 1);
  EXPECT_EQ(error_of(decode_frame_header(bytes)), DecodeError::limit_exceeded);
}

// ---- ingest → decode: status.

TEST(Status, EncodesToTheDocumentedBytes) {
  EXPECT_EQ(to_bytes(encode_status(golden_status())), kGoldenStatus);
  EXPECT_EQ(kGoldenStatus.size(), kStatusSize);
}

TEST(Status, RoundTripsEveryField) {
  for (const Status& status : {golden_status(), Status{.epoch = 1,
                                                .last_ingest_seq = 0,
                                                .resume_id = 0,
                                                .last_upstream_seq = 0,
                                                .sent_time_us = 0,
                                                .connected = false}}) {
    const auto decoded = decode_status(encode_status(status));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, status);
  }
}

TEST(Status, ConnectedIsZeroOrOneAndEpochIsNeverZero) {
  Bytes bytes = kGoldenStatus;
  bytes[2] = 2;
  EXPECT_EQ(error_of(decode_status(bytes)), DecodeError::invalid_value);
  bytes = kGoldenStatus;
  std::fill(bytes.begin() + 3, bytes.begin() + 11, 0);
  EXPECT_EQ(error_of(decode_status(bytes)), DecodeError::invalid_value);
}

// ---- decode → ingest: resume.

TEST(Resume, EncodesToTheDocumentedBytes) {
  EXPECT_EQ(to_bytes(encode_resume(golden_resume())), kGoldenResume);
  EXPECT_EQ(kGoldenResume.size(), kResumeSize);
}

TEST(Resume, RoundTripsLiveAndCursorResumes) {
  for (const Resume& resume :
       {golden_resume(), Resume{.resume_id = ~0ull, .seen_epoch = 0, .cursor = 0},
        Resume{.resume_id = 1, .seen_epoch = 9, .cursor = 123456789}}) {
    const auto decoded = decode_resume(encode_resume(resume));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, resume);
  }
}

TEST(Resume, ACursorBelowMinusOneOrAZeroResumeIdIsInvalid) {
  Bytes bytes = kGoldenResume;
  bytes[18] = 0xfe;  // cursor -2
  EXPECT_EQ(error_of(decode_resume(bytes)), DecodeError::invalid_value);
  bytes = kGoldenResume;
  bytes[2] = 0;  // resume_id 0
  EXPECT_EQ(error_of(decode_resume(bytes)), DecodeError::invalid_value);
}

// ---- decode → fanout: event batch and heartbeat.

TEST(EventBatch, EncodesToTheDocumentedBytes) {
  EXPECT_EQ(encode_event_batch(golden_events()), kGoldenEventBatch);
}

TEST(EventBatch, EncodeIntoFillsAnExactlySizedBuffer) {
  const auto events = golden_events();
  ASSERT_EQ(event_batch_size(events), kGoldenEventBatch.size());
  Bytes out(event_batch_size(events));
  encode_event_batch_into(events, out);
  EXPECT_EQ(out, kGoldenEventBatch);
}

TEST(EventBatch, DecodesToViewsIntoTheReceivedBuffer) {
  const auto decoded = decode_event_batch(kGoldenEventBatch);
  ASSERT_TRUE(decoded) << to_string(decoded.error());
  EXPECT_EQ(*decoded, golden_events());
  const auto* begin = kGoldenEventBatch.data();
  const auto* end = begin + kGoldenEventBatch.size();
  for (const EventView& event : *decoded) {
    const auto* did = reinterpret_cast<const std::uint8_t*>(event.did.data());
    const auto* json = reinterpret_cast<const std::uint8_t*>(event.json.data());
    EXPECT_TRUE(did >= begin && did + event.did.size() <= end);
    EXPECT_TRUE(json >= begin && json + event.json.size() <= end);
  }
  EXPECT_EQ((*decoded)[0].zstd.data(), begin + 74);
}

TEST(EventBatch, RoundTripsASingleAccountEventWithoutZstd) {
  const std::vector<EventView> events = {EventView{.time_us = 1,
                                                   .prev_time_us = 0,
                                                   .kind = EventKind::account,
                                                   .did = "did:plc:z",
                                                   .collection = "",
                                                   .json = "{\"kind\":\"account\"}",
                                                   .zstd = {}}};
  const Bytes encoded = encode_event_batch(events);
  const auto decoded = decode_event_batch(encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, events);
}

TEST(EventBatch, PrevTimeUsMustChainToThePreviousEventInTheBatch) {
  auto events = golden_events();
  events[1].prev_time_us = kT0;
  EXPECT_EQ(validate_event_batch(events), DecodeError::invalid_value);
  Bytes bytes = kGoldenEventBatch;
  bytes[86] = 0xf9;  // second event's prev_time_us: kT1 - 1
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::invalid_value);
}

TEST(EventBatch, TimeUsMustExceedPrevTimeUs) {
  auto events = golden_events();
  events[0].time_us = kT0;
  events[1].prev_time_us = kT0;
  EXPECT_EQ(validate_event_batch(events), DecodeError::invalid_value);
}

TEST(EventBatch, AnEmptyBatchIsRejected) {
  const Bytes bytes = hex("01 45 00 00 00 00");
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::invalid_value);
}

TEST(EventBatch, UnknownKindAndACollectionOnANonCommitEventAreInvalid) {
  Bytes bytes = kGoldenEventBatch;
  bytes[22] = 4;  // first event's kind
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::invalid_value);
  bytes = kGoldenEventBatch;
  bytes[22] = 2;  // an identity event carrying a collection
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::invalid_value);
  auto events = golden_events();
  events[0].collection = "";  // a commit without one
  EXPECT_EQ(validate_event_batch(events), DecodeError::invalid_value);
}

TEST(EventBatch, MoreThan100000EventsAreRejectedBeforeAnythingIsAllocated) {
  Bytes bytes = kGoldenEventBatch;
  put_u32(bytes, 2, kMaxEventsPerMessage + 1);
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::limit_exceeded);
  put_u32(bytes, 2, 0xffffffff);
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::limit_exceeded);
}

TEST(EventBatch, ACountTheRemainingBytesCannotHoldIsTruncated) {
  Bytes bytes = kGoldenEventBatch;
  put_u32(bytes, 2, kMaxEventsPerMessage);
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::truncated);
}

TEST(EventBatch, OversizeStringAndPayloadLengthsAreRejected) {
  Bytes bytes = kGoldenEventBatch;
  put_u32(bytes, 23, kMaxStringBytes + 1);  // did length
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::limit_exceeded);
  bytes = kGoldenEventBatch;
  put_u32(bytes, 37, kMaxStringBytes + 1);  // collection length
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::limit_exceeded);
  bytes = kGoldenEventBatch;
  put_u32(bytes, 59, kMaxPayloadBytes + 1);  // json length
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::limit_exceeded);
  bytes = kGoldenEventBatch;
  put_u32(bytes, 70, kMaxPayloadBytes + 1);  // zstd length
  EXPECT_EQ(error_of(decode_event_batch(bytes)), DecodeError::limit_exceeded);
}

TEST(EventBatch, EmptyDidOrJsonIsInvalid) {
  auto events = golden_events();
  events[1].did = "";
  EXPECT_EQ(validate_event_batch(events), DecodeError::invalid_value);
  events = golden_events();
  events[1].json = "";
  EXPECT_EQ(validate_event_batch(events), DecodeError::invalid_value);
}

TEST(Heartbeat, EncodesToTheDocumentedBytes) {
  EXPECT_EQ(to_bytes(encode_heartbeat(golden_heartbeat())), kGoldenHeartbeat);
  EXPECT_EQ(kGoldenHeartbeat.size(), kHeartbeatSize);
}

TEST(Heartbeat, RoundTripsIncludingAnEmptyLog) {
  for (const Heartbeat& heartbeat : {golden_heartbeat(), Heartbeat{}}) {
    const auto decoded = decode_heartbeat(encode_heartbeat(heartbeat));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, heartbeat);
  }
}

TEST(Heartbeat, NegativeTimesAreInvalid) {
  Bytes bytes = kGoldenHeartbeat;
  bytes[9] = 0x80;
  EXPECT_EQ(error_of(decode_heartbeat(bytes)), DecodeError::invalid_value);
}

// Little-endian fields, written here independently of the encoders (README §1).
Bytes le_fields(std::initializer_list<std::pair<int, std::uint64_t>> fields) {
  Bytes out;
  for (const auto& [size, value] : fields) {
    for (int i = 0; i < size; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  return out;
}

TEST(PipelineStatus, EncodesToTheDocumentedBytesAndRoundTrips) {
  PipelineStatus status;
  status.upstream_connected = true;
  status.upstream_lag_us = 1500;
  status.frames_received = 10;
  status.events_stored = 11;
  status.log_oldest_time_us = 100;
  status.log_newest_time_us = 200;
  status.twin = true;
  status.compacted_records = 12;
  status.backfill = true;
  status.backfill_repos_done = 3;
  status.backfill_repos_total = 7;
  status.backfill_repos_failed = 1;
  status.backfill_records_applied = 99;
  status.sent_time_us = 1'700'000'000'000'000;
  const Bytes golden = le_fields({{1, 1},
                                  {1, 'T'},
                                  {1, 0x07},
                                  {8, 1500},
                                  {8, 10},
                                  {8, 11},
                                  {8, 100},
                                  {8, 200},
                                  {8, 12},
                                  {8, 3},
                                  {8, 7},
                                  {8, 1},
                                  {8, 99},
                                  {8, 1'700'000'000'000'000}});
  ASSERT_EQ(golden.size(), kPipelineStatusSize);
  EXPECT_EQ(to_bytes(encode_pipeline_status(status)), golden);
  const auto decoded = decode_pipeline_status(golden);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, status);
  PipelineStatus quiet;  // no upstream yet, no twin, no backfill
  quiet.sent_time_us = 1;
  const auto again = decode_pipeline_status(encode_pipeline_status(quiet));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, quiet);
}

TEST(PipelineStatus, UnknownFlagsBadCountsAndTruncationAreRefused) {
  PipelineStatus status;
  status.sent_time_us = 5;
  const auto encoded = encode_pipeline_status(status);
  Bytes bytes(encoded.begin(), encoded.end());
  bytes[2] = 0x08;
  EXPECT_EQ(error_of(decode_pipeline_status(bytes)), DecodeError::invalid_value);
  bytes = Bytes(encoded.begin(), encoded.end());
  bytes[3] = 0xFE;  // upstream_lag_us = -2 (and the rest of the i64 all ones)
  for (int i = 4; i < 11; ++i) bytes[static_cast<std::size_t>(i)] = 0xFF;
  EXPECT_EQ(error_of(decode_pipeline_status(bytes)), DecodeError::invalid_value);
  bytes = Bytes(encoded.begin(), encoded.end());
  bytes[51] = 2;  // repos_done 2 of total 0
  EXPECT_EQ(error_of(decode_pipeline_status(bytes)), DecodeError::invalid_value);
  bytes = Bytes(encoded.begin(), encoded.end());
  bytes.pop_back();
  EXPECT_EQ(error_of(decode_pipeline_status(bytes)), DecodeError::truncated);
}

TEST(BackfillProgress, EncodesToTheDocumentedBytesAndRoundTrips) {
  const BackfillProgress progress{5, 9, 2, 1234};
  const Bytes golden = le_fields({{1, 1}, {1, 'G'}, {8, 5}, {8, 9}, {8, 2}, {8, 1234}});
  ASSERT_EQ(golden.size(), kBackfillProgressSize);
  EXPECT_EQ(to_bytes(encode_backfill_progress(progress)), golden);
  const auto decoded = decode_backfill_progress(golden);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, progress);
  Bytes bad = golden;
  bad[18] = 5;  // failed 5 + done 5 > total 9
  EXPECT_EQ(error_of(decode_backfill_progress(bad)), DecodeError::invalid_value);
  EXPECT_EQ(to_string(MessageType::backfill_progress), "backfill_progress");
  EXPECT_EQ(to_string(MessageType::pipeline_status), "pipeline_status");
}

// ---- fanout ⇄ decode: replay.

TEST(ReplayRequest, EncodesToTheDocumentedBytes) {
  EXPECT_EQ(encode_replay_request(golden_request()), kGoldenReplayRequest);
}

TEST(ReplayRequest, RoundTripsEveryField) {
  ReplayRequest plain{.request_id = 1,
                      .start_time_us = -1,
                      .end_time_us = 5,
                      .max_events = kMaxEventsPerMessage,
                      .max_bytes = kMaxPageBytes,
                      .want_zstd = false,
                      .clamp_to_oldest = false,
                      .collections = {},
                      .collection_prefixes = {},
                      .dids = {}};
  for (const ReplayRequest& request : {golden_request(), plain}) {
    const auto decoded = decode_replay_request(encode_replay_request(request));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, request);
  }
}

TEST(ReplayRequest, TheFullestAllowedRequestRoundTrips) {
  ReplayRequest request = golden_request();
  request.collections.assign(60, std::string(kMaxStringBytes, 'c'));
  request.collection_prefixes.assign(40, "app.");
  request.dids.assign(kMaxWantedDids, "did:plc:ab");
  const auto decoded = decode_replay_request(encode_replay_request(request));
  ASSERT_TRUE(decoded) << to_string(decoded.error());
  EXPECT_EQ(*decoded, request);
}

Builder request_head() {
  Builder b;
  b.u8(1).u8('Q').u64(1).u64(0).u64(0).u32(10).u32(1000).u8(0);
  return b;
}

TEST(ReplayRequest, MoreThan10000DidsAreRejected) {
  auto bytes = request_head().u32(0).u32(0).u32(kMaxWantedDids + 1).bytes;
  EXPECT_EQ(error_of(decode_replay_request(bytes)), DecodeError::limit_exceeded);
}

TEST(ReplayRequest, MoreThan100CollectionPatternsInTotalAreRejected) {
  auto exact = request_head().u32(kMaxCollectionPatterns + 1).bytes;
  EXPECT_EQ(error_of(decode_replay_request(exact)), DecodeError::limit_exceeded);
  Builder mixed = request_head().u32(60);
  for (int i = 0; i < 60; ++i) mixed.text("app.bsky.feed.post");
  mixed.u32(41);
  EXPECT_EQ(error_of(decode_replay_request(mixed.bytes)), DecodeError::limit_exceeded);
  ReplayRequest request = golden_request();
  request.collections.assign(60, "a.b.c");
  request.collection_prefixes.assign(41, "a.");
  EXPECT_EQ(validate(request), DecodeError::limit_exceeded);
}

TEST(ReplayRequest, StringsLongerThan8KiBAreRejected) {
  Bytes bytes = kGoldenReplayRequest;
  put_u32(bytes, 39, kMaxStringBytes + 1);  // the exact collection's length
  EXPECT_EQ(error_of(decode_replay_request(bytes)), DecodeError::limit_exceeded);
  ReplayRequest request = golden_request();
  request.dids.push_back(std::string(kMaxStringBytes + 1, 'd'));
  EXPECT_EQ(validate(request), DecodeError::limit_exceeded);
}

TEST(ReplayRequest, BoundsIdsFlagsAndEmptyStringsAreChecked) {
  auto check = [](const std::function<void(ReplayRequest&)>& edit, DecodeError expected) {
    ReplayRequest request = golden_request();
    edit(request);
    EXPECT_EQ(validate(request), expected);
  };
  check([](auto& r) { r.request_id = 0; }, DecodeError::invalid_value);
  check([](auto& r) { r.end_time_us = r.start_time_us; }, DecodeError::invalid_value);
  check([](auto& r) { r.max_events = 0; }, DecodeError::invalid_value);
  check([](auto& r) { r.max_events = kMaxEventsPerMessage + 1; }, DecodeError::limit_exceeded);
  check([](auto& r) { r.max_bytes = 0; }, DecodeError::invalid_value);
  check([](auto& r) { r.max_bytes = kMaxPageBytes + 1; }, DecodeError::limit_exceeded);
  check([](auto& r) { r.dids.push_back(""); }, DecodeError::invalid_value);
  check([](auto& r) { r.collection_prefixes.push_back(""); }, DecodeError::invalid_value);

  Bytes bytes = kGoldenReplayRequest;
  bytes[34] = 0x10;  // unknown flag bit (bit 3 is include_backfill)
  EXPECT_EQ(error_of(decode_replay_request(bytes)), DecodeError::invalid_value);
  bytes = kGoldenReplayRequest;
  put_u32(bytes, 26, 0);  // max_events 0
  EXPECT_EQ(error_of(decode_replay_request(bytes)), DecodeError::invalid_value);
}

TEST(ReplayRequest, TheRequestIdIsReadableFromAnyVersionSoTheErrorPageCanBeMatched) {
  Bytes bytes = kGoldenReplayRequest;
  bytes[0] = 9;
  bytes.resize(12);
  EXPECT_EQ(error_of(decode_replay_request(bytes)), DecodeError::unknown_version);
  EXPECT_EQ(peek_request_id(bytes), 0x1122334455667788u);
  EXPECT_EQ(peek_request_id(kGoldenReplayPage), 0x1122334455667788u);
  EXPECT_EQ(peek_request_id(Bytes(kGoldenReplayRequest.begin(), kGoldenReplayRequest.begin() + 9)),
            std::nullopt);
  EXPECT_EQ(peek_request_id(kGoldenEventBatch), std::nullopt);
}

TEST(ReplayPage, EncodesToTheDocumentedBytes) {
  EXPECT_EQ(encode_replay_page(golden_page()), kGoldenReplayPage);
  Bytes out(replay_page_size(golden_page()));
  encode_replay_page_into(golden_page(), out);
  EXPECT_EQ(out, kGoldenReplayPage);
}

TEST(ReplayPage, RoundTripsOkEmptyAndErrorPages) {
  ReplayPageView empty{.request_id = 3,
                       .status = ReplayStatus::ok,
                       .done = false,
                       .next_time_us = kT1,
                       .oldest_time_us = 0,
                       .newest_time_us = 0,
                       .events = {}};
  ReplayPageView too_old{.request_id = 4,
                         .status = ReplayStatus::too_old,
                         .done = true,
                         .next_time_us = 0,
                         .oldest_time_us = kT1,
                         .newest_time_us = kT2,
                         .events = {}};
  ReplayPageView unsupported{.request_id = 0,
                             .status = ReplayStatus::unsupported_version,
                             .done = true,
                             .next_time_us = 0,
                             .oldest_time_us = 0,
                             .newest_time_us = 0,
                             .events = {}};
  ReplayPageView two = golden_page();
  two.events = golden_events();
  for (const ReplayPageView& page : {golden_page(), empty, too_old, unsupported, two}) {
    const Bytes encoded = encode_replay_page(page);
    const auto decoded = decode_replay_page(encoded);
    ASSERT_TRUE(decoded) << to_string(decoded.error());
    EXPECT_EQ(*decoded, page);
  }
}

TEST(ReplayPage, EventsNeedNotChainButMustIncreaseAndPrecedeNextTimeUs) {
  ReplayPageView page = golden_page();
  page.events = {commit_event(), identity_event()};
  page.events[1].prev_time_us = kT0 + 10;  // filtered-out events in between: fine
  page.events[1].time_us = kT0 + 11;
  EXPECT_EQ(validate(page), DecodeError::invalid_value);  // but kT0 + 11 < kT1: not increasing
  page.events[1].time_us = kT2;
  EXPECT_EQ(validate(page), std::nullopt);
  page.next_time_us = kT2;
  EXPECT_EQ(validate(page), DecodeError::invalid_value);
}

TEST(ReplayPage, ANonOkPageCarriesNoEventsAndAnOkPageHasARequestId) {
  Bytes bytes = kGoldenReplayPage;
  bytes[10] = static_cast<std::uint8_t>(ReplayStatus::internal_error);
  EXPECT_EQ(error_of(decode_replay_page(bytes)), DecodeError::invalid_value);
  ReplayPageView page = golden_page();
  page.request_id = 0;
  EXPECT_EQ(validate(page), DecodeError::invalid_value);
}

TEST(ReplayPage, UnknownStatusAndDoneOtherThanZeroOrOneAreInvalid) {
  Bytes bytes = kGoldenReplayPage;
  bytes[10] = 5;
  EXPECT_EQ(error_of(decode_replay_page(bytes)), DecodeError::invalid_value);
  bytes = kGoldenReplayPage;
  bytes[11] = 2;
  EXPECT_EQ(error_of(decode_replay_page(bytes)), DecodeError::invalid_value);
}

TEST(ReplayPage, MoreThan100000EventsAreRejected) {
  Bytes bytes = kGoldenReplayPage;
  put_u32(bytes, 36, kMaxEventsPerMessage + 1);
  EXPECT_EQ(error_of(decode_replay_page(bytes)), DecodeError::limit_exceeded);
}

TEST(ReplayPage, EachStatusHasItsName) {
  EXPECT_EQ(to_string(ReplayStatus::ok), "ok");
  EXPECT_EQ(to_string(ReplayStatus::bad_request), "bad_request");
  EXPECT_EQ(to_string(ReplayStatus::too_old), "too_old");
  EXPECT_EQ(to_string(ReplayStatus::internal_error), "internal_error");
  EXPECT_EQ(to_string(ReplayStatus::unsupported_version), "unsupported_version");
}

// ---- Backfill ⇄ decode (§3.9, §3.10).

const Bytes kGoldenBatchAck =
    hex("01 41"                    // version 1, type 'A'
        "07 00 00 00 00 00 00 00"  // batch_id 7
        "02"                       // outcome busy
        "03 00 00 00"              // applied 3
        "04 00 00 00"              // unchanged 4
        "05 00 00 00"              // tombstoned 5
        "06 00 00 00");            // invalid 6

TEST(BatchAck, GoldenBytesRoundTrip) {
  const BatchAck ack{7, BatchOutcome::busy, 3, 4, 5, 6};
  const auto bytes = encode_batch_ack(ack);
  EXPECT_EQ(Bytes(bytes.begin(), bytes.end()), kGoldenBatchAck);
  const auto decoded = decode_batch_ack(kGoldenBatchAck);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded.value(), ack);
  Bytes bad = kGoldenBatchAck;
  bad[10] = 3;  // no such outcome
  EXPECT_EQ(error_of(decode_batch_ack(bad)), DecodeError::invalid_value);
  bad = kGoldenBatchAck;
  bad.pop_back();
  EXPECT_EQ(error_of(decode_batch_ack(bad)), DecodeError::truncated);
  EXPECT_EQ(to_string(BatchOutcome::stored), "stored");
  EXPECT_EQ(to_string(BatchOutcome::rejected), "rejected");
}

const Bytes kGoldenRepoBatch =
    hex("01 42"                       // version 1, type 'B'
        "09 00 00 00 00 00 00 00"     // batch_id 9
        "01"                          // flags: last
        "05 00 00 00 64 69 64 3a 78"  // did "did:x"
        "02 00 00 00 72 31"           // rev "r1"
        "03 00 00 00 61 2e 2a"        // collections "a.*"
        "01 00 00 00"                 // one record
        "03 00 00 00 61 2e 62"        // collection "a.b"
        "01 00 00 00 6b"              // rkey "k"
        "02 00 00 00 01 71"           // cid (2 bytes)
        "01 00 00 00 a0");            // record: the empty map

TEST(RepoBatch, GoldenBytesRoundTrip) {
  const Bytes cid{0x01, 0x71};
  const Bytes record{0xa0};
  RepoBatchView batch;
  batch.batch_id = 9;
  batch.last = true;
  batch.did = "did:x";
  batch.rev = "r1";
  batch.collections = "a.*";
  batch.records.push_back({"a.b", "k", cid, record});
  EXPECT_EQ(repo_batch_size(batch), kGoldenRepoBatch.size());
  EXPECT_EQ(encode_repo_batch(batch), kGoldenRepoBatch);
  const auto decoded = decode_repo_batch(kGoldenRepoBatch);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded.value(), batch);
}

TEST(RepoBatch, BrokenBatchesAreRejectedByReason) {
  Bytes bytes = kGoldenRepoBatch;
  bytes[10] = 0x02;  // an unknown flag
  EXPECT_EQ(error_of(decode_repo_batch(bytes)), DecodeError::invalid_value);
  bytes = kGoldenRepoBatch;
  put_u32(bytes, 33, kMaxRecordsPerBatch + 1);
  EXPECT_EQ(error_of(decode_repo_batch(bytes)), DecodeError::limit_exceeded);
  bytes = kGoldenRepoBatch;
  bytes.back() = 0xa0;
  bytes.push_back(0);
  EXPECT_EQ(error_of(decode_repo_batch(bytes)), DecodeError::trailing_bytes);
  bytes = kGoldenRepoBatch;
  bytes.resize(bytes.size() - 1);
  EXPECT_EQ(error_of(decode_repo_batch(bytes)), DecodeError::truncated);
  bytes = kGoldenRepoBatch;
  put_u32(bytes, 11, 0);  // an empty DID: no bytes follow it, the rest shifts
  EXPECT_NE(error_of(decode_repo_batch(bytes)), std::nullopt);
  RepoBatchView empty_rev;
  empty_rev.batch_id = 1;
  empty_rev.did = "did:x";
  EXPECT_EQ(validate(empty_rev), DecodeError::invalid_value);
}

TEST(EventBackfillFlag, TravelsAsBit7OfTheKindByteForCommitsOnly) {
  EventView event;
  event.time_us = 2;
  event.prev_time_us = 1;
  event.kind = EventKind::commit;
  event.backfill = true;
  event.did = "did:x";
  event.collection = "a.b";
  event.json = "{}";
  const std::vector<EventView> events{event};
  const auto bytes = encode_event_batch(events);
  EXPECT_EQ(bytes[6 + 16], 0x81);
  const auto decoded = decode_event_batch(bytes);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded.value().front().backfill);
  EXPECT_EQ(decoded.value().front().kind, EventKind::commit);
  event.kind = EventKind::identity;
  event.collection = "";
  EXPECT_EQ(validate(event), DecodeError::invalid_value);
  Bytes identity = bytes;
  identity[6 + 16] = 0x82;
  EXPECT_NE(error_of(decode_event_batch(identity)), std::nullopt);
}

TEST(Resync, PollsAndListsRoundTripWithGoldenBytes) {
  const ResyncPoll poll{2, {"did:x"}};
  const Bytes poll_bytes =
      hex("01 4e"                         // version 1, type 'N'
          "02 00 00 00"                   // max 2
          "01 00 00 00"                   // one acknowledged DID
          "05 00 00 00 64 69 64 3a 78");  // "did:x"
  EXPECT_EQ(encode_resync_poll(poll), poll_bytes);
  EXPECT_EQ(decode_resync_poll(poll_bytes).value(), poll);
  const ResyncList list{{{"did:x", ResyncReason::sync}, {"did:y", ResyncReason::identity}}};
  const Bytes list_bytes =
      hex("01 4b"
          "02 00 00 00"
          "05 00 00 00 64 69 64 3a 78 01"
          "05 00 00 00 64 69 64 3a 79 03");
  EXPECT_EQ(encode_resync_list(list), list_bytes);
  EXPECT_EQ(decode_resync_list(list_bytes).value(), list);
  Bytes bad = list_bytes;
  bad.back() = 4;  // no such reason
  EXPECT_EQ(error_of(decode_resync_list(bad)), DecodeError::invalid_value);
  bad = poll_bytes;
  bad[2] = 0;  // max 0
  EXPECT_EQ(error_of(decode_resync_poll(bad)), DecodeError::invalid_value);
  EXPECT_EQ(to_string(ResyncReason::account_active), "account_active");
}

TEST(Topics, BackfillLettersAreKnownAndNamed) {
  EXPECT_EQ(topic(MessageType::repo_batch), "B");
  EXPECT_EQ(topic(MessageType::batch_ack), "A");
  EXPECT_EQ(to_string(MessageType::repo_batch), "repo_batch");
  const std::array<std::uint8_t, 1> b{'B'};
  EXPECT_EQ(decode_topic(b).value(), MessageType::repo_batch);
}

// ---- Senders.

TEST(EncodersDeathTest, AbortRatherThanEmitAMessageThePeerWouldReject) {
  EXPECT_DEATH((void)encode_resume(Resume{.resume_id = 0, .seen_epoch = 0, .cursor = -1}),
               "encode_resume");
  EXPECT_DEATH((void)encode_event_batch(std::vector<EventView>{}), "encode_event_batch");
  ReplayRequest request = golden_request();
  request.dids.assign(kMaxWantedDids + 1, "did:plc:ab");
  EXPECT_DEATH((void)encode_replay_request(request), "encode_replay_request");
}

TEST(DecodeResultDeathTest, AskingAFailedResultForItsValueAborts) {
  const auto result = decode_resume(Bytes{});
  ASSERT_FALSE(result);
  EXPECT_DEATH((void)result.value(), "value\\(\\) called on a failed DecodeResult");
}

}  // namespace
}  // namespace jetstream::proto
