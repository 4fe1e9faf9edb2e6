#include "services/ingest/backoff.hpp"

#include <algorithm>

namespace jetstream::ingest {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                 std::uint64_t seed)
    : initial_(std::max(initial, std::chrono::milliseconds{1})),
      max_(std::max(max, initial_)),
      random_(seed) {}

std::chrono::milliseconds Backoff::nominal() const {
  auto delay = initial_;
  for (std::uint32_t i = 0; i < attempt_ && delay < max_; ++i) delay *= 2;
  return std::min(delay, max_);
}

std::chrono::milliseconds Backoff::next() {
  const auto delay = nominal();
  if (attempt_ < 64) ++attempt_;
  std::uniform_int_distribution<std::int64_t> jitter(delay.count() / 2, delay.count());
  return std::chrono::milliseconds{jitter(random_)};
}

}  // namespace jetstream::ingest
