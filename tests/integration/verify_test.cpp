// decode --verify signatures, the real binary: commits signed by their DID's #atproto key pass
// untouched; forged ones are dropped with their reason; a DID is resolved once, through a PLC
// directory on loopback (a raw-socket stand-in here; the e2e suite runs the real
// @did-plc/server), while its commits wait in order; a rotated key is re-resolved before a commit
// is rejected; frames held while the directory is silent survive kill -9. --verify full: Sync 1.1
// frames of real repositories pass, forged ops, another prevData and revs that do not increase
// are dropped with their reason, also across kill -9.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <thread>
#include <zmq.hpp>

#include "tests/support/child_process.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/replay_client.hpp"
#include "tests/support/signed_frames.hpp"
#include "tests/support/test_http_server.hpp"

namespace {

namespace support = jetstream::testing;
using namespace std::chrono_literals;
using jetstream::crypto::Curve;
using support::TestHttpServer;
using support::TestSigningKey;

constexpr const char* kAlice = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";  // secp256k1
constexpr const char* kBob = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";    // P-256
constexpr const char* kCarol = "did:plc:cccccccccccccccccccccccc";  // rotates her key
constexpr const char* kDave = "did:plc:dddddddddddddddddddddddd";   // not registered
constexpr const char* kErin = "did:plc:eeeeeeeeeeeeeeeeeeeeeeee";   // a document without a key

std::string document_for(const std::string& did, const TestSigningKey* key) {
  std::string methods;
  if (key != nullptr) {
    methods = R"([{"id":"#atproto","type":"Multikey","controller":")" + did +
              R"(","publicKeyMultibase":")" + key->did_key().substr(8) + R"("}])";
  } else {
    methods = "[]";
  }
  return R"({"id":")" + did + R"(","verificationMethod":)" + methods + "}";
}

/// A PLC directory on loopback: documents per DID, a request count per DID, and a switch that
/// keeps it silent (requests wait) until opened.
class FakePlc {
 public:
  FakePlc()
      : server_([this](const TestHttpServer::Request& request) -> std::optional<std::string> {
          const std::string did = request.target.substr(1);
          std::unique_lock lock(mutex_);
          opened_.wait(lock, [this] { return !closed_; });
          ++requests_[did];
          const auto found = documents_.find(did);
          if (found == documents_.end()) return TestHttpServer::response(404, "not found");
          const auto& versions = found->second;
          const auto index = std::min<std::size_t>(static_cast<std::size_t>(requests_[did] - 1),
                                                   versions.size() - 1);
          return TestHttpServer::response(200, versions[index]);
        }) {}

  void set(const std::string& did, std::string document) {
    std::lock_guard lock(mutex_);
    documents_[did] = {std::move(document)};
  }
  /// The n-th request for `did` gets versions[n] (the last one from then on): a key rotation.
  void set_versions(const std::string& did, std::vector<std::string> versions) {
    std::lock_guard lock(mutex_);
    documents_[did] = std::move(versions);
  }
  int requests(const std::string& did) {
    std::lock_guard lock(mutex_);
    return requests_[did];
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      closed_ = false;
    }
    opened_.notify_all();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }

 private:
  bool closed_ = false;  // guarded by mutex_
  std::mutex mutex_;
  std::condition_variable opened_;
  std::map<std::string, std::vector<std::string>> documents_;
  std::map<std::string, int> requests_;
  TestHttpServer server_;
};

struct Expected {
  std::string did;
  std::string rkey;
};

class Verify : public ::testing::Test {
 protected:
  TestSigningKey alice_ = TestSigningKey::from_seed(Curve::k256, 1);
  TestSigningKey bob_ = TestSigningKey::from_seed(Curve::p256, 2);
  TestSigningKey carol_old_ = TestSigningKey::from_seed(Curve::k256, 3);
  TestSigningKey carol_new_ = TestSigningKey::from_seed(Curve::p256, 4);
  TestSigningKey stranger_ = TestSigningKey::from_seed(Curve::k256, 5);
  FakePlc plc_;
  zmq::context_t context_;
  std::vector<support::CorpusFrame> frames_;
  std::vector<Expected> expected_;  ///< the commits that must pass, in upstream order

  void add(std::vector<std::uint8_t> frame, const char* did = nullptr, std::string rkey = {}) {
    const auto seq = static_cast<std::int64_t>(frames_.size() + 1);
    frames_.push_back({std::move(frame), seq});
    if (did != nullptr) expected_.push_back({did, std::move(rkey)});
  }
  std::vector<std::uint8_t> commit(const char* did, const TestSigningKey& key,
                                   const std::string& rkey,
                                   const support::SignedCommitOptions& options = {}) {
    const auto seq = static_cast<std::int64_t>(frames_.size() + 1);
    return support::make_signed_commit_frame(seq, did, "3kaaaaaaaa" + std::to_string(100 + seq),
                                             key, "app.bsky.feed.post", rkey, "post " + rkey,
                                             options);
  }

  std::vector<std::string> decode_args() const {
    return {"--verify", "signatures", "--plc-url", plc_.url(), "--verify-resolve-timeout", "60s"};
  }
};

/// Every frame is decided: decode's durable cursor covers the last one (its events, or it held,
/// stored in the same write) and nothing is held any more. The log is then final: a state, not a
/// pause to see whether more arrives.
bool all_frames_decided(support::DecodeUnderTest& decode, std::size_t frames) {
  return support::eventually(
      [&] {
        const auto scrape = support::http_get(decode.metrics_port, "/metrics").body;
        return support::metric_value(scrape, "consumer_last_seq") >= static_cast<double>(frames) &&
               support::metric_value(scrape, "jetstream_decode_verify_held_frames") == 0;
      },
      std::chrono::seconds(60));
}

/// The (did, rkey) of every commit event in the log, in log order.
std::vector<std::pair<std::string, std::string>> commits_in(
    const std::vector<support::OwnedEvent>& events) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& event : events) {
    const auto rkey_at = event.json.find(R"("rkey":")");
    if (rkey_at == std::string::npos) continue;
    const auto start = rkey_at + 8;
    out.emplace_back(event.did, event.json.substr(start, event.json.find('"', start) - start));
  }
  return out;
}

/// Each DID's commits appear in the order it made them, and exactly the expected ones.
void expect_per_did_order(const std::vector<std::pair<std::string, std::string>>& stored,
                          const std::vector<Expected>& expected) {
  std::map<std::string, std::vector<std::string>> want;
  std::map<std::string, std::vector<std::string>> got;
  for (const auto& each : expected) want[each.did].push_back(each.rkey);
  for (const auto& [did, rkey] : stored) got[did].push_back(rkey);
  EXPECT_EQ(got, want);
}

TEST_F(Verify, SignedCommitsPassForgedOnesAreDroppedWithTheirReasonAndOrderIsKeptPerDid) {
  plc_.set(kAlice, document_for(kAlice, &alice_));
  plc_.set(kBob, document_for(kBob, &bob_));
  plc_.set(kCarol, document_for(kCarol, &carol_old_));
  plc_.set(kErin, document_for(kErin, nullptr));

  add(commit(kAlice, alice_, "a1"), kAlice, "a1");
  add(commit(kAlice, alice_, "a2"), kAlice, "a2");
  add(commit(kBob, bob_, "b1"), kBob, "b1");
  add(commit(kAlice, stranger_, "forged"));                                   // bad_signature
  add(commit(kAlice, alice_, "highs", {.high_s = true, .commit_repo = {}}));  // bad_signature
  add(commit(kAlice, bob_, "other",
             {.high_s = false, .commit_repo = kBob}));  // bad_commit (bob's commit)
  add(commit(kDave, alice_, "d1"));                     // unresolvable_did
  add(commit(kErin, alice_, "e1"));                     // unknown_key
  add(commit(kAlice, alice_, "a3"), kAlice, "a3");
  add(commit(kBob, bob_, "b2"), kBob, "b2");

  support::FakeIngest ingest(context_, frames_, 2ms);
  support::DecodeUnderTest decode(ingest, "verify", decode_args());
  ASSERT_TRUE(decode.start());
  support::ReplayClient client(context_, decode.replay_endpoint);
  ASSERT_TRUE(support::eventually(
      [&] { return commits_in(client.read_all({})).size() >= expected_.size(); }, 60s))
      << decode.process.log();
  ASSERT_TRUE(all_frames_decided(decode, frames_.size())) << decode.process.log();
  expect_per_did_order(commits_in(client.read_all({})), expected_);

  const auto scrape = support::http_get(decode.metrics_port, "/metrics").body;
  auto drops = [&scrape](const std::string& reason) {
    return support::metric_value(scrape, "jetstream_decode_drops_total{reason=\"" + reason + "\"}");
  };
  EXPECT_EQ(drops("bad_signature"), 2);
  EXPECT_EQ(drops("bad_commit"), 1);
  EXPECT_EQ(drops("unresolvable_did"), 1);
  EXPECT_EQ(drops("unknown_key"), 1);
  EXPECT_EQ(
      support::metric_value(scrape, R"(jetstream_decode_verify_commits_total{result="verified"})"),
      static_cast<double>(expected_.size()));
  EXPECT_EQ(support::metric_value(
                scrape, R"(jetstream_decode_verify_commits_total{result="passed_unverified"})"),
            0);
  // Alice: one first resolution, and one refresh for her forged commits before they were
  // rejected (keys rotate), at most one more if the two forged commits were held apart.
  EXPECT_GE(plc_.requests(kAlice), 2);
  EXPECT_LE(plc_.requests(kAlice), 3);
  EXPECT_EQ(plc_.requests(kBob), 1);
  EXPECT_EQ(plc_.requests(kDave), 1);
}

TEST_F(Verify, ARotatedKeyIsFetchedAgainBeforeACommitIsRejected) {
  // The directory answers Carol's old key first, her new one from then on: her second commit,
  // signed by the new key, fails against the cached old one, and passes after one refresh.
  plc_.set_versions(kCarol, {document_for(kCarol, &carol_old_), document_for(kCarol, &carol_new_)});
  add(commit(kCarol, carol_old_, "c1"), kCarol, "c1");
  add(commit(kCarol, carol_new_, "c2"), kCarol, "c2");
  support::FakeIngest ingest(context_, frames_, 2ms);
  support::DecodeUnderTest decode(ingest, "verify-rotate", decode_args());
  ASSERT_TRUE(decode.start());
  support::ReplayClient client(context_, decode.replay_endpoint);
  ASSERT_TRUE(support::eventually([&] { return commits_in(client.read_all({})).size() == 2; }, 60s))
      << decode.process.log();
  expect_per_did_order(commits_in(client.read_all({})), expected_);
  const auto scrape = support::http_get(decode.metrics_port, "/metrics").body;
  EXPECT_EQ(
      support::metric_value(scrape, R"(jetstream_decode_drops_total{reason="bad_signature"})"), 0);
  EXPECT_EQ(plc_.requests(kCarol), 2);
}

TEST_F(Verify, FramesHeldWhileTheDirectoryIsSilentSurviveKillNine) {
  plc_.set(kAlice, document_for(kAlice, &alice_));
  plc_.set(kBob, document_for(kBob, &bob_));
  for (int i = 0; i < 20; ++i) {
    const char* did = i % 2 == 0 ? kAlice : kBob;
    const auto& key = i % 2 == 0 ? alice_ : bob_;
    const std::string rkey = "r" + std::to_string(i);
    add(commit(did, key, rkey), did, rkey);
  }
  plc_.close();  // resolutions wait: every frame is held (and stored as held)
  support::FakeIngest ingest(context_, frames_, 2ms);
  support::DecodeUnderTest decode(ingest, "verify-kill", decode_args());
  ASSERT_TRUE(decode.start());
  ASSERT_TRUE(support::eventually(
      [&] {
        const auto scrape = support::http_get(decode.metrics_port, "/metrics").body;
        return support::metric_value(scrape, "jetstream_decode_verify_held_frames") ==
               static_cast<double>(frames_.size());
      },
      60s))
      << decode.process.log();
  support::ReplayClient client(context_, decode.replay_endpoint);
  EXPECT_TRUE(commits_in(client.read_all({})).empty());
  decode.process.kill_now();
  plc_.open();
  ASSERT_TRUE(decode.start());
  support::ReplayClient after(context_, decode.replay_endpoint);
  ASSERT_TRUE(all_frames_decided(decode, frames_.size())) << decode.process.log();
  expect_per_did_order(commits_in(after.read_all({})), expected_);
}

TEST_F(Verify, FullProvesEachCommitAndDropsForgeriesAndRevsThatDoNotIncreaseAcrossKillNine) {
  plc_.set(kAlice, document_for(kAlice, &alice_));
  plc_.set(kBob, document_for(kBob, &bob_));
  support::TestRepo alice(kAlice, alice_);
  support::TestRepo bob(kBob, bob_);
  const std::int64_t base_us = 1767225600000000;  // 2026-01-01: revs in the past
  const auto rev = [&](int n) { return support::tid_at(base_us + n * 1000); };
  const auto seq = [this] { return static_cast<std::int64_t>(frames_.size() + 1); };
  const auto post = [](const std::string& rkey) { return "app.bsky.feed.post/" + rkey; };

  add(alice.commit(seq(), rev(1), {{"create", post("a1"), "one"}}), kAlice, "a1");
  add(alice.commit(seq(), rev(2),
                   {{"create", post("a2"), "two"}, {"create", "app.bsky.feed.like/l1", "like"}}),
      kAlice, "a2");
  expected_.push_back({kAlice, "l1"});
  add(bob.commit(seq(), rev(3), {{"create", post("b1"), "bee"}}), kBob, "b1");
  add(alice.commit(seq(), rev(4), {{"create", post("f1"), "forged"}},
                   {.op_cid_unlike_tree = true}));  // ops_mismatch
  add(alice.commit(seq(), rev(5), {{"update", post("a1"), "changed"}},
                   {.other_prev_data = true}));                                // mst_mismatch
  add(alice.commit(seq(), rev(2), {{"create", post("a3"), "replayed rev"}}));  // rev_not_increasing
  add(bob.commit(seq(), rev(7), {{"delete", post("b1"), ""}}), kBob, "b1");
  add(alice.commit(seq(), rev(8), {{"update", post("a2"), "two, edited"}}), kAlice, "a2");
  add(alice.commit(seq(), rev(9), {{"create", post("o1"), "old style"}}, {.no_prev_data = true}),
      kAlice, "o1");  // passed, unproven
  const std::int64_t tomorrow_us =
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch() + std::chrono::hours(24))
          .count();
  add(alice.commit(seq(), support::tid_at(tomorrow_us), {{"create", post("t1"), "tomorrow"}}));
  add(alice.commit(seq(), rev(3), {{"create", post("low"), "lower rev"}}));  // rev_not_increasing

  std::vector<std::string> args = decode_args();
  args[1] = "full";
  support::FakeIngest ingest(context_, frames_, 2ms);
  support::DecodeUnderTest decode(ingest, "verify-full", args);
  ASSERT_TRUE(decode.start());
  ASSERT_TRUE(all_frames_decided(decode, frames_.size())) << decode.process.log();
  support::ReplayClient client(context_, decode.replay_endpoint);
  expect_per_did_order(commits_in(client.read_all({})), expected_);
  auto scrape = support::http_get(decode.metrics_port, "/metrics").body;
  const auto drops = [&scrape](const std::string& reason) {
    return support::metric_value(scrape, "jetstream_decode_drops_total{reason=\"" + reason + "\"}");
  };
  EXPECT_EQ(drops("ops_mismatch"), 1);
  EXPECT_EQ(drops("mst_mismatch"), 1);
  EXPECT_EQ(drops("rev_not_increasing"), 2);
  EXPECT_EQ(drops("rev_in_future"), 1);
  EXPECT_EQ(drops("bad_signature"), 0);
  EXPECT_EQ(support::metric_value(scrape, "jetstream_decode_verify_unproven_commits_total"), 1);
  EXPECT_EQ(support::metric_value(scrape, "jetstream_decode_verify_repo_revs"), 2);

  // The last revs are stored with the events: after kill -9, a repeated rev is still refused.
  decode.process.kill_now();
  const std::size_t before_restart = frames_.size();
  add(alice.commit(seq(), rev(9), {{"create", post("again"), "same rev as o1"}}));
  add(alice.commit(seq(), rev(12), {{"create", post("a4"), "four"}}), kAlice, "a4");
  for (std::size_t i = before_restart; i < frames_.size(); ++i) ingest.append(frames_[i]);
  ASSERT_TRUE(decode.start());
  ASSERT_TRUE(all_frames_decided(decode, frames_.size())) << decode.process.log();
  support::ReplayClient after(context_, decode.replay_endpoint);
  expect_per_did_order(commits_in(after.read_all({})), expected_);
  scrape = support::http_get(decode.metrics_port, "/metrics").body;
  EXPECT_EQ(drops("rev_not_increasing"), 1);
  EXPECT_EQ(support::metric_value(scrape, "jetstream_decode_verify_rev_store_reads_total"), 1)
      << "alice's last rev came from the store";
}

// Verification changes nothing on the wire: an accepted event is, byte for byte (time_us aside),
// what decode without --verify makes of the same frame.
TEST_F(Verify, AcceptedEventsAreTheBytesDecodeWithoutVerifyProduces) {
  plc_.set(kAlice, document_for(kAlice, &alice_));
  plc_.set(kBob, document_for(kBob, &bob_));
  for (int i = 0; i < 6; ++i) {
    const char* did = i % 2 == 0 ? kAlice : kBob;
    add(commit(did, i % 2 == 0 ? alice_ : bob_, "r" + std::to_string(i)), did, "r");
  }
  auto log_of = [this](const std::string& name, std::vector<std::string> args) {
    support::FakeIngest ingest(context_, frames_, 1ms);
    support::DecodeUnderTest decode(ingest, name, std::move(args));
    EXPECT_TRUE(decode.start());
    support::ReplayClient client(context_, decode.replay_endpoint);
    EXPECT_TRUE(support::eventually([&] { return client.read_all({}).size() >= 6; }, 60s))
        << decode.process.log();
    std::map<std::string, std::string> by_rkey;
    for (const auto& event : client.read_all({})) {
      std::string json = event.json;
      const auto at = json.find("\"time_us\":");
      json.erase(at, json.find(',', at) - at);
      by_rkey[event.did + " " + json.substr(json.find("\"rkey\""), 12)] = json;
    }
    return by_rkey;
  };
  const auto verified = log_of("verify-bytes-on", decode_args());
  const auto plain = log_of("verify-bytes-off", {});
  EXPECT_EQ(verified.size(), 6u);
  EXPECT_EQ(verified, plain);
}

}  // namespace
