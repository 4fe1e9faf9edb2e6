#include "common/websocket/permessage_deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "common/config/ascii_text.hpp"

namespace jetstream::websocket {

namespace {

// --- Sec-WebSocket-Extensions (RFC 6455 §9.1, RFC 7230 §3.2.6) ------------------------------

bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return true;
    default: return false;
  }
}

struct Parameter {
  std::string name;
  std::optional<std::string> value;
};

struct Extension {
  std::string name;
  std::vector<Parameter> parameters;
};

/// Reads `extension-list` left to right. An element that does not parse is returned with an
/// empty name (never accepted) and reading goes on at the next top-level comma.
class ExtensionReader {
 public:
  explicit ExtensionReader(std::string_view text) : text_(text) {}

  /// The next extension, or nullopt at the end.
  std::optional<Extension> next() {
    for (;;) {
      skip_spaces();
      if (at_ >= text_.size()) return std::nullopt;
      if (text_[at_] == ',') {  // empty list elements are allowed (RFC 7230 §7)
        ++at_;
        continue;
      }
      Extension extension;
      if (!read_extension(extension)) {
        skip_to_next_element();
        return Extension{};
      }
      return extension;
    }
  }

 private:
  void skip_spaces() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t')) ++at_;
  }

  std::string read_token() {
    const std::size_t start = at_;
    while (at_ < text_.size() && is_tchar(text_[at_])) ++at_;
    return std::string(text_.substr(start, at_ - start));
  }

  /// A quoted-string after its opening quote; nullopt when it never closes.
  std::optional<std::string> read_quoted() {
    std::string out;
    while (at_ < text_.size()) {
      const char c = text_[at_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (at_ >= text_.size()) return std::nullopt;
        out += text_[at_++];
      } else {
        out += c;
      }
    }
    return std::nullopt;
  }

  bool read_extension(Extension& extension) {
    extension.name = read_token();
    if (extension.name.empty()) return false;
    for (;;) {
      skip_spaces();
      if (at_ >= text_.size()) return true;
      if (text_[at_] == ',') {
        ++at_;
        return true;
      }
      if (text_[at_] != ';') return false;
      ++at_;
      skip_spaces();
      Parameter parameter;
      parameter.name = read_token();
      if (parameter.name.empty()) return false;
      skip_spaces();
      if (at_ < text_.size() && text_[at_] == '=') {
        ++at_;
        skip_spaces();
        if (at_ < text_.size() && text_[at_] == '"') {
          ++at_;
          parameter.value = read_quoted();
          if (!parameter.value) return false;
        } else {
          parameter.value = read_token();
          if (parameter.value->empty()) return false;
        }
      }
      extension.parameters.push_back(std::move(parameter));
    }
  }

  void skip_to_next_element() {
    bool quoted = false;
    while (at_ < text_.size()) {
      const char c = text_[at_++];
      if (quoted && c == '\\' && at_ < text_.size()) {
        ++at_;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        return;
      }
    }
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

/// A window size parameter's value: "8" to "15", digits only, no leading zero (RFC 7692 §7.1.2).
std::optional<int> window_bits(std::string_view value) noexcept {
  if (value.empty() || value.size() > 2 || value[0] == '0') return std::nullopt;
  int bits = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    bits = bits * 10 + (c - '0');
  }
  if (bits < 8 || bits > 15) return std::nullopt;
  return bits;
}

constexpr std::string_view kServerNoContextTakeover = "server_no_context_takeover";
constexpr std::string_view kClientNoContextTakeover = "client_no_context_takeover";
constexpr std::string_view kServerMaxWindowBits = "server_max_window_bits";
constexpr std::string_view kClientMaxWindowBits = "client_max_window_bits";

/// The answer to one permessage-deflate offer, or nullopt when it is declined.
std::optional<std::string> accept_offer(const Extension& offer) {
  bool seen[4] = {};
  bool echo_server_window = false;
  for (const Parameter& parameter : offer.parameters) {
    int which = -1;
    if (parameter.name == kServerNoContextTakeover) which = 0;
    if (parameter.name == kClientNoContextTakeover) which = 1;
    if (parameter.name == kServerMaxWindowBits) which = 2;
    if (parameter.name == kClientMaxWindowBits) which = 3;
    if (which < 0 || seen[which]) return std::nullopt;  // unknown or repeated (§7.1)
    seen[which] = true;
    switch (which) {
      case 0:
      case 1:
        if (parameter.value) return std::nullopt;
        break;
      case 2: {
        const auto bits = parameter.value ? window_bits(*parameter.value) : std::nullopt;
        if (!bits) return std::nullopt;
        // One compressed copy of each message serves every client: it is made with 15 bits.
        if (*bits < 15) return std::nullopt;
        echo_server_window = true;
        break;
      }
      case 3:
        // No value: the client can take a limit we do not need to set (we inflate with 15).
        if (parameter.value && !window_bits(*parameter.value)) return std::nullopt;
        break;
      default: break;
    }
  }
  std::string answer(kPermessageDeflateName);
  answer += "; ";
  answer += kServerNoContextTakeover;
  answer += "; ";
  answer += kClientNoContextTakeover;
  if (echo_server_window) {
    answer += "; ";
    answer += kServerMaxWindowBits;
    answer += "=15";
  }
  return answer;
}

[[noreturn]] void zlib_fatal(const char* what, int code) {
  // Only out of memory or a wrong argument of ours: an internal invariant, not client input.
  std::fprintf(stderr, "fatal: zlib %s failed (%d)\n", what, code);
  std::abort();
}

constexpr unsigned char kFlushTail[4] = {0x00, 0x00, 0xFF, 0xFF};

}  // namespace

std::optional<std::string> accept_permessage_deflate(std::string_view offers) {
  ExtensionReader reader(offers);
  while (auto extension = reader.next()) {
    if (!config::iequals_ascii(extension->name, kPermessageDeflateName)) continue;
    if (auto answer = accept_offer(*extension)) return answer;
  }
  return std::nullopt;
}

std::optional<DeflateResponse> read_permessage_deflate_response(std::string_view response) {
  DeflateResponse out;
  ExtensionReader reader(response);
  bool seen_extension = false;
  while (auto extension = reader.next()) {
    // Only one extension was offered, so only it may be answered, once.
    if (seen_extension || !config::iequals_ascii(extension->name, kPermessageDeflateName))
      return std::nullopt;
    seen_extension = true;
    out.accepted = true;
    bool seen[4] = {};
    for (const Parameter& parameter : extension->parameters) {
      int which = -1;
      if (parameter.name == kServerNoContextTakeover) which = 0;
      if (parameter.name == kClientNoContextTakeover) which = 1;
      if (parameter.name == kServerMaxWindowBits) which = 2;
      if (parameter.name == kClientMaxWindowBits) which = 3;
      if (which < 0 || seen[which]) return std::nullopt;
      seen[which] = true;
      if (which <= 1 && parameter.value) return std::nullopt;
      // A window limit needs a valid value; a 15-bit inflater reads any smaller window, and this
      // client's own compression (a 15-bit window) is only allowed when the server asks for 15.
      if (which >= 2 && (!parameter.value || !window_bits(*parameter.value))) return std::nullopt;
      if (which == 3 && *window_bits(*parameter.value) != 15) return std::nullopt;
      if (which == 0) out.server_no_context_takeover = true;
      if (which == 1) out.client_no_context_takeover = true;
    }
  }
  return out;
}

// --- MessageDeflater ----------------------------------------------------------------------------

struct MessageDeflater::Stream {
  z_stream z{};
};

MessageDeflater::MessageDeflater(int level) : stream_(std::make_unique<Stream>()) {
  // Raw DEFLATE (negative window bits: no zlib header), 15-bit window, zlib's default memory.
  if (const int code = deflateInit2(&stream_->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
      code != Z_OK) {
    zlib_fatal("deflateInit2", code);
  }
}

MessageDeflater::~MessageDeflater() { deflateEnd(&stream_->z); }

std::size_t MessageDeflater::compress(std::string_view message, std::string& out) {
  z_stream& z = stream_->z;
  if (const int code = deflateReset(&z); code != Z_OK) zlib_fatal("deflateReset", code);
  const std::size_t start = out.size();
  // deflateBound covers a finished stream; a sync flush adds at most one empty stored block.
  const std::size_t bound = deflateBound(&z, static_cast<uLong>(message.size())) + 16;
  out.resize(start + bound);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(message.data()));
  z.avail_in = static_cast<uInt>(message.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data() + start);
  z.avail_out = static_cast<uInt>(bound);
  const int code = deflate(&z, Z_SYNC_FLUSH);
  if (code != Z_OK || z.avail_in != 0 || z.avail_out == 0) zlib_fatal("deflate", code);
  std::size_t size = bound - z.avail_out;
  // A sync flush always ends with the empty stored block 00 00 ff ff, which the receiver adds
  // back (RFC 7692 §7.2.1).
  if (size < 4 ||
      !std::equal(kFlushTail, kFlushTail + 4,
                  reinterpret_cast<const unsigned char*>(out.data() + start + size - 4))) {
    zlib_fatal("deflate (no flush tail)", code);
  }
  size -= 4;
  out.resize(start + size);
  return size;
}

// --- MessageInflater ----------------------------------------------------------------------------

struct MessageInflater::Stream {
  z_stream z{};
};

MessageInflater::MessageInflater(bool reset_each_message)
    : stream_(std::make_unique<Stream>()), reset_each_message_(reset_each_message) {
  if (const int code = inflateInit2(&stream_->z, -15); code != Z_OK) {
    zlib_fatal("inflateInit2", code);
  }
}

MessageInflater::~MessageInflater() { inflateEnd(&stream_->z); }

MessageInflater::Result MessageInflater::inflate(std::string_view payload, std::size_t max_bytes,
                                                 std::string& out) {
  z_stream& z = stream_->z;
  if (reset_each_message_) inflateReset(&z);
  out.clear();
  // The payload, then the tail the sender removed; inflation stops one byte past the bound.
  const std::string_view inputs[2] = {
      payload, std::string_view(reinterpret_cast<const char*>(kFlushTail), sizeof kFlushTail)};
  Result result = Result::kOk;
  for (const std::string_view input : inputs) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
    z.avail_in = static_cast<uInt>(input.size());
    bool ended = false;
    while (z.avail_in > 0 || z.avail_out == 0) {
      const std::size_t room = max_bytes + 1 - out.size();
      if (room == 0) {
        result = Result::kTooBig;
        break;
      }
      const std::size_t chunk = std::min<std::size_t>(
          {room, std::max<std::size_t>(out.size(), 16 * 1024), std::size_t{1} << 20});
      const std::size_t held = out.size();
      out.resize(held + chunk);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + held);
      z.avail_out = static_cast<uInt>(chunk);
      const int code = ::inflate(&z, Z_SYNC_FLUSH);
      out.resize(held + chunk - z.avail_out);
      if (code == Z_STREAM_END) {
        // A final block (BFINAL): the message is over; whatever follows is not DEFLATE data of
        // this stream. Start afresh for the next message.
        ended = true;
        break;
      }
      if (code == Z_BUF_ERROR) break;  // no progress possible: the input is used up
      if (code != Z_OK) {
        result = Result::kCorrupt;
        break;
      }
      if (z.avail_in == 0 && z.avail_out > 0) break;
    }
    if (out.size() > max_bytes) result = Result::kTooBig;
    if (result != Result::kOk) break;
    if (ended) {
      inflateReset(&z);
      break;
    }
  }
  if (result != Result::kOk) {
    if (out.size() > max_bytes) out.resize(max_bytes);
    inflateReset(&z);
  }
  z.next_in = nullptr;
  z.avail_in = 0;
  z.avail_out = 0;
  return result;
}

}  // namespace jetstream::websocket
