// Contracts of decode's CommitVerifier (the --verify gate, signatures and full), HeldCommits and
// RepoRevisions, driven by hand: a cache filled by the test, frames built and signed by the test
// (TestRepo: real repositories for the Sync 1.1 checks).
#include "services/decode/commit_verifier.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "common/codec/car.hpp"
#include "common/firehose/frame.hpp"
#include "services/decode/held_commits.hpp"
#include "services/decode/repo_revisions.hpp"
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

/// A verifier for --verify full at a realistic clock (revs are checked against it).
struct FullFixture {
  identity::IdentityCache cache{10};
  std::int64_t now = 1'780'000'000'000'000;  // 2026-05
  TestSigningKey key = TestSigningKey::from_seed(crypto::Curve::p256, 7);
  testing::TestRepo repo{std::string(kDid), key};
  CommitVerifier::Options options;
  GateCall call;
  FullFixture() {
    options.full = true;
    cache.put(kDid, resolved_with(&key), now + 1000);
  }
  CommitVerifier verifier() {
    return CommitVerifier{cache, [this] { return now; }, options};
  }
  std::string rev(int n) const { return testing::tid_at(now - 1'000'000'000 + n); }
};

TEST(CommitVerifier, FullPassesProvenCommitsOfARealRepository) {
  FullFixture f;
  auto verifier = f.verifier();
  using Change = testing::TestRepo::Change;
  std::vector<Change> creates;
  for (int i = 0; i < 40; ++i)
    creates.push_back({"create", "app.bsky.feed.post/p" + std::to_string(i), "x"});
  const auto first = f.call.ask(verifier, f.repo.commit(1, f.rev(1), creates));
  EXPECT_EQ(first.verdict, CommitGate::Verdict::pass);
  EXPECT_FALSE(first.unproven);
  const auto second =
      f.call.ask(verifier, f.repo.commit(2, f.rev(2),
                                         {{"update", "app.bsky.feed.post/p3", "y"},
                                          {"delete", "app.bsky.feed.post/p17", ""},
                                          {"create", "app.bsky.feed.like/l1", "z"}}));
  EXPECT_EQ(second.verdict, CommitGate::Verdict::pass);
  EXPECT_FALSE(second.unproven);
}

TEST(CommitVerifier, FullDropsForgeriesBeforeAnyResolutionAndNamesThem) {
  FullFixture f;
  f.cache.invalidate(kDid);  // not resolved: a forgery is dropped without asking
  auto verifier = f.verifier();
  const auto forged_ops =
      f.call.ask(verifier, f.repo.commit(1, f.rev(1), {{"create", "app.bsky.feed.post/a", "x"}},
                                         {.op_cid_unlike_tree = true}));
  EXPECT_EQ(forged_ops.verdict, CommitGate::Verdict::drop);
  EXPECT_EQ(forged_ops.reason, DropReason::ops_mismatch);
  const auto other_prev =
      f.call.ask(verifier, f.repo.commit(2, f.rev(2), {{"create", "app.bsky.feed.post/b", "x"}},
                                         {.other_prev_data = true}));
  EXPECT_EQ(other_prev.reason, DropReason::mst_mismatch);
  const auto future =
      f.call.ask(verifier, f.repo.commit(3, testing::tid_at(f.now + 3'600'000'000),
                                         {{"create", "app.bsky.feed.post/c", "x"}}));
  EXPECT_EQ(future.reason, DropReason::rev_in_future);
  const auto not_a_tid =
      f.call.ask(verifier, f.repo.commit(4, "rev-4", {{"create", "app.bsky.feed.post/d", "x"}}));
  EXPECT_EQ(not_a_tid.reason, DropReason::bad_commit);
}

TEST(CommitVerifier, FullPassesAndCountsAFrameOlderThanSync11UnlessStrict) {
  FullFixture f;
  auto verifier = f.verifier();
  // A repository's first commit needs no prevData: its ops undo to the empty tree.
  const auto first = f.call.ask(
      verifier, f.repo.commit(1, f.rev(1), {{"create", "a.b.c/1", "x"}}, {.no_prev_data = true}));
  EXPECT_EQ(first.verdict, CommitGate::Verdict::pass);
  EXPECT_FALSE(first.unproven);
  const auto legacy = f.call.ask(
      verifier, f.repo.commit(2, f.rev(2), {{"create", "a.b.c/2", "x"}}, {.no_prev_data = true}));
  EXPECT_EQ(legacy.verdict, CommitGate::Verdict::pass);
  EXPECT_TRUE(legacy.unproven);
  const auto legacy_update = f.call.ask(
      verifier, f.repo.commit(3, f.rev(3), {{"update", "a.b.c/1", "y"}}, {.no_prev_data = true}));
  EXPECT_TRUE(legacy_update.unproven) << "an update without prev";
  f.options.strict = true;
  auto strict = f.verifier();
  const auto refused = f.call.ask(
      strict, f.repo.commit(4, f.rev(4), {{"create", "a.b.c/4", "x"}}, {.no_prev_data = true}));
  EXPECT_EQ(refused.verdict, CommitGate::Verdict::drop);
  EXPECT_EQ(refused.reason, DropReason::no_prev_data);
}

TEST(RepoRevisions, RevsMustIncreasePerRepositoryInMemoryAndFromTheStore) {
  std::map<std::string, std::string, std::less<>> store{{"did:stored", "3m0000000000a"}};
  int reads = 0;
  RepoRevisions revisions(2, [&](std::string_view did) -> std::optional<std::string> {
    ++reads;
    const auto found = store.find(did);
    if (found == store.end()) return std::nullopt;
    return found->second;
  });
  EXPECT_TRUE(revisions.advance("did:a", "3m0000000000b"));
  EXPECT_FALSE(revisions.advance("did:a", "3m0000000000b")) << "repeated";
  EXPECT_FALSE(revisions.advance("did:a", "3m0000000000a")) << "lower";
  EXPECT_TRUE(revisions.advance("did:a", "3m0000000000c"));
  EXPECT_FALSE(revisions.advance("did:stored", "3m0000000000a")) << "what the store holds";
  EXPECT_FALSE(revisions.advance("did:stored", "3m00000000002")) << "checked in memory now";
  EXPECT_EQ(reads, 2);
  EXPECT_TRUE(revisions.advance("did:stored", "3m0000000000d"));
  // Accepted revs wait to be written with their events.
  const auto& pending = revisions.pending_writes();
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[2], (std::pair<std::string, std::string>{"did:stored", "3m0000000000d"}));
  // Capacity 2: a third repository evicts the least recent, which is then read again.
  for (const auto& [did, rev] : pending) store[did] = rev;
  revisions.pending_writes().clear();
  EXPECT_TRUE(revisions.advance("did:b", "3m0000000000a"));
  EXPECT_EQ(revisions.size(), 2u);
  EXPECT_FALSE(revisions.advance("did:a", "3m0000000000c")) << "evicted, then read back";
  EXPECT_EQ(reads, 4);
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
