// One CAF actor per subscriber, running its Subscription (subscription.hpp: filters, position,
// replay and slow-client state, and every delivery decision). The actor gives the subscription
// one caller at a time and turns its requests into messages: replay pages from the EventFeed,
// delayed pumps, the tick. The broadcaster wakes every session when a block reaches the window.
//
// The subscription decides what to send; its ClientSink (the websocket connection) writes on its
// own strand. Frames are shared references into blocks: no per-client encoding or compression.
#pragma once

#include <algorithm>
#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "services/fanout/client_sink.hpp"
#include "services/fanout/event_feed.hpp"
#include "services/fanout/event_window.hpp"
#include "services/fanout/fanout_probe.hpp"
#include "services/fanout/ip_rate_limiter.hpp"
#include "services/fanout/subscriber_options.hpp"
#include "services/fanout/subscription.hpp"

namespace jetstream::fanout {
struct SessionHandle;
}  // namespace jetstream::fanout

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::fanout::BlockPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::fanout::ReplayResult)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::fanout::SessionHandle)

namespace jetstream::fanout {

using block_atom = caf::atom_constant<caf::atom("block")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using text_atom = caf::atom_constant<caf::atom("text")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;
using pump_atom = caf::atom_constant<caf::atom("pump")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using join_atom = caf::atom_constant<caf::atom("join")>;
using count_atom = caf::atom_constant<caf::atom("count")>;

/// A session's messages: `wake` (new events in the window, or its connection wrote), a `replay`
/// page of the log, a client `text` message, `closed` (the connection is gone), `pump` (retry
/// after a rate-limit pause), `tick` (once a second: slow-client check), `shutdown` (close 1001).
using session_actor =
    caf::typed_actor<caf::reacts_to<wake_atom>, caf::reacts_to<replay_atom, ReplayResult>,
                     caf::reacts_to<text_atom, std::string>, caf::reacts_to<closed_atom>,
                     caf::reacts_to<pump_atom>, caf::reacts_to<tick_atom>,
                     caf::reacts_to<shutdown_atom>>;

/// How the rest of fanout reaches a session. `wake()` sends at most one wake message until the
/// session has taken it: under load, wakes coalesce and each one delivers everything that arrived
/// meanwhile, so actor messages per second stay bounded by what sessions can process (adaptive
/// batching, no timer, no added latency when idle). `room()` is the connection's report after a
/// write: it wakes the session only when the session waits for room, so a live client costs one
/// actor message per batch, not two.
struct SessionHandle {
  session_actor actor;
  std::shared_ptr<SessionSignals> signals;
  std::uint64_t low_water_bytes = 0;

  void wake() const {
    if (!signals->wake_pending.exchange(true, std::memory_order_acq_rel)) {
      caf::anon_send(actor, wake_atom::value);
    }
  }

  /// `queued_bytes`: what the connection still holds after its write (already subtracted).
  void room(std::uint64_t queued_bytes) const {
    if (queued_bytes >= low_water_bytes) return;
    // Pairs with the fence in the session between raising `waiting_for_room` and reading the
    // queued bytes: either the session sees the room, or this sees the flag.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (signals->waiting_for_room.load(std::memory_order_relaxed) &&
        signals->waiting_for_room.exchange(false, std::memory_order_acq_rel)) {
      wake();
    }
  }
};

/// Wakes every session when a live block reaches the window; owned by the service.
using broadcaster_actor =
    caf::typed_actor<caf::reacts_to<join_atom, SessionHandle>, caf::reacts_to<block_atom, BlockPtr>,
                     caf::reacts_to<shutdown_atom>,
                     caf::replies_to<count_atom>::with<std::uint64_t>>;

broadcaster_actor spawn_broadcaster(caf::actor_system& system);

/// Services every session shares; they outlive every session.
struct SessionContext {
  EventWindow* window = nullptr;
  EventFeed* feed = nullptr;
  FanoutProbe* probe = nullptr;
  IpRateLimiter* limiter = nullptr;
  CatchUpGovernor* catch_up = nullptr;
  broadcaster_actor broadcaster;
  SessionConfig config;
  DeflateStats* deflate = nullptr;
};

/// Spawns a session and registers it with the broadcaster.
SessionHandle spawn_session(caf::actor_system& system, SessionContext context,
                            std::shared_ptr<ClientSink> sink, SubscriberOptions options,
                            std::string client_ip);

}  // namespace jetstream::fanout
