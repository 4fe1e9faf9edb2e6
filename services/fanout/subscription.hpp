// What one subscriber receives, decided without actors or sockets: its filters, its position in
// the event stream (the time_us of the last event it examined), its replay state and its
// slow-client state. It pulls events in order from two places — the in-memory window, or
// decode's log through replay pages — so the replay → live hand-off is the same rule as
// everything else: deliver every matching event with time_us > position, exactly once, in order.
//
// A Subscription is driven by calls (a wake, a replay page, a client message, a tick) and asks
// for what it cannot do itself through its SubscriptionDriver: a replay page, a later pump, a
// stop. client_session.cpp runs one inside a CAF actor; tests/unit/subscription_test.cpp drives
// one by hand. Not thread-safe: one caller at a time (the actor guarantees it).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/replay.hpp"
#include "services/fanout/catch_up_governor.hpp"
#include "services/fanout/client_sink.hpp"
#include "services/fanout/event_feed.hpp"
#include "services/fanout/event_filter.hpp"
#include "services/fanout/event_window.hpp"
#include "services/fanout/fanout_probe.hpp"
#include "services/fanout/ip_rate_limiter.hpp"
#include "services/fanout/subscriber_options.hpp"

namespace jetstream::fanout {

/// The flags a subscription shares with whoever wakes it (no reference back to it, so no cycle).
struct SessionSignals {
  /// A wake message is on its way and not yet taken.
  std::atomic<bool> wake_pending{false};
  /// The subscription stopped because its connection holds too many unsent bytes; the
  /// connection's next write below the low-water mark must wake it (SessionHandle::room).
  std::atomic<bool> waiting_for_room{false};
};

struct SessionConfig {
  std::uint64_t high_water_bytes = 1u << 20;  ///< stop queueing above this many unsent bytes
  /// A session stopped at the high-water mark resumes once its connection holds less than this:
  /// half of it (at least one byte), so a backed-up client is refilled in large steps.
  std::uint64_t low_water_bytes() const { return std::max<std::uint64_t>(1, high_water_bytes / 2); }
  std::size_t max_frames_per_send = 512;
  std::uint32_t replay_page_events = 2000;
  std::uint32_t replay_page_bytes = 4u << 20;
  std::chrono::seconds slow_client_timeout{60};  ///< no write progress while data waits → close
  /// How often a session checks for slowness (and pumps, in case something was missed).
  std::chrono::milliseconds tick_interval{1000};
};

/// What a Subscription asks of whoever runs it.
class SubscriptionDriver {
 public:
  virtual ~SubscriptionDriver() = default;
  /// Asks decode's log for a page; its answer comes back through Subscription::on_replay.
  virtual void request_replay(proto::ReplayRequest request) = 0;
  /// Calls Subscription::on_pump after `delay`; zero means after the messages already waiting
  /// (the other sessions get their turn).
  virtual void schedule_pump(std::chrono::milliseconds delay) = 0;
  /// The subscription is finished (its close frame, if any, is queued): stop running it.
  virtual void stop() = 0;
};

/// The shared parts a subscription reads; they outlive it.
struct SubscriptionParts {
  EventWindow* window = nullptr;
  FanoutProbe* probe = nullptr;
  IpRateLimiter* limiter = nullptr;
  CatchUpGovernor* catch_up = nullptr;  ///< null: catch-up is paced by the per-IP rate only
  SessionConfig config;
  DeflateStats* deflate = nullptr;  ///< the replica's permessage-deflate figures (may be null)
};

class Subscription {
 public:
  Subscription(SubscriptionParts parts, std::shared_ptr<ClientSink> sink, SubscriberOptions options,
               std::string client_ip, std::shared_ptr<SessionSignals> signals,
               SubscriptionDriver& driver);
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  /// Places the position and schedules the first pump. A cursor at or before `now_us` starts in
  /// the log (inclusive; 0 or negative = the oldest retained event); otherwise the subscriber is
  /// live: after the window's newest event when fanout has `joined` decode's stream, else at the
  /// window's start once it has. A snapshot subscriber starts in the compacted twin after its
  /// cursor (exclusive; absent = 0), whatever the time.
  void start(std::int64_t now_us, bool joined);
  /// New events in the window, or room in the connection.
  void on_wake(bool joined);
  /// decode's answer to the last request_replay.
  void on_replay(ReplayResult& result);
  /// A text message from the client.
  void on_text(std::string_view text);
  /// The pump scheduled with schedule_pump.
  void on_pump();
  /// Once per tick_interval: the slow-client rule, and a pump in case something was missed.
  void on_tick(std::chrono::steady_clock::time_point now);
  /// The service is stopping: close 1001.
  void on_shutdown();
  /// The connection is gone.
  void on_connection_closed();

  [[nodiscard]] bool closed() const noexcept { return closed_; }
  /// time_us of the last event examined (sent or skipped).
  [[nodiscard]] std::int64_t position() const noexcept { return position_; }
  [[nodiscard]] const SubscriberOptions& options() const noexcept { return options_; }

 private:
  /// Why deliver_queue stopped.
  enum class Delivery : std::uint8_t {
    kQueueEmpty,   ///< everything queued was delivered (or skipped)
    kRoomLeft,     ///< stopped at the byte bound, but the connection already wrote enough
    kWaitForRoom,  ///< the connection holds too many unsent bytes: a write will wake it
    kRateLimited,  ///< the per-IP budget ran out: a pump is scheduled
  };

  void pump();
  Delivery deliver_queue();
  /// Queues a text `info` message (API.md "State") behind what was sent.
  void send_info(std::string_view name, std::string_view message, std::int64_t time_us);
  /// The snapshot part is delivered: SnapshotComplete, then the log from the same position.
  void complete_snapshot();
  void request_replay();
  void set_replaying(bool replaying);
  void schedule_pump(std::chrono::milliseconds delay);
  void finish(std::uint16_t code, const std::string& reason, CloseReason why);

  SubscriptionParts parts_;
  std::shared_ptr<ClientSink> sink_;
  SubscriberOptions options_;
  EventFilter filter_;
  std::string ip_;
  std::shared_ptr<SessionSignals> signals_;
  SubscriptionDriver& driver_;

  std::int64_t position_ = 0;

  /// What holds delivery back before it starts (pump does nothing while either holds).
  struct Holds {
    bool hello = false;      ///< requireHello: nothing is sent before an options_update
    bool live_head = false;  ///< a live client before fanout knows the head: join at it
    bool any() const { return hello || live_head; }
  } holds_;

  /// Reading decode's log, one page at a time, when the window no longer has `position_`.
  struct Replay {
    bool outstanding = false;      ///< a page was requested and not received
    bool more_pages = false;       ///< the last page was not `done`: read the next one
    bool clamp_next = false;       ///< a client cursor: start at the oldest retained event
    bool counted = false;          ///< counted in the replay-sessions gauge
    int empty_pages = 0;           ///< pages in a row that had nothing newer (back off)
    std::int64_t after_queue = 0;  ///< position once `queue_` is delivered
    std::uint64_t paid = 0;        ///< catch-up tokens taken for the page requested
  } replay_;

  /// snapshot=true: reading the compacted twin (until SnapshotComplete), then the log as usual.
  bool in_snapshot_ = false;
  /// A snapshot page was received since the start (or restart): later pages skip the horizon.
  bool snapshot_under_way_ = false;
  bool pump_scheduled_ = false;                         ///< a pump (now or delayed) is on its way
  bool closed_ = false;                                 ///< finished: nothing more is sent
  std::deque<std::pair<BlockPtr, std::size_t>> queue_;  ///< blocks (and next index) to deliver
  std::vector<BlockPtr> scratch_;
  std::vector<OutboundFrame> frames_;
  std::uint64_t last_written_ = 0;  ///< the connection's bytes written at the last tick
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();
};

}  // namespace jetstream::fanout
