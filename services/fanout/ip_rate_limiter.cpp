#include "services/fanout/ip_rate_limiter.hpp"

#include <algorithm>

namespace jetstream::fanout {

std::uint64_t IpRateLimiter::take(std::string_view ip, std::uint64_t wanted,
                                  Clock::time_point now) {
  if (rate_ <= 0) return wanted;
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(std::string(ip));
  if (it == buckets_.end()) it = buckets_.emplace(std::string(ip), Bucket{rate_, now}).first;
  Bucket& bucket = it->second;
  const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
  bucket.tokens = std::min(rate_, bucket.tokens + elapsed * rate_);
  bucket.updated = now;
  const auto granted = std::min<std::uint64_t>(wanted, static_cast<std::uint64_t>(bucket.tokens));
  bucket.tokens -= static_cast<double>(granted);
  return granted;
}

void IpRateLimiter::give_back(std::string_view ip, std::uint64_t unused) {
  if (rate_ <= 0 || unused == 0) return;
  std::lock_guard lock(mutex_);
  const auto it = buckets_.find(std::string(ip));
  if (it != buckets_.end())
    it->second.tokens = std::min(rate_, it->second.tokens + static_cast<double>(unused));
}

void IpRateLimiter::forget_idle(std::chrono::seconds idle, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    it = now - it->second.updated > idle ? buckets_.erase(it) : std::next(it);
  }
}

}  // namespace jetstream::fanout
