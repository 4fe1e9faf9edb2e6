// The one clock of the project. `wall_clock_us` is what decode stamps `time_us` with, what
// ingest stamps a frame's arrival with, and what fanout and jetstream-loadgen measure lag against:
// every process must read the same clock (CLOCK_REALTIME) for those differences to mean anything.
#pragma once

#include <cstdint>

namespace jetstream::clock {

/// Microseconds since the Unix epoch (CLOCK_REALTIME). May step backwards when the system clock
/// is set; decode's sequencer keeps `time_us` strictly increasing regardless.
std::int64_t wall_clock_us() noexcept;

/// Microseconds of CLOCK_MONOTONIC: for durations and deadlines inside one process.
std::int64_t steady_clock_us() noexcept;

}  // namespace jetstream::clock
