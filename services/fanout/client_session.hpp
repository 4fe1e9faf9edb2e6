// One CAF actor per subscriber: owns its filters, its position in the event stream (the time_us
// of the last event it examined), its replay state and its slow-client state. It pulls events in
// order from three sources — a block just broadcast, the in-memory window, or decode's log via
// replay — so the replay → live hand-off is the same rule as everything else: deliver every
// matching event with time_us > position, exactly once, in order.
//
// The actor decides what to send; its ClientSink (the websocket connection) writes on its own
// strand. Frames are shared references into blocks: no per-client encoding or compression.
#pragma once

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

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::fanout::BlockPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::fanout::ReplayResult)

namespace jetstream::fanout {

using block_atom = caf::atom_constant<caf::atom("block")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using text_atom = caf::atom_constant<caf::atom("text")>;
using writable_atom = caf::atom_constant<caf::atom("writable")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;
using pump_atom = caf::atom_constant<caf::atom("pump")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using join_atom = caf::atom_constant<caf::atom("join")>;
using count_atom = caf::atom_constant<caf::atom("count")>;

using session_actor =
    caf::typed_actor<caf::reacts_to<block_atom, BlockPtr>,       ///< broadcast: a new live block
                     caf::reacts_to<replay_atom, ReplayResult>,  ///< a page of the log for this
                                                                 ///< session
                     caf::reacts_to<text_atom, std::string>,     ///< a text message from the client
                     caf::reacts_to<writable_atom>,  ///< the connection wrote some queued bytes
                     caf::reacts_to<closed_atom>,    ///< the connection is gone
                     caf::reacts_to<pump_atom>,  ///< try to send more (after a rate-limit pause)
                     caf::reacts_to<tick_atom>,  ///< once a second: slow-client check
                     caf::reacts_to<shutdown_atom>>;  ///< server shutting down: close 1001

/// Hands each live block to every session; owned by the service.
using broadcaster_actor =
    caf::typed_actor<caf::reacts_to<join_atom, session_actor>, caf::reacts_to<block_atom, BlockPtr>,
                     caf::reacts_to<shutdown_atom>,
                     caf::replies_to<count_atom>::with<std::uint64_t>>;

broadcaster_actor spawn_broadcaster(caf::actor_system& system);

struct SessionConfig {
  std::uint64_t high_water_bytes = 1u << 20;  ///< stop queueing above this many unsent bytes
  std::size_t max_frames_per_send = 512;
  std::uint32_t replay_page_events = 2000;
  std::uint32_t replay_page_bytes = 4u << 20;
  std::chrono::seconds slow_client_timeout{60};  ///< no write progress while data waits → close
};

/// Services every session shares; they outlive every session.
struct SessionContext {
  EventWindow* window = nullptr;
  EventFeed* feed = nullptr;
  FanoutProbe* probe = nullptr;
  IpRateLimiter* limiter = nullptr;
  broadcaster_actor broadcaster;
  SessionConfig config;
};

session_actor spawn_session(caf::actor_system& system, SessionContext context,
                            std::shared_ptr<ClientSink> sink, SubscriberOptions options,
                            std::string client_ip);

}  // namespace jetstream::fanout
