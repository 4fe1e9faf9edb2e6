// The one RFC 6455 codec, with no I/O: frames written by either side (unmasked server frames,
// masked client frames), one incremental parser for the frames of either side, close payloads
// and the one close-reason policy, and the handshake's key and accept computations.
//
// fanout writes its event frames with `write_frame_header` and parses what clients send with a
// `FrameParser(Sender::kClient)`; jetstream-loadgen and the tests parse the server's frames with a
// `FrameParser(Sender::kServer)` and write masked frames with `append_masked_frame`. Upstream
// (ingest's firehose client) goes through Beast instead: it needs TLS and a full client, and its
// framing is Beast's own.
//
// The only extension is permessage-deflate (RFC 7692, `permessage_deflate.hpp`): where it was
// negotiated, RSV1 marks a compressed message on the first frame of a data message; no other
// reserved bit is ever valid. Everything here is pure and thread-compatible: a `FrameParser`
// belongs to one connection.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace jetstream::websocket {

/// Frame opcodes (RFC 6455 §5.2). Values 3-7 and 11-15 are reserved.
enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

/// Whether `opcode` is a control opcode (close, ping, pong).
constexpr bool is_control(Opcode opcode) noexcept {
  return (static_cast<std::uint8_t>(opcode) & 0x8) != 0;
}

/// Close status codes (RFC 6455 §7.4.1).
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
/// Longest header of an unmasked (server) frame: 2 bytes + an 8-byte length.
inline constexpr std::size_t kMaxServerHeaderBytes = 10;
/// Longest header of any frame: a masked one with an 8-byte length.
inline constexpr std::size_t kMaxHeaderBytes = 14;

using Mask = std::array<std::uint8_t, 4>;

// --- Writing frames ------------------------------------------------------------------------

/// Size of the header of a frame carrying `payload_size` bytes: 2, 4 or 10, plus 4 when masked.
constexpr std::size_t frame_header_size(std::size_t payload_size, bool masked = false) noexcept {
  const std::size_t unmasked = payload_size < 126 ? 2 : payload_size <= 0xFFFF ? 4 : 10;
  return masked ? unmasked + 4 : unmasked;
}

/// Writes the header of a final, unmasked frame to `out` (at least `frame_header_size` bytes)
/// and returns its size. No check on the opcode or size: see `append_frame`. fanout writes every
/// event's frame header with this, once per event for all clients. `compressed` sets RSV1: a
/// permessage-deflate message (only on a connection that negotiated it).
std::size_t write_frame_header(Opcode opcode, std::size_t payload_size, std::uint8_t* out,
                               bool compressed = false) noexcept;

/// Appends one complete, final, unmasked frame (what a server sends). Throws
/// std::invalid_argument for a continuation or unknown opcode or a control payload over 125
/// bytes.
void append_frame(std::string& out, Opcode opcode, std::string_view payload);
/// `append_frame` into a new string.
std::string make_frame(Opcode opcode, std::string_view payload);

/// Appends one complete, final frame masked with `mask` (what a client sends). Throws like
/// `append_frame`. `compressed` sets RSV1 (a permessage-deflate message; data opcodes only).
void append_masked_frame(std::string& out, Opcode opcode, std::string_view payload,
                         const Mask& mask, bool compressed = false);

/// Appends a frame whose first byte (FIN, RSV and opcode bits) is `first_byte` as given,
/// unchecked, masked when `mask` is given. For frames the functions above refuse to write: tests
/// of how a peer handles broken ones.
void append_raw_frame(std::string& out, std::uint8_t first_byte, std::string_view payload,
                      const Mask* mask = nullptr);

// --- Close frames --------------------------------------------------------------------------

/// The one close-reason policy, the one v1's successor applies (Go, rune-safe): `reason` as it
/// goes into a close frame. Each byte that does not start well-formed UTF-8 becomes U+FFFD; a
/// result longer than 123 bytes is cut at a character boundary and ends with `...`, the whole at
/// most 123 bytes. Reads at most a few hundred bytes of a huge `reason`. Idempotent.
std::string fit_close_reason(std::string_view reason);

/// A close frame's payload: the code (big-endian) and `fit_close_reason(reason)`; empty for
/// `close_code::kNoStatus` (used to echo a close that had no code).
std::string close_payload(std::uint16_t code, std::string_view reason);

/// An unmasked close frame with `close_payload(code, reason)`.
std::string make_close_frame(std::uint16_t code, std::string_view reason);

/// Whether `code` may appear in a close frame on the wire: 1000-1003, 1007-1014, 3000-4999.
bool is_valid_close_code(std::uint16_t code) noexcept;

/// A close frame's payload read back: code `kNoStatus` when it is empty; nullopt when it is one
/// byte long, has a code that may not be sent, or a reason that is not UTF-8.
struct CloseFields {
  std::uint16_t code = close_code::kNoStatus;
  std::string_view reason;  ///< points into the payload
};
std::optional<CloseFields> parse_close_payload(std::string_view payload) noexcept;

// --- Handshake -----------------------------------------------------------------------------

/// The GUID appended to the client key (RFC 6455 §1.3).
inline constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Standard base64 with padding (OpenSSL's encoder).
std::string base64_encode(std::string_view bytes);

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 (with padding) of exactly 16 bytes.
bool is_valid_websocket_key(std::string_view key) noexcept;

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)).
std::string websocket_accept(std::string_view key);

/// The `Sec-WebSocket-Key` a client sends for 16 random bytes (base64, 24 characters).
std::string websocket_client_key(const std::array<std::uint8_t, 16>& nonce);

// --- Parsing frames ------------------------------------------------------------------------

/// Whose frames a `FrameParser` reads: a client's are always masked, a server's never.
enum class Sender : std::uint8_t { kClient, kServer };

/// One complete thing the peer said: a data message (all fragments) or a control frame.
struct Message {
  /// kText, kBinary, kPing, kPong or kClose; never kContinuation.
  Opcode opcode = Opcode::kText;
  /// Data: the message's first `KeepBytes` bytes (all of it by default). Ping and pong: the
  /// payload. Close: the reason (well-formed UTF-8). Always points at the bytes: into `payload`,
  /// or, for an unmasked data message that arrived whole in one `input` (a server's usual
  /// case), into that input itself, copying nothing — then valid only while the caller's buffer
  /// is, and `payload` is empty.
  std::string_view view;
  /// The kept bytes when they were copied (always for masked frames, i.e. a client's): a string
  /// the caller may take.
  std::string payload;
  /// Data: the size of the whole message; control: the payload's size.
  std::uint64_t size = 0;
  /// Close only: the peer's code, or `close_code::kNoStatus` when the frame had none.
  std::uint16_t close_code = 0;
  /// Data only: the message's first frame had RSV1 set (permessage-deflate): the bytes are the
  /// compressed payload, and `size` its compressed size. Never set unless the parser was made
  /// with `Compression::kPermessageDeflate`.
  bool compressed = false;
};

/// Whether a connection negotiated permessage-deflate, which makes RSV1 valid on the first frame
/// of a data message.
enum class Compression : std::uint8_t { kNone, kPermessageDeflate };

/// How many leading bytes of each data message to keep in `Message::payload`; the rest is only
/// counted. Decided when a message's first frame header is read.
struct KeepBytes {
  std::size_t text = std::numeric_limits<std::size_t>::max();
  std::size_t binary = std::numeric_limits<std::size_t>::max();
};

/// Why the parser gave up, and the code to close with.
struct ProtocolError {
  /// kProtocolError (1002), kInvalidPayload (1007) or kMessageTooBig (1009).
  std::uint16_t close_code = 0;
  /// A short, fixed reason suitable for a close frame, e.g. `unmasked client frame`.
  std::string_view reason;
};

/// Parses the frames one peer sends, fed with chunks of any size (down to single bytes); any
/// split of the stream gives the same messages.
///
/// Enforces RFC 6455 §5 for the `Sender` given: masking (client frames masked, server frames
/// not); no reserved bits (but RSV1 on the first frame of a data message where permessage-deflate
/// was negotiated, RFC 7692 §6) or reserved opcodes; control frames final and at most 125 bytes;
/// continuation frames only inside a fragmented message and data frames never inside one
/// (control frames may interleave); 64-bit lengths with the top bit clear; close payloads of 0
/// or 2+ bytes with a valid code and a UTF-8 reason. A message (all of its fragments) longer than
/// `max_message_bytes` is refused with 1009 as soon as a frame header announces it, so the parser
/// never holds more than the limit. Text messages are not checked for UTF-8 (v1 did not either;
/// a JSON parser downstream rejects what it cannot read).
class FrameParser {
 public:
  enum class Status : std::uint8_t {
    /// Every byte of the input was consumed; no message is complete yet.
    kNeedMore,
    /// `message` holds a complete message; the input may still hold bytes to parse.
    kMessage,
    /// The peer broke the protocol: see `error()`. Every later call returns kError.
    kError,
  };

  FrameParser(Sender sender, std::uint64_t max_message_bytes,
              Compression compression = Compression::kNone) noexcept
      : sender_(sender), max_message_bytes_(max_message_bytes), compression_(compression) {}

  /// Consumes bytes from the front of `input` until a message is complete (kMessage, stored
  /// into `message`, whose string keeps its capacity from call to call), the input is used up
  /// (kNeedMore) or an error is found (kError). After a close frame the stream is over: later
  /// calls consume everything and return kNeedMore.
  Status parse(std::string_view& input, Message& message, const KeepBytes& keep = {});

  /// The error after kError.
  const ProtocolError& error() const noexcept { return error_; }
  /// Whether a close frame was parsed (the stream is over).
  bool closed() const noexcept { return state_ == State::kClosed; }
  /// True inside a frame or between the first and the last fragment of a message.
  bool mid_message() const noexcept {
    return state_ == State::kPayload || header_have_ > 0 || in_message_;
  }
  /// Bytes held for a message being reassembled (never more than the limit).
  std::size_t buffered_bytes() const noexcept { return message_.size(); }
  std::uint64_t max_message_bytes() const noexcept { return max_message_bytes_; }
  /// Drops a partial message and its memory (the connection is over).
  void release() noexcept;

 private:
  enum class State : std::uint8_t { kHeader, kPayload, kClosed, kError };

  Status fail(std::uint16_t code, std::string_view reason);
  /// Checks the first two header bytes; the full header length, or 0 on error.
  std::size_t check_first_bytes();
  /// Decodes a complete header; false on error (already recorded).
  bool start_frame(const KeepBytes& keep);
  /// Takes `n` payload bytes at `data` (unmasking them when masked).
  void take_payload(const char* data, std::size_t n);
  Status finish_frame(Message& message);

  Sender sender_;
  std::uint64_t max_message_bytes_;
  Compression compression_;
  State state_ = State::kHeader;
  ProtocolError error_;

  // The header being read.
  std::array<std::uint8_t, kMaxHeaderBytes> header_{};
  std::size_t header_have_ = 0;
  std::size_t header_need_ = 2;

  // The frame whose payload is being read.
  Opcode opcode_ = Opcode::kContinuation;
  bool fin_ = false;
  bool masked_ = false;
  bool rsv1_ = false;
  Mask mask_{};
  std::size_t mask_offset_ = 0;
  std::uint64_t payload_left_ = 0;

  // The data message being reassembled (spans fragments), and the control payload.
  bool in_message_ = false;
  Opcode message_opcode_ = Opcode::kText;
  bool message_compressed_ = false;
  std::uint64_t message_size_ = 0;
  std::size_t keep_ = 0;
  std::string message_;
  std::array<char, kMaxControlPayload> control_{};
  std::size_t control_size_ = 0;
};

}  // namespace jetstream::websocket
