#include "services/fanout/write_queue.hpp"

#include <algorithm>

namespace jetstream::fanout {

void WriteQueue::push_back(Kind kind, SharedFrame frame) {
  if (frame.size == 0) return;
  entries_.push_back(Entry{std::move(frame), kind});
}

void WriteQueue::push_control(Kind kind, SharedFrame frame) {
  std::size_t pos = front_offset_ > 0 ? 1 : 0;
  while (pos < entries_.size()) {
    Entry& entry = entries_[pos];
    if (entry.kind == Kind::kPong && kind == Kind::kPong) {
      entry.frame = std::move(frame);
      return;
    }
    if (entry.kind != Kind::kHandshake && entry.kind != Kind::kPing && entry.kind != Kind::kPong) {
      break;
    }
    ++pos;
  }
  entries_.insert(entries_.begin() + static_cast<std::ptrdiff_t>(pos),
                  Entry{std::move(frame), kind});
}

WriteQueue::Discarded WriteQueue::discard_unsent() {
  const std::size_t keep = front_offset_ > 0 ? 1 : 0;
  if (keep != 0 && !entries_.front().frame.owner) {
    // The frame being written borrows its bytes' owner from a later data frame of its batch
    // (see SharedFrame) that is about to be dropped: take that owner over. Control frames
    // (a pong or ping queued right behind it) own only their own bytes.
    for (std::size_t i = 1; i < entries_.size(); ++i) {
      if (entries_[i].kind == Kind::kData && entries_[i].frame.owner) {
        entries_.front().frame.owner = entries_[i].frame.owner;
        break;
      }
    }
  }
  Discarded discarded;
  std::deque<Entry> kept;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    Entry& entry = entries_[i];
    if (i < keep || entry.kind == Kind::kHandshake || entry.kind == Kind::kPong) {
      kept.push_back(std::move(entry));
    } else if (entry.kind == Kind::kData) {
      discarded.data_bytes += entry.frame.size;
    } else if (entry.kind == Kind::kPing) {
      discarded.ping_dropped = true;
    }
  }
  entries_.swap(kept);
  return discarded;
}

std::uint64_t WriteQueue::clear() {
  std::uint64_t dropped = 0;
  for (const auto& entry : entries_) {
    if (entry.kind == Kind::kData) dropped += entry.frame.size;
  }
  if (!entries_.empty() && entries_.front().kind == Kind::kData) dropped -= front_offset_;
  entries_.clear();
  front_offset_ = 0;
  return dropped;
}

WriteQueue::Gather WriteQueue::gather(std::span<iovec> iov, std::size_t max_frames,
                                      std::size_t max_bytes) const {
  Gather out;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (out.frames >= max_frames || out.bytes >= max_bytes) break;
    const SharedFrame& frame = entries_[i].frame;
    const std::size_t skip = i == 0 ? front_offset_ : 0;
    const std::uint8_t* data = frame.data + skip;
    const std::size_t size = frame.size - skip;
    if (out.iov_count > 0 && static_cast<const std::uint8_t*>(iov[out.iov_count - 1].iov_base) +
                                     iov[out.iov_count - 1].iov_len ==
                                 data) {
      iov[out.iov_count - 1].iov_len += size;  // adjacent in one batch buffer: one iovec
    } else {
      if (out.iov_count == iov.size()) break;
      iov[out.iov_count++] = iovec{const_cast<std::uint8_t*>(data), size};
    }
    ++out.frames;
    out.bytes += size;
  }
  return out;
}

WriteQueue::Consumed WriteQueue::consume(
    std::size_t sent,
    const std::function<void(std::chrono::steady_clock::duration)>& on_frame_written) {
  Consumed out;
  while (sent > 0 && !entries_.empty()) {
    Entry& entry = entries_.front();
    const std::size_t take = std::min(entry.frame.size - front_offset_, sent);
    sent -= take;
    front_offset_ += take;
    if (entry.kind == Kind::kData) out.data_bytes += take;
    if (front_offset_ < entry.frame.size) break;
    if (entry.kind == Kind::kData) {
      ++out.data_frames;
      if (entry.frame.measure_from != std::chrono::steady_clock::time_point{} && on_frame_written) {
        on_frame_written(std::chrono::steady_clock::now() - entry.frame.measure_from);
      }
    }
    if (entry.kind == Kind::kPing) out.ping_written = true;
    if (entry.kind == Kind::kClose) out.close_written = true;
    entries_.pop_front();
    front_offset_ = 0;
  }
  return out;
}

}  // namespace jetstream::fanout
