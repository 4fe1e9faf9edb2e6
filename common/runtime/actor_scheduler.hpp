// The CAF actor system every service runs, configured the same way: a fixed number of
// work-stealing threads whose idle polling does not burn the cores the other processes of the
// pipeline (and the kernel's socket work) need.
#pragma once

#include <caf/actor_system_config.hpp>
#include <cstddef>
#include <memory>

namespace jetstream::runtime {

/// A CAF configuration with `threads` scheduler threads (at least one).
///
/// Why not CAF 0.17's defaults: an idle worker first spins 100 polls, then sleeps 50 µs between
/// 500 more polls (25 ms of timer wake-ups) before it blocks on its condition variable. Events
/// arrive every fraction of a millisecond, so every idle worker of every service would stay in
/// that middle phase forever: ~10,000 context switches per second per thread, CPU the fanout's
/// socket writes then lack (measured: the decode process at 2,000 events/s used a quarter of a
/// core doing mostly that). Here a worker spins briefly (a burst of messages is served without
/// a sleep) and then waits on its condition variable, which an enqueue signals (it still wakes
/// every 10 ms to try stealing work from the other workers).
std::unique_ptr<caf::actor_system_config> actor_system_config(std::size_t threads);

}  // namespace jetstream::runtime
