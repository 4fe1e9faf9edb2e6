// The bounded in-memory window of recent events: an unbroken chain of blocks (each block's first
// prev_time_us is the previous block's last time_us). Written by the feed thread, read by every
// client session; readers copy block pointers under a shared lock and never hold it while sending.
#pragma once

#include <cstdint>
#include <deque>
#include <shared_mutex>
#include <vector>

#include "services/fanout/event_block.hpp"

namespace jetstream::fanout {

class EventWindow {
 public:
  explicit EventWindow(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  /// Appends a block that continues the chain (block.first_prev_time_us == newest()), or starts
  /// a new chain when the window is empty. Evicts the oldest blocks beyond the memory bound.
  void append(BlockPtr block);

  /// Drops everything (the chain broke and could not be repaired).
  void reset(std::int64_t head);

  enum class Coverage : std::uint8_t {
    covered,    ///< `blocks` holds every event after the position, in order
    caught_up,  ///< nothing newer than the position yet
    too_old,    ///< events right after the position are no longer in memory: read the log
  };
  /// The blocks holding events with time_us > `position`, at most `max_blocks` of them.
  Coverage after(std::int64_t position, std::size_t max_blocks,
                 std::vector<BlockPtr>& blocks) const;

  /// time_us of the newest event in the chain (its head), 0 before the first block.
  std::int64_t newest() const;
  /// The position from which the window is complete: its first block's prev_time_us.
  std::int64_t oldest_position() const;
  std::size_t bytes() const;
  std::size_t block_count() const;

 private:
  mutable std::shared_mutex mutex_;
  std::deque<BlockPtr> blocks_;
  std::deque<std::size_t> counted_bytes_;  ///< memory_bytes() of each block when it was appended
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::int64_t head_ = 0;
};

}  // namespace jetstream::fanout
