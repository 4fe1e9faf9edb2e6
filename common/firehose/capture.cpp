#include "common/firehose/capture.hpp"

#include <algorithm>

namespace jetstream::firehose {
namespace {

std::uint32_t load_le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
         (std::uint32_t{p[3]} << 24);
}

}  // namespace

CaptureReadStatus CaptureReader::next() {
  std::uint8_t prefix[4];
  in_.read(reinterpret_cast<char*>(prefix), sizeof prefix);
  const auto got = in_.gcount();
  if (got == 0) return CaptureReadStatus::end;
  if (got != sizeof prefix) return CaptureReadStatus::truncated;
  const std::uint32_t length = load_le32(prefix);
  if (length > kMaxCaptureFrameBytes) return CaptureReadStatus::oversize;
  buffer_.resize(length);
  in_.read(reinterpret_cast<char*>(buffer_.data()), length);
  if (static_cast<std::uint32_t>(in_.gcount()) != length) return CaptureReadStatus::truncated;
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
