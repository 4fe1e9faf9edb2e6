// A set of collection patterns, with the rules both decode (what to compact) and fanout (what a
// snapshot may ask for) apply to it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/syntax/syntax.hpp"

namespace jetstream::syntax {

/// A pattern as written: `app.bsky.feed.post`, or `app.bsky.*` for a prefix.
[[nodiscard]] std::string pattern_text(const CollectionPattern& pattern);

/// A set of collection patterns (exact NSIDs and `prefix.*`): decode's `--compact-collections`,
/// which fanout also reads (from decode's state info) to answer `snapshot=true` handshakes.
class CollectionSet {
 public:
  CollectionSet() = default;

  /// Parses a comma-separated list (spaces around items ignored, empty items skipped). nullopt
  /// with `error` naming the first invalid item.
  static std::optional<CollectionSet> parse(std::string_view list, std::string& error);

  [[nodiscard]] bool empty() const noexcept { return patterns_.empty(); }
  [[nodiscard]] bool matches(std::string_view collection) const noexcept;
  /// The patterns sorted and de-duplicated, comma-separated, `*` restored: the form stored in
  /// the twin's metadata to notice a changed set on restart.
  [[nodiscard]] std::string canonical() const;
  [[nodiscard]] const std::vector<CollectionPattern>& patterns() const noexcept {
    return patterns_;
  }
  /// The patterns of this set that `other` lacks (a pattern, not the collections it covers).
  [[nodiscard]] CollectionSet minus(const CollectionSet& other) const;
  /// Whether every collection a pattern of `pattern` can match is matched by this set.
  [[nodiscard]] bool covers(const CollectionPattern& pattern) const noexcept;
  /// Whether some collection matched by `pattern` is matched by this set too.
  [[nodiscard]] bool overlaps(const CollectionPattern& pattern) const noexcept;

  friend bool operator==(const CollectionSet&, const CollectionSet&) = default;

 private:
  std::vector<CollectionPattern> patterns_;  ///< sorted by value, unique
};

}  // namespace jetstream::syntax
