#include "common/websocket/codec.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "common/text/utf8.hpp"

namespace jetstream::websocket {

namespace {

constexpr std::uint8_t kFinBit = 0x80;
constexpr std::uint8_t kReservedBits = 0x70;
constexpr std::uint8_t kRsv1Bit = 0x40;  // permessage-deflate: a compressed message (RFC 7692)
constexpr std::uint8_t kOpcodeBits = 0x0F;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLengthBits = 0x7F;
constexpr std::uint8_t kLength16 = 126;
constexpr std::uint8_t kLength64 = 127;

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

void check_writable(Opcode opcode, std::size_t payload_size) {
  if (opcode == Opcode::kContinuation || !is_known_opcode(static_cast<std::uint8_t>(opcode))) {
    throw std::invalid_argument("websocket frame: only final frames of known opcodes are written");
  }
  if (is_control(opcode) && payload_size > kMaxControlPayload) {
    throw std::invalid_argument("websocket frame: control payload over 125 bytes");
  }
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

// --- Writing frames ------------------------------------------------------------------------

std::size_t write_frame_header(Opcode opcode, std::size_t payload_size, std::uint8_t* out,
                               bool compressed) noexcept {
  out[0] = static_cast<std::uint8_t>(kFinBit | (compressed ? kRsv1Bit : 0) |
                                     static_cast<std::uint8_t>(opcode));
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

void append_raw_frame(std::string& out, std::uint8_t first_byte, std::string_view payload,
                      const Mask* mask) {
  std::uint8_t header[kMaxHeaderBytes];
  std::size_t size = write_frame_header(Opcode::kContinuation, payload.size(), header);
  header[0] = first_byte;
  if (mask != nullptr) {
    header[1] |= kMaskBit;
    std::memcpy(header + size, mask->data(), 4);
    size += 4;
  }
  out.reserve(out.size() + size + payload.size());
  out.append(reinterpret_cast<const char*>(header), size);
  if (mask == nullptr) {
    out.append(payload);
    return;
  }
  const std::size_t at = out.size();
  out.append(payload);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out[at + i] = static_cast<char>(static_cast<std::uint8_t>(out[at + i]) ^ (*mask)[i & 3]);
  }
}

void append_frame(std::string& out, Opcode opcode, std::string_view payload) {
  check_writable(opcode, payload.size());
  append_raw_frame(out, static_cast<std::uint8_t>(kFinBit | static_cast<std::uint8_t>(opcode)),
                   payload);
}

std::string make_frame(Opcode opcode, std::string_view payload) {
  std::string out;
  append_frame(out, opcode, payload);
  return out;
}

void append_masked_frame(std::string& out, Opcode opcode, std::string_view payload,
                         const Mask& mask, bool compressed) {
  check_writable(opcode, payload.size());
  if (compressed && is_control(opcode)) {
    throw std::invalid_argument("websocket frame: a control frame cannot be compressed");
  }
  append_raw_frame(out,
                   static_cast<std::uint8_t>(kFinBit | (compressed ? kRsv1Bit : 0) |
                                             static_cast<std::uint8_t>(opcode)),
                   payload, &mask);
}

// --- Close frames --------------------------------------------------------------------------

std::string fit_close_reason(std::string_view reason) {
  constexpr std::string_view kEllipsis = "...";
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(kMaxCloseReasonBytes);
  std::size_t cut = 0;  // the longest prefix of `out`, at a boundary, that leaves room for "..."
  while (!reason.empty()) {
    const std::size_t length = text::utf8_sequence_length(reason);
    const std::string_view next = length == 0 ? kReplacement : reason.substr(0, length);
    if (out.size() + next.size() > kMaxCloseReasonBytes) {
      out.resize(cut);
      out.append(kEllipsis);
      return out;
    }
    out.append(next);
    if (out.size() + kEllipsis.size() <= kMaxCloseReasonBytes) cut = out.size();
    reason.remove_prefix(length == 0 ? 1 : length);
  }
  return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  if (code == close_code::kNoStatus) return {};
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFF);
  payload += fit_close_reason(reason);
  return payload;
}

std::string make_close_frame(std::uint16_t code, std::string_view reason) {
  return make_frame(Opcode::kClose, close_payload(code, reason));
}

bool is_valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

std::optional<CloseFields> parse_close_payload(std::string_view payload) noexcept {
  CloseFields fields;
  if (payload.empty()) return fields;
  if (payload.size() == 1) return std::nullopt;
  fields.code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                           static_cast<std::uint8_t>(payload[1]));
  fields.reason = payload.substr(2);
  if (!is_valid_close_code(fields.code) || !text::is_valid_utf8(fields.reason)) return std::nullopt;
  return fields;
}

// --- Handshake -----------------------------------------------------------------------------

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');  // EVP_EncodeBlock writes a NUL
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(bytes.data()),
                                      static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

bool is_valid_websocket_key(std::string_view key) noexcept {
  // 16 bytes encode to 22 significant characters and "==" (the last one holds 2 bits: A, Q, g, w).
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return std::all_of(key.begin(), key.begin() + 22,
                     [&](char c) { return kAlphabet.find(c) != std::string_view::npos; });
}

std::string websocket_accept(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kWebSocketGuid.size());
  input.append(key);
  input.append(kWebSocketGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64_encode({reinterpret_cast<const char*>(digest), sizeof digest});
}

std::string websocket_client_key(const std::array<std::uint8_t, 16>& nonce) {
  return base64_encode({reinterpret_cast<const char*>(nonce.data()), nonce.size()});
}

// --- Parsing frames ------------------------------------------------------------------------

FrameParser::Status FrameParser::fail(std::uint16_t code, std::string_view reason) {
  state_ = State::kError;
  error_ = ProtocolError{code, reason};
  release();
  return Status::kError;
}

void FrameParser::release() noexcept {
  message_ = std::string();
  in_message_ = false;
}

std::size_t FrameParser::check_first_bytes() {
  const std::uint8_t b0 = header_[0];
  const std::uint8_t b1 = header_[1];
  const auto raw_opcode = static_cast<std::uint8_t>(b0 & kOpcodeBits);
  // RSV1 is permessage-deflate's "compressed" bit: valid only where it was negotiated, and only on
  // the first frame of a data message (RFC 7692 §6.1), never on continuations or control frames.
  rsv1_ = (b0 & kRsv1Bit) != 0;
  const bool first_data_frame = raw_opcode == 0x1 || raw_opcode == 0x2;
  if ((b0 & (kReservedBits & ~kRsv1Bit)) != 0 ||
      (rsv1_ && (compression_ != Compression::kPermessageDeflate || !first_data_frame))) {
    fail(close_code::kProtocolError, "reserved bits set");
    return 0;
  }
  if (!is_known_opcode(raw_opcode)) {
    fail(close_code::kProtocolError, "reserved opcode");
    return 0;
  }
  masked_ = (b1 & kMaskBit) != 0;
  if (sender_ == Sender::kClient && !masked_) {
    fail(close_code::kProtocolError, "unmasked client frame");
    return 0;
  }
  if (sender_ == Sender::kServer && masked_) {
    fail(close_code::kProtocolError, "masked server frame");
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
  return 2 + extended + (masked_ ? 4 : 0);
}

bool FrameParser::start_frame(const KeepBytes& keep) {
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
  if (masked_) std::memcpy(mask_.data(), header_.data() + at, 4);
  if (!is_control(opcode_)) {
    if (opcode_ != Opcode::kContinuation) {
      in_message_ = true;
      message_opcode_ = opcode_;
      message_compressed_ = rsv1_;
      message_size_ = 0;
      keep_ = opcode_ == Opcode::kText ? keep.text : keep.binary;
      message_.clear();
    }
    if (length > max_message_bytes_ - message_size_) {
      fail(close_code::kMessageTooBig, "message too big");
      return false;
    }
    message_size_ += length;
  }
  payload_left_ = length;
  mask_offset_ = 0;
  control_size_ = 0;
  return true;
}

void FrameParser::take_payload(const char* data, std::size_t n) {
  char* out = nullptr;
  if (is_control(opcode_)) {
    out = control_.data() + control_size_;
    std::memcpy(out, data, n);
    control_size_ += n;
  } else {
    const std::size_t held = message_.size();
    const std::size_t kept = std::min(n, keep_ - std::min(keep_, held));
    if (kept == 0) return;
    const auto limit = static_cast<std::size_t>(std::min<std::uint64_t>(keep_, max_message_bytes_));
    reserve_bounded(message_, held + kept, std::max(limit, held + kept));
    message_.append(data, kept);
    out = message_.data() + held;
    n = kept;
  }
  if (!masked_) return;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>(static_cast<std::uint8_t>(out[i]) ^ mask_[(mask_offset_ + i) & 3]);
  }
}

FrameParser::Status FrameParser::finish_frame(Message& message) {
  state_ = State::kHeader;
  if (is_control(opcode_)) {
    const std::string_view payload(control_.data(), control_size_);
    message.opcode = opcode_;
    message.size = control_size_;
    message.close_code = 0;
    message.compressed = false;
    if (opcode_ == Opcode::kClose) {
      if (control_size_ == 1) return fail(close_code::kProtocolError, "invalid close frame");
      const auto fields = parse_close_payload(payload);
      if (!fields) {
        // parse_close_payload refused a code or a reason: say which.
        const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                     static_cast<std::uint8_t>(payload[1]));
        return is_valid_close_code(code) ? fail(close_code::kInvalidPayload, "invalid close reason")
                                         : fail(close_code::kProtocolError, "invalid close code");
      }
      message.payload.assign(fields->reason);
      message.view = message.payload;
      message.close_code = fields->code;
      state_ = State::kClosed;
      release();
    } else {
      message.payload.assign(payload);
      message.view = message.payload;
    }
    return Status::kMessage;
  }
  if (!fin_) return Status::kNeedMore;
  in_message_ = false;
  message.opcode = message_opcode_;
  message.size = message_size_;
  message.close_code = 0;
  message.compressed = message_compressed_;
  message.payload.swap(message_);  // the caller's old buffer is reused for the next message
  message.view = message.payload;
  message_.clear();
  return Status::kMessage;
}

FrameParser::Status FrameParser::parse(std::string_view& input, Message& message,
                                       const KeepBytes& keep) {
  for (;;) {
    switch (state_) {
      case State::kError: return Status::kError;
      case State::kClosed: input.remove_prefix(input.size()); return Status::kNeedMore;
      case State::kHeader: {
        while (header_have_ < header_need_) {
          if (input.empty()) return Status::kNeedMore;
          const std::size_t n = std::min(header_need_ - header_have_, input.size());
          std::memcpy(header_.data() + header_have_, input.data(), n);
          header_have_ += n;
          input.remove_prefix(n);
          if (header_have_ == 2 && header_need_ == 2) {
            header_need_ = check_first_bytes();
            if (header_need_ == 0) return Status::kError;
          }
        }
        header_have_ = 0;
        header_need_ = 2;
        if (!start_frame(keep)) return Status::kError;
        if (!masked_ && fin_ && opcode_ != Opcode::kContinuation && !is_control(opcode_) &&
            payload_left_ <= input.size()) {
          // A whole unfragmented message in the input: hand out a view, copy nothing.
          const auto size = static_cast<std::size_t>(payload_left_);
          message.opcode = opcode_;
          message.size = size;
          message.close_code = 0;
          message.compressed = rsv1_;
          message.payload.clear();
          message.view = input.substr(0, std::min(size, keep_));
          input.remove_prefix(size);
          in_message_ = false;
          payload_left_ = 0;
          return Status::kMessage;
        }
        state_ = State::kPayload;
        if (payload_left_ == 0) {
          if (const Status status = finish_frame(message); status != Status::kNeedMore) {
            return status;
          }
        }
        break;
      }
      case State::kPayload: {
        if (input.empty()) return Status::kNeedMore;
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, input.size()));
        take_payload(input.data(), n);
        mask_offset_ = (mask_offset_ + n) & 3;
        payload_left_ -= n;
        input.remove_prefix(n);
        if (payload_left_ == 0) {
          if (const Status status = finish_frame(message); status != Status::kNeedMore) {
            return status;
          }
        }
        break;
      }
    }
  }
}

}  // namespace jetstream::websocket
