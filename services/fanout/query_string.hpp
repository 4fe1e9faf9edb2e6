// Query strings as Go's `URL.Query()` reads them (v1 is Go): the pairs of `GET /subscribe`'s
// query, and Go's `strconv.ParseInt`, which v1 used for every integer a client sends.
//
// Pure code: no I/O, no logging, no exceptions on client input (only std::bad_alloc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetstream::fanout {

/// The longest raw query string parse_query reads; longer gets 400 kQueryTooLongText.
inline constexpr std::size_t kMaxQueryBytes = 1024 * 1024;
/// The most `&`-separated pairs parse_query reads; more gets 400 kTooManyQueryPairsText.
inline constexpr std::size_t kMaxQueryPairs = 20'000;
/// Ours (v1 had no bound): a query string over kMaxQueryBytes.
inline constexpr std::string_view kQueryTooLongText = "invalid query: longer than 1048576 bytes";
/// Ours (v1 had no bound): more than kMaxQueryPairs `&`-separated pairs.
inline constexpr std::string_view kTooManyQueryPairsText =
    "invalid query: more than 20000 parameters";

/// One `key=value` pair of a query string, both URL-decoded.
struct QueryParam {
  std::string key;
  std::string value;

  friend bool operator==(const QueryParam&, const QueryParam&) = default;
};

/// The pairs of a query string in order (repeated keys kept), or the 400 body when it is over a
/// bound.
struct QueryParseResult {
  std::vector<QueryParam> params;
  /// Empty on success; else kQueryTooLongText or kTooManyQueryPairsText.
  std::string error;

  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

/// Splits a raw query string (what follows `?`, without any `#fragment`) like Go's
/// `URL.Query()`: pairs are separated by `&` only; empty pairs are skipped; a pair without `=`
/// has an empty value; key and value are unescaped as `url.QueryUnescape` does (`+` is a space,
/// `%XX` is one byte, any other byte is kept). A pair that contains `;` or a bad `%` escape is
/// dropped silently, as Go (≥ 1.17) does. Over kMaxQueryBytes or kMaxQueryPairs non-empty pairs:
/// an error and no pairs.
[[nodiscard]] QueryParseResult parse_query(std::string_view raw_query);

/// Go's `strconv.ParseInt(text, 10, 64)`: an optional `+` or `-`, then one or more ASCII digits,
/// nothing else (no spaces, no `_`, no decimals, no exponent), and no overflow.
[[nodiscard]] std::optional<std::int64_t> parse_go_int64(std::string_view text) noexcept;

}  // namespace jetstream::fanout
