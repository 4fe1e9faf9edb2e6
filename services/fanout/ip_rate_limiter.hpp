// The per-client-IP delivery limit (v1 --max-sub-rate, 5,000 events/s): a token bucket per IP
// shared by every connection from that IP. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace jetstream::fanout {

class IpRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  /// `events_per_second` <= 0 disables the limit. The burst equals one second of rate.
  explicit IpRateLimiter(double events_per_second) : rate_(events_per_second) {}

  /// Takes up to `wanted` tokens for `ip`; returns how many were granted (0..wanted).
  std::uint64_t take(std::string_view ip, std::uint64_t wanted,
                     Clock::time_point now = Clock::now());
  /// Returns tokens taken but not used.
  void give_back(std::string_view ip, std::uint64_t unused);
  /// Forgets buckets idle for longer than `idle` (full buckets carry no state worth keeping).
  void forget_idle(std::chrono::seconds idle, Clock::time_point now = Clock::now());
  bool enabled() const { return rate_ > 0; }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  double rate_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace jetstream::fanout
