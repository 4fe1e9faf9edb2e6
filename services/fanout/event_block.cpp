#include "services/fanout/event_block.hpp"

#include <algorithm>

#include "common/websocket/codec.hpp"

namespace jetstream::fanout {

namespace {

/// Appends a final, unmasked frame header for `payload_size` bytes.
void append_frame_header(std::string& out, websocket::Opcode opcode, std::size_t payload_size) {
  std::uint8_t header[websocket::kMaxServerHeaderBytes];
  out.append(reinterpret_cast<const char*>(header),
             websocket::write_frame_header(opcode, payload_size, header));
}

}  // namespace

std::shared_ptr<const EventBlock> EventBlock::build(std::span<const proto::EventView> events) {
  auto block = std::make_shared<EventBlock>();
  std::size_t total = 0;
  for (const auto& event : events) {
    // The strings, the two payloads and their two frame headers (at most 10 bytes each).
    total += event.did.size() + event.collection.size() + event.json.size() + event.zstd.size() +
             2 * websocket::kMaxServerHeaderBytes;
  }
  block->arena_.reserve(total);
  struct Offsets {
    std::size_t did, collection, text, text_size, binary, binary_size;
  };
  std::vector<Offsets> offsets(events.size());
  std::string& arena = block->arena_;
  // Text frames back to back, then binary frames back to back, then the strings: a client
  // taking consecutive events gets them as one contiguous range (one iovec per run, not one per
  // event), whichever encoding it asked for.
  for (std::size_t i = 0; i < events.size(); ++i) {
    offsets[i].text = arena.size();
    append_frame_header(arena, websocket::Opcode::kText, events[i].json.size());
    arena.append(events[i].json);
    offsets[i].text_size = arena.size() - offsets[i].text;
  }
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& zstd = events[i].zstd;
    offsets[i].binary = arena.size();
    if (!zstd.empty()) {
      append_frame_header(arena, websocket::Opcode::kBinary, zstd.size());
      arena.append(reinterpret_cast<const char*>(zstd.data()), zstd.size());
    }
    offsets[i].binary_size = arena.size() - offsets[i].binary;
  }
  for (std::size_t i = 0; i < events.size(); ++i) {
    offsets[i].did = arena.size();
    arena.append(events[i].did);
    offsets[i].collection = arena.size();
    arena.append(events[i].collection);
  }
  // The arena no longer grows: views into it are stable from here on.
  const auto* base = reinterpret_cast<const std::uint8_t*>(arena.data());
  block->events_.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& event = events[i];
    const Offsets& o = offsets[i];
    BlockEvent out;
    out.time_us = event.time_us;
    out.prev_time_us = event.prev_time_us;
    out.kind = event.kind;
    out.backfill = event.backfill;
    out.did = std::string_view(arena).substr(o.did, event.did.size());
    out.collection = std::string_view(arena).substr(o.collection, event.collection.size());
    out.text_frame = {base + o.text, o.text_size};
    out.binary_frame = {base + o.binary, o.binary_size};
    out.json_size = static_cast<std::uint32_t>(event.json.size());
    out.zstd_size = static_cast<std::uint32_t>(event.zstd.size());
    block->events_.push_back(out);
  }
  return block;
}

std::size_t EventBlock::first_after(std::int64_t position) const {
  const auto it =
      std::upper_bound(events_.begin(), events_.end(), position,
                       [](std::int64_t p, const BlockEvent& e) { return p < e.time_us; });
  return static_cast<std::size_t>(it - events_.begin());
}

}  // namespace jetstream::fanout
