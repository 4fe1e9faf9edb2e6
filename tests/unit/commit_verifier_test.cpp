// Contracts of decode's CommitVerifier (the --verify signatures gate) and HeldCommits, driven by
// hand: a cache filled by the test, frames built and signed by the test.
#include "services/decode/commit_verifier.hpp"

#include <gtest/gtest.h>

#include "common/codec/car.hpp"
#include "common/firehose/frame.hpp"
#include "services/decode/held_commits.hpp"
#include "tests/support/signed_frames.hpp"

namespace jetstream::decode {
namespace {

using firehose::CommitGate;
using firehose::DropReason;
using testing::TestSigningKey;

constexpr std::string_view kDid = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";

/// Decodes `frame` far enough to ask the gate, as the encoder does.
struct GateCall {
  firehose::FrameDecoder decoder;
  firehose::CommitBody commit;
  codec::CarFile car;
  std::vector<std::uint8_t> bytes;

  CommitGate::Decision ask(CommitVerifier& verifier, std::vector<std::uint8_t> frame) {
    bytes = std::move(frame);
    EXPECT_FALSE(decoder.decode(bytes).has_value());
    EXPECT_FALSE(decoder.read_commit(commit).has_value());
    EXPECT_FALSE(car.open(commit.blocks).has_value());
    return verifier.check_commit(commit, car);
  }
};

identity::ResolutionPtr resolved_with(const TestSigningKey* key) {
  auto resolution = std::make_shared<identity::Resolution>();
  resolution->document.emplace();
  resolution->document->did = std::string(kDid);
  if (key != nullptr) resolution->document->signing_key = key->public_key();
  return resolution;
}

std::vector<std::uint8_t> frame_by(const TestSigningKey& key,
                                   const testing::SignedCommitOptions& options = {}) {
  return testing::make_signed_commit_frame(1, kDid, "3kaaaaaaaaa22", key, "app.bsky.feed.post",
                                           "r1", "hello", options);
}

struct Fixture {
  identity::IdentityCache cache{10};
  std::int64_t now = 100;
  TestSigningKey key = TestSigningKey::from_seed(crypto::Curve::k256, 1);
  TestSigningKey other = TestSigningKey::from_seed(crypto::Curve::k256, 2);
  CommitVerifier worker{cache, [this] { return now; }, {}};
  CommitVerifier final_check{cache, [this] { return now; }, {false, true}};
  GateCall call;
};

TEST(CommitVerifier, AnUnknownDidIsHeldNotDecided) {
  Fixture f;
  const auto decision = f.call.ask(f.worker, frame_by(f.key));
  EXPECT_EQ(decision.verdict, CommitGate::Verdict::hold);
  EXPECT_FALSE(f.worker.last_hold_wants_refresh());
  // Nor does the final check: the DID may have left the cache since the resolver answered.
  EXPECT_EQ(f.call.ask(f.final_check, frame_by(f.key)).verdict, CommitGate::Verdict::hold);
}

TEST(CommitVerifier, ASignatureByTheCachedKeyPassesAndAnotherKeyWantsARefreshFirst) {
  Fixture f;
  f.cache.put(kDid, resolved_with(&f.key), 1000);
  const auto passed = f.call.ask(f.worker, frame_by(f.key));
  EXPECT_EQ(passed.verdict, CommitGate::Verdict::pass);
  EXPECT_FALSE(passed.unverified);
  EXPECT_EQ(f.call.ask(f.worker, frame_by(f.other)).verdict, CommitGate::Verdict::hold);
  EXPECT_TRUE(f.worker.last_hold_wants_refresh());
  f.final_check.set_refresh_tried(false);
  EXPECT_EQ(f.call.ask(f.final_check, frame_by(f.other)).verdict, CommitGate::Verdict::hold);
  f.final_check.set_refresh_tried(true);
  const auto decision = f.call.ask(f.final_check, frame_by(f.other));
  EXPECT_EQ(decision.verdict, CommitGate::Verdict::drop);
  EXPECT_EQ(decision.reason, DropReason::bad_signature);
}

TEST(CommitVerifier, FailedResolutionsMissingKeysAndForeignCommitsAreDroppedWithTheirReason) {
  Fixture f;
  auto failed = std::make_shared<identity::Resolution>();
  failed->failure = "not_found";
  f.cache.put(kDid, failed, 1000);
  auto decision = f.call.ask(f.worker, frame_by(f.key));
  EXPECT_EQ(decision.verdict, CommitGate::Verdict::drop);
  EXPECT_EQ(decision.reason, DropReason::unresolvable_did);

  CommitVerifier open{f.cache, [&f] { return f.now; }, {true, false}};
  const auto open_pass = f.call.ask(open, frame_by(f.key));
  EXPECT_EQ(open_pass.verdict, CommitGate::Verdict::pass);
  EXPECT_TRUE(open_pass.unverified);

  f.cache.put(kDid, resolved_with(nullptr), 1000);
  EXPECT_EQ(f.call.ask(f.worker, frame_by(f.key)).reason, DropReason::unknown_key);

  f.cache.put(kDid, resolved_with(&f.key), 1000);
  testing::SignedCommitOptions foreign;
  foreign.commit_repo = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";
  EXPECT_EQ(f.call.ask(f.worker, frame_by(f.key, foreign)).reason, DropReason::bad_commit);
}

TEST(CommitVerifier, AnIdentityEventForgetsTheCachedDocument) {
  Fixture f;
  f.cache.put(kDid, resolved_with(&f.key), 1000);
  f.worker.identity_changed(kDid);
  EXPECT_EQ(f.call.ask(f.worker, frame_by(f.key)).verdict, CommitGate::Verdict::hold);
}

TEST(HeldCommits, FramesWaitPerDidInOrderAndAskForOneResolutionOrOneRefresh) {
  HeldCommits held;
  auto frame = [&held](const std::string& did, std::int64_t seq) {
    HeldFrame f;
    f.id = held.next_id();
    f.did = did;
    f.upstream_seq = seq;
    f.bytes = {static_cast<std::uint8_t>(seq)};
    return f;
  };
  EXPECT_EQ(held.add(frame("did:a", 1)), HeldCommits::Ask::resolution);
  EXPECT_EQ(held.add(frame("did:a", 2)), HeldCommits::Ask::nothing);
  EXPECT_EQ(held.add(frame("did:b", 3)), HeldCommits::Ask::resolution);
  EXPECT_EQ(held.add(frame("did:a", 4), true), HeldCommits::Ask::refresh);
  EXPECT_EQ(held.add(frame("did:a", 5), true), HeldCommits::Ask::nothing);
  EXPECT_TRUE(held.holds("did:a"));
  EXPECT_EQ(held.frame_count(), 5u);
  const auto released = held.release("did:a");
  EXPECT_TRUE(released.refreshed);
  ASSERT_EQ(released.frames.size(), 4u);
  EXPECT_EQ(released.frames[0].upstream_seq, 1);
  EXPECT_EQ(released.frames[3].upstream_seq, 5);
  EXPECT_FALSE(held.holds("did:a"));
  EXPECT_EQ(held.frame_count(), 1u);
  EXPECT_EQ(held.did_count(), 1u);
}

TEST(HeldCommits, AStoredFrameRoundTripsAndAShortOneIsRefused) {
  HeldFrame frame;
  frame.id = 7;
  frame.did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
  frame.upstream_seq = 123456789;
  frame.receive_time_us = 1'700'000'000'000'000;
  frame.bytes = {1, 2, 3};
  const auto decoded = HeldFrame::decode(7, frame.encode());
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->upstream_seq, frame.upstream_seq);
  EXPECT_EQ(decoded->receive_time_us, frame.receive_time_us);
  EXPECT_EQ(decoded->bytes, frame.bytes);
  EXPECT_EQ(decoded->did, frame.did);
  EXPECT_FALSE(HeldFrame::decode(7, "short").has_value());
  std::string truncated = frame.encode().substr(0, 20);  // the DID cut short
  EXPECT_FALSE(HeldFrame::decode(7, truncated).has_value());
}

}  // namespace
}  // namespace jetstream::decode
