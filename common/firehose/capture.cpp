#include "common/firehose/capture.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace jetstream::firehose {
namespace {

std::uint32_t load_le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
         (std::uint32_t{p[3]} << 24);
}

}  // namespace

CaptureReader::CaptureReader(std::istream& in) : in_(&in), buffer_(kCaptureBlockBytes) {}

CaptureReader::CaptureReader(int fd) : fd_(fd), buffer_(kCaptureBlockBytes) {}

std::size_t CaptureReader::read_some(std::uint8_t* into, std::size_t capacity) {
  if (in_ != nullptr) {
    in_->read(reinterpret_cast<char*>(into), static_cast<std::streamsize>(capacity));
    return static_cast<std::size_t>(in_->gcount());
  }
  for (;;) {
    const ssize_t got = ::read(fd_, into, capacity);
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno != EINTR) return 0;  // an unreadable input ends like a short one: truncated or end
  }
}

bool CaptureReader::fill(std::size_t need) {
  if (end_ - begin_ >= need) return true;
  if (at_end_) return false;
  // Keep the unread tail, moved to the front, and read after it.
  std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
  if (buffer_.size() < need) buffer_.resize(need);  // a frame larger than a block
  while (end_ < need) {
    const std::size_t got = read_some(buffer_.data() + end_, buffer_.size() - end_);
    if (got == 0) {
      at_end_ = true;
      return false;
    }
    end_ += got;
  }
  return true;
}

bool CaptureReader::has_buffered_frame() const {
  const std::size_t unread = end_ - begin_;
  return unread >= 4 && unread - 4 >= load_le32(buffer_.data() + begin_);
}

CaptureReadStatus CaptureReader::next() {
  frame_ = {};
  if (!fill(4)) return end_ == begin_ ? CaptureReadStatus::end : CaptureReadStatus::truncated;
  const std::uint32_t length = load_le32(buffer_.data() + begin_);
  if (length > kMaxCaptureFrameBytes) return CaptureReadStatus::oversize;
  if (!fill(std::size_t{4} + length)) return CaptureReadStatus::truncated;
  frame_ = {buffer_.data() + begin_ + 4, length};
  begin_ += std::size_t{4} + length;
  return CaptureReadStatus::frame;
}

std::optional<std::vector<byte_view>> split_capture(byte_view capture) {
  std::vector<byte_view> frames;
  std::size_t offset = 0;
  while (offset < capture.size()) {
    if (capture.size() - offset < 4) return std::nullopt;
    const std::uint32_t length = load_le32(capture.data() + offset);
    offset += 4;
    if (length > capture.size() - offset || length > kMaxCaptureFrameBytes) return std::nullopt;
    frames.push_back(capture.subspan(offset, length));
    offset += length;
  }
  return frames;
}

void write_capture_frame(std::ostream& out, byte_view frame) {
  const auto length = static_cast<std::uint32_t>(frame.size());
  const char prefix[4] = {static_cast<char>(length & 0xff), static_cast<char>((length >> 8) & 0xff),
                          static_cast<char>((length >> 16) & 0xff),
                          static_cast<char>((length >> 24) & 0xff)};
  out.write(prefix, sizeof prefix);
  out.write(reinterpret_cast<const char*>(frame.data()),
            static_cast<std::streamsize>(frame.size()));
}

bool rewrite_frame_seq(std::vector<std::uint8_t>& frame, std::uint64_t seq) {
  static constexpr std::uint8_t kSeqKey[] = {0x63, 's', 'e', 'q', 0x1b};  // "seq": uint64 follows
  const auto at = std::search(frame.begin(), frame.end(), std::begin(kSeqKey), std::end(kSeqKey));
  if (at == frame.end() || frame.end() - at < 5 + 8) return false;
  for (int b = 0; b < 8; ++b) *(at + 5 + b) = static_cast<std::uint8_t>(seq >> (8 * (7 - b)));
  return true;
}

}  // namespace jetstream::firehose
