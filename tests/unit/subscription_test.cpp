// services/fanout/subscription: every delivery decision of one subscriber, driven by hand — no
// actors, no sockets. A real EventWindow, FanoutProbe and IpRateLimiter; a recording sink (the
// connection) and a recording driver (the actor). Each test names the rule it holds.
#include "services/fanout/subscription.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/websocket/codec.hpp"
#include "services/fanout/event_block.hpp"

namespace jetstream::fanout {
namespace {

using namespace std::chrono_literals;

/// The connection: records what is sent and closed; queued and written bytes are set by the test.
class RecordingSink final : public ClientSink {
 public:
  void send(std::vector<OutboundFrame> frames) override {
    for (const auto& frame : frames) {
      std::string_view input(reinterpret_cast<const char*>(frame.data), frame.size);
      websocket::FrameParser parser(websocket::Sender::kServer, 1 << 20);
      websocket::Message message;
      EXPECT_EQ(parser.parse(input, message), websocket::FrameParser::Status::kMessage);
      opcodes.push_back(message.opcode);
      payloads.emplace_back(message.view);
      queued += frame.size;
      if (frame.measure_from != std::chrono::steady_clock::time_point{}) ++measured;
    }
    ++sends;
  }
  void close(std::uint16_t code, std::string reason) override {
    close_code = code;
    close_reason = std::move(reason);
  }
  std::uint64_t queued_bytes() const override { return queued; }
  std::uint64_t written_bytes() const override { return written; }

  /// The connection wrote everything it held.
  void drain() {
    written += queued;
    queued = 0;
  }

  std::vector<std::string> payloads;
  std::vector<websocket::Opcode> opcodes;
  int sends = 0;
  int measured = 0;  ///< frames whose write lag is measured (live sends' first frames)
  std::uint64_t queued = 0;
  std::uint64_t written = 0;
  std::optional<std::uint16_t> close_code;
  std::string close_reason;
};

/// The actor: records replay requests, scheduled pumps and the stop.
class RecordingDriver final : public SubscriptionDriver {
 public:
  void request_replay(proto::ReplayRequest request) override {
    replays.push_back(std::move(request));
  }
  void schedule_pump(std::chrono::milliseconds delay) override { pumps.push_back(delay); }
  void stop() override { stopped = true; }

  std::vector<proto::ReplayRequest> replays;
  std::vector<std::chrono::milliseconds> pumps;
  bool stopped = false;
};

/// Owns the bytes of events for EventBlock::build.
struct Events {
  std::vector<std::string> dids, collections, jsons;
  std::vector<std::vector<std::uint8_t>> zstds;
  std::vector<proto::EventView> views;

  /// Adds an event chained to the previous one (or to `prev` for the first).
  Events& add(std::int64_t time_us, std::string collection, std::string did = "did:plc:a",
              std::size_t padding = 0) {
    proto::EventView view;
    view.time_us = time_us;
    view.prev_time_us = views.empty() ? first_prev : views.back().time_us;
    view.kind = proto::EventKind::commit;
    views.push_back(view);
    dids.push_back(std::move(did));
    collections.push_back(std::move(collection));
    jsons.push_back("{\"time_us\":" + std::to_string(time_us) + "}" + std::string(padding, ' '));
    zstds.push_back({0x28, static_cast<std::uint8_t>(time_us & 0xFF)});
    return *this;
  }

  BlockPtr build() {
    for (std::size_t i = 0; i < views.size(); ++i) {
      views[i].did = dids[i];
      views[i].collection = collections[i];
      views[i].json = jsons[i];
      views[i].zstd = zstds[i];
    }
    return EventBlock::build(views);
  }

  std::int64_t first_prev = 0;
};

BlockPtr block(std::int64_t prev, std::initializer_list<std::int64_t> times,
               std::string collection = "app.bsky.feed.post", std::size_t padding = 0) {
  Events events;
  events.first_prev = prev;
  for (const auto t : times) events.add(t, collection, "did:plc:a", padding);
  return events.build();
}

std::string json(std::int64_t time_us, std::size_t padding = 0) {
  return "{\"time_us\":" + std::to_string(time_us) + "}" + std::string(padding, ' ');
}

/// The options as the handshake makes them; snapshot subscribers see a compacted `app.bsky.*`.
SubscriberOptions options_for(std::string_view query) {
  auto parsed = parse_subscribe_request(query, std::nullopt);
  EXPECT_TRUE(parsed.ok()) << parsed.error;
  SubscriberOptions options = parsed.options.value_or(SubscriberOptions{});
  if (options.snapshot) {
    std::string error;
    options.snapshot_collections = syntax::CollectionSet::parse("app.bsky.*", error).value();
    EXPECT_EQ(apply_snapshot_collections(options.filters, options.snapshot_collections), "");
  }
  return options;
}

class SubscriptionTest : public ::testing::Test {
 protected:
  SubscriptionTest()
      : registry_(std::make_shared<prometheus::Registry>()),
        probe_(registry_),
        window_(1 << 20),
        limiter_(0),
        sink_(std::make_shared<RecordingSink>()),
        signals_(std::make_shared<SessionSignals>()) {}

  Subscription& subscribe(std::string_view query, bool joined = true,
                          std::int64_t now_us = 1'000'000'000) {
    SessionConfig config;
    config.high_water_bytes = high_water_bytes_;
    config.slow_client_timeout = 60s;
    subscription_ = std::make_unique<Subscription>(
        SubscriptionParts{&window_, &probe_, &limiter_, catch_up_, config}, sink_,
        options_for(query), "127.0.0.1", signals_, driver_);
    subscription_->start(now_us, joined);
    EXPECT_EQ(driver_.pumps.size(), 1u) << "start schedules the first pump";
    subscription_->on_pump();
    return *subscription_;
  }

  /// decode's answer to the last replay request: `times` (all matching), then `next_time_us`.
  void answer_replay(std::int64_t prev, std::initializer_list<std::int64_t> times,
                     std::int64_t next_time_us, bool done) {
    ReplayResult result;
    result.done = done;
    result.next_time_us = next_time_us;
    result.oldest_time_us = 1;
    result.newest_time_us = next_time_us;
    if (times.size() != 0) result.block = block(prev, times);
    subscription_->on_replay(result);
  }

  std::vector<std::string> expected(std::initializer_list<std::int64_t> times,
                                    std::size_t padding = 0) {
    std::vector<std::string> out;
    for (const auto t : times) out.push_back(json(t, padding));
    return out;
  }

  std::shared_ptr<prometheus::Registry> registry_;
  FanoutProbe probe_;
  EventWindow window_;
  IpRateLimiter limiter_;
  std::shared_ptr<RecordingSink> sink_;
  std::shared_ptr<SessionSignals> signals_;
  RecordingDriver driver_;
  std::uint64_t high_water_bytes_ = 1 << 20;
  CatchUpGovernor* catch_up_ = nullptr;
  std::unique_ptr<Subscription> subscription_;
};

TEST_F(SubscriptionTest, ALiveSubscriberGetsOnlyEventsAfterTheWindowsNewestInOrder) {
  window_.append(block(0, {10, 20}));
  auto& subscription = subscribe("");
  EXPECT_EQ(subscription.position(), 20);
  EXPECT_TRUE(sink_->payloads.empty()) << "nothing older than joining";
  window_.append(block(20, {30, 40}));
  subscription.on_wake(true);
  EXPECT_EQ(sink_->payloads, expected({30, 40}));
  subscription.on_wake(true);  // a second wake with nothing new sends nothing twice
  EXPECT_EQ(sink_->payloads, expected({30, 40}));
  EXPECT_TRUE(driver_.replays.empty());
}

TEST_F(SubscriptionTest, FilteredEventsAdvanceThePositionAndAreNeverSent) {
  auto& subscription = subscribe("wantedCollections=app.bsky.feed.like");
  Events events;
  events.add(10, "app.bsky.feed.post").add(20, "app.bsky.feed.like").add(30, "app.bsky.graph.x");
  window_.append(events.build());
  subscription.on_wake(true);
  EXPECT_EQ(sink_->payloads, expected({20}));
  EXPECT_EQ(subscription.position(), 30) << "skipped events count as examined";
}

TEST_F(SubscriptionTest, ACompressingSubscriberGetsTheBinaryFrames) {
  auto& subscription = subscribe("compress=true");
  window_.append(block(0, {10}));
  subscription.on_wake(true);
  ASSERT_EQ(sink_->opcodes.size(), 1u);
  EXPECT_EQ(sink_->opcodes[0], websocket::Opcode::kBinary);
  EXPECT_EQ(sink_->payloads[0], std::string("\x28\x0A", 2));
}

TEST_F(SubscriptionTest, EventsOverMaxMessageSizeAreSkipped) {
  auto& subscription = subscribe("maxMessageSizeBytes=20");
  Events events;
  events.add(10, "a.b.c", "did:plc:a", 0).add(20, "a.b.c", "did:plc:a", 50).add(30, "a.b.c");
  window_.append(events.build());
  subscription.on_wake(true);
  EXPECT_EQ(sink_->payloads, expected({10, 30}));
}

TEST_F(SubscriptionTest, BeforeFanoutJoinedALiveSubscriberStartsAtTheWindowsStart) {
  auto& subscription = subscribe("", /*joined=*/false);
  window_.append(block(5, {10, 20}));
  EXPECT_TRUE(sink_->payloads.empty());
  subscription.on_wake(true);
  EXPECT_EQ(sink_->payloads, expected({10, 20}));
}

TEST_F(SubscriptionTest, AnOldCursorReadsTheLogThenContinuesFromTheWindowWithNoDuplicate) {
  window_.append(block(300, {400, 500}));
  subscribe("cursor=100");
  ASSERT_EQ(driver_.replays.size(), 1u);
  EXPECT_EQ(driver_.replays[0].start_time_us, 100) << "the cursor is inclusive";
  EXPECT_TRUE(driver_.replays[0].clamp_to_oldest) << "a client cursor may start at the oldest";
  answer_replay(0, {100, 200}, 201, /*done=*/false);  // [100, 201) was read
  ASSERT_EQ(driver_.replays.size(), 2u);
  EXPECT_EQ(driver_.replays[1].start_time_us, 201);
  EXPECT_FALSE(driver_.replays[1].clamp_to_oldest) << "a session under way never skips";
  answer_replay(200, {300, 400}, 401, /*done=*/true);  // overlaps the window at 400
  EXPECT_EQ(sink_->payloads, expected({100, 200, 300, 400, 500}));
  EXPECT_EQ(driver_.replays.size(), 2u);
}

TEST_F(SubscriptionTest, CatchUpWaitsForTheGovernorsTokensWhileLiveSendsGoAndAreMeasured) {
  CatchUpGovernor::Options o;
  o.min_events_per_second = o.start_events_per_second = o.max_events_per_second = 0.001;
  CatchUpGovernor governor(o);  // measuring live alone first; then a token every 1,000 s
  catch_up_ = &governor;
  window_.append(block(100, {200}));
  subscribe("");  // live: after the window's newest
  window_.append(block(200, {300, 400}));
  subscription_->on_wake(true);
  EXPECT_EQ(sink_->payloads, expected({300, 400})) << "live sends never wait for catch-up";
  EXPECT_EQ(sink_->measured, 1) << "a live send's first frame is measured";

  auto replaying = std::make_shared<RecordingSink>();
  sink_ = replaying;
  driver_.pumps.clear();
  subscription_ = std::make_unique<Subscription>(
      SubscriptionParts{&window_, &probe_, &limiter_, catch_up_, SessionConfig{}}, sink_,
      options_for("cursor=100"), "127.0.0.1", signals_, driver_);
  subscription_->start(1'000'000'000, true);
  subscription_->on_pump();
  EXPECT_TRUE(driver_.replays.empty()) << "no page is asked for before it is paid for";
  ASSERT_EQ(driver_.pumps.size(), 2u) << "the start's pump, then a look again shortly";
  EXPECT_GT(driver_.pumps.back().count(), 0);
  catch_up_ = nullptr;
}

TEST_F(SubscriptionTest, ACatchUpPageIsAsBigAsItsTokensAndUnusedTokensGoBack) {
  CatchUpGovernor::Options o;
  o.start_events_per_second = o.min_events_per_second = o.max_events_per_second = 1'000;
  const auto start = CatchUpGovernor::Clock::now() - std::chrono::seconds(1);
  CatchUpGovernor governor(o, start);
  // Past its first measurement of live alone (no live here), with a full bank: 100 tokens.
  (void)governor.take(0, start + std::chrono::milliseconds(100));
  (void)governor.take(0, start + std::chrono::milliseconds(200));
  catch_up_ = &governor;
  window_.append(block(300, {400, 500}));
  subscribe("cursor=100");
  ASSERT_EQ(driver_.replays.size(), 1u);
  EXPECT_EQ(driver_.replays[0].max_events, 100u) << "the page is what the tokens pay for";
  answer_replay(0, {100, 200}, 201, /*done=*/false);  // 2 events: 98 tokens back
  EXPECT_EQ(sink_->payloads, expected({100, 200}));
  EXPECT_EQ(sink_->measured, 0) << "catch-up sends are not measured as live ones";
  ASSERT_EQ(driver_.replays.size(), 2u);
  EXPECT_GE(driver_.replays[1].max_events, 98u) << "the unused tokens paid for the next page";
  EXPECT_LE(driver_.replays[1].max_events, 100u);
  catch_up_ = nullptr;
}

TEST_F(SubscriptionTest, ReplayFiltersAreTheSubscribersOwn) {
  window_.append(block(300, {400}));
  subscribe("cursor=1&wantedCollections=app.bsky.*&wantedDids=did:plc:x&compress=true");
  ASSERT_EQ(driver_.replays.size(), 1u);
  const auto& request = driver_.replays[0];
  EXPECT_EQ(request.collection_prefixes, std::vector<std::string>{"app.bsky."});
  EXPECT_EQ(request.dids, std::vector<std::string>{"did:plc:x"});
  EXPECT_TRUE(request.want_zstd);
}

TEST_F(SubscriptionTest, ALogThatLostThePositionOrDoesNotAnswerClosesTheClient) {
  window_.append(block(300, {400}));
  subscribe("cursor=1");
  ASSERT_EQ(driver_.replays.size(), 1u);
  ReplayResult too_old;
  too_old.status = proto::ReplayStatus::too_old;
  subscription_->on_replay(too_old);
  EXPECT_EQ(sink_->close_code, 1008);
  EXPECT_EQ(sink_->close_reason, "position fell out of the event log's retention");
  EXPECT_TRUE(driver_.stopped);

  sink_ = std::make_shared<RecordingSink>();
  driver_ = RecordingDriver{};
  subscribe("cursor=1");
  ASSERT_EQ(driver_.replays.size(), 1u);
  ReplayResult timed_out;
  timed_out.timed_out = true;
  subscription_->on_replay(timed_out);
  EXPECT_EQ(sink_->close_code, 1011);
  EXPECT_EQ(sink_->close_reason, "event log unavailable");
}

TEST_F(SubscriptionTest, RequireHelloHoldsEverythingUntilAValidOptionsUpdate) {
  window_.append(block(0, {20}));
  auto& subscription = subscribe("requireHello=true");
  window_.append(block(20, {30}));
  subscription.on_wake(true);
  subscription.on_text(R"({"type":"something_else"})");
  EXPECT_TRUE(sink_->payloads.empty());
  subscription.on_text(R"({"type":"options_update","payload":{}})");
  EXPECT_EQ(sink_->payloads, expected({30}));
}

TEST_F(SubscriptionTest, AnInvalidOptionsUpdateClosesWithTheV1Reason) {
  auto& subscription = subscribe("");
  subscription.on_text("not json");
  EXPECT_EQ(sink_->close_code, 1000);
  EXPECT_EQ(sink_->close_reason.rfind("failed to unmarshal subscriber sourced message: ", 0), 0u);
  EXPECT_TRUE(subscription.closed());
  EXPECT_TRUE(driver_.stopped);
  window_.append(block(0, {10}));
  subscription.on_wake(true);
  EXPECT_TRUE(sink_->payloads.empty()) << "nothing after the close";
}

TEST_F(SubscriptionTest, AtTheHighWaterMarkItWaitsForRoomAndResumesWhereItStopped) {
  high_water_bytes_ = 100;
  auto& subscription = subscribe("");
  window_.append(block(0, {10, 20, 30, 40, 50, 60, 70, 80}, "a.b.c", 40));
  subscription.on_wake(true);
  const std::size_t first_batch = sink_->payloads.size();
  ASSERT_GT(first_batch, 0u);
  ASSERT_LT(first_batch, 8u) << "the bound stops delivery";
  EXPECT_TRUE(signals_->waiting_for_room.load()) << "the connection must report room";
  sink_->drain();
  signals_->waiting_for_room.store(false);
  while (sink_->payloads.size() < 8) {
    const std::size_t before = sink_->payloads.size();
    subscription.on_wake(true);
    ASSERT_GT(sink_->payloads.size(), before) << "room given, delivery goes on";
    sink_->drain();
  }
  EXPECT_EQ(sink_->payloads, expected({10, 20, 30, 40, 50, 60, 70, 80}, 40));
}

TEST_F(SubscriptionTest, AReaderWithoutProgressForTheTimeoutIsClosedAsTooSlow) {
  high_water_bytes_ = 100;
  auto& subscription = subscribe("");
  window_.append(block(0, {10, 20, 30}, "a.b.c", 40));
  subscription.on_wake(true);
  const auto start = std::chrono::steady_clock::now();
  subscription.on_tick(start);
  subscription.on_tick(start + 59s);
  EXPECT_FALSE(subscription.closed()) << "within the timeout";
  sink_->written += 1;  // some progress resets the clock
  subscription.on_tick(start + 61s);
  EXPECT_FALSE(subscription.closed());
  subscription.on_tick(start + 122s);
  EXPECT_TRUE(subscription.closed());
  EXPECT_EQ(sink_->close_code, 1008);
  EXPECT_EQ(sink_->close_reason, "client too slow: no progress reading events");
}

TEST_F(SubscriptionTest, AnIdleReaderWithNothingQueuedIsNeverSlow) {
  auto& subscription = subscribe("");
  const auto start = std::chrono::steady_clock::now();
  subscription.on_tick(start + 1h);
  EXPECT_FALSE(subscription.closed());
}

TEST_F(SubscriptionTest, ShutdownClosesWith1001) {
  auto& subscription = subscribe("");
  subscription.on_shutdown();
  EXPECT_EQ(sink_->close_code, 1001);
  EXPECT_EQ(sink_->close_reason, "server shutting down");
  EXPECT_TRUE(driver_.stopped);
}

// ---- snapshot=true

TEST_F(SubscriptionTest, ASnapshotReadsTheTwinThenSaysCompleteThenReadsTheLogFromThere) {
  window_.append(block(300, {400}));
  auto& subscription = subscribe("snapshot=true&cursor=50");
  ASSERT_EQ(driver_.replays.size(), 1u);
  EXPECT_TRUE(driver_.replays[0].snapshot);
  EXPECT_EQ(driver_.replays[0].start_time_us, 51) << "a snapshot cursor is exclusive";
  EXPECT_FALSE(driver_.replays[0].clamp_to_oldest);
  answer_replay(0, {100, 250}, 251, /*done=*/true);
  ASSERT_EQ(sink_->payloads.size(), 3u);
  EXPECT_EQ(sink_->payloads[0], json(100));
  EXPECT_EQ(sink_->payloads[1], json(250));
  EXPECT_NE(
      sink_->payloads[2].find(R"("time_us":250,"kind":"info","info":{"name":"SnapshotComplete")"),
      std::string::npos)
      << sink_->payloads[2];
  ASSERT_EQ(driver_.replays.size(), 2u) << "then the log";
  EXPECT_FALSE(driver_.replays[1].snapshot);
  EXPECT_EQ(driver_.replays[1].start_time_us, 251);
  EXPECT_TRUE(driver_.replays[1].clamp_to_oldest);
  answer_replay(0, {300, 400}, 401, /*done=*/true);
  EXPECT_EQ(sink_->payloads.back(), json(400));
  EXPECT_EQ(sink_->payloads.size(), 5u) << "the window's 400 is not sent twice";
  EXPECT_EQ(subscription.position(), 400);
}

TEST_F(SubscriptionTest, ASnapshotCursorBelowTheTombstoneHorizonRestartsFromZero) {
  window_.append(block(300, {400}));
  subscribe("snapshot=true&cursor=50");
  ReplayResult too_old;
  too_old.status = proto::ReplayStatus::too_old;
  subscription_->on_replay(too_old);
  ASSERT_EQ(sink_->payloads.size(), 1u);
  EXPECT_NE(sink_->payloads[0].find(R"("name":"SnapshotRestarted")"), std::string::npos);
  ASSERT_EQ(driver_.replays.size(), 2u);
  EXPECT_TRUE(driver_.replays[1].snapshot);
  EXPECT_EQ(driver_.replays[1].start_time_us, 1) << "from the beginning";
  EXPECT_FALSE(subscription_->closed());
}

TEST_F(SubscriptionTest, AnOptionsUpdateDuringTheSnapshotChangesFiltersWithoutRestartingIt) {
  window_.append(block(300, {400}));
  subscribe("snapshot=true");
  subscription_->on_text(R"({"type":"options_update","payload":{"wantedDids":["did:plc:x"]}})");
  EXPECT_EQ(driver_.replays.size(), 1u) << "a page is outstanding: no second request";
  answer_replay(0, {100}, 101, /*done=*/false);
  ASSERT_EQ(driver_.replays.size(), 2u);
  EXPECT_EQ(driver_.replays[1].start_time_us, 101) << "the snapshot goes on where it was";
  EXPECT_TRUE(driver_.replays[1].snapshot);
  EXPECT_TRUE(driver_.replays[1].clamp_to_oldest) << "under way: no horizon check";
  EXPECT_EQ(driver_.replays[1].dids, std::vector<std::string>{"did:plc:x"});
  EXPECT_EQ(driver_.replays[1].collection_prefixes, std::vector<std::string>{"app.bsky."})
      << "no collection named: the compacted ones";
  subscription_->on_text(
      R"({"type":"options_update","payload":{"wantedCollections":["chat.bsky.*"]}})");
  EXPECT_TRUE(subscription_->closed()) << "outside the compacted set";
  EXPECT_EQ(sink_->close_reason, "snapshot unavailable for collection: chat.bsky.*");
}

}  // namespace
}  // namespace jetstream::fanout
