// The v1 event encoder: one event per op, the envelope and commit key order of API.md, identity and
// account shapes, and the time_us hole the sequencer fills.
#include "common/firehose/v1_encoder.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/cbor_builder.hpp"

namespace {

namespace codec = jetstream::codec;
namespace firehose = jetstream::firehose;
namespace support = jetstream::testing;
using support::Bytes;
using support::CborBuilder;

constexpr std::string_view kDid = "did:plc:wq4aajammjtxdomz3e23667t";

Bytes like_record() {
  CborBuilder record;
  record.map(3).text("$type").text("app.bsky.feed.like");
  record.text("subject").map(2).text("cid").text("bafyrei").text("uri").text("at://x/y/z");
  record.text("createdAt").text("2026-07-04T14:38:08.999Z");
  return record.take();
}

std::vector<std::string> encode_all(firehose::V1Encoder& encoder, const Bytes& frame) {
  std::vector<firehose::PendingEvent> events;
  encoder.events_from_frame(frame, events);
  std::vector<std::string> json;
  std::int64_t time_us = 1000;
  for (const auto& event : events) json.push_back(event.finalize(time_us++));
  return json;
}

TEST(V1Encoder, WritesACreateWithEnvelopeAndCommitKeysInV1Order) {
  const Bytes record = like_record();
  const Bytes cid = support::cid_of(codec::kCodecDagCbor, record);
  const Bytes car = support::make_car({cid}, {{cid, record}});
  firehose::V1Encoder encoder;
  const auto json = encode_all(
      encoder, support::make_commit_frame(7, kDid, "3mptbypluud2a", car,
                                          {{"create", "app.bsky.feed.like/3mptbyplj5d2a", cid}}));
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(
      json[0],
      R"({"did":"did:plc:wq4aajammjtxdomz3e23667t","time_us":1000,"kind":"commit","commit":)"
      R"({"rev":"3mptbypluud2a","operation":"create","collection":"app.bsky.feed.like",)"
      R"("rkey":"3mptbyplj5d2a","record":{"$type":"app.bsky.feed.like",)"
      R"("createdAt":"2026-07-04T14:38:08.999Z","subject":{"cid":"bafyrei","uri":"at://x/y/z"}},)"
      R"("cid":")" +
          codec::cid_to_string(cid) + R"("}})");
}

TEST(V1Encoder, GivesEveryOpOfAMultiOpCommitItsOwnEventInOpOrder) {
  const Bytes record = like_record();
  const Bytes cid = support::cid_of(codec::kCodecDagCbor, record);
  const Bytes car = support::make_car({cid}, {{cid, record}});
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  encoder.events_from_frame(
      support::make_commit_frame(9, kDid, "rev1", car,
                                 {{"create", "app.bsky.feed.like/a", cid},
                                  {"delete", "app.bsky.feed.post/b", {}},
                                  {"update", "app.bsky.actor.profile/self", cid}}),
      events);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].collection, "app.bsky.feed.like");
  EXPECT_EQ(events[1].collection, "app.bsky.feed.post");
  EXPECT_EQ(events[2].collection, "app.bsky.actor.profile");
  for (const auto& event : events) {
    EXPECT_EQ(event.did, kDid);
    EXPECT_EQ(event.upstream_seq, 9);
    EXPECT_EQ(event.kind, firehose::EventKind::commit);
  }
  EXPECT_EQ(events[1].finalize(5),
            R"({"did":"did:plc:wq4aajammjtxdomz3e23667t","time_us":5,"kind":"commit","commit":)"
            R"({"rev":"rev1","operation":"delete","collection":"app.bsky.feed.post","rkey":"b"}})");
}

TEST(V1Encoder, WritesIdentityWithOptionalHandle) {
  CborBuilder frame;
  frame.map(2).text("t").text("#identity").text("op").uint(1);
  frame.map(4)
      .text("did")
      .text(kDid)
      .text("seq")
      .uint(30340180350)
      .text("time")
      .text("2026-05-25T14:23:29.950Z")
      .text("handle")
      .text("alice.example.com");
  firehose::V1Encoder encoder;
  const auto json = encode_all(encoder, frame.take());
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0],
            R"({"did":"did:plc:wq4aajammjtxdomz3e23667t","time_us":1000,"kind":"identity",)"
            R"("identity":{"did":"did:plc:wq4aajammjtxdomz3e23667t","handle":"alice.example.com",)"
            R"("seq":30340180350,"time":"2026-05-25T14:23:29.950Z"}})");
}

TEST(V1Encoder, WritesAccountWithStatusOnlyWhenPresent) {
  CborBuilder active;
  active.map(2).text("t").text("#account").text("op").uint(1);
  active.map(4)
      .text("did")
      .text(kDid)
      .text("seq")
      .uint(5)
      .text("time")
      .text("2026-05-25T14:23:29.950Z")
      .text("active")
      .boolean(true);
  CborBuilder inactive;
  inactive.map(2).text("t").text("#account").text("op").uint(1);
  inactive.map(5)
      .text("did")
      .text(kDid)
      .text("seq")
      .uint(6)
      .text("time")
      .text("2026-05-25T14:23:29.950Z")
      .text("active")
      .boolean(false)
      .text("status")
      .text("takendown");
  firehose::V1Encoder encoder;
  EXPECT_EQ(encode_all(encoder, active.take()).at(0),
            R"({"did":"did:plc:wq4aajammjtxdomz3e23667t","time_us":1000,"kind":"account",)"
            R"("account":{"active":true,"did":"did:plc:wq4aajammjtxdomz3e23667t","seq":5,)"
            R"("time":"2026-05-25T14:23:29.950Z"}})");
  EXPECT_EQ(encode_all(encoder, inactive.take()).at(0),
            R"({"did":"did:plc:wq4aajammjtxdomz3e23667t","time_us":1000,"kind":"account",)"
            R"("account":{"active":false,"did":"did:plc:wq4aajammjtxdomz3e23667t","seq":6,)"
            R"("status":"takendown","time":"2026-05-25T14:23:29.950Z"}})");
}

TEST(V1Encoder, YieldsNoEventForSyncInfoAndOtherNonV1TypesButCountsThem) {
  firehose::V1Encoder encoder;
  for (const char* type : {"#sync", "#info", "#handle", "#tombstone", "#migrate", "#labels"}) {
    CborBuilder frame;
    frame.map(2).text("t").text(type).text("op").uint(1);
    frame.map(1).text("seq").uint(1);
    EXPECT_TRUE(encode_all(encoder, frame.take()).empty()) << type;
  }
  EXPECT_EQ(encoder.stats().frames_by_type[static_cast<std::size_t>(firehose::FrameType::sync)],
            1u);
  EXPECT_EQ(encoder.stats().frames_by_type[static_cast<std::size_t>(firehose::FrameType::labels)],
            1u);
  EXPECT_EQ(encoder.stats().events, 0u);
}

TEST(V1Encoder, ReportsAnUpstreamErrorFrameWithBoundedText) {
  CborBuilder frame;
  frame.map(1).text("op").integer(-1);
  frame.map(2).text("error").text("FutureCursor").text("message").text(std::string(5000, 'x'));
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  const auto outcome = encoder.events_from_frame(frame.take(), events);
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(outcome.type, firehose::FrameType::error);
  EXPECT_EQ(outcome.upstream_error.rfind("FutureCursor: xxx", 0), 0u);
  EXPECT_LE(outcome.upstream_error.size(), 256u);
  EXPECT_EQ(encoder.stats().drops[static_cast<std::size_t>(firehose::DropReason::error_frame)], 1u);
}

TEST(V1Encoder, ReportsTheUpstreamSeqOfEveryReadableFrame) {
  CborBuilder frame;
  frame.map(2).text("t").text("#sync").text("op").uint(1);
  frame.map(1).text("seq").uint(123456789);
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  EXPECT_EQ(encoder.events_from_frame(frame.take(), events).seq, 123456789);
}

}  // namespace
