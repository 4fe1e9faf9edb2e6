#include "services/fanout/client_session.hpp"

#include <memory>

#include "common/clock/clock.hpp"

namespace jetstream::fanout {
namespace {

// ---------------------------------------------------------------------------------------------
// Broadcaster

struct BroadcasterState {
  std::vector<SessionHandle> sessions;
};

broadcaster_actor::behavior_type broadcaster(
    broadcaster_actor::stateful_pointer<BroadcasterState> self) {
  self->set_down_handler([self](const caf::down_msg& down) {
    auto& sessions = self->state.sessions;
    for (auto it = sessions.begin(); it != sessions.end(); ++it) {
      if (it->actor.address() == down.source) {
        *it = std::move(sessions.back());
        sessions.pop_back();
        break;
      }
    }
  });
  return {
      [self](join_atom, const SessionHandle& session) {
        self->monitor(session.actor);
        self->state.sessions.push_back(session);
      },
      [self](block_atom, const BlockPtr&) {
        for (const auto& session : self->state.sessions) session.wake();
      },
      [self](shutdown_atom) {
        for (const auto& session : self->state.sessions)
          self->send(session.actor, shutdown_atom::value);
      },
      [self](count_atom) -> std::uint64_t { return self->state.sessions.size(); },
  };
}

// ---------------------------------------------------------------------------------------------
// Session: a Subscription run by an actor, which gives it one caller at a time.

struct SessionState {
  std::unique_ptr<SubscriptionDriver> driver;
  std::unique_ptr<Subscription> subscription;
  std::shared_ptr<SessionSignals> signals;
  EventFeed* feed = nullptr;
  std::chrono::milliseconds tick_interval{1000};
};

using session_pointer = session_actor::stateful_pointer<SessionState>;

/// What the Subscription asks of its actor.
class ActorDriver final : public SubscriptionDriver {
 public:
  ActorDriver(session_pointer self, EventFeed* feed) : self_(self), feed_(feed) {}

  void request_replay(proto::ReplayRequest request) override {
    auto handle = caf::actor_cast<session_actor>(self_);
    feed_->request_replay(std::move(request), [handle](ReplayResult result) {
      caf::anon_send(handle, replay_atom::value, std::move(result));
    });
  }

  void schedule_pump(std::chrono::milliseconds delay) override {
    if (delay.count() == 0) {
      self_->send(self_, pump_atom::value);
    } else {
      self_->delayed_send(self_, delay, pump_atom::value);
    }
  }

  void stop() override { self_->quit(); }

 private:
  session_pointer self_;
  EventFeed* feed_;
};

session_actor::behavior_type session(session_pointer self, SessionContext context,
                                     std::shared_ptr<ClientSink> sink, SubscriberOptions options,
                                     std::string client_ip,
                                     std::shared_ptr<SessionSignals> signals) {
  auto& s = self->state;
  s.feed = context.feed;
  s.signals = signals;
  s.tick_interval = context.config.tick_interval;
  s.driver = std::make_unique<ActorDriver>(self, context.feed);
  s.subscription = std::make_unique<Subscription>(
      SubscriptionParts{context.window, context.probe, context.limiter, context.catch_up,
                        context.config, context.deflate},
      std::move(sink), std::move(options), std::move(client_ip), std::move(signals), *s.driver);
  self->delayed_send(self, s.tick_interval, tick_atom::value);
  s.subscription->start(clock::wall_clock_us(), s.feed->status().joined);

  return {
      [self](wake_atom) {
        auto& st = self->state;
        // Cleared before pumping: a block appended while pumping wakes the session again.
        st.signals->wake_pending.store(false, std::memory_order_release);
        st.subscription->on_wake(st.feed->status().joined);
      },
      [self](replay_atom, ReplayResult& result) { self->state.subscription->on_replay(result); },
      [self](text_atom, const std::string& text) { self->state.subscription->on_text(text); },
      [self](closed_atom) { self->state.subscription->on_connection_closed(); },
      [self](pump_atom) { self->state.subscription->on_pump(); },
      [self](tick_atom) {
        auto& st = self->state;
        st.subscription->on_tick(std::chrono::steady_clock::now());
        if (!st.subscription->closed()) {
          self->delayed_send(self, st.tick_interval, tick_atom::value);
        }
      },
      [self](shutdown_atom) { self->state.subscription->on_shutdown(); },
  };
}

}  // namespace

broadcaster_actor spawn_broadcaster(caf::actor_system& system) { return system.spawn(broadcaster); }

SessionHandle spawn_session(caf::actor_system& system, SessionContext context,
                            std::shared_ptr<ClientSink> sink, SubscriberOptions options,
                            std::string client_ip) {
  SessionHandle handle;
  handle.signals = std::make_shared<SessionSignals>();
  handle.low_water_bytes = context.config.low_water_bytes();
  auto broadcaster = context.broadcaster;
  handle.actor = system.spawn(session, std::move(context), std::move(sink), std::move(options),
                              std::move(client_ip), handle.signals);
  caf::anon_send(broadcaster, join_atom::value, handle);
  return handle;
}

}  // namespace jetstream::fanout
