#include "services/fanout/client_session.hpp"

#include <deque>

#include "common/clock/clock.hpp"
#include "common/log/log.hpp"
#include "services/fanout/event_filter.hpp"
#include "services/fanout/options_update.hpp"

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
// Session

struct SessionState {
  SessionContext context;
  std::shared_ptr<SessionSignals> signals;
  std::shared_ptr<ClientSink> sink;
  SubscriberOptions options;
  EventFilter filter;
  std::string ip;

  std::int64_t position = 0;  ///< time_us of the last event examined (sent or skipped)

  /// What holds delivery back before it starts (pump does nothing while either holds).
  struct Holds {
    bool hello = false;      ///< requireHello: nothing is sent before an options_update
    bool live_head = false;  ///< a live client before fanout knows the head: join at it
    bool any() const { return hello || live_head; }
  } holds;

  /// Reading decode's log, one page at a time, when the window no longer has `position`.
  struct Replay {
    bool outstanding = false;      ///< a page was requested and not received
    bool more_pages = false;       ///< the last page was not `done`: read the next one
    bool clamp_next = false;       ///< a client cursor: start at the oldest retained event
    bool counted = false;          ///< counted in the replay-sessions gauge
    int empty_pages = 0;           ///< pages in a row that had nothing newer (back off)
    std::int64_t after_queue = 0;  ///< position once `queue` is delivered
  } replay;

  bool pump_scheduled = false;  ///< a pump message (or a delayed one) is on its way
  bool closed = false;          ///< finished: nothing more is sent
  std::deque<std::pair<BlockPtr, std::size_t>> queue;  ///< blocks (and next index) to deliver
  std::vector<BlockPtr> scratch;
  std::vector<OutboundFrame> frames;
  std::uint64_t last_written = 0;  ///< the connection's bytes written at the last tick
  std::chrono::steady_clock::time_point last_progress = std::chrono::steady_clock::now();
};

using session_pointer = session_actor::stateful_pointer<SessionState>;

void finish(session_pointer self, std::uint16_t code, const std::string& reason, CloseReason why) {
  auto& s = self->state;
  if (s.closed) return;
  s.closed = true;
  if (s.replay.counted) s.context.probe->replay_finished();
  s.context.probe->subscriber_disconnected(s.options.compress, why);
  if (code != 0) s.sink->close(code, reason);
  self->quit();
}

void set_replaying(session_pointer self, bool replaying) {
  auto& s = self->state;
  if (replaying == s.replay.counted) return;
  s.replay.counted = replaying;
  if (replaying) {
    s.context.probe->replay_started();
  } else {
    s.context.probe->replay_finished();
  }
}

void request_replay(session_pointer self) {
  auto& s = self->state;
  proto::ReplayRequest request = to_replay_filters(s.options.filters);
  request.start_time_us = s.position + 1;
  request.end_time_us = 0;
  request.max_events = s.context.config.replay_page_events;
  request.max_bytes = s.context.config.replay_page_bytes;
  request.want_zstd = s.options.compress;
  // Only the client's own cursor may start later than asked (older than retention → oldest);
  // a session already under way must never skip events silently.
  request.clamp_to_oldest = s.replay.clamp_next;
  s.replay.clamp_next = false;
  s.replay.outstanding = true;
  set_replaying(self, true);
  auto handle = caf::actor_cast<session_actor>(self);
  s.context.feed->request_replay(std::move(request), [handle](ReplayResult result) {
    caf::anon_send(handle, replay_atom::value, std::move(result));
  });
}

/// Why deliver_queue stopped.
enum class Delivery : std::uint8_t {
  kQueueEmpty,   ///< everything queued was delivered (or skipped)
  kRoomLeft,     ///< stopped at the byte bound, but the connection has already written enough
  kWaitForRoom,  ///< the connection holds too many unsent bytes: a write will wake the session
  kRateLimited,  ///< the per-IP budget ran out: a pump is scheduled
};

/// Delivers from `queue` while the connection and the rate limit allow.
Delivery deliver_queue(session_pointer self) {
  auto& s = self->state;
  auto& frames = s.frames;
  frames.clear();
  std::uint64_t bytes = 0, filtered = 0, oversize = 0;
  std::int64_t first_time_us = 0;
  std::uint64_t budget = s.context.limiter->take(s.ip, s.context.config.max_frames_per_send);
  const bool rate_limited = budget < s.context.config.max_frames_per_send;
  std::uint64_t queued = s.sink->queued_bytes();
  bool stopped = false;
  while (!s.queue.empty()) {
    auto& [block, index] = s.queue.front();
    const auto events = block->events();
    if (index == 0) index = block->first_after(s.position);
    const std::size_t run_start = frames.size();
    for (; index < events.size(); ++index) {
      const BlockEvent& event = events[index];
      if (event.time_us <= s.position) continue;
      if (!s.filter.matches(event.kind, event.did, event.collection)) {
        ++filtered;
        s.position = event.time_us;
        continue;
      }
      const bool binary = s.options.compress && !event.binary_frame.empty();
      const auto frame = binary ? event.binary_frame : event.text_frame;
      const std::size_t payload = binary ? event.zstd_size : event.json_size;
      if (!s.filter.accepts_size(payload)) {
        ++oversize;
        s.position = event.time_us;
        continue;
      }
      if (budget == 0 || queued + bytes >= s.context.config.high_water_bytes) {
        stopped = true;
        break;
      }
      if (frames.empty()) {
        first_time_us = event.time_us;
        frames.push_back({nullptr, frame.data(), frame.size(), block->arrived_at()});
      } else {
        frames.push_back({nullptr, frame.data(), frame.size()});  // owned below
      }
      bytes += frame.size();
      --budget;
      s.position = event.time_us;
    }
    // The run's last frame holds the block for the frames before it (see SharedFrame).
    if (frames.size() > run_start) frames.back().owner = block;
    if (stopped) break;
    s.queue.pop_front();
  }
  if (s.queue.empty() && s.replay.after_queue > s.position) s.position = s.replay.after_queue;
  if (!frames.empty()) {
    s.context.probe->delivered(frames.size(), bytes);
    s.context.probe->delivery_lag(static_cast<double>(clock::wall_clock_us() - first_time_us) /
                                  1e6);
    s.sink->send(std::move(frames));
    frames = {};
  }
  if (filtered != 0) s.context.probe->skipped_filtered(filtered);
  if (oversize != 0) s.context.probe->skipped_oversize(oversize);
  s.context.limiter->give_back(s.ip, budget);
  if (!stopped) return Delivery::kQueueEmpty;
  if (budget == 0 && rate_limited) {
    if (!s.pump_scheduled) {
      s.pump_scheduled = true;  // rate-limited: try again shortly
      self->delayed_send(self, std::chrono::milliseconds(20), pump_atom::value);
    }
    return Delivery::kRateLimited;
  }
  // Stopped at the byte bound. Ask the connection to report room, then look: a write that ended
  // before the request would otherwise wake nobody (see SessionHandle::room).
  s.signals->waiting_for_room.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (s.sink->queued_bytes() < s.context.config.low_water_bytes()) {
    s.signals->waiting_for_room.store(false, std::memory_order_relaxed);
    return Delivery::kRoomLeft;
  }
  return Delivery::kWaitForRoom;
}

void pump(session_pointer self) {
  auto& s = self->state;
  for (int round = 0; round < 64 && !s.closed; ++round) {
    if (s.holds.any() || s.replay.outstanding) return;
    if (!s.queue.empty()) {
      const Delivery delivery = deliver_queue(self);
      if (delivery == Delivery::kWaitForRoom || delivery == Delivery::kRateLimited) return;
      continue;
    }
    if (s.replay.more_pages) {
      request_replay(self);
      return;
    }
    switch (s.context.window->after(s.position, 8, s.scratch)) {
      case EventWindow::Coverage::covered:
        set_replaying(self, false);
        s.replay.empty_pages = 0;
        for (auto& block : s.scratch) s.queue.emplace_back(std::move(block), 0);
        s.scratch.clear();
        break;
      case EventWindow::Coverage::caught_up:
        set_replaying(self, false);
        s.replay.empty_pages = 0;
        return;
      case EventWindow::Coverage::too_old:
        if (s.replay.empty_pages > 0 && !s.pump_scheduled) {
          // The log had nothing newer a moment ago: give decode and the feed time to catch up.
          s.pump_scheduled = true;
          self->delayed_send(self,
                             std::chrono::milliseconds(std::min(50 * s.replay.empty_pages, 1000)),
                             pump_atom::value);
          return;
        }
        if (s.pump_scheduled) return;
        request_replay(self);
        return;
    }
  }
  // Rounds used up with work left: yield to the other sessions and continue after them.
  if (!s.closed && !s.pump_scheduled) {
    s.pump_scheduled = true;
    self->send(self, pump_atom::value);
  }
}

void on_replay(session_pointer self, ReplayResult& result) {
  auto& s = self->state;
  s.replay.outstanding = false;
  if (s.closed) return;
  if (result.timed_out || result.status == proto::ReplayStatus::internal_error) {
    finish(self, 1011, "event log unavailable", CloseReason::log_unavailable);
    return;
  }
  if (result.status == proto::ReplayStatus::too_old) {
    finish(self, 1008, "position fell out of the event log's retention",
           CloseReason::out_of_retention);
    return;
  }
  if (result.status != proto::ReplayStatus::ok) {
    finish(self, 1011, "event log refused the request", CloseReason::log_unavailable);
    return;
  }
  const std::int64_t newest = result.newest_time_us;
  if (result.block) {
    s.context.probe->replay_page(result.block->events().size(),
                                 static_cast<double>(newest - result.block->last_time_us()) / 1e6);
    s.queue.emplace_back(std::move(result.block), 0);
    s.replay.empty_pages = 0;
  } else {
    ++s.replay.empty_pages;
  }
  // Everything in [start, next_time_us) was considered: filtered-out events included.
  if (result.next_time_us - 1 > s.replay.after_queue)
    s.replay.after_queue = result.next_time_us - 1;
  if (s.queue.empty() && s.replay.after_queue > s.position) s.position = s.replay.after_queue;
  s.replay.more_pages = !result.done;
  pump(self);
}

session_actor::behavior_type session(session_pointer self, SessionContext context,
                                     std::shared_ptr<ClientSink> sink, SubscriberOptions options,
                                     std::string client_ip,
                                     std::shared_ptr<SessionSignals> signals) {
  auto& s = self->state;
  s.context = std::move(context);
  s.signals = std::move(signals);
  s.sink = std::move(sink);
  s.filter = EventFilter(options);
  s.ip = std::move(client_ip);
  s.holds.hello = options.require_hello;
  s.options = std::move(options);
  s.context.probe->subscriber_connected(s.options.compress);

  const std::int64_t now = clock::wall_clock_us();
  if (!s.options.cursor || *s.options.cursor > now) {
    // Live: start after the newest event fanout holds; before fanout has joined decode's
    // stream, join at the first block that arrives.
    if (s.context.feed->status().joined) {
      s.position = s.context.window->newest();
    } else {
      s.holds.live_head = true;
    }
  } else {
    // API.md: the cursor is inclusive; 0 or negative means the oldest retained event.
    s.position = *s.options.cursor <= 0 ? 0 : *s.options.cursor - 1;
    s.replay.clamp_next = true;
  }
  self->delayed_send(self, s.context.config.tick_interval, tick_atom::value);
  self->send(self, pump_atom::value);

  return {
      [self](wake_atom) {
        auto& st = self->state;
        // Cleared before pumping: a block appended while pumping wakes the session again.
        st.signals->wake_pending.store(false, std::memory_order_release);
        if (st.holds.live_head && st.context.feed->status().joined) {
          // Connected before fanout joined decode's stream: start where the window starts.
          st.holds.live_head = false;
          st.position = st.context.window->oldest_position();
        }
        pump(self);
      },
      [self](replay_atom, ReplayResult& result) { on_replay(self, result); },
      [self](text_atom, const std::string& text) {
        auto& st = self->state;
        const UpdateResult result = parse_client_message(text);
        switch (result.action) {
          case UpdateAction::ignored: st.context.probe->options_update("ignored"); return;
          case UpdateAction::close:
            st.context.probe->options_update("invalid");
            finish(self, kClientErrorCloseCode, result.close_reason, CloseReason::invalid_message);
            return;
          case UpdateAction::update:
            st.context.probe->options_update("applied");
            apply_update(st.options, result.update);
            st.filter = EventFilter(st.options);
            st.holds.hello = false;
            pump(self);
            return;
        }
      },
      [self](closed_atom) { finish(self, 0, {}, CloseReason::client_closed); },
      [self](pump_atom) {
        self->state.pump_scheduled = false;
        pump(self);
      },
      [self](tick_atom) {
        auto& st = self->state;
        const auto queued = st.sink->queued_bytes();
        const auto tick_time = std::chrono::steady_clock::now();
        // Progress is bytes leaving for the client, not the queue shrinking: a reader that keeps up
        // with a full queue (refilled as fast as it drains) is not slow.
        const auto written = st.sink->written_bytes();
        if (queued == 0 || written != st.last_written) st.last_progress = tick_time;
        st.last_written = written;
        if (queued > 0 && tick_time - st.last_progress > st.context.config.slow_client_timeout) {
          finish(self, 1008, "client too slow: no progress reading events", CloseReason::too_slow);
          return;
        }
        self->delayed_send(self, st.context.config.tick_interval, tick_atom::value);
        pump(self);
      },
      [self](shutdown_atom) { finish(self, 1001, "server shutting down", CloseReason::shutdown); },
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
