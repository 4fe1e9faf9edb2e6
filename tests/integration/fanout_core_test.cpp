// fanout's core — the feed from decode, the in-memory window and the client sessions — against a
// real jetstream-decode fed by the scripted ingest while it keeps publishing. Sessions write into
// recording sinks, so every frame a client would get is checked: every matching event from the
// cursor on, exactly once, in time_us order, across the replay → live hand-off.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "common/websocket/codec.hpp"
#include "services/fanout/client_session.hpp"
#include "services/fanout/event_feed.hpp"
#include "services/fanout/event_window.hpp"
#include "services/fanout/fanout_probe.hpp"
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/replay_client.hpp"
#include "tests/support/state_fold.hpp"

namespace {

namespace fanout = jetstream::fanout;
namespace websocket = jetstream::websocket;
namespace proto = jetstream::proto;
namespace support = jetstream::testing;
using namespace std::chrono_literals;

/// Payload of one server websocket frame, read by the codec.
std::string frame_payload(const std::uint8_t* data, std::size_t size) {
  websocket::FrameParser parser(websocket::Sender::kServer, size);
  websocket::Message message;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  EXPECT_EQ(parser.parse(input, message), websocket::FrameParser::Status::kMessage);
  EXPECT_TRUE(input.empty()) << "one frame per OutboundFrame";
  return std::string(message.view);
}

std::int64_t time_us_of(std::string_view json) {
  const auto at = json.find("\"time_us\":");
  return std::stoll(std::string(json.substr(at + 10, 16)));
}

/// Records every frame; can pretend to be a reader that stopped reading.
class RecordingSink final : public fanout::ClientSink {
 public:
  void send(std::vector<fanout::OutboundFrame> frames) override {
    std::lock_guard lock(mutex_);
    for (const auto& frame : frames) {
      const auto json = frame_payload(frame.data, frame.size);
      received_.push_back({time_us_of(json), std::string(json)});
      if (stalled_) {
        stalled_bytes_ += frame.size;
      } else {
        written_bytes_ += frame.size;
      }
    }
  }
  void close(std::uint16_t code, std::string reason) override {
    std::lock_guard lock(mutex_);
    close_code_ = code;
    close_reason_ = std::move(reason);
  }
  std::uint64_t queued_bytes() const override {
    std::lock_guard lock(mutex_);
    return stalled_bytes_;
  }
  std::uint64_t written_bytes() const override {
    std::lock_guard lock(mutex_);
    return written_bytes_;
  }
  void stall() {
    std::lock_guard lock(mutex_);
    stalled_ = true;
    stalled_bytes_ = 1;
  }
  /// From now on, bytes stay queued until drain().
  void hold() {
    std::lock_guard lock(mutex_);
    stalled_ = true;
  }
  /// "Writes" everything queued; returns how much that was.
  std::uint64_t drain() {
    std::lock_guard lock(mutex_);
    const std::uint64_t drained = stalled_bytes_;
    written_bytes_ += drained;
    stalled_bytes_ = 0;
    return drained;
  }
  std::vector<std::pair<std::int64_t, std::string>> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::optional<std::uint16_t> close_code() const {
    std::lock_guard lock(mutex_);
    return close_code_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<std::int64_t, std::string>> received_;
  bool stalled_ = false;
  std::uint64_t stalled_bytes_ = 0;
  std::uint64_t written_bytes_ = 0;
  std::optional<std::uint16_t> close_code_;
  std::string close_reason_;
};

const auto kAll = [](const support::OwnedEvent&) { return true; };

constexpr const char* kCompacted = "app.bsky.*";

/// Whether the log event belongs to a snapshot of app.bsky.*: its commits, and every DID's
/// identity and account events.
bool in_compacted_set(const support::OwnedEvent& event) {
  return event.kind != proto::EventKind::commit || event.collection.starts_with("app.bsky.");
}

class FanoutCore : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto frames_path = support::shared_file("corpus/dev.frames");
    if (!frames_path) GTEST_FAIL() << "shared corpus missing under " << support::shared_dir();
    // 20 passes over the corpus: ~1,500 events published over ~1.5 s while clients connect.
    frames_ = support::load_frames(*frames_path, 20);
  }

  void start_pipeline(std::size_t window_bytes, std::chrono::microseconds pace,
                      int feed_high_water_mark = 100000, int feed_receive_buffer = 0,
                      std::vector<std::string> decode_args = {}) {
    ingest_ = std::make_unique<support::FakeIngest>(context_, frames_, pace);
    ingest_->accept_resumes = false;
    decode_ = std::make_unique<support::DecodeUnderTest>(*ingest_, "fanout-core", decode_args);
    ASSERT_TRUE(decode_->start());
    registry_ = std::make_shared<prometheus::Registry>();
    probe_ = std::make_unique<fanout::FanoutProbe>(registry_);
    window_ = std::make_unique<fanout::EventWindow>(window_bytes);
    actors_ = std::make_unique<caf::actor_system>(config_);
    broadcaster_ = fanout::spawn_broadcaster(*actors_);
    fanout::EventFeedOptions options;
    options.events_endpoint = decode_->events_endpoint;
    options.replay_endpoint = decode_->replay_endpoint;
    options.replay_timeout = 2s;
    options.receive_high_water_mark = feed_high_water_mark;
    options.receive_buffer_bytes = feed_receive_buffer;
    feed_ = std::make_unique<fanout::EventFeed>(
        context_, options, *window_,
        [this](const fanout::BlockPtr& block) {
          caf::anon_send(broadcaster_, fanout::block_atom::value, block);
        },
        *probe_);
    feed_->start();
    // Let the feed join decode's stream (first heartbeat) before ingest starts streaming.
    ASSERT_TRUE(support::eventually([&] { return feed_->status().joined; }, 10s))
        << decode_->process.log();
    ingest_->accept_resumes = true;
  }

  void TearDown() override {
    if (actors_) {
      caf::anon_send(broadcaster_, fanout::shutdown_atom::value);
      for (auto& session : sessions_) caf::anon_send_exit(session, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(broadcaster_, caf::exit_reason::user_shutdown);
      sessions_.clear();
      broadcaster_ = nullptr;
    }
    if (feed_) feed_->stop();
    if (actors_) actors_->await_all_actors_done();
    actors_.reset();
  }

  /// A session writing to `sink` (a fresh one when null), set up before the session starts.
  std::shared_ptr<RecordingSink> connect(fanout::SubscriberOptions options,
                                         fanout::SessionConfig config = {},
                                         std::shared_ptr<RecordingSink> sink = nullptr) {
    if (!sink) sink = std::make_shared<RecordingSink>();
    fanout::SessionContext context;
    context.window = window_.get();
    context.feed = feed_.get();
    context.probe = probe_.get();
    context.limiter = &limiter_;
    context.broadcaster = broadcaster_;
    context.config = config;
    last_handle_ = fanout::spawn_session(*actors_, context, sink, std::move(options), "127.0.0.1");
    sessions_.push_back(last_handle_.actor);
    return sink;
  }

  /// The whole log once ingest has streamed everything and decode stored it.
  std::vector<support::OwnedEvent> wait_for_full_log() {
    support::ReplayClient client(context_, decode_->replay_endpoint);
    std::vector<support::OwnedEvent> log;
    const std::size_t expected = frames_.size() / 75 * 77;
    support::eventually(
        [&] {
          log = client.read_all({});
          return log.size() >= expected;
        },
        60s);
    return log;
  }

  /// Waits until the sink has the log's last event, gives duplicates a moment to show up, then
  /// expects exactly the log from `from` on (from the first event received when `from` is null).
  static void expect_caught_up_exactly(const RecordingSink& sink,
                                       const std::vector<support::OwnedEvent>& log,
                                       std::optional<std::int64_t> from) {
    ASSERT_TRUE(support::eventually(
        [&] {
          return !sink.received().empty() && sink.received().back().first == log.back().time_us;
        },
        30s));
    std::this_thread::sleep_for(300ms);  // duplicates, if any, would arrive now
    expect_exactly(sink, log, from.value_or(sink.received().front().first), kAll);
  }

  /// Waits (decided by events: up to a generous bound) until the sink holds the last event of
  /// the log that `keep` accepts.
  static bool wait_for_last(const RecordingSink& sink, const std::vector<support::OwnedEvent>& log,
                            const std::function<bool(const support::OwnedEvent&)>& keep) {
    std::int64_t last = 0;
    for (const auto& event : log) {
      if (keep(event)) last = event.time_us;
    }
    return support::eventually(
        [&] { return !sink.received().empty() && sink.received().back().first == last; }, 60s);
  }

  /// The sink got exactly the log's events with time_us >= `from` that `keep` accepts, in order.
  static void expect_exactly(const RecordingSink& sink, const std::vector<support::OwnedEvent>& log,
                             std::int64_t from,
                             const std::function<bool(const support::OwnedEvent&)>& keep) {
    std::vector<std::int64_t> expected;
    for (const auto& event : log) {
      if (event.time_us >= from && keep(event)) expected.push_back(event.time_us);
    }
    std::vector<std::int64_t> got;
    for (const auto& [time_us, json] : sink.received()) got.push_back(time_us);
    ASSERT_FALSE(expected.empty());
    ASSERT_EQ(got.size(), expected.size()) << "missing or duplicated events";
    EXPECT_EQ(got, expected);
  }

  zmq::context_t context_;
  std::vector<support::CorpusFrame> frames_;
  std::unique_ptr<support::FakeIngest> ingest_;
  std::unique_ptr<support::DecodeUnderTest> decode_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<fanout::FanoutProbe> probe_;
  std::unique_ptr<fanout::EventWindow> window_;
  caf::actor_system_config config_;
  std::unique_ptr<caf::actor_system> actors_;
  fanout::broadcaster_actor broadcaster_;
  std::unique_ptr<fanout::EventFeed> feed_;
  fanout::IpRateLimiter limiter_{0};
  std::vector<fanout::session_actor> sessions_;
  fanout::SessionHandle last_handle_;  ///< of the last connect()
};

TEST_F(FanoutCore, CursorClientsJoinTheLiveStreamWithNoGapNoDuplicateInOrder) {
  start_pipeline(64u << 20, 1ms);
  support::ReplayClient client(context_, decode_->replay_endpoint);
  // Wait until some events exist, then connect cursor clients while publishing goes on.
  std::vector<support::OwnedEvent> early;
  ASSERT_TRUE(
      support::eventually([&] { return (early = client.read_all({})).size() >= 200; }, 30s));
  fanout::SubscriberOptions from_oldest;
  from_oldest.cursor = 0;
  auto oldest_sink = connect(from_oldest);
  fanout::SubscriberOptions from_event_50;
  from_event_50.cursor = early[50].time_us;
  auto cursor_sink = connect(from_event_50);
  fanout::SubscriberOptions likes;
  likes.cursor = early[10].time_us;
  likes.filters.collections = {"app.bsky.feed.like"};
  auto likes_sink = connect(likes);
  fanout::SubscriberOptions live;
  auto live_sink = connect(live);

  const auto log = wait_for_full_log();
  const auto is_like = [](const support::OwnedEvent& e) {
    return e.collection == "app.bsky.feed.like";
  };
  for (const auto* sink : {oldest_sink.get(), cursor_sink.get(), live_sink.get()}) {
    ASSERT_TRUE(wait_for_last(*sink, log, kAll));
  }
  ASSERT_TRUE(wait_for_last(*likes_sink, log, is_like));
  std::this_thread::sleep_for(300ms);  // duplicates, if any, would arrive now
  expect_exactly(*oldest_sink, log, 0, kAll);
  expect_exactly(*cursor_sink, log, early[50].time_us, kAll);
  expect_exactly(*likes_sink, log, early[10].time_us, is_like);
  // The live client got a gap-free suffix of the log.
  const auto received = live_sink->received();
  ASSERT_FALSE(received.empty());
  expect_exactly(*live_sink, log, received.front().first, kAll);
}

TEST_F(FanoutCore, AClientBehindASmallWindowContinuesFromTheLogThenGoesLive) {
  start_pipeline(64u << 10, 1ms);  // 64 KiB: only the last few blocks stay in memory
  support::ReplayClient client(context_, decode_->replay_endpoint);
  std::vector<support::OwnedEvent> early;
  ASSERT_TRUE(
      support::eventually([&] { return (early = client.read_all({})).size() >= 300; }, 30s));
  fanout::SubscriberOptions options;
  options.cursor = early[5].time_us;
  fanout::SessionConfig small_pages;
  small_pages.replay_page_events = 50;  // many pages: the hand-off happens under load
  auto sink = connect(options, small_pages);
  const auto log = wait_for_full_log();
  expect_caught_up_exactly(*sink, log, early[5].time_us);
}

// ---- snapshot=true (API.md "State")

/// A snapshot subscriber's options as the handshake makes them (decode's set from its state
/// info); `cursor` is exclusive.
fanout::SubscriberOptions snapshot_options(const fanout::EventFeed& feed,
                                           std::optional<std::int64_t> cursor = std::nullopt) {
  fanout::SubscriberOptions options;
  options.snapshot = true;
  options.cursor = cursor;
  const auto state = feed.compacted_state();
  EXPECT_TRUE(state) << "decode's state info reached the feed";
  if (state) {
    EXPECT_EQ(fanout::apply_snapshot_collections(options.filters, state->compacted), "");
    options.snapshot_collections = state->compacted;
  }
  return options;
}

/// The events of `received` (in order) split at SnapshotComplete, which must come exactly once.
struct SnapshotStream {
  std::vector<std::pair<std::int64_t, std::string>> snapshot, after;
  std::int64_t complete_at = -1;
  int completes = 0;
};
SnapshotStream split(const std::vector<std::pair<std::int64_t, std::string>>& received) {
  SnapshotStream stream;
  for (const auto& item : received) {
    if (item.second.find(R"("kind":"info")") != std::string::npos) {
      if (item.second.find("SnapshotComplete") != std::string::npos) {
        ++stream.completes;
        stream.complete_at = item.first;
      }
      continue;
    }
    (stream.completes == 0 ? stream.snapshot : stream.after).push_back(item);
  }
  return stream;
}

TEST_F(FanoutCore, ASnapshotClientGetsTheStateThenEveryChangeWithNoGapOrDuplicate) {
  start_pipeline(8u << 20, 1ms, 100000, 0, {"--compact-collections", kCompacted});
  ASSERT_TRUE(support::eventually([&] { return feed_->compacted_state() != nullptr; }, 10s));
  EXPECT_EQ(feed_->compacted_state()->compacted.canonical(), kCompacted);
  support::ReplayClient client(context_, decode_->replay_endpoint);
  ASSERT_TRUE(support::eventually([&] { return client.read_all({}).size() >= 400; }, 30s));
  fanout::SessionConfig small_pages;
  small_pages.replay_page_events = 7;  // many snapshot pages while decode keeps writing
  auto sink = connect(snapshot_options(*feed_), small_pages);
  const auto log = wait_for_full_log();
  ASSERT_TRUE(wait_for_last(*sink, log, in_compacted_set));  // decided by the last event

  const SnapshotStream stream = split(sink->received());
  ASSERT_EQ(stream.completes, 1);
  ASSERT_FALSE(stream.snapshot.empty());
  std::int64_t previous = 0;
  for (const auto& [time_us, json] : sink->received()) {
    if (json.find(R"("kind":"info")") == std::string::npos) {
      EXPECT_GT(time_us, previous) << "time_us strictly increases over the connection";
    }
    previous = std::max(previous, time_us);
  }
  EXPECT_GE(stream.complete_at, stream.snapshot.back().first);
  // After SnapshotComplete: exactly the log's matching events after its time_us.
  std::vector<std::int64_t> expected_after, got_after;
  for (const auto& event : log) {
    if (event.time_us > stream.complete_at && in_compacted_set(event)) {
      expected_after.push_back(event.time_us);
    }
  }
  for (const auto& item : stream.after) got_after.push_back(item.first);
  EXPECT_EQ(got_after, expected_after);
  // Folding the connection gives the state the whole log implies, byte for byte.
  support::StateFold from_connection, from_log;
  for (const auto& item : sink->received()) from_connection.apply(item.second);
  for (const auto& event : log) {
    if (in_compacted_set(event)) from_log.apply(event.json);
  }
  EXPECT_EQ(from_connection.state().size(), from_log.state().size());
  EXPECT_TRUE(from_connection.state() == from_log.state());
  EXPECT_LT(stream.snapshot.size(), log.size()) << "the snapshot part is compacted";
}

TEST_F(FanoutCore, ASnapshotClientResumesWithItsCursorInTheMiddleOfTheSnapshot) {
  start_pipeline(8u << 20, 1ms, 100000, 0, {"--compact-collections", kCompacted});
  ASSERT_TRUE(support::eventually([&] { return feed_->compacted_state() != nullptr; }, 10s));
  const auto log = wait_for_full_log();  // a quiet twin: the snapshot part is long
  fanout::SessionConfig small_pages;
  small_pages.replay_page_events = 3;
  small_pages.high_water_bytes = 1;  // one page at a time: the first connection stops early
  auto first = std::make_shared<RecordingSink>();
  first->hold();  // one event at a time, each after the test gives room: it stops at the third
  connect(snapshot_options(*feed_), small_pages, first);
  for (std::size_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(support::eventually([&] { return first->received().size() >= i; }, 30s));
    if (i == 3) break;
    first->drain();
    last_handle_.room(0);
  }
  caf::anon_send(last_handle_.actor, fanout::closed_atom::value);  // the client goes away
  const auto part = first->received();
  ASSERT_EQ(split(part).completes, 0) << "it left in the middle of the snapshot";

  fanout::SessionConfig pages;
  pages.replay_page_events = 5;
  auto second = connect(snapshot_options(*feed_, part.back().first), pages);
  ASSERT_TRUE(wait_for_last(*second, log, in_compacted_set));
  const auto rest = second->received();
  ASSERT_EQ(split(rest).completes, 1);
  EXPECT_GT(split(rest).snapshot.front().first, part.back().first) << "nothing repeated";
  support::StateFold resumed, from_log;
  for (const auto& item : part) resumed.apply(item.second);
  for (const auto& item : rest) resumed.apply(item.second);
  for (const auto& event : log) {
    if (in_compacted_set(event)) from_log.apply(event.json);
  }
  EXPECT_TRUE(resumed.state() == from_log.state());
}

TEST_F(FanoutCore, LiveStreamGapsFromZeroMqDropsAreFilledFromTheLogBeforeDelivery) {
  // The feed's subscription holds one message and a tiny kernel buffer while decode publishes
  // at full speed: ZeroMQ drops batches; the chain check finds the gaps and replay fills them.
  start_pipeline(64u << 20, 0us, 1, 4096, {"--events-send-hwm", "1", "--max-batch-frames", "4"});
  auto live = connect({});
  const auto log = wait_for_full_log();
  expect_caught_up_exactly(*live, log, std::nullopt);
  const auto repairs = registry_->Collect();
  double repaired = 0;
  for (const auto& family : repairs) {
    if (family.name == "jetstream_fanout_feed_repairs_total")
      repaired = family.metric.at(0).counter.value;
  }
  EXPECT_GE(repaired, 1) << "no gap happened: the repair was not exercised";
}

TEST_F(FanoutCore, RequireHelloHoldsEverythingUntilAValidOptionsUpdate) {
  start_pipeline(64u << 20, 0us);
  const auto log = wait_for_full_log();
  fanout::SubscriberOptions options;
  options.cursor = 0;
  options.require_hello = true;
  auto sink = connect(options);
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(sink->received().empty());
  caf::anon_send(
      sessions_.back(), fanout::text_atom::value,
      std::string(
          R"({"type":"options_update","payload":{"wantedCollections":["app.bsky.feed.post"]}})"));
  const auto is_post = [](const support::OwnedEvent& e) {
    return e.collection == "app.bsky.feed.post";
  };
  ASSERT_TRUE(wait_for_last(*sink, log, is_post));
  std::this_thread::sleep_for(300ms);  // duplicates, if any, would arrive now
  expect_exactly(*sink, log, 0, is_post);
}

TEST_F(FanoutCore, InvalidOptionsUpdateClosesWithTheV1Reason) {
  start_pipeline(64u << 20, 0us);
  auto sink = connect({});
  caf::anon_send(sessions_.back(), fanout::text_atom::value, std::string("{not json"));
  ASSERT_TRUE(support::eventually([&] { return sink->close_code().has_value(); }, 5s));
  EXPECT_EQ(*sink->close_code(), 1000);
}

TEST_F(FanoutCore, AReaderThatStopsReadingIsClosedAfterTheSlowClientTimeout) {
  start_pipeline(64u << 20, 2ms);
  fanout::SessionConfig config;
  config.slow_client_timeout = 2s;
  fanout::SubscriberOptions options;
  options.cursor = 0;
  auto sink = connect(options, config);
  sink->stall();  // its connection never drains again
  ASSERT_TRUE(support::eventually([&] { return sink->close_code().has_value(); }, 10s));
  EXPECT_EQ(*sink->close_code(), 1008);
}

// A session that stops because its connection holds too many unsent bytes must be woken by the
// connection's report of room (SessionHandle::room), not by a timer: with the periodic tick
// pushed out to a minute, every refill below comes from room() alone, and a lost wake would
// leave the client waiting.
TEST_F(FanoutCore, ASessionStoppedAtItsByteBoundResumesWhenItsConnectionReportsRoom) {
  start_pipeline(64u << 20, 0us);
  const auto log = wait_for_full_log();
  fanout::SessionConfig config;
  config.high_water_bytes = 16u << 10;
  config.tick_interval = 60s;
  config.slow_client_timeout = 600s;
  fanout::SubscriberOptions options;
  options.cursor = 0;
  auto sink = std::make_shared<RecordingSink>();
  sink->hold();  // before the session exists: its first page must already stay queued
  connect(options, config, sink);
  const fanout::SessionHandle handle = last_handle_;
  std::size_t refills = 0;
  while (sink->received().size() < log.size()) {
    // The session fills its connection up to the bound, then waits.
    std::size_t before = 0;
    ASSERT_TRUE(support::eventually(
        [&] {
          const std::size_t now = sink->received().size();
          // It stops only once its connection holds the bound (nothing is written here).
          const bool settled =
              now > 0 && now == before && sink->queued_bytes() >= config.high_water_bytes;
          before = now;
          return settled || now == log.size();
        },
        10s));
    if (before == log.size()) break;
    ASSERT_GT(sink->drain(), 0u);
    handle.room(0);
    ASSERT_TRUE(support::eventually([&] { return sink->received().size() > before; }, 10s))
        << "room() did not wake the session after " << refills << " refills";
    ++refills;
  }
  EXPECT_GT(refills, 10u) << "the bound never stopped the session";
  expect_exactly(*sink, log, 0, kAll);
}

}  // namespace
