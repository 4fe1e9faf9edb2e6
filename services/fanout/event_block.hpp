// An immutable run of consecutive events as fanout sends them: each event's websocket text frame
// (its v1 JSON) and binary frame (its zstd bytes) built once, in one allocation, and shared by
// every client that receives them. Blocks come from decode's live stream and from replay pages.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/events.hpp"

namespace jetstream::fanout {

/// One event of a block. Frames and strings point into the block's arena.
struct BlockEvent {
  std::int64_t time_us = 0;
  std::int64_t prev_time_us = 0;
  proto::EventKind kind = proto::EventKind::commit;
  bool backfill = false;  ///< a backfilled record: for snapshot=true connections only
  std::string_view did;
  std::string_view collection;
  std::span<const std::uint8_t> text_frame;    ///< websocket text frame: header + JSON
  std::span<const std::uint8_t> binary_frame;  ///< websocket binary frame: header + zstd; empty
                                               ///< when decode has no dictionary
  std::uint32_t json_size = 0;                 ///< payload sizes, for maxMessageSizeBytes
  std::uint32_t zstd_size = 0;
};

class EventBlock {
 public:
  /// Builds a block from decoded events (views into a received message, copied here).
  static std::shared_ptr<const EventBlock> build(std::span<const proto::EventView> events);

  std::span<const BlockEvent> events() const { return events_; }
  bool empty() const { return events_.empty(); }
  std::int64_t first_prev_time_us() const { return events_.front().prev_time_us; }
  std::int64_t first_time_us() const { return events_.front().time_us; }
  std::int64_t last_time_us() const { return events_.back().time_us; }
  /// Bytes held (arena + index), for the window's memory bound.
  std::size_t memory_bytes() const {
    return arena_.capacity() + events_.capacity() * sizeof(BlockEvent);
  }
  /// Index of the first event with time_us > `position` (events().size() if none).
  std::size_t first_after(std::int64_t position) const;
  /// When the block was built, i.e. when its events reached fanout (live or from a replay page).
  std::chrono::steady_clock::time_point arrived_at() const { return arrived_at_; }

 private:
  std::chrono::steady_clock::time_point arrived_at_ = std::chrono::steady_clock::now();
  std::string arena_;
  std::vector<BlockEvent> events_;
};

using BlockPtr = std::shared_ptr<const EventBlock>;

}  // namespace jetstream::fanout
