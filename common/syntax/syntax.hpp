// Strict validators for the atproto identifier syntaxes Jetstream checks on untrusted input
// (query parameters, options_update messages, op paths in upstream commits), and the parsed form
// of one `wantedCollections` value.
//
// Every validator is hand-written, allocation-free, noexcept and linear in the input, with the
// length cap checked before anything is scanned. Any byte outside the allowed ASCII sets (NUL,
// controls, spaces, bytes >= 0x80) makes a value invalid. The rules and the places where they
// differ from Jetstream v1 are written down in common/syntax/README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jetstream::syntax {

/// Longest NSID accepted: 253 (domain authority) + 1 + 63 (name), as in the atproto spec and
/// indigo.
inline constexpr std::size_t kMaxNsidLength = 317;
/// Longest single NSID segment (a DNS label, or the name segment).
inline constexpr std::size_t kMaxNsidSegmentLength = 63;
/// Longest DID accepted (atproto: "at most 2 KB").
inline constexpr std::size_t kMaxDidLength = 2048;
/// Longest handle accepted (a DNS name).
inline constexpr std::size_t kMaxHandleLength = 253;
/// Longest record key accepted.
inline constexpr std::size_t kMaxRecordKeyLength = 512;
/// Every TID is exactly this long.
inline constexpr std::size_t kTidLength = 13;

/// An atproto NSID such as `app.bsky.feed.post`: a reversed domain authority of at least two DNS
/// labels, the first starting with a letter, then a name segment `[a-zA-Z][a-zA-Z0-9]{0,62}`.
[[nodiscard]] bool is_valid_nsid(std::string_view value) noexcept;

/// An atproto DID: `^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$`, at most 2048 chars. Only the
/// generic syntax; the method (plc, web, ...) is not checked against a list.
[[nodiscard]] bool is_valid_did(std::string_view value) noexcept;

/// An atproto handle: a DNS name of at least two labels, at most 253 chars, whose last label
/// starts with a letter. Reserved TLDs (`.local`, `.arpa`, ...) are syntactically valid.
[[nodiscard]] bool is_valid_handle(std::string_view value) noexcept;

/// An atproto record key: 1-512 chars from `[a-zA-Z0-9_~.:-]`, and neither `.` nor `..`.
[[nodiscard]] bool is_valid_record_key(std::string_view value) noexcept;

/// An atproto TID: 13 chars of base32-sortable (`234567a-z`), the first one `[234567a-j]` so the
/// top bit of the 64-bit value is zero.
[[nodiscard]] bool is_valid_tid(std::string_view value) noexcept;
/// The microseconds since the Unix epoch a valid TID carries (its top 53 bits below the sign);
/// nullopt when `value` is not a TID.
[[nodiscard]] std::optional<std::int64_t> tid_time_us(std::string_view value) noexcept;

/// Whether a `wantedCollections` value names one collection or a family of them.
enum class CollectionPatternKind : std::uint8_t {
  kExact,   ///< `value` is a full NSID; matches that collection only.
  kPrefix,  ///< `value` ends in `.`; matches every collection that starts with it.
};

/// One parsed `wantedCollections` value. Matching is byte-wise and case-sensitive, as in v1.
struct CollectionPattern {
  CollectionPatternKind kind = CollectionPatternKind::kExact;
  /// The NSID for kExact; for kPrefix the input with its final `*` removed (`app.bsky.*` ->
  /// `app.bsky.`), so `app.bsky.feed.post.*` does not match `app.bsky.feed.post` itself.
  std::string value;

  [[nodiscard]] bool matches(std::string_view collection) const noexcept;

  friend bool operator==(const CollectionPattern&, const CollectionPattern&) = default;
};

/// Parses one `wantedCollections` value, or returns nullopt when it is invalid.
///
/// A value ending in `.*` is a prefix pattern whose head (the part before `.*`) must be one or
/// more dot-separated NSID authority segments such that `head.` begins at least one valid NSID
/// (`app.*`, `app.bsky.*`, `app.bsky.feed.*`). Any other value must be a valid NSID. The only
/// exception this can throw is std::bad_alloc from copying the (at most 317-byte) value.
[[nodiscard]] std::optional<CollectionPattern> parse_collection_pattern(std::string_view value);

}  // namespace jetstream::syntax
