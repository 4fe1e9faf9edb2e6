// Untrusted upstream input never crashes the decoder: every malformed frame, commit or op is
// dropped and counted under its reason, and the rest of the frame still yields its events.
#include <gtest/gtest.h>

#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "common/firehose/capture.hpp"
#include "common/firehose/v1_encoder.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/shared_data.hpp"

namespace {

namespace codec = jetstream::codec;
namespace firehose = jetstream::firehose;
namespace support = jetstream::testing;
using firehose::DropReason;
using support::Bytes;
using support::CborBuilder;
using support::TestOp;

constexpr std::string_view kDid = "did:plc:wq4aajammjtxdomz3e23667t";

Bytes simple_record(std::string_view text = "hello") {
  CborBuilder record;
  record.map(2).text("$type").text("app.bsky.feed.post").text("text").text(text);
  return record.take();
}

/// Encodes `frame` with a fresh encoder; returns the event count and exposes the stats.
struct Outcome {
  std::size_t events = 0;
  firehose::DecodeStats stats;
  std::uint64_t drops(DropReason reason) const {
    return stats.drops[static_cast<std::size_t>(reason)];
  }
  std::uint64_t total_drops() const {
    std::uint64_t total = 0;
    for (const auto count : stats.drops) total += count;
    return total;
  }
};

Outcome encode(const Bytes& frame) {
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  encoder.events_from_frame(frame, events);
  return {events.size(), encoder.stats()};
}

struct ValidCommit {
  Bytes record = simple_record();
  Bytes cid = support::cid_of(codec::kCodecDagCbor, record);
  Bytes car = support::make_car({cid}, {{cid, record}});
};

TEST(MalformedInput, EveryTruncationOfARealFrameIsCountedAsMalformedAndYieldsNothing) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "corpus/dev.frames");
  const auto capture = support::read_binary_file(path);
  const auto frames = firehose::split_capture(capture);
  ASSERT_TRUE(frames && !frames->empty());
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  std::uint64_t truncations = 0;
  for (std::size_t f = 0; f < frames->size(); f += 7) {
    const auto frame = (*frames)[f];
    for (std::size_t length = 0; length < frame.size(); length += 1 + length / 16) {
      encoder.events_from_frame(frame.first(length), events);
      ++truncations;
    }
  }
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(encoder.stats().drops[static_cast<std::size_t>(DropReason::malformed_frame)],
            truncations);
}

TEST(MalformedInput, ByteFlipsInRealFramesNeverCrashAndAlwaysAccountForTheFrame) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "corpus/dev.frames");
  const auto capture = support::read_binary_file(path);
  const auto frames = firehose::split_capture(capture);
  ASSERT_TRUE(frames && !frames->empty());
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  std::uint64_t mutations = 0;
  for (std::size_t f = 0; f < frames->size(); f += 5) {
    Bytes frame((*frames)[f].begin(), (*frames)[f].end());
    for (std::size_t i = 0; i < frame.size(); i += 1 + frame.size() / 300) {
      for (const std::uint8_t mask : std::initializer_list<std::uint8_t>{0x01, 0x80, 0xff}) {
        frame[i] ^= mask;
        events.clear();
        encoder.events_from_frame(frame, events);
        for (const auto& event : events) {
          ASSERT_EQ(event.json.front(), '{');
          ASSERT_EQ(event.json.back(), '}');
        }
        frame[i] ^= mask;
        ++mutations;
      }
    }
  }
  EXPECT_EQ(encoder.stats().frames, mutations);
}

TEST(MalformedInput, RandomGarbageIsAMalformedFrame) {
  Bytes garbage;
  std::uint32_t state = 12345;
  for (int i = 0; i < 4096; ++i) {
    state = state * 1664525u + 1013904223u;
    garbage.push_back(static_cast<std::uint8_t>(state >> 24));
  }
  const auto outcome = encode(garbage);
  EXPECT_EQ(outcome.events, 0u);
  EXPECT_EQ(outcome.drops(DropReason::malformed_frame), 1u);
}

TEST(MalformedInput, TrailingBytesAfterTheBodyMakeTheFrameMalformed) {
  const ValidCommit commit;
  Bytes frame =
      support::make_commit_frame(1, kDid, "r", commit.car, {{"create", "a.b.c/k", commit.cid}});
  frame.push_back(0x00);
  const auto outcome = encode(frame);
  EXPECT_EQ(outcome.events, 0u);
  EXPECT_EQ(outcome.drops(DropReason::malformed_frame), 1u);
}

TEST(MalformedInput, HugeDeclaredSizesAreRejectedWithoutAllocating) {
  for (const Bytes& body : {Bytes{0x5b, 0x10, 0, 0, 0, 0, 0, 0, 0},  // bytes of 2^60
                            Bytes{0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
                            Bytes{0x9a, 0xff, 0xff, 0xff, 0xff},  // array of 2^32-1
                            Bytes{0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}) {
    CborBuilder frame;
    frame.map(2).text("t").text("#commit").text("op").uint(1).raw(body);
    const auto outcome = encode(frame.take());
    EXPECT_EQ(outcome.events, 0u);
    EXPECT_EQ(outcome.drops(DropReason::malformed_frame), 1u);
  }
}

TEST(MalformedInput, DeepNestingInTheBodyIsMalformedAndInARecordDropsTheOp) {
  CborBuilder deep_body;
  deep_body.map(2).text("t").text("#commit").text("op").uint(1);
  for (int i = 0; i < 100000; ++i) deep_body.array(1);
  deep_body.uint(0);
  EXPECT_EQ(encode(deep_body.take()).drops(DropReason::malformed_frame), 1u);

  CborBuilder deep_record;
  deep_record.map(1).text("a");
  for (int i = 0; i < 5000; ++i) deep_record.array(1);
  deep_record.uint(0);
  const Bytes record = deep_record.take();
  const Bytes cid = support::cid_of(codec::kCodecDagCbor, record);
  const ValidCommit good;
  const auto outcome = encode(support::make_commit_frame(
      1, kDid, "r", support::make_car({cid}, {{cid, record}, {good.cid, good.record}}),
      {{"create", "a.b.c/deep", cid}, {"create", "a.b.c/fine", good.cid}}));
  EXPECT_EQ(outcome.drops(DropReason::invalid_record), 1u);
  EXPECT_EQ(outcome.events, 1u);
}

TEST(MalformedInput, AnOpWhoseBlockDoesNotHashToItsCidIsDroppedAndCounted) {
  const ValidCommit good;
  const Bytes tampered = simple_record("tampered");
  // The CAR claims the good CID for different bytes.
  const Bytes car = support::make_car({good.cid}, {{good.cid, tampered}});
  const auto outcome =
      encode(support::make_commit_frame(1, kDid, "r", car, {{"create", "a.b.c/k", good.cid}}));
  EXPECT_EQ(outcome.events, 0u);
  EXPECT_EQ(outcome.drops(DropReason::cid_mismatch), 1u);
}

TEST(MalformedInput, AMissingBlockDropsOnlyThatOp) {
  const ValidCommit good;
  const Bytes absent_cid = support::cid_of(codec::kCodecDagCbor, simple_record("absent"));
  const auto outcome = encode(support::make_commit_frame(1, kDid, "r", good.car,
                                                         {{"create", "a.b.c/1", absent_cid},
                                                          {"create", "a.b.c/2", good.cid},
                                                          {"delete", "a.b.c/3", {}}}));
  EXPECT_EQ(outcome.drops(DropReason::missing_block), 1u);
  EXPECT_EQ(outcome.events, 2u);
}

TEST(MalformedInput, AnUnparseableCarDropsTheWholeCommit) {
  const ValidCommit good;
  Bytes car = good.car;
  car.resize(car.size() - 3);  // the last block is cut short
  const auto outcome = encode(support::make_commit_frame(
      1, kDid, "r", car, {{"create", "a.b.c/1", good.cid}, {"delete", "a.b.c/2", {}}}));
  EXPECT_EQ(outcome.events, 0u);
  EXPECT_EQ(outcome.drops(DropReason::bad_car), 1u);
  EXPECT_EQ(outcome.total_drops(), 1u);
}

TEST(MalformedInput, TooBigCommitsYieldNothingAndAreCounted) {
  const ValidCommit good;
  const auto outcome = encode(support::make_commit_frame(
      1, kDid, "r", good.car, {{"create", "a.b.c/1", good.cid}}, "2026-07-04T14:38:08.999Z", true));
  EXPECT_EQ(outcome.events, 0u);
  EXPECT_EQ(outcome.drops(DropReason::too_big), 1u);
}

TEST(MalformedInput, ACommitWhoseTimeIsNotRfc3339IsDropped) {
  const ValidCommit good;
  const auto outcome = encode(support::make_commit_frame(
      1, kDid, "r", good.car, {{"create", "a.b.c/1", good.cid}}, "yesterday"));
  EXPECT_EQ(outcome.events, 0u);
  EXPECT_EQ(outcome.drops(DropReason::bad_time), 1u);
}

TEST(MalformedInput, OpLevelProblemsDropOnlyTheirOpUnderTheirOwnReason) {
  const ValidCommit good;
  CborBuilder float_record;
  float_record.map(2).text("$type").text("a.b.c").text("x").raw(
      {0xfb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18});
  const Bytes bad_record = float_record.take();
  const Bytes bad_record_cid = support::cid_of(codec::kCodecDagCbor, bad_record);
  const Bytes raw_cid = support::cid_of(codec::kCodecRaw, good.record);
  const Bytes car = support::make_car(
      {good.cid}, {{good.cid, good.record}, {bad_record_cid, bad_record}, {raw_cid, good.record}});
  const auto outcome = encode(
      support::make_commit_frame(1, kDid, "r", car,
                                 {
                                     {"create", "no-slash", good.cid},       // bad_path
                                     {"create", "a.b.c/k/extra", good.cid},  // bad_path
                                     {"create", "/k", good.cid},       // bad_path: empty collection
                                     {"upsert", "a.b.c/k", good.cid},  // unknown_action
                                     {"create", "a.b.c/k", {}},        // missing_cid
                                     {"update", "a.b.c/k", raw_cid},   // unsupported_cid
                                     {"create", "a.b.c/k", bad_record_cid},  // invalid_record
                                     {"create", "a.b.c/ok", good.cid},       // the one good op
                                 }));
  EXPECT_EQ(outcome.events, 1u);
  EXPECT_EQ(outcome.drops(DropReason::bad_path), 3u);
  EXPECT_EQ(outcome.drops(DropReason::unknown_action), 1u);
  EXPECT_EQ(outcome.drops(DropReason::missing_cid), 1u);
  EXPECT_EQ(outcome.drops(DropReason::unsupported_cid), 1u);
  EXPECT_EQ(outcome.drops(DropReason::invalid_record), 1u);
  EXPECT_EQ(outcome.total_drops(), 7u);
}

TEST(MalformedInput, AnUnknownFrameTypeIsCountedNotFatal) {
  CborBuilder frame;
  frame.map(2).text("t").text("#somethingNew").text("op").uint(1);
  frame.map(1).text("seq").uint(3);
  const auto outcome = encode(frame.take());
  EXPECT_EQ(outcome.events, 0u);
  EXPECT_EQ(outcome.drops(DropReason::unknown_type), 1u);
}

TEST(MalformedInput, ACaptureWithAWrongLengthIsReportedAsTruncated) {
  const ValidCommit good;
  const Bytes frame =
      support::make_commit_frame(1, kDid, "r", good.car, {{"create", "a.b.c/1", good.cid}});
  Bytes capture{static_cast<std::uint8_t>(frame.size() + 10),
                static_cast<std::uint8_t>((frame.size() + 10) >> 8), 0, 0};
  capture.insert(capture.end(), frame.begin(), frame.end());
  EXPECT_FALSE(firehose::split_capture(capture));
  std::istringstream in(std::string(capture.begin(), capture.end()));
  firehose::CaptureReader reader(in);
  EXPECT_EQ(reader.next(), firehose::CaptureReadStatus::truncated);
  std::istringstream oversize(std::string("\xff\xff\xff\xff", 4));
  firehose::CaptureReader oversize_reader(oversize);
  EXPECT_EQ(oversize_reader.next(), firehose::CaptureReadStatus::oversize);
}

}  // namespace
