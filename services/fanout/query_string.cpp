#include "services/fanout/query_string.hpp"

#include <limits>
#include <utility>

namespace jetstream::fanout {
namespace {

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` (two hex digits) is one byte, every other byte
/// is kept as is. False on a `%` not followed by two hex digits.
bool query_unescape(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int high = hex_value(in[i + 1]);
      const int low = hex_value(in[i + 2]);
      if (high < 0 || low < 0) return false;
      out.push_back(static_cast<char>(static_cast<unsigned char>(high * 16 + low)));
      i += 2;
    } else if (c == '+') {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

/// Calls `visit(pair)` for each non-empty `&`-separated pair of `raw`.
template <typename Visit>
void for_each_pair(std::string_view raw, Visit&& visit) {
  while (!raw.empty()) {
    const std::size_t amp = raw.find('&');
    const std::string_view pair = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
    if (!pair.empty()) visit(pair);
  }
}

}  // namespace

QueryParseResult parse_query(std::string_view raw_query) {
  QueryParseResult result;
  if (raw_query.size() > kMaxQueryBytes) {
    result.error = kQueryTooLongText;
    return result;
  }
  std::size_t pairs = 0;
  for_each_pair(raw_query, [&](std::string_view) { ++pairs; });
  if (pairs > kMaxQueryPairs) {
    result.error = kTooManyQueryPairsText;
    return result;
  }
  result.params.reserve(pairs);
  QueryParam param;
  for_each_pair(raw_query, [&](std::string_view pair) {
    if (pair.find(';') != std::string_view::npos) return;  // Go ≥ 1.17 drops these
    const std::size_t equals = pair.find('=');
    const std::string_view key = pair.substr(0, equals);
    const std::string_view value =
        equals == std::string_view::npos ? std::string_view{} : pair.substr(equals + 1);
    if (!query_unescape(key, param.key) || !query_unescape(value, param.value)) return;
    result.params.push_back(std::move(param));
  });
  return result;
}

std::optional<std::int64_t> parse_go_int64(std::string_view text) noexcept {
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return std::nullopt;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  const std::uint64_t limit = negative ? kMax + 1 : kMax;
  std::uint64_t magnitude = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (magnitude > (limit - digit) / 10) return std::nullopt;
    magnitude = magnitude * 10 + digit;
  }
  if (!negative) return static_cast<std::int64_t>(magnitude);
  if (magnitude == kMax + 1) return std::numeric_limits<std::int64_t>::min();
  return -static_cast<std::int64_t>(magnitude);
}

}  // namespace jetstream::fanout
