#include "common/syntax/syntax.hpp"

#include <algorithm>

namespace jetstream::syntax {
namespace {

// Character classes. `char` may be signed, so bytes >= 0x80 are negative here and fall outside
// every range below: non-ASCII input is rejected without any cast.
constexpr bool is_lower(char c) noexcept { return c >= 'a' && c <= 'z'; }
constexpr bool is_alpha(char c) noexcept { return is_lower(c) || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) noexcept { return is_alpha(c) || is_digit(c); }

/// A DNS label as atproto uses it (RFC 1123: may start with a digit):
/// `[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?`.
constexpr bool is_domain_label(std::string_view label) noexcept {
  if (label.empty() || label.size() > kMaxNsidSegmentLength) return false;
  if (!is_alnum(label.front()) || !is_alnum(label.back())) return false;
  return std::ranges::all_of(label, [](char c) { return is_alnum(c) || c == '-'; });
}

/// The last NSID segment: `[a-zA-Z][a-zA-Z0-9]{0,62}`.
constexpr bool is_nsid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxNsidSegmentLength) return false;
  if (!is_alpha(name.front())) return false;
  return std::ranges::all_of(name, is_alnum);
}

/// Counts the labels of a dot-separated sequence of DNS labels whose first label starts with a
/// letter (the shape of an NSID's domain authority). Returns 0 when the sequence is invalid.
constexpr std::size_t count_authority_labels(std::string_view authority) noexcept {
  if (authority.empty() || !is_alpha(authority.front())) return 0;
  std::size_t labels = 0;
  while (true) {
    const std::size_t dot = authority.find('.');
    if (!is_domain_label(authority.substr(0, dot))) return 0;
    ++labels;
    if (dot == std::string_view::npos) return labels;
    authority.remove_prefix(dot + 1);
  }
}

constexpr bool is_did_identifier_char(char c) noexcept {
  return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == ':' || c == '%';
}

constexpr bool is_record_key_char(char c) noexcept {
  return is_alnum(c) || c == '_' || c == '~' || c == '.' || c == ':' || c == '-';
}

/// base32-sortable: `234567abcdefghijklmnopqrstuvwxyz`.
constexpr bool is_base32_sortable(char c) noexcept { return (c >= '2' && c <= '7') || is_lower(c); }

/// Whether some valid NSID can begin with `head.`: the shortest possible tail (one-character
/// segments, as many as needed to reach the three segments every NSID has, at least one) fits
/// within kMaxNsidLength.
constexpr bool prefix_head_can_complete(std::size_t head_length, std::size_t head_labels) noexcept {
  const std::size_t missing_segments = head_labels >= 2 ? 1 : 3 - head_labels;
  return head_length + 2 * missing_segments <= kMaxNsidLength;
}

}  // namespace

bool is_valid_nsid(std::string_view value) noexcept {
  if (value.empty() || value.size() > kMaxNsidLength) return false;
  const std::size_t last_dot = value.rfind('.');
  if (last_dot == std::string_view::npos) return false;
  if (!is_nsid_name(value.substr(last_dot + 1))) return false;
  return count_authority_labels(value.substr(0, last_dot)) >= 2;
}

bool is_valid_did(std::string_view value) noexcept {
  if (value.size() > kMaxDidLength) return false;
  constexpr std::string_view kScheme = "did:";
  if (!value.starts_with(kScheme)) return false;
  value.remove_prefix(kScheme.size());

  std::size_t method_length = 0;
  while (method_length < value.size() && is_lower(value[method_length])) ++method_length;
  if (method_length == 0 || method_length == value.size() || value[method_length] != ':') {
    return false;
  }
  const std::string_view identifier = value.substr(method_length + 1);
  if (identifier.empty()) return false;
  if (!std::ranges::all_of(identifier, is_did_identifier_char)) return false;
  // The identifier may contain ':' and '%' but must not end with either.
  return identifier.back() != ':' && identifier.back() != '%';
}

bool is_valid_handle(std::string_view value) noexcept {
  if (value.empty() || value.size() > kMaxHandleLength) return false;
  std::size_t labels = 0;
  std::string_view rest = value;
  while (true) {
    const std::size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (!is_domain_label(label)) return false;
    ++labels;
    if (dot == std::string_view::npos) {
      // The TLD starts with a letter, which also rules out IPv4 addresses.
      return labels >= 2 && is_alpha(label.front());
    }
    rest.remove_prefix(dot + 1);
  }
}

bool is_valid_record_key(std::string_view value) noexcept {
  if (value.empty() || value.size() > kMaxRecordKeyLength) return false;
  if (value == "." || value == "..") return false;
  return std::ranges::all_of(value, is_record_key_char);
}

bool is_valid_tid(std::string_view value) noexcept {
  if (value.size() != kTidLength) return false;
  const char first = value.front();
  if (!((first >= '2' && first <= '7') || (first >= 'a' && first <= 'j'))) return false;
  return std::ranges::all_of(value, is_base32_sortable);
}

std::optional<std::int64_t> tid_time_us(std::string_view value) noexcept {
  if (!is_valid_tid(value)) return std::nullopt;
  constexpr std::string_view kAlphabet = "234567abcdefghijklmnopqrstuvwxyz";
  std::uint64_t bits = 0;
  for (const char c : value) bits = (bits << 5) | kAlphabet.find(c);
  return static_cast<std::int64_t>(bits >> 10);  // the low 10 bits are the clock id
}

bool CollectionPattern::matches(std::string_view collection) const noexcept {
  return kind == CollectionPatternKind::kExact ? collection == value
                                               : collection.starts_with(value);
}

std::optional<CollectionPattern> parse_collection_pattern(std::string_view value) {
  constexpr std::string_view kWildcard = ".*";
  if (value.ends_with(kWildcard)) {
    const std::string_view head = value.substr(0, value.size() - kWildcard.size());
    if (head.size() > kMaxNsidLength) return std::nullopt;  // bounds the scan below
    const std::size_t labels = count_authority_labels(head);
    if (labels == 0 || !prefix_head_can_complete(head.size(), labels)) return std::nullopt;
    // v1 strips the `*` and keeps the `.`.
    return CollectionPattern{CollectionPatternKind::kPrefix,
                             std::string(value.substr(0, value.size() - 1))};
  }
  if (!is_valid_nsid(value)) return std::nullopt;
  return CollectionPattern{CollectionPatternKind::kExact, std::string(value)};
}

}  // namespace jetstream::syntax
