#include "common/firehose/capture.hpp"

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

}  // namespace jetstream::firehose
