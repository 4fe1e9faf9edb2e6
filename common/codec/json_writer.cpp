#include "common/codec/json_writer.hpp"

#include <array>
#include <charconv>

namespace jetstream::codec {
namespace {

// 0: copy as is; 1: needs an escape or a UTF-8 check.
constexpr std::array<std::uint8_t, 256> make_special_table() {
  std::array<std::uint8_t, 256> table{};
  for (int c = 0; c < 0x20; ++c) table[static_cast<std::size_t>(c)] = 1;
  for (int c = 0x80; c < 0x100; ++c) table[static_cast<std::size_t>(c)] = 1;
  table['"'] = 1;
  table['\\'] = 1;
  table['<'] = 1;
  table['>'] = 1;
  table['&'] = 1;
  return table;
}
constexpr auto kSpecial = make_special_table();
constexpr std::string_view kHex = "0123456789abcdef";

/// Length of the valid UTF-8 sequence starting at s[0], or 0 if s[0] does not start one.
/// Mirrors Go's utf8.DecodeRuneInString acceptance (no overlongs, surrogates or > U+10FFFF).
std::size_t valid_utf8_length(const unsigned char* s, std::size_t available) {
  const unsigned char b0 = s[0];
  auto continuation = [&](std::size_t i, unsigned char lo, unsigned char hi) {
    return i < available && s[i] >= lo && s[i] <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return continuation(1, 0x80, 0xbf) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const unsigned char lo = b0 == 0xe0 ? 0xa0 : 0x80;
    const unsigned char hi = b0 == 0xed ? 0x9f : 0xbf;
    return continuation(1, lo, hi) && continuation(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const unsigned char lo = b0 == 0xf0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xf4 ? 0x8f : 0xbf;
    return continuation(1, lo, hi) && continuation(2, 0x80, 0xbf) && continuation(3, 0x80, 0xbf)
               ? 4
               : 0;
  }
  return 0;
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  out.reserve(out.size() + n + 2);
  out.push_back('"');
  std::size_t run_start = 0;
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (kSpecial[c] == 0) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t length = valid_utf8_length(s + i, n - i);
      // U+2028 and U+2029 are E2 80 A8 / E2 80 A9.
      const bool line_separator =
          length == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9);
      if (length != 0 && !line_separator) {
        i += length;
        continue;
      }
      out.append(text.data() + run_start, i - run_start);
      if (line_separator) {
        out.append(s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
        i += 3;
      } else {
        out.append("\\ufffd");
        i += 1;
      }
      run_start = i;
      continue;
    }
    out.append(text.data() + run_start, i - run_start);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
        break;
    }
    ++i;
    run_start = i;
  }
  out.append(text.data() + run_start, n - run_start);
  out.push_back('"');
}

void append_json_int(std::string& out, std::int64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void append_json_uint(std::string& out, std::uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

}  // namespace jetstream::codec
