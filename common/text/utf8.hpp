// The one UTF-8 validator. Every place that must tell well-formed UTF-8 from bytes that are not
// (JSON strings, log fields, websocket close reasons, query values) asks it, so they all accept
// exactly the same thing: what Go's `unicode/utf8` accepts, as v1 did — no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing past U+10FFFF, no truncated sequence.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace jetstream::text {

/// Length (1-4) of the well-formed UTF-8 sequence at the start of `p[0..available)`, or 0 when
/// `p[0]` does not start one. `available` must be at least 1. Inline: JSON writing calls it for
/// every non-ASCII byte of every record.
inline std::size_t utf8_sequence_length(const unsigned char* p, std::size_t available) noexcept {
  const unsigned char lead = p[0];
  if (lead < 0x80) return 1;
  const auto continuation = [&](std::size_t i, unsigned char lo, unsigned char hi) {
    return i < available && p[i] >= lo && p[i] <= hi;
  };
  if (lead >= 0xc2 && lead <= 0xdf) return continuation(1, 0x80, 0xbf) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    const unsigned char lo = lead == 0xe0 ? 0xa0 : 0x80;  // E0: no overlong
    const unsigned char hi = lead == 0xed ? 0x9f : 0xbf;  // ED: no surrogate
    return continuation(1, lo, hi) && continuation(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    const unsigned char lo = lead == 0xf0 ? 0x90 : 0x80;  // F0: no overlong
    const unsigned char hi = lead == 0xf4 ? 0x8f : 0xbf;  // F4: nothing past U+10FFFF
    return continuation(1, lo, hi) && continuation(2, 0x80, 0xbf) && continuation(3, 0x80, 0xbf)
               ? 4
               : 0;
  }
  return 0;
}

/// `utf8_sequence_length` of the start of `text` (0 for an empty one).
inline std::size_t utf8_sequence_length(std::string_view text) noexcept {
  return text.empty() ? 0
                      : utf8_sequence_length(reinterpret_cast<const unsigned char*>(text.data()),
                                             text.size());
}

/// The code point of a sequence `utf8_sequence_length` accepted (`length` is what it returned).
inline char32_t utf8_code_point(const unsigned char* p, std::size_t length) noexcept {
  switch (length) {
    case 1: return p[0];
    case 2: return (char32_t{p[0] & 0x1fu} << 6) | (p[1] & 0x3fu);
    case 3: return (char32_t{p[0] & 0x0fu} << 12) | (char32_t{p[1] & 0x3fu} << 6) | (p[2] & 0x3fu);
    default:
      return (char32_t{p[0] & 0x07u} << 18) | (char32_t{p[1] & 0x3fu} << 12) |
             (char32_t{p[2] & 0x3fu} << 6) | (p[3] & 0x3fu);
  }
}

/// Whether all of `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text) noexcept;

/// Appends `text` with each byte that does not start a well-formed sequence replaced by U+FFFD:
/// what a JSON reader gets back from codec::append_json_string's `\ufffd` for the same bytes.
void append_replacing_invalid(std::string& out, std::string_view text);

}  // namespace jetstream::text
