// The one EventKind: what a v1 event is. The encoder (common/firehose) produces it, the wire
// (proto/events.hpp) carries it as one byte, the log stores it, fanout filters on it.
#pragma once

#include <cstdint>
#include <string_view>

namespace jetstream::proto {

/// The wire values are part of the contract (proto/README.md): never renumber.
enum class EventKind : std::uint8_t {
  commit = 1,
  identity = 2,
  account = 3,
};

/// `commit`, `identity`, `account` (the v1 `kind` field), `unknown` for any other byte.
constexpr std::string_view to_string(EventKind kind) noexcept {
  switch (kind) {
    case EventKind::commit: return "commit";
    case EventKind::identity: return "identity";
    case EventKind::account: return "account";
  }
  return "unknown";
}

}  // namespace jetstream::proto
