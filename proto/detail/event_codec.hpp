// Internal: the per-event layout shared by event batches and replay pages.
#pragma once

#include <cstddef>

#include "proto/detail/codec.hpp"
#include "proto/events.hpp"

namespace jetstream::proto::detail {

/// Encoded size of one event.
std::size_t event_size(const EventView& event) noexcept;
/// Writes one event (the caller has validated it).
void write_event(Writer& writer, const EventView& event) noexcept;
/// Reads one event's structure (lengths within limits); values are checked by validate().
EventView read_event(Reader& reader) noexcept;

}  // namespace jetstream::proto::detail
