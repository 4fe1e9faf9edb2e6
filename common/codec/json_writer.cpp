#include "common/codec/json_writer.hpp"

#include <array>
#include <charconv>

#include "common/text/utf8.hpp"

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
      const std::size_t length = text::utf8_sequence_length(s + i, n - i);
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
