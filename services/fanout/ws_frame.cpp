#include "services/fanout/ws_frame.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace jetstream::fanout {

namespace {

constexpr std::uint8_t kFinBit = 0x80;
constexpr std::uint8_t kReservedBits = 0x70;
constexpr std::uint8_t kOpcodeBits = 0x0F;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLengthBits = 0x7F;
constexpr std::uint8_t kLength16 = 126;
constexpr std::uint8_t kLength64 = 127;

bool is_control(Opcode opcode) noexcept { return (static_cast<std::uint8_t>(opcode) & 0x8) != 0; }

bool is_known_opcode(std::uint8_t value) noexcept {
  switch (value) {
    case 0x0:
    case 0x1:
    case 0x2:
    case 0x8:
    case 0x9:
    case 0xA: return true;
    default: return false;
  }
}

/// Length of the well-formed UTF-8 sequence at the start of `p[0..n)`, 0 when it is not one.
std::size_t utf8_sequence_length(const unsigned char* p, std::size_t n) noexcept {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const unsigned char* data, std::size_t size) {
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                            std::uint32_t{data[i + 2]};
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += kBase64Alphabet[(v >> 6) & 63];
    out += kBase64Alphabet[v & 63];
  }
  if (const std::size_t rest = size - i; rest > 0) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (rest == 2) v |= std::uint32_t{data[i + 1]} << 8;
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

/// Grows `s` so it can hold `needed` bytes, doubling but never past `limit` (needed <= limit).
/// A fresh string is reserved and swapped in because libstdc++'s reserve() on a non-empty
/// string may round the request up to twice the old capacity.
void reserve_bounded(std::string& s, std::size_t needed, std::size_t limit) {
  if (needed <= s.capacity()) return;
  const std::size_t capacity = std::max(needed, std::min(limit, s.capacity() * 2));
  std::string bigger;
  bigger.reserve(capacity);
  bigger.append(s);
  s.swap(bigger);
}

}  // namespace

// --- Server frames -------------------------------------------------------------------------

std::size_t frame_header_size(std::size_t payload_size) noexcept {
  if (payload_size < kLength16) return 2;
  if (payload_size <= 0xFFFF) return 4;
  return 10;
}

std::size_t write_frame_header(Opcode opcode, std::size_t payload_size,
                               std::uint8_t* out) noexcept {
  out[0] = static_cast<std::uint8_t>(kFinBit | static_cast<std::uint8_t>(opcode));
  if (payload_size < kLength16) {
    out[1] = static_cast<std::uint8_t>(payload_size);
    return 2;
  }
  if (payload_size <= 0xFFFF) {
    out[1] = kLength16;
    out[2] = static_cast<std::uint8_t>(payload_size >> 8);
    out[3] = static_cast<std::uint8_t>(payload_size);
    return 4;
  }
  out[1] = kLength64;
  const auto size = static_cast<std::uint64_t>(payload_size);
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(size >> (56 - 8 * i));
  return 10;
}

void append_frame(std::string& out, Opcode opcode, std::string_view payload) {
  if (opcode == Opcode::kContinuation || !is_known_opcode(static_cast<std::uint8_t>(opcode))) {
    throw std::invalid_argument("websocket frame: the server never sends this opcode");
  }
  if (is_control(opcode) && payload.size() > kMaxControlPayload) {
    throw std::invalid_argument("websocket frame: control payload over 125 bytes");
  }
  std::uint8_t header[kMaxServerHeaderBytes];
  const std::size_t header_size = write_frame_header(opcode, payload.size(), header);
  out.reserve(out.size() + header_size + payload.size());
  out.append(reinterpret_cast<const char*>(header), header_size);
  out.append(payload);
}

std::string make_frame(Opcode opcode, std::string_view payload) {
  std::string out;
  append_frame(out, opcode, payload);
  return out;
}

std::string fit_close_reason(std::string_view reason) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(reason.data());
  std::size_t i = 0;
  while (i < reason.size()) {
    const std::size_t length = utf8_sequence_length(p + i, reason.size() - i);
    const std::size_t taken = length == 0 ? 1 : length;
    if (out.size() + taken > kMaxCloseReasonBytes) break;
    if (length == 0) {
      out += '?';
    } else {
      out.append(reason.substr(i, length));
    }
    i += taken;
  }
  return out;
}

std::string make_close_frame(std::uint16_t code, std::string_view reason) {
  if (code == close_code::kNoStatus) return make_frame(Opcode::kClose, {});
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFF);
  payload += fit_close_reason(reason);
  return make_frame(Opcode::kClose, payload);
}

// --- Validation helpers -------------------------------------------------------------------

bool is_valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t i = 0;
  while (i < text.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const std::size_t length = utf8_sequence_length(p + i, text.size() - i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

// --- Handshake ----------------------------------------------------------------------------

bool is_valid_websocket_key(std::string_view key) noexcept {
  // 16 bytes encode to 22 significant characters and "==".
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  return std::all_of(key.begin(), key.begin() + 22,
                     [](char c) { return kBase64Alphabet.find(c) != std::string_view::npos; });
}

std::string websocket_accept(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kWebSocketGuid.size());
  input.append(key);
  input.append(kWebSocketGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64_encode(digest, sizeof digest);
}

// --- Client frames ------------------------------------------------------------------------

ClientFrameParser::Status ClientFrameParser::fail(std::uint16_t code, std::string_view reason) {
  state_ = State::kError;
  error_ = ProtocolError{code, reason};
  message_ = std::string();
  in_message_ = false;
  return Status::kError;
}

std::size_t ClientFrameParser::check_first_bytes() {
  const std::uint8_t b0 = header_[0];
  const std::uint8_t b1 = header_[1];
  if ((b0 & kReservedBits) != 0) {
    fail(close_code::kProtocolError, "reserved bits set");
    return 0;
  }
  const auto raw_opcode = static_cast<std::uint8_t>(b0 & kOpcodeBits);
  if (!is_known_opcode(raw_opcode)) {
    fail(close_code::kProtocolError, "reserved opcode");
    return 0;
  }
  if ((b1 & kMaskBit) == 0) {
    fail(close_code::kProtocolError, "unmasked client frame");
    return 0;
  }
  opcode_ = static_cast<Opcode>(raw_opcode);
  fin_ = (b0 & kFinBit) != 0;
  const std::uint8_t length7 = b1 & kLengthBits;
  if (is_control(opcode_)) {
    if (!fin_) {
      fail(close_code::kProtocolError, "fragmented control frame");
      return 0;
    }
    if (length7 > kMaxControlPayload) {
      fail(close_code::kProtocolError, "control frame too long");
      return 0;
    }
  } else if (opcode_ == Opcode::kContinuation) {
    if (!in_message_) {
      fail(close_code::kProtocolError, "unexpected continuation frame");
      return 0;
    }
  } else if (in_message_) {
    fail(close_code::kProtocolError, "expected continuation frame");
    return 0;
  }
  const std::size_t extended = length7 == kLength16 ? 2 : length7 == kLength64 ? 8 : 0;
  return 2 + extended + 4;
}

bool ClientFrameParser::decode_header() {
  const std::uint8_t length7 = header_[1] & kLengthBits;
  std::uint64_t length = length7;
  std::size_t at = 2;
  if (length7 == kLength16) {
    length = (std::uint64_t{header_[2]} << 8) | header_[3];
    at = 4;
  } else if (length7 == kLength64) {
    length = 0;
    for (std::size_t i = 0; i < 8; ++i) length = (length << 8) | header_[2 + i];
    at = 10;
    if ((length >> 63) != 0) {
      fail(close_code::kProtocolError, "invalid frame length");
      return false;
    }
  }
  std::memcpy(mask_, header_ + at, 4);
  if (!is_control(opcode_)) {
    const std::size_t held = message_.size();
    if (length > max_message_bytes_ - held) {
      fail(close_code::kMessageTooBig, "message too big");
      return false;
    }
    if (opcode_ != Opcode::kContinuation) {
      in_message_ = true;
      message_opcode_ = opcode_;
    }
  }
  payload_left_ = length;
  mask_offset_ = 0;
  control_size_ = 0;
  return true;
}

ClientFrameParser::Status ClientFrameParser::finish_frame(ClientEvent& event) {
  state_ = State::kHeader;
  switch (opcode_) {
    case Opcode::kPing:
    case Opcode::kPong:
      event.kind = opcode_ == Opcode::kPing ? ClientEvent::Kind::kPing : ClientEvent::Kind::kPong;
      event.payload.assign(reinterpret_cast<const char*>(control_), control_size_);
      event.close_code = 0;
      return Status::kEvent;
    case Opcode::kClose: {
      if (control_size_ == 1) return fail(close_code::kProtocolError, "invalid close frame");
      std::uint16_t code = close_code::kNoStatus;
      std::string_view reason;
      if (control_size_ >= 2) {
        code = static_cast<std::uint16_t>((control_[0] << 8) | control_[1]);
        if (!is_valid_close_code(code))
          return fail(close_code::kProtocolError, "invalid close code");
        reason = std::string_view(reinterpret_cast<const char*>(control_ + 2), control_size_ - 2);
        if (!is_valid_utf8(reason))
          return fail(close_code::kInvalidPayload, "invalid close reason");
      }
      event.kind = ClientEvent::Kind::kClose;
      event.payload.assign(reason);
      event.close_code = code;
      state_ = State::kClosed;
      message_ = std::string();
      in_message_ = false;
      return Status::kEvent;
    }
    default: break;
  }
  if (!fin_) return Status::kNeedMore;
  in_message_ = false;
  event.kind =
      message_opcode_ == Opcode::kText ? ClientEvent::Kind::kText : ClientEvent::Kind::kBinary;
  event.payload = std::move(message_);
  event.close_code = 0;
  message_ = std::string();
  return Status::kEvent;
}

ClientFrameParser::Status ClientFrameParser::parse(std::span<const std::uint8_t>& input,
                                                   ClientEvent& event) {
  for (;;) {
    switch (state_) {
      case State::kError: return Status::kError;
      case State::kClosed: input = input.subspan(input.size()); return Status::kNeedMore;
      case State::kHeader: {
        while (header_have_ < header_need_) {
          if (input.empty()) return Status::kNeedMore;
          const std::size_t n = std::min(header_need_ - header_have_, input.size());
          std::memcpy(header_ + header_have_, input.data(), n);
          header_have_ += n;
          input = input.subspan(n);
          if (header_have_ == 2 && header_need_ == 2) {
            header_need_ = check_first_bytes();
            if (header_need_ == 0) return Status::kError;
          }
        }
        header_have_ = 0;
        header_need_ = 2;
        if (!decode_header()) return Status::kError;
        state_ = State::kPayload;
        if (payload_left_ == 0) {
          if (const Status status = finish_frame(event); status != Status::kNeedMore) {
            return status;
          }
        }
        break;
      }
      case State::kPayload: {
        if (input.empty()) return Status::kNeedMore;
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, input.size()));
        const std::uint8_t* in = input.data();
        if (is_control(opcode_)) {
          for (std::size_t i = 0; i < n; ++i) {
            control_[control_size_ + i] = in[i] ^ mask_[(mask_offset_ + i) & 3];
          }
          control_size_ += n;
        } else {
          const std::size_t old_size = message_.size();
          reserve_bounded(message_, old_size + n, max_message_bytes_);
          message_.append(reinterpret_cast<const char*>(in), n);
          char* out = message_.data() + old_size;
          for (std::size_t i = 0; i < n; ++i) {
            out[i] = static_cast<char>(static_cast<std::uint8_t>(out[i]) ^
                                       mask_[(mask_offset_ + i) & 3]);
          }
        }
        mask_offset_ = (mask_offset_ + n) & 3;
        payload_left_ -= n;
        input = input.subspan(n);
        if (payload_left_ == 0) {
          if (const Status status = finish_frame(event); status != Status::kNeedMore) {
            return status;
          }
        }
        break;
      }
    }
  }
}

ClientFrameParser::Status ClientFrameParser::parse(std::string_view& input, ClientEvent& event) {
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(input.data()),
                                      input.size());
  const Status status = parse(bytes, event);
  input.remove_prefix(input.size() - bytes.size());
  return status;
}

}  // namespace jetstream::fanout
