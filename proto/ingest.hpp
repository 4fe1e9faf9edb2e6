// The messages between ingest and decode (proto/README.md, "ingest ⇄ decode"):
//
//   ingest PUB :6010 ──▶ decode SUB    ["F"][FrameHeader, 47 bytes][upstream frame, untouched]
//   ingest PUB :6010 ──▶ decode SUB    ["S"][Status, 43 bytes]
//   decode PUSH ──▶ ingest PULL :6011  ["R"][Resume, 26 bytes]
//
// All three are fixed-size and decode without allocating.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "proto/wire.hpp"

namespace jetstream::proto {

/// The envelope ingest puts around one upstream websocket frame. Sent as its own ZeroMQ frame so
/// the upstream bytes can follow as a separate frame without being copied.
struct FrameHeader {
  /// Random, nonzero, drawn once per ingest process start.
  std::uint64_t epoch = 0;
  /// 1, 2, 3, ... with no gap within one epoch, across every upstream (re)connection.
  std::uint64_t ingest_seq = 0;
  /// The Resume::resume_id whose upstream stream this frame belongs to (never 0: ingest does not
  /// connect upstream before decode has sent a resume).
  std::uint64_t resume_id = 0;
  /// `seq` read from the frame body; 0 when the frame has none (or ingest could not read it).
  std::int64_t upstream_seq = 0;
  /// Unix microseconds at which ingest finished reading the frame.
  std::int64_t receive_time_us = 0;
  /// Length of the upstream frame part, at most kMaxUpstreamFrameBytes.
  std::uint32_t frame_size = 0;
  /// This is the first frame of the upstream stream ingest (re)started for `resume_id`.
  bool stream_start = false;

  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

inline constexpr std::size_t kFrameHeaderSize = 47;
/// Bit 0 of the flags byte of a frame header; the other bits must be zero.
inline constexpr std::uint8_t kFrameFlagStreamStart = 0x01;

/// A decoded envelope: its header and the upstream frame bytes (a view into the received part).
struct FrameView {
  FrameHeader header;
  std::span<const std::uint8_t> frame;
};

/// Ingest's state, published on the frame socket every status interval (default 1 s), at once
/// after accepting a resume, and at once when the upstream connection opens or closes. Riding
/// in-band with the frames, `last_ingest_seq` tells decode that frames up to it were sent before
/// this status: a lost tail is detected without waiting for the next frame.
struct Status {
  std::uint64_t epoch = 0;             ///< nonzero; a new value means ingest restarted
  std::uint64_t last_ingest_seq = 0;   ///< last frame published in this epoch; 0 = none yet
  std::uint64_t resume_id = 0;         ///< last resume accepted; 0 = none since start
  std::int64_t last_upstream_seq = 0;  ///< last nonzero upstream seq published; 0 = none
  std::int64_t sent_time_us = 0;       ///< ingest's clock when sending this status
  bool connected = false;              ///< the upstream websocket is open right now

  friend bool operator==(const Status&, const Status&) = default;
};

inline constexpr std::size_t kStatusSize = 43;

/// Decode asks ingest to (re)start the upstream stream right after `cursor`.
struct Resume {
  /// Nonzero; chosen by decode, new for each gap it repairs; a retry repeats the same id, and
  /// ingest ignores a resume whose id equals the last one it accepted.
  std::uint64_t resume_id = 0;
  /// The ingest epoch decode last saw (diagnostic: lets ingest log a request aimed at its
  /// predecessor); 0 = none seen.
  std::uint64_t seen_epoch = 0;
  /// Resume after this upstream seq (`?cursor=<cursor>`); -1 = no cursor, start live.
  std::int64_t cursor = -1;

  friend bool operator==(const Resume&, const Resume&) = default;
};

inline constexpr std::size_t kResumeSize = 26;
inline constexpr std::int64_t kLiveCursor = -1;

// ---- Validation: the rules the decoders enforce on field values, for senders that build a
// ---- message from data they did not produce. Encoders check them too and abort on a violation.

std::optional<DecodeError> validate(const FrameHeader& header) noexcept;
std::optional<DecodeError> validate(const Status& status) noexcept;
std::optional<DecodeError> validate(const Resume& resume) noexcept;

// ---- Encoders. Their input must pass validate(); otherwise they abort (a bug in the sender).

std::array<std::uint8_t, kFrameHeaderSize> encode_frame_header(const FrameHeader& header) noexcept;
std::array<std::uint8_t, kStatusSize> encode_status(const Status& status) noexcept;
std::array<std::uint8_t, kResumeSize> encode_resume(const Resume& resume) noexcept;

// ---- Decoders: strict, bounds-checked, no allocation, no exceptions.

/// The header part alone (frame_size is range-checked, not compared with anything).
DecodeResult<FrameHeader> decode_frame_header(std::span<const std::uint8_t> header_part) noexcept;
/// Header and upstream frame parts together: the frame part must be exactly `frame_size` bytes
/// long (shorter: truncated; longer: trailing_bytes).
DecodeResult<FrameView> decode_frame(std::span<const std::uint8_t> header_part,
                                     std::span<const std::uint8_t> frame_part) noexcept;
DecodeResult<Status> decode_status(std::span<const std::uint8_t> body) noexcept;
DecodeResult<Resume> decode_resume(std::span<const std::uint8_t> body) noexcept;

}  // namespace jetstream::proto
