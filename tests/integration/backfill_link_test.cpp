// backfill's DecodeLink against the real jetstream-decode binary over real ZeroMQ on loopback:
// the compacted set learnt from decode's state info, a real repository export read into
// batches and applied, acknowledged, applied nothing twice when sent again, kept and resent
// while decode is killed with -9 and restarted, and never shown to a v1 replay.
#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <map>
#include <mutex>

#include "services/backfill/decode_link.hpp"
#include "services/backfill/repo_reader.hpp"
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/replay_client.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/signed_frames.hpp"

namespace jetstream::backfill {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

constexpr std::string_view kDid = "did:plc:53iucmf5ldftgqyf2ac7hmhd";

class BackfillLinkTest : public ::testing::Test {
 protected:
  /// Feeds the export to a RepoReader whose batches go to the link as fetch `fetch_id`.
  void fetch(DecodeLink& link, std::uint64_t fetch_id, const Bytes& car, const std::string& set) {
    std::string error;
    RepoReader::Options options;
    options.did = std::string(kDid);
    options.collections = *syntax::CollectionSet::parse(set, error);
    options.batch_records = 5;
    options.next_batch_id = [this] { return ++next_batch_id_; };
    RepoReader reader(options, [&](OutgoingBatch batch) {
      ASSERT_TRUE(link.submit(fetch_id, std::move(batch)));
    });
    ASSERT_TRUE(reader.feed(car));
    ASSERT_TRUE(reader.finish());
  }

  std::optional<FetchTotals> wait_done(std::uint64_t fetch_id, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    if (!done_.wait_for(lock, timeout, [&] { return totals_.count(fetch_id) != 0; })) {
      return std::nullopt;
    }
    return totals_[fetch_id];
  }

  DecodeLink::FetchDone on_done() {
    return [this](std::uint64_t fetch_id, const FetchTotals& totals) {
      std::lock_guard lock(mutex_);
      totals_[fetch_id] = totals;
      done_.notify_all();
    };
  }

  zmq::context_t context_{1};
  std::uint64_t next_batch_id_ = 1000;
  std::mutex mutex_;
  std::condition_variable done_;
  std::map<std::uint64_t, FetchTotals> totals_;
};

TEST_F(BackfillLinkTest, ARepositoryIsAppliedOnceAndSurvivesAKilledDecode) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const Bytes car = testing::read_binary_file(car_path);
  testing::support::FakeIngest ingest(context_, {}, 2ms);
  testing::support::DecodeUnderTest decode(ingest, "backfill-link",
                                           {"--compact-collections", "app.bsky.feed.*"});
  ASSERT_TRUE(decode.start());

  DecodeLink::Options options;
  options.backfill_endpoint = decode.backfill_endpoint;
  options.events_endpoint = decode.events_endpoint;
  options.ack_timeout = 1s;
  DecodeLink link(context_, options, on_done());
  ASSERT_TRUE(testing::support::eventually([&] { return link.compacted().has_value(); }, 60s))
      << decode.process.log();
  EXPECT_EQ(*link.compacted(), "app.bsky.feed.*");

  fetch(link, 1, car, *link.compacted());
  auto totals = wait_done(1, 60s);
  ASSERT_TRUE(totals) << decode.process.log();
  EXPECT_EQ(totals->applied, 19u);
  EXPECT_EQ(totals->tombstoned, 0u);
  EXPECT_FALSE(totals->rejected);

  testing::support::ReplayClient replay(context_, decode.replay_endpoint);
  proto::ReplayRequest snapshot;
  snapshot.snapshot = true;
  const auto state = replay.read_all(snapshot);
  EXPECT_EQ(state.size(), 19u);
  for (const auto& event : state) {
    EXPECT_NE(event.json.find(R"("rev":"3migo7fijwi2k","operation":"create")"), std::string::npos)
        << event.json;
  }
  EXPECT_TRUE(replay.read_all({}).empty()) << "a v1 replay never sees backfilled records";
  proto::ReplayRequest with_backfill;
  with_backfill.include_backfill = true;
  EXPECT_EQ(replay.read_all(with_backfill).size(), 19u);

  // The same repository again: nothing is applied twice.
  fetch(link, 2, car, *link.compacted());
  totals = wait_done(2, 60s);
  ASSERT_TRUE(totals);
  EXPECT_EQ(totals->applied, 0u);
  EXPECT_EQ(totals->unchanged, 19u);

  // decode stopped (SIGSTOP) with batches sent: no ack comes, so they are sent again with the
  // same ids; once decode runs on, the fetch completes with nothing counted or applied twice.
  ASSERT_EQ(::kill(decode.process.pid(), SIGSTOP), 0);
  fetch(link, 3, car, "app.bsky.feed.*");
  const bool resent =
      testing::support::eventually([&] { return link.counters().batches_resent.load() > 0; }, 60s);
  ASSERT_EQ(::kill(decode.process.pid(), SIGCONT), 0);
  ASSERT_TRUE(resent);
  totals = wait_done(3, 60s);
  ASSERT_TRUE(totals) << decode.process.log();
  EXPECT_EQ(totals->applied, 0u);
  EXPECT_EQ(totals->unchanged, 19u);

  // decode killed with -9 and started again on the same log: the batches wait in the link until
  // it is back, and the state is still the repository's.
  decode.process.kill_now();
  fetch(link, 4, car, "app.bsky.feed.*");
  ASSERT_TRUE(decode.start());
  totals = wait_done(4, 120s);
  ASSERT_TRUE(totals) << decode.process.log();
  EXPECT_EQ(totals->applied, 0u);
  EXPECT_EQ(totals->unchanged, 19u);
  EXPECT_EQ(replay.read_all(snapshot).size(), 19u);
}

TEST_F(BackfillLinkTest, DecodeAsksForARepositoryAgainAfterASyncOrAnActiveAccountOnce) {
  // Frames decode reads from its (scripted) ingest: a #sync, an account back to active, an
  // account going inactive (no reason to fetch), an identity change (forget the document).
  std::vector<testing::support::CorpusFrame> frames;
  frames.push_back({testing::make_sync_frame(1, "did:plc:synced", "3mabcdefghi22"), 1});
  frames.push_back({testing::make_account_frame(2, "did:plc:back", true), 2});
  frames.push_back({testing::make_account_frame(3, "did:plc:leaving", false), 3});
  frames.push_back({testing::make_identity_frame(4, "did:plc:moved"), 4});
  testing::support::FakeIngest ingest(context_, frames, 2ms);
  testing::support::DecodeUnderTest decode(ingest, "backfill-resync",
                                           {"--compact-collections", "app.bsky.feed.*"});
  ASSERT_TRUE(decode.start());

  std::mutex mutex;
  std::map<std::string, proto::ResyncReason> asked;
  DecodeLink::Options options;
  options.backfill_endpoint = decode.backfill_endpoint;
  options.events_endpoint = decode.events_endpoint;
  const auto asked_count = [&] {
    std::lock_guard lock(mutex);
    return asked.size();
  };
  {
    DecodeLink link(context_, options, on_done(),
                    [&](const std::vector<std::pair<std::string, proto::ResyncReason>>& dids) {
                      std::lock_guard lock(mutex);
                      for (const auto& [did, reason] : dids) asked[did] = reason;
                    });
    ASSERT_TRUE(testing::support::eventually([&] { return asked_count() >= 3; }, 60s))
        << decode.process.log();
    // The next poll acknowledges them (each answer of DIDs is followed by a poll at once).
    const std::uint64_t answered = link.counters().resync_answers.load();
    ASSERT_TRUE(testing::support::eventually(
        [&] { return link.counters().resync_answers.load() > answered; }, 60s));
  }
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(asked.at("did:plc:synced"), proto::ResyncReason::sync);
    EXPECT_EQ(asked.at("did:plc:back"), proto::ResyncReason::account_active);
    EXPECT_EQ(asked.at("did:plc:moved"), proto::ResyncReason::identity);
    EXPECT_EQ(asked.count("did:plc:leaving"), 0u) << "an account going inactive needs no fetch";
  }
  // A backfill that connects now hears nothing: decode forgot what was acknowledged.
  std::atomic<int> heard{0};
  DecodeLink later(
      context_, options, on_done(),
      [&](const std::vector<std::pair<std::string, proto::ResyncReason>>&) { ++heard; });
  ASSERT_TRUE(testing::support::eventually(
      [&] { return later.counters().resync_answers.load() >= 2; }, 60s));
  EXPECT_EQ(heard.load(), 0);
}

}  // namespace
}  // namespace jetstream::backfill
