#include "common/identity/identity_cache.hpp"

#include <cstdio>
#include <cstdlib>

namespace jetstream::identity {

IdentityCache::IdentityCache(std::size_t capacity) : capacity_(capacity) {
  if (capacity_ == 0) {
    std::fputs("fatal: IdentityCache capacity must be positive\n", stderr);
    std::abort();
  }
}

ResolutionPtr IdentityCache::find(std::string_view did, std::int64_t now_us) {
  std::lock_guard lock(mutex_);
  const auto found = index_.find(did);
  if (found == index_.end()) {
    counters_.misses.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  const auto entry = found->second;
  if (entry->expires_at_us <= now_us) {
    index_.erase(found);
    order_.erase(entry);
    counters_.expired.fetch_add(1, std::memory_order_relaxed);
    counters_.misses.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  order_.splice(order_.begin(), order_, entry);
  counters_.hits.fetch_add(1, std::memory_order_relaxed);
  return entry->resolution;
}

void IdentityCache::put(std::string_view did, ResolutionPtr resolution,
                        std::int64_t expires_at_us) {
  std::lock_guard lock(mutex_);
  if (const auto found = index_.find(did); found != index_.end()) {
    found->second->resolution = std::move(resolution);
    found->second->expires_at_us = expires_at_us;
    order_.splice(order_.begin(), order_, found->second);
    return;
  }
  order_.push_front(Entry{std::string(did), std::move(resolution), expires_at_us});
  index_.emplace(order_.front().did, order_.begin());
  while (order_.size() > capacity_) {
    index_.erase(order_.back().did);
    order_.pop_back();
    counters_.evicted.fetch_add(1, std::memory_order_relaxed);
  }
}

bool IdentityCache::invalidate(std::string_view did) {
  std::lock_guard lock(mutex_);
  const auto found = index_.find(did);
  if (found == index_.end()) return false;
  const auto entry = found->second;
  index_.erase(found);
  order_.erase(entry);
  counters_.invalidated.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::size_t IdentityCache::size() const {
  std::lock_guard lock(mutex_);
  return order_.size();
}

}  // namespace jetstream::identity
