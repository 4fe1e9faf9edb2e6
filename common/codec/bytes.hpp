// Byte views shared by every codec: untrusted input is always a bounded span, never a pointer
// alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace jetstream {

using byte_view = std::span<const std::uint8_t>;

inline byte_view as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

inline std::string_view as_chars(byte_view bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

inline bool bytes_equal(byte_view a, byte_view b) {
  return a.size() == b.size() &&
         (a.empty() ||
          std::char_traits<char>::compare(reinterpret_cast<const char*>(a.data()),
                                          reinterpret_cast<const char*>(b.data()), a.size()) == 0);
}

}  // namespace jetstream
