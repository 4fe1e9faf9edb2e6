// Exponential backoff with jitter for upstream reconnects.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace jetstream::ingest {

/// Delay before reconnect attempt n (0-based): a uniformly random value in [d/2, d] where
/// d = min(max, initial * 2^n) ("equal jitter": never less than half the nominal delay, so a
/// flapping upstream is not hammered, yet many ingests do not retry in lockstep). Not
/// thread-safe: owned by the connection state machine.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
          std::uint64_t seed = std::random_device{}());

  /// The delay for the next attempt; each call doubles the nominal delay up to `max`.
  std::chrono::milliseconds next();
  /// Back to `initial` (after a connection that delivered frames).
  void reset() { attempt_ = 0; }
  std::uint32_t attempt() const { return attempt_; }
  /// The nominal delay (before jitter) of the next call.
  std::chrono::milliseconds nominal() const;

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::uint32_t attempt_ = 0;
  std::mt19937_64 random_;
};

}  // namespace jetstream::ingest
