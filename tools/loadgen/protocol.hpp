// The client side of RFC 6455 as jetstream-loadgen speaks it, without sockets: ws:// URLs, the
// upgrade request and the check of its response, an incremental parser for server frames, masked
// client frames, and the cheap read of `time_us` from the start of an event. Pure code, tested in
// tests/unit/loadgen_test.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/websocket/url.hpp"

namespace jetstream::loadgen {

/// A `ws://` URL as common/websocket parses it; nullopt with the reason in `error` for anything
/// else, including `wss://`, which this tool does not speak (it is for loopback and a LAN).
std::optional<websocket::WebSocketUrl> parse_ws_url(std::string_view text,
                                                    std::string* error = nullptr);

/// `target` with `query` appended after `?` (or `&` when it already has a query). An empty query
/// leaves it unchanged; a leading `?` or `&` on `query` is dropped.
std::string append_query(std::string_view target, std::string_view query);

/// Standard base64 with padding (OpenSSL).
std::string base64_encode(std::string_view bytes);

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + RFC 6455 GUID)).
std::string websocket_accept_key(std::string_view client_key);

/// The `Sec-WebSocket-Key` for 16 random bytes (base64, 24 characters).
std::string websocket_client_key(const std::array<std::uint8_t, 16>& nonce);

/// The HTTP/1.1 upgrade request for `target` on `host_header` with `key`.
std::string upgrade_request(std::string_view host_header, std::string_view target,
                            std::string_view key);

/// What `check_upgrade_response` found in the bytes received so far.
struct UpgradeCheck {
  enum class Status : std::uint8_t {
    kIncomplete,  ///< read more (headers, or the body of a refusal, not complete yet)
    kUpgraded,    ///< 101 with matching Upgrade, Connection and Sec-WebSocket-Accept
    kRejected     ///< anything else; `error` says what (status line and body of a refusal)
  };
  Status status = Status::kIncomplete;
  int http_status = 0;
  /// When upgraded: bytes of `data` taken by the response; the rest are websocket frames.
  std::size_t header_bytes = 0;
  std::string error;
};

/// Largest upgrade response head accepted; a refusal's body is read up to this size too.
inline constexpr std::size_t kMaxResponseHeadBytes = 16 * 1024;

/// Checks an upgrade response. `data` is everything received so far; `peer_closed` says the
/// server closed the connection (a refusal without Content-Length ends there).
UpgradeCheck check_upgrade_response(std::string_view data, std::string_view expected_accept,
                                    bool peer_closed = false);

enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

/// Receives what a `FrameParser` finds. Each call happens inside `FrameParser::feed`.
class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  /// At the start of each data message (text or binary): how many leading payload bytes to keep.
  /// The rest is only counted, never copied.
  virtual std::size_t capture_limit(Opcode opcode) = 0;
  /// A complete data message: `kept` is its first `capture_limit` bytes (all of it when it fits),
  /// `size` the payload size of the whole message (all fragments).
  virtual void on_message(Opcode opcode, std::string_view kept, std::uint64_t size) = 0;
  /// A control frame (ping, pong, close) and its payload (at most 125 bytes). Returning false
  /// stops `feed` right after this frame (used after a close frame: nothing more is read).
  virtual bool on_control(Opcode opcode, std::string_view payload) = 0;
};

/// Incremental parser for frames a server sends: unmasked; 7, 16 and 64-bit lengths;
/// fragmented messages with control frames between fragments. Any split of the byte stream gives
/// the same calls. Rejects masked frames, RSV bits (no extension is negotiated), unknown opcodes,
/// control frames that are fragmented or longer than 125 bytes, continuation frames outside a
/// message, data frames inside one, 64-bit lengths with the top bit set, and messages larger than
/// the limit. One per connection; not thread-safe.
class FrameParser {
 public:
  explicit FrameParser(std::uint64_t max_message_bytes = std::uint64_t{1} << 30)
      : max_message_bytes_(max_message_bytes) {}

  /// Consumes `data`, calling `handler` for every complete message and control frame. Returns
  /// false on a protocol violation (`error()` says which); the parser then stays failed. Returns
  /// true when all of `data` was consumed or a handler's `on_control` returned false.
  bool feed(std::string_view data, FrameHandler& handler);

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  /// True between the first and the last fragment of a message, or inside a frame.
  bool mid_message() const { return in_frame_ || header_have_ > 0 || in_message_; }

 private:
  bool start_frame(FrameHandler& handler);
  bool fail(std::string text);

  std::uint64_t max_message_bytes_;
  std::array<std::uint8_t, 14> header_{};
  std::size_t header_have_ = 0;
  // The frame whose payload is being read.
  bool in_frame_ = false;
  bool frame_fin_ = false;
  Opcode frame_opcode_ = Opcode::kContinuation;
  std::uint64_t frame_remaining_ = 0;
  // The data message being assembled (spans fragments).
  bool in_message_ = false;
  Opcode message_opcode_ = Opcode::kText;
  std::uint64_t message_size_ = 0;
  std::size_t capture_limit_ = 0;
  std::string captured_;
  std::string control_;
  std::string error_;
};

/// Appends one masked client frame (FIN set) with `payload` to `out`.
void append_client_frame(std::string& out, Opcode opcode, std::string_view payload,
                         const std::array<std::uint8_t, 4>& mask);

/// The payload of a close frame: the status code (big-endian) and up to 123 bytes of `reason`.
std::string close_payload(std::uint16_t code, std::string_view reason);

/// A close frame's payload read back: code 1005 (no status) when it is empty; nullopt when it is
/// one byte long (invalid).
struct CloseInfo {
  std::uint16_t code = 1005;
  std::string reason;
};
std::optional<CloseInfo> parse_close_payload(std::string_view payload);

/// How many leading bytes of a text event are enough to find `time_us` (the DID comes first).
inline constexpr std::size_t kTimeUsPrefixBytes = 512;

/// The `time_us` of a v1 event from the start of its JSON: the fast path reads
/// `{"did":"...","time_us":NNN` exactly as the v1 key order puts it; otherwise the first
/// `"time_us":` key is searched. nullopt when absent, not a non-negative integer, out of range, or
/// cut off by the end of `json` (a prefix must reach the byte after the digits).
std::optional<std::int64_t> extract_time_us(std::string_view json);

}  // namespace jetstream::loadgen
