// An immutable run of consecutive events as fanout sends them: each event's websocket text frame
// (its v1 JSON) and binary frame (its zstd bytes) built once, in one allocation, and shared by
// every client that receives them. Blocks come from decode's live stream and from replay pages.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
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

/// Each event's permessage-deflate text frame (RSV1, RFC 7692, compressed alone), back to back,
/// so consecutive events are one contiguous range like the other encodings. An event that does not
/// get smaller is sent uncompressed (RSV1 clear), which the extension allows.
struct DeflatedFrames {
  std::string arena;
  std::vector<std::span<const std::uint8_t>> frames;  ///< one per event of the block
  std::size_t memory_bytes() const {
    return arena.capacity() + frames.capacity() * sizeof(frames[0]);
  }
};

/// permessage-deflate on one replica (thread-safe): who needs it, and what compressing blocks
/// cost and saved (read by the probe).
struct DeflateStats {
  /// Connected subscribers that negotiated permessage-deflate: while there are any, the feed
  /// compresses each live block before it is shared, off the sessions' threads.
  std::atomic<std::int64_t> clients{0};
  std::atomic<std::uint64_t> events{0};         ///< events compressed
  std::atomic<std::uint64_t> json_bytes{0};     ///< their JSON
  std::atomic<std::uint64_t> deflate_bytes{0};  ///< the payloads sent instead
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
  /// Bytes held (arena + index, and the deflate frames once made), for the window's memory
  /// bound. Grows once when `deflated` is first made: the window keeps the figure it counted.
  std::size_t memory_bytes() const {
    return arena_.capacity() + events_.capacity() * sizeof(BlockEvent) +
           (has_deflated() ? deflated_.memory_bytes() : 0);
  }
  /// Index of the first event with time_us > `position` (events().size() if none).
  std::size_t first_after(std::int64_t position) const;
  /// When the block was built, i.e. when its events reached fanout (live or from a replay page).
  std::chrono::steady_clock::time_point arrived_at() const { return arrived_at_; }

  /// The permessage-deflate frames of the block's events, made on the first call (from any
  /// thread; concurrent callers wait for the one that compresses) and shared by every deflate
  /// client from then on: an event is compressed once per replica, and only once a client needs
  /// it. `totals` (may be null) counts the work when this call did it.
  const DeflatedFrames& deflated(DeflateStats* totals) const;
  /// Whether `deflated` has been made (no wait).
  bool has_deflated() const { return deflated_ready_.load(std::memory_order_acquire); }

 private:
  std::chrono::steady_clock::time_point arrived_at_ = std::chrono::steady_clock::now();
  std::string arena_;
  std::vector<BlockEvent> events_;
  // Made lazily, once: a block is shared and otherwise immutable.
  mutable std::once_flag deflated_once_;
  mutable std::atomic<bool> deflated_ready_{false};
  mutable DeflatedFrames deflated_;
};

using BlockPtr = std::shared_ptr<const EventBlock>;

}  // namespace jetstream::fanout
