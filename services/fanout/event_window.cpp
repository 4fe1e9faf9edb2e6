#include "services/fanout/event_window.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace jetstream::fanout {

void EventWindow::append(BlockPtr block) {
  if (block->empty()) return;
  std::unique_lock lock(mutex_);
  if (!blocks_.empty() && block->first_prev_time_us() != head_) {
    // The feed repairs gaps before appending; a broken chain here is a bug in the feed.
    std::fprintf(stderr, "fatal: event window chain broken: head %lld, block prev %lld\n",
                 static_cast<long long>(head_),
                 static_cast<long long>(block->first_prev_time_us()));
    std::abort();
  }
  // The figure counted now is the one taken back at eviction: a block's deflate frames may be
  // made later (only while deflate clients are connected), and the feed makes a live block's
  // before appending it when they are.
  const std::size_t bytes = block->memory_bytes();
  bytes_ += bytes;
  head_ = block->last_time_us();
  blocks_.push_back(std::move(block));
  counted_bytes_.push_back(bytes);
  // Keep at least one block: a client at the head must always be "covered" or "caught up".
  while (blocks_.size() > 1 && bytes_ > max_bytes_) {
    bytes_ -= counted_bytes_.front();
    blocks_.pop_front();
    counted_bytes_.pop_front();
  }
}

void EventWindow::reset(std::int64_t head) {
  std::unique_lock lock(mutex_);
  blocks_.clear();
  counted_bytes_.clear();
  bytes_ = 0;
  head_ = head;
}

EventWindow::Coverage EventWindow::after(std::int64_t position, std::size_t max_blocks,
                                         std::vector<BlockPtr>& out) const {
  out.clear();
  std::shared_lock lock(mutex_);
  if (position >= head_) return Coverage::caught_up;
  if (blocks_.empty() || position < blocks_.front()->first_prev_time_us()) return Coverage::too_old;
  // First block whose last event is after the position (blocks are in time_us order). Live
  // sessions ask for the newest few blocks, so look back from the head before searching the
  // whole window (hundreds of thousands of blocks, each step a cache miss).
  auto first = blocks_.end();
  for (int steps = 0; first != blocks_.begin() && (*(first - 1))->last_time_us() > position;
       ++steps) {
    if (steps == 16) {
      first = std::partition_point(blocks_.begin(), first, [position](const BlockPtr& b) {
        return b->last_time_us() <= position;
      });
      break;
    }
    --first;
  }
  for (auto it = first; it != blocks_.end() && out.size() < max_blocks; ++it) out.push_back(*it);
  return Coverage::covered;
}

std::int64_t EventWindow::newest() const {
  std::shared_lock lock(mutex_);
  return head_;
}

std::int64_t EventWindow::oldest_position() const {
  std::shared_lock lock(mutex_);
  return blocks_.empty() ? head_ : blocks_.front()->first_prev_time_us();
}

std::size_t EventWindow::bytes() const {
  std::shared_lock lock(mutex_);
  return bytes_;
}

std::size_t EventWindow::block_count() const {
  std::shared_lock lock(mutex_);
  return blocks_.size();
}

}  // namespace jetstream::fanout
