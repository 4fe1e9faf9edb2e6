// A bounded LRU cache of resolved identities with expiry, shared by the threads that read keys
// (decode's workers) and the one that resolves (the resolver actor). Thread-safe; every
// operation is O(1) under one mutex held for a few map operations.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/identity/did_document.hpp"

namespace jetstream::identity {

/// What resolving a DID produced: its document, or why there is none (cached too, for a shorter
/// time, so a DID that does not resolve is not fetched again for every commit).
struct Resolution {
  std::optional<DidDocument> document;
  std::string failure;  ///< a metric reason such as "not_found" when `document` is empty
  std::int64_t fetched_at_us = 0;
  bool by_refresh = false;  ///< fetched because a key failed against the cached document
};
using ResolutionPtr = std::shared_ptr<const Resolution>;

class IdentityCache {
 public:
  explicit IdentityCache(std::size_t capacity);

  /// The entry for `did` unless absent or expired at `now_us` (an expired entry is removed).
  /// Marks it most recently used.
  ResolutionPtr find(std::string_view did, std::int64_t now_us);
  /// Stores or replaces the entry for `did`, valid until `expires_at_us`; evicts the least
  /// recently used entry beyond the capacity.
  void put(std::string_view did, ResolutionPtr resolution, std::int64_t expires_at_us);
  /// Forgets `did` (an `#identity` event: its key or PDS may have changed). True if it was held.
  bool invalidate(std::string_view did);

  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }

  struct Counters {
    std::atomic<std::uint64_t> hits{0};
    std::atomic<std::uint64_t> misses{0};
    std::atomic<std::uint64_t> expired{0};
    std::atomic<std::uint64_t> evicted{0};
    std::atomic<std::uint64_t> invalidated{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Entry {
    std::string did;
    ResolutionPtr resolution;
    std::int64_t expires_at_us = 0;
  };
  using Order = std::list<Entry>;  // most recently used first

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  Order order_;
  std::unordered_map<std::string_view, Order::iterator> index_;  // keys view Entry::did
  Counters counters_;
};

}  // namespace jetstream::identity
