// The two ASCII text helpers HTTP-ish parsing needs everywhere (headers, URL schemes, flag
// lists): trimming optional whitespace and case-insensitive comparison. Header-only, no locale.
#pragma once

#include <algorithm>
#include <string_view>

namespace jetstream::config {

/// `text` without leading and trailing spaces and tabs (HTTP's optional whitespace).
inline std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

/// ASCII case-insensitive equality (bytes >= 0x80 compare exactly).
inline bool iequals_ascii(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

}  // namespace jetstream::config
