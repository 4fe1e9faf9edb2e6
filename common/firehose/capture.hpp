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

/// Reads frames from a stream (a file, stdin, a pipe) in large blocks: one read() per
/// kCaptureBlockBytes rather than two per frame (a third of decode's time went to the kernel that
/// way). A frame is handed out as a view into the block, so reading copies nothing per frame.
class CaptureReader {
 public:
  /// Reads through an istream (tests, in-memory captures); each block read waits until the block
  /// is full or the stream ends.
  explicit CaptureReader(std::istream& in);
  /// Reads a file descriptor the caller keeps open; a block read returns what is there, so a
  /// capture piped in live (`record ... | decode -`) is decoded as it arrives.
  explicit CaptureReader(int fd);

  /// On `frame`, `frame()` holds the frame bytes until the next call.
  CaptureReadStatus next();
  byte_view frame() const { return frame_; }
  /// Whether the next call finds a whole frame already read, so it will not wait on a read():
  /// a consumer that buffers its output flushes it when this is false.
  bool has_buffered_frame() const;

 private:
  /// Makes at least `need` unread bytes available; false at the end of the input before that.
  bool fill(std::size_t need);
  std::size_t read_some(std::uint8_t* into, std::size_t capacity);

  std::istream* in_ = nullptr;
  int fd_ = -1;
  bool at_end_ = false;
  std::vector<std::uint8_t> buffer_;
  std::size_t begin_ = 0;  // first unread byte
  std::size_t end_ = 0;    // one past the last byte read
  byte_view frame_;
};

/// The reader's block size: big enough that the read() per block costs nothing next to the
/// decode of the frames in it, small enough to stay in L2/L3 while it is decoded.
inline constexpr std::size_t kCaptureBlockBytes = 1u << 20;

/// Splits an in-memory capture into frame views; nullopt if it is truncated or corrupt.
std::optional<std::vector<byte_view>> split_capture(byte_view capture);

void write_capture_frame(std::ostream& out, byte_view frame);

/// Rewrites the body `seq` of a frame in place, for synthetic captures (benchmarks, demos): the
/// value must be encoded as a CBOR uint64 (as relays encode seqs), else nothing changes and the
/// result is false.
bool rewrite_frame_seq(std::vector<std::uint8_t>& frame, std::uint64_t seq);

}  // namespace jetstream::firehose
