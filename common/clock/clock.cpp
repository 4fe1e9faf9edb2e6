#include "common/clock/clock.hpp"

#include <time.h>

namespace jetstream::clock {
namespace {

std::int64_t read_us(clockid_t which) noexcept {
  timespec ts{};
  ::clock_gettime(which, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

}  // namespace

std::int64_t wall_clock_us() noexcept { return read_us(CLOCK_REALTIME); }
std::int64_t steady_clock_us() noexcept { return read_us(CLOCK_MONOTONIC); }

}  // namespace jetstream::clock
