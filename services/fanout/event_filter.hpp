// The per-event decision for one subscriber: does this event match its filters, and may a payload
// of this size be sent? Built once per options change, read for every event, so it is
// allocation-free and hashes only when a filter is set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "proto/events.hpp"
#include "proto/replay.hpp"
#include "services/fanout/subscriber_options.hpp"

namespace jetstream::fanout {

class EventFilter {
 public:
  /// Matches every event; no size limit.
  EventFilter() = default;
  explicit EventFilter(const SubscriberFilters& filters, std::uint32_t max_message_size_bytes = 0);
  explicit EventFilter(const SubscriberOptions& options)
      : EventFilter(options.filters, options.max_message_size_bytes) {}

  /// The DID filter applies to every kind. The collection filter applies to commits only:
  /// identity and account events, and a commit with an empty collection, pass it. Exact
  /// collections and DIDs compare byte for byte; prefixes (`app.bsky.`) with starts_with.
  [[nodiscard]] bool matches(proto::EventKind kind, std::string_view did,
                             std::string_view collection) const noexcept;
  [[nodiscard]] bool matches(const proto::EventView& event) const noexcept {
    return matches(event.kind, event.did, event.collection);
  }

  /// maxMessageSizeBytes: whether a payload of this many bytes, as it goes on the wire (the zstd
  /// frame for compressing clients, else the JSON), may be sent. Always true with no limit.
  [[nodiscard]] bool accepts_size(std::size_t sent_payload_bytes) const noexcept {
    return max_message_size_bytes_ == 0 || sent_payload_bytes <= max_message_size_bytes_;
  }

  [[nodiscard]] std::uint32_t max_message_size_bytes() const noexcept {
    return max_message_size_bytes_;
  }
  /// No DID and no collection filter.
  [[nodiscard]] bool matches_every_event() const noexcept {
    return dids_.empty() && collections_.empty() && collection_prefixes_.empty();
  }

 private:
  /// A set of strings with string_view lookup: a linear scan while small (cheaper than hashing a
  /// DID), a hash set beyond that.
  class StringSet {
   public:
    StringSet() = default;
    explicit StringSet(const std::vector<std::string>& values);
    [[nodiscard]] bool empty() const noexcept { return values_.empty(); }
    [[nodiscard]] bool contains(std::string_view value) const noexcept;

   private:
    static constexpr std::size_t kMaxLinear = 8;
    struct Hash {
      using is_transparent = void;
      std::size_t operator()(std::string_view value) const noexcept {
        return std::hash<std::string_view>{}(value);
      }
    };
    std::vector<std::string> values_;  // always filled; scanned when size() <= kMaxLinear
    std::unordered_set<std::string, Hash, std::equal_to<>> hashed_;  // filled when larger
  };

  DidSet dids_;  // shared with the subscriber's options, not copied
  StringSet collections_;
  std::vector<std::string> collection_prefixes_;
  std::uint32_t max_message_size_bytes_ = 0;
};

/// The filters as decode's replay applies them: exact collections, prefixes (`app.bsky.`, the
/// `*` already removed) and DIDs; every other field of the request is left at its default for
/// the caller to set. SubscriberFilters are already within proto's limits (100 patterns, 10,000
/// DIDs, short strings), so the request passes proto::validate once the caller's fields are set.
[[nodiscard]] proto::ReplayRequest to_replay_filters(const SubscriberFilters& filters);

}  // namespace jetstream::fanout
