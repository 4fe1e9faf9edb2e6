// The capture file format shared by tools and tests: repeated [u32 little-endian length][frame].
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"

namespace jetstream::firehose {

/// Largest frame a capture may hold; a larger declared length means a corrupt file.
inline constexpr std::uint32_t kMaxCaptureFrameBytes = 64u << 20;

enum class CaptureReadStatus : std::uint8_t { frame, end, truncated, oversize };

/// Reads frames one at a time from a stream (a file or stdin).
class CaptureReader {
 public:
  explicit CaptureReader(std::istream& in) : in_(in) {}

  /// On `frame`, `frame()` holds the frame bytes until the next call.
  CaptureReadStatus next();
  byte_view frame() const { return {buffer_.data(), buffer_.size()}; }

 private:
  std::istream& in_;
  std::vector<std::uint8_t> buffer_;
};

/// Splits an in-memory capture into frame views; nullopt if it is truncated or corrupt.
std::optional<std::vector<byte_view>> split_capture(byte_view capture);

void write_capture_frame(std::ostream& out, byte_view frame);

/// Rewrites the body `seq` of a frame in place, for synthetic captures (benchmarks, demos): the
/// value must be encoded as a CBOR uint64 (as relays encode seqs), else nothing changes and the
/// result is false.
bool rewrite_frame_seq(std::vector<std::uint8_t>& frame, std::uint64_t seq);

}  // namespace jetstream::firehose
