#include "tools/loadgen/protocol.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "common/config/ascii_text.hpp"

namespace jetstream::loadgen {
namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

using config::iequals_ascii;
using config::trim_ows;

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (iequals_ascii(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

/// Printable ASCII only, at most `limit` bytes: server text goes into a report line.
std::string printable(std::string_view text, std::size_t limit = 200) {
  std::string out;
  for (const char c : text.substr(0, std::min(limit, text.size()))) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : (c == '\n' ? ' ' : '?'));
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '?')) out.pop_back();
  if (text.size() > limit) out += "...";
  return out;
}

bool parse_digits(std::string_view text, std::int64_t& out) {
  if (text.empty()) return false;
  const auto result = std::from_chars(text.data(), text.data() + text.size(), out);
  return result.ec == std::errc() && result.ptr == text.data() + text.size();
}

}  // namespace

std::optional<websocket::WebSocketUrl> parse_ws_url(std::string_view text, std::string* error) {
  auto url = websocket::parse_url(text, error);
  if (url && url->tls) {
    if (error != nullptr) *error = "wss:// is not supported (plain ws:// only)";
    return std::nullopt;
  }
  return url;
}

std::string append_query(std::string_view target, std::string_view query) {
  while (!query.empty() && (query.front() == '?' || query.front() == '&')) query.remove_prefix(1);
  std::string out(target);
  if (query.empty()) return out;
  if (out.find('?') == std::string::npos) {
    out += '?';
  } else if (out.back() != '?' && out.back() != '&') {
    out += '&';
  }
  out += query;
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(bytes.data()),
                                      static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

std::string websocket_accept_key(std::string_view client_key) {
  std::string input(client_key);
  input += kWebSocketGuid;
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
  return base64_encode({reinterpret_cast<const char*>(digest.data()), digest.size()});
}

std::string websocket_client_key(const std::array<std::uint8_t, 16>& nonce) {
  return base64_encode({reinterpret_cast<const char*>(nonce.data()), nonce.size()});
}

std::string upgrade_request(std::string_view host_header, std::string_view target,
                            std::string_view key) {
  std::string out;
  out.reserve(200 + target.size());
  out += "GET ";
  out += target;
  out += " HTTP/1.1\r\nHost: ";
  out += host_header;
  out +=
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Key: ";
  out += key;
  out += "\r\nUser-Agent: jetstream-loadgen\r\n\r\n";
  return out;
}

UpgradeCheck check_upgrade_response(std::string_view data, std::string_view expected_accept,
                                    bool peer_closed) {
  UpgradeCheck check;
  const auto head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (data.size() > kMaxResponseHeadBytes) {
      check.status = UpgradeCheck::Status::kRejected;
      check.error = "response head longer than " + std::to_string(kMaxResponseHeadBytes) + " bytes";
    } else if (peer_closed) {
      check.status = UpgradeCheck::Status::kRejected;
      check.error = data.empty() ? "connection closed before any response"
                                 : "connection closed inside the response head: " + printable(data);
    }
    return check;
  }
  const std::string_view head = data.substr(0, head_end);
  const auto line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 101 Switching Protocols"
  const auto first_space = status_line.find(' ');
  std::int64_t status = 0;
  if (status_line.substr(0, 5) != "HTTP/" || first_space == std::string_view::npos ||
      !parse_digits(status_line.substr(first_space + 1, 3), status)) {
    check.status = UpgradeCheck::Status::kRejected;
    check.error = "not an HTTP response: " + printable(status_line);
    return check;
  }
  check.http_status = static_cast<int>(status);

  std::string_view upgrade;
  std::string_view connection;
  std::string_view accept;
  std::string_view extensions;
  std::optional<std::int64_t> content_length;
  std::string_view headers =
      line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
  while (!headers.empty()) {
    const auto end = headers.find("\r\n");
    const std::string_view line = headers.substr(0, end);
    headers = end == std::string_view::npos ? std::string_view{} : headers.substr(end + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = trim_ows(line.substr(0, colon));
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (iequals_ascii(name, "upgrade")) upgrade = value;
    if (iequals_ascii(name, "connection")) connection = value;
    if (iequals_ascii(name, "sec-websocket-accept")) accept = value;
    if (iequals_ascii(name, "sec-websocket-extensions")) extensions = value;
    if (iequals_ascii(name, "content-length")) {
      std::int64_t length = 0;
      if (parse_digits(value, length)) content_length = length;
    }
  }

  if (status != 101) {
    const std::string_view body = data.substr(head_end + 4);
    const bool body_complete =
        peer_closed || !content_length ||
        body.size() >= static_cast<std::size_t>(std::max<std::int64_t>(*content_length, 0)) ||
        data.size() > kMaxResponseHeadBytes;
    if (!body_complete) return check;  // wait for the refusal's text
    check.status = UpgradeCheck::Status::kRejected;
    check.error = "HTTP " + printable(status_line.substr(first_space + 1));
    const std::string_view shown =
        content_length
            ? body.substr(0, static_cast<std::size_t>(std::max<std::int64_t>(
                                 0, std::min<std::int64_t>(
                                        *content_length, static_cast<std::int64_t>(body.size())))))
            : body;
    if (!shown.empty()) check.error += ": " + printable(shown);
    return check;
  }
  check.status = UpgradeCheck::Status::kRejected;
  if (!icontains(upgrade, "websocket")) {
    check.error = "101 without Upgrade: websocket";
  } else if (!icontains(connection, "upgrade")) {
    check.error = "101 without Connection: Upgrade";
  } else if (accept != expected_accept) {
    check.error = "Sec-WebSocket-Accept mismatch: got '" + printable(accept, 64) + "', expected '" +
                  std::string(expected_accept) + "'";
  } else if (!extensions.empty()) {
    check.error = "server chose an extension that was not offered: " + printable(extensions);
  } else {
    check.status = UpgradeCheck::Status::kUpgraded;
    check.header_bytes = head_end + 4;
  }
  return check;
}

bool FrameParser::fail(std::string text) {
  error_ = std::move(text);
  return false;
}

bool FrameParser::start_frame(FrameHandler& handler) {
  const std::uint8_t b0 = header_[0];
  const std::uint8_t b1 = header_[1];
  frame_fin_ = (b0 & 0x80) != 0;
  const auto opcode = static_cast<std::uint8_t>(b0 & 0x0F);
  if ((b0 & 0x70) != 0) return fail("reserved bits set (no extension was negotiated)");
  std::uint64_t length = b1 & 0x7F;
  if (length == 126) {
    length = (std::uint64_t{header_[2]} << 8) | header_[3];
  } else if (length == 127) {
    length = 0;
    for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | header_[i];
    if ((length >> 63) != 0) return fail("64-bit payload length with the most significant bit set");
  }
  switch (opcode) {
    case 0x8:
    case 0x9:
    case 0xA:
      if (!frame_fin_) return fail("fragmented control frame");
      if (length > 125) return fail("control frame longer than 125 bytes");
      control_.clear();
      break;
    case 0x1:
    case 0x2:
      if (in_message_) return fail("new data frame inside a fragmented message");
      in_message_ = true;
      message_opcode_ = static_cast<Opcode>(opcode);
      message_size_ = 0;
      captured_.clear();
      capture_limit_ = handler.capture_limit(message_opcode_);
      break;
    case 0x0:
      if (!in_message_) return fail("continuation frame outside a message");
      break;
    default: return fail("unknown opcode " + std::to_string(opcode));
  }
  if (opcode < 0x8) {
    if (length > max_message_bytes_ - message_size_) {
      return fail("message larger than " + std::to_string(max_message_bytes_) + " bytes");
    }
    message_size_ += length;
  }
  frame_opcode_ = static_cast<Opcode>(opcode);
  frame_remaining_ = length;
  in_frame_ = true;
  header_have_ = 0;
  return true;
}

bool FrameParser::feed(std::string_view data, FrameHandler& handler) {
  if (failed()) return false;
  std::size_t pos = 0;
  for (;;) {
    if (!in_frame_) {
      if (pos == data.size()) return true;
      // Header: 2 bytes, then 0, 2 or 8 bytes of extended length (never a mask from a server).
      auto header_size = [this] {
        if (header_have_ < 2) return std::size_t{2};
        const std::uint8_t code = header_[1] & 0x7F;
        return std::size_t{2} + (code == 126 ? 2 : code == 127 ? 8 : 0);
      };
      std::size_t need = header_size();
      while (header_have_ < need) {
        if (pos == data.size()) return true;
        const std::size_t take = std::min(need - header_have_, data.size() - pos);
        std::memcpy(header_.data() + header_have_, data.data() + pos, take);
        header_have_ += take;
        pos += take;
        if (header_have_ >= 2) {
          if ((header_[1] & 0x80) != 0) return fail("masked frame from the server");
          need = header_size();
        }
      }
      if (!start_frame(handler)) return false;
      // A whole single-frame data message already in `data`: hand out a view, copy nothing.
      if (frame_fin_ && frame_opcode_ != Opcode::kContinuation && frame_opcode_ < Opcode::kClose &&
          frame_remaining_ <= data.size() - pos) {
        const auto size = static_cast<std::size_t>(frame_remaining_);
        handler.on_message(message_opcode_, data.substr(pos, std::min(size, capture_limit_)), size);
        pos += size;
        in_frame_ = false;
        in_message_ = false;
        continue;
      }
    }
    const std::size_t chunk =
        static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, data.size() - pos));
    if (frame_opcode_ >= Opcode::kClose) {
      control_.append(data.substr(pos, chunk));
    } else if (captured_.size() < capture_limit_) {
      captured_.append(data.substr(pos, std::min(chunk, capture_limit_ - captured_.size())));
    }
    pos += chunk;
    frame_remaining_ -= chunk;
    if (frame_remaining_ > 0) return true;  // the rest of this frame comes with the next read
    in_frame_ = false;
    if (frame_opcode_ >= Opcode::kClose) {
      if (!handler.on_control(frame_opcode_, control_)) return true;
    } else if (frame_fin_) {
      in_message_ = false;
      handler.on_message(message_opcode_, captured_, message_size_);
    }
  }
}

void append_client_frame(std::string& out, Opcode opcode, std::string_view payload,
                         const std::array<std::uint8_t, 4>& mask) {
  out.push_back(static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode)));
  const std::uint64_t size = payload.size();
  if (size < 126) {
    out.push_back(static_cast<char>(0x80 | size));
  } else if (size <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(size >> 8));
    out.push_back(static_cast<char>(size & 0xFF));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((size >> shift) & 0xFF));
    }
  }
  for (const std::uint8_t byte : mask) out.push_back(static_cast<char>(byte));
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ mask[i % 4]));
  }
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out += reason.substr(0, std::min<std::size_t>(reason.size(), 123));
  return out;
}

std::optional<CloseInfo> parse_close_payload(std::string_view payload) {
  CloseInfo info;
  if (payload.empty()) return info;
  if (payload.size() == 1) return std::nullopt;
  info.code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                         static_cast<std::uint8_t>(payload[1]));
  info.reason = std::string(payload.substr(2));
  return info;
}

std::optional<std::int64_t> extract_time_us(std::string_view json) {
  constexpr std::string_view kDidPrefix = R"({"did":")";
  constexpr std::string_view kTimeKey = R"("time_us":)";
  std::size_t digits_at = std::string_view::npos;
  if (json.substr(0, kDidPrefix.size()) == kDidPrefix) {
    // A DID never holds a quote or a backslash: the first quote ends it.
    const auto quote = json.find('"', kDidPrefix.size());
    if (quote != std::string_view::npos &&
        json.substr(kDidPrefix.size(), quote - kDidPrefix.size()).find('\\') ==
            std::string_view::npos &&
        json.substr(quote + 1, 1 + kTimeKey.size()) == R"(,"time_us":)") {
      digits_at = quote + 2 + kTimeKey.size();
    }
  }
  if (digits_at == std::string_view::npos) {
    const auto key = json.find(kTimeKey);
    if (key == std::string_view::npos) return std::nullopt;
    digits_at = key + kTimeKey.size();
  }
  std::size_t end = digits_at;
  while (end < json.size() && json[end] >= '0' && json[end] <= '9') ++end;
  // The digits must be followed by something: a prefix cut inside the number is not a value.
  if (end == digits_at || end == json.size() || end - digits_at > 19) return std::nullopt;
  std::int64_t value = 0;
  if (!parse_digits(json.substr(digits_at, end - digits_at), value)) return std::nullopt;
  return value;
}

}  // namespace jetstream::loadgen
