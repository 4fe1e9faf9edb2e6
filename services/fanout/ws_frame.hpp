// RFC 6455 framing for the server side of `/subscribe`, with no I/O: building the (unmasked)
// frames the server sends, parsing the (masked) frames a client sends, and the handshake's
// `Sec-WebSocket-Accept` computation.
//
// A server frame is the same bytes for every client, so the fanout builds each event's frame once
// and shares it (see `SharedFrame` in client_connection.hpp). Server frames are always final and
// uncompressed: permessage-deflate is never negotiated and no extension bit is ever set.
//
// Everything here is pure and thread-compatible: a `ClientFrameParser` belongs to one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace jetstream::fanout {

/// Frame opcodes (RFC 6455 §5.2). Values 3-7 and 11-15 are reserved.
enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

/// Close status codes used by the server (RFC 6455 §7.4.1).
namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;
inline constexpr std::uint16_t kGoingAway = 1001;
inline constexpr std::uint16_t kProtocolError = 1002;
inline constexpr std::uint16_t kUnsupportedData = 1003;
/// Reported (never sent) when a close frame carried no code.
inline constexpr std::uint16_t kNoStatus = 1005;
/// Reported (never sent) when the connection ended without a close frame.
inline constexpr std::uint16_t kAbnormal = 1006;
inline constexpr std::uint16_t kInvalidPayload = 1007;
inline constexpr std::uint16_t kPolicyViolation = 1008;
inline constexpr std::uint16_t kMessageTooBig = 1009;
inline constexpr std::uint16_t kInternalError = 1011;
}  // namespace close_code

/// Largest payload of a control frame (ping, pong, close).
inline constexpr std::size_t kMaxControlPayload = 125;
/// Largest close reason: a control payload minus the 2-byte code.
inline constexpr std::size_t kMaxCloseReasonBytes = kMaxControlPayload - 2;
/// Longest frame header the server writes (2 + 8-byte length; never a mask).
inline constexpr std::size_t kMaxServerHeaderBytes = 10;
/// Largest message a client may send (v1: 10,000,000 bytes, decimal).
inline constexpr std::size_t kDefaultMaxMessageBytes = 10'000'000;

// --- Server frames -------------------------------------------------------------------------

/// Size of the header of an unmasked frame carrying `payload_size` bytes: 2, 4 or 10.
std::size_t frame_header_size(std::size_t payload_size) noexcept;

/// Writes the header of a final, unmasked frame to `out` (at least `frame_header_size` bytes)
/// and returns its size. No check on the opcode or size: see `make_frame`.
std::size_t write_frame_header(Opcode opcode, std::size_t payload_size, std::uint8_t* out) noexcept;

/// Appends one complete frame (header + payload) to `out`. Lets a caller lay a whole batch of
/// frames out in one allocation. Throws std::invalid_argument for a continuation opcode or a
/// control payload over 125 bytes.
void append_frame(std::string& out, Opcode opcode, std::string_view payload);

/// One complete, final, unmasked frame: text, binary, ping, pong or close (for close, prefer
/// `make_close_frame`). Throws like `append_frame`.
std::string make_frame(Opcode opcode, std::string_view payload);

/// A close frame with `code` and `reason`. The reason is made to fit: cut to 123 bytes on a
/// UTF-8 character boundary, invalid UTF-8 bytes replaced by '?'. `kNoStatus` (1005) gives a
/// close frame with an empty payload (used to echo a client close that had no code).
std::string make_close_frame(std::uint16_t code, std::string_view reason);

/// `reason` as it would be sent in a close frame (see `make_close_frame`).
std::string fit_close_reason(std::string_view reason);

// --- Validation helpers -------------------------------------------------------------------

/// Whether `code` may appear in a close frame on the wire: 1000-1003, 1007-1014, 3000-4999.
bool is_valid_close_code(std::uint16_t code) noexcept;

/// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

// --- Handshake ----------------------------------------------------------------------------

/// The GUID appended to the client key (RFC 6455 §1.3).
inline constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 (with padding) of exactly 16 bytes.
bool is_valid_websocket_key(std::string_view key) noexcept;

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)).
std::string websocket_accept(std::string_view key);

// --- Client frames ------------------------------------------------------------------------

/// One thing a client said: a complete message, or a control frame.
struct ClientEvent {
  enum class Kind : std::uint8_t { kText, kBinary, kPing, kPong, kClose };
  Kind kind = Kind::kText;
  /// The reassembled message (text, binary), the control payload (ping, pong) or the close
  /// reason (close; valid UTF-8).
  std::string payload;
  /// Close only: the client's code, or `close_code::kNoStatus` when the frame had none.
  std::uint16_t close_code = 0;
};

/// Why the parser gave up, and the code the server closes with.
struct ProtocolError {
  /// kProtocolError (1002), kInvalidPayload (1007) or kMessageTooBig (1009).
  std::uint16_t close_code = 0;
  /// A short reason suitable for the close frame, e.g. `unmasked client frame`.
  std::string_view reason;
};

/// Parses the frames a client sends, fed with chunks of any size (down to single bytes).
///
/// Enforces what a server must (RFC 6455 §5): every frame masked; no reserved bits (no
/// extension is negotiated) or reserved opcodes; control frames final and at most 125 bytes;
/// continuation frames only inside a fragmented message and data frames never inside one
/// (control frames may interleave); 64-bit lengths with the top bit clear; close payloads of 0
/// or 2+ bytes with a valid code and a UTF-8 reason. A message (all of its fragments) longer than
/// `max_message_bytes` is refused with 1009 as soon as a frame header announces it, so the parser
/// never holds more than the limit. Text messages are not checked for UTF-8 (v1 did not either;
/// the JSON parser downstream rejects what it cannot read).
class ClientFrameParser {
 public:
  enum class Status : std::uint8_t {
    /// Every byte of the input was consumed; no event is complete yet.
    kNeedMore,
    /// `event` holds a complete event; the input may still hold bytes to parse.
    kEvent,
    /// The client broke the protocol: see `error()`. Every later call returns kError.
    kError,
  };

  explicit ClientFrameParser(std::size_t max_message_bytes = kDefaultMaxMessageBytes) noexcept
      : max_message_bytes_(max_message_bytes) {}

  /// Consumes bytes from the front of `input` until an event is complete (kEvent, stored into
  /// `event`), the input is used up (kNeedMore) or an error is found (kError). After a close
  /// event the rest of the stream is not parsed: later calls consume everything and return
  /// kNeedMore.
  Status parse(std::span<const std::uint8_t>& input, ClientEvent& event);
  Status parse(std::string_view& input, ClientEvent& event);

  /// The error after kError.
  const ProtocolError& error() const noexcept { return error_; }
  /// Whether a close frame was parsed (the stream is over).
  bool closed() const noexcept { return state_ == State::kClosed; }
  /// Bytes held for a message being reassembled (never more than the limit).
  std::size_t buffered_bytes() const noexcept { return message_.size(); }
  std::size_t max_message_bytes() const noexcept { return max_message_bytes_; }

 private:
  enum class State : std::uint8_t { kHeader, kPayload, kClosed, kError };

  Status fail(std::uint16_t code, std::string_view reason);
  /// Validates the first two header bytes; returns the full header length, or 0 on error.
  std::size_t check_first_bytes();
  /// Decodes a complete header; false on error (already recorded).
  bool decode_header();
  Status finish_frame(ClientEvent& event);

  std::size_t max_message_bytes_;
  State state_ = State::kHeader;
  ProtocolError error_;

  // Header being read.
  std::uint8_t header_[14] = {};
  std::size_t header_have_ = 0;
  std::size_t header_need_ = 2;

  // Frame being read.
  Opcode opcode_ = Opcode::kContinuation;
  bool fin_ = false;
  std::uint8_t mask_[4] = {};
  std::uint64_t payload_left_ = 0;
  std::size_t mask_offset_ = 0;

  // Message being reassembled (data frames) and the control payload.
  bool in_message_ = false;
  Opcode message_opcode_ = Opcode::kText;
  std::string message_;
  std::uint8_t control_[kMaxControlPayload] = {};
  std::size_t control_size_ = 0;
};

}  // namespace jetstream::fanout
