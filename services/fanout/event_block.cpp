#include "services/fanout/event_block.hpp"

#include <algorithm>

#include "common/websocket/codec.hpp"
#include "common/websocket/permessage_deflate.hpp"

namespace jetstream::fanout {

namespace {

/// Appends a final, unmasked frame header for `payload_size` bytes.
void append_frame_header(std::string& out, websocket::Opcode opcode, std::size_t payload_size,
                         bool compressed = false) {
  std::uint8_t header[websocket::kMaxServerHeaderBytes];
  out.append(reinterpret_cast<const char*>(header),
             websocket::write_frame_header(opcode, payload_size, header, compressed));
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

const DeflatedFrames& EventBlock::deflated(DeflateStats* totals) const {
  std::call_once(deflated_once_, [&] {
    // One compressor per thread: zlib's state is ~300 KB, and the feed's thread and a few actor
    // threads are all that ever compress.
    thread_local websocket::MessageDeflater deflater;
    DeflatedFrames& out = deflated_;
    std::size_t json_total = 0;
    for (const BlockEvent& event : events_) json_total += event.json_size;
    out.arena.reserve(json_total / 2 + events_.size() * websocket::kMaxServerHeaderBytes);
    std::vector<std::size_t> offsets(events_.size() + 1);
    std::string payload;
    std::uint64_t deflate_bytes = 0;
    for (std::size_t i = 0; i < events_.size(); ++i) {
      const BlockEvent& event = events_[i];
      const std::size_t header = event.text_frame.size() - event.json_size;
      const std::string_view json(reinterpret_cast<const char*>(event.text_frame.data()) + header,
                                  event.json_size);
      payload.clear();
      deflater.compress(json, payload);
      offsets[i] = out.arena.size();
      if (payload.size() < json.size()) {
        append_frame_header(out.arena, websocket::Opcode::kText, payload.size(), true);
        out.arena.append(payload);
        deflate_bytes += payload.size();
      } else {
        // Incompressible (tiny) JSON goes as it is: RSV1 clear is an uncompressed message.
        out.arena.append(reinterpret_cast<const char*>(event.text_frame.data()),
                         event.text_frame.size());
        deflate_bytes += json.size();
      }
    }
    offsets[events_.size()] = out.arena.size();
    // The arena no longer grows: spans into it are stable.
    const auto* base = reinterpret_cast<const std::uint8_t*>(out.arena.data());
    out.frames.reserve(events_.size());
    for (std::size_t i = 0; i < events_.size(); ++i) {
      out.frames.emplace_back(base + offsets[i], offsets[i + 1] - offsets[i]);
    }
    if (totals != nullptr) {
      totals->events.fetch_add(events_.size(), std::memory_order_relaxed);
      totals->json_bytes.fetch_add(json_total, std::memory_order_relaxed);
      totals->deflate_bytes.fetch_add(deflate_bytes, std::memory_order_relaxed);
    }
    deflated_ready_.store(true, std::memory_order_release);
  });
  return deflated_;
}

std::size_t EventBlock::first_after(std::int64_t position) const {
  const auto it =
      std::upper_bound(events_.begin(), events_.end(), position,
                       [](std::int64_t p, const BlockEvent& e) { return p < e.time_us; });
  return static_cast<std::size_t>(it - events_.begin());
}

}  // namespace jetstream::fanout
