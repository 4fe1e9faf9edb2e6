#include "common/syntax/collection_set.hpp"

#include <algorithm>

namespace jetstream::syntax {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

}  // namespace

std::string pattern_text(const CollectionPattern& pattern) {
  return pattern.kind == CollectionPatternKind::kPrefix ? pattern.value + "*" : pattern.value;
}

// ---- CollectionSet

std::optional<CollectionSet> CollectionSet::parse(std::string_view list, std::string& error) {
  CollectionSet set;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (item.empty()) continue;
    auto pattern = parse_collection_pattern(item);
    if (!pattern) {
      error = "invalid collection pattern '" + std::string(item.substr(0, 320)) +
              "' (an NSID such as app.bsky.feed.post, or a prefix such as app.bsky.*)";
      return std::nullopt;
    }
    set.patterns_.push_back(std::move(*pattern));
  }
  std::sort(set.patterns_.begin(), set.patterns_.end(),
            [](const auto& a, const auto& b) { return a.value < b.value; });
  set.patterns_.erase(std::unique(set.patterns_.begin(), set.patterns_.end()), set.patterns_.end());
  return set;
}

bool CollectionSet::matches(std::string_view collection) const noexcept {
  for (const auto& pattern : patterns_) {
    if (pattern.matches(collection)) return true;
  }
  return false;
}

std::string CollectionSet::canonical() const {
  std::string out;
  for (const auto& pattern : patterns_) {
    if (!out.empty()) out.push_back(',');
    out += pattern_text(pattern);
  }
  return out;
}

CollectionSet CollectionSet::minus(const CollectionSet& other) const {
  CollectionSet out;
  for (const auto& pattern : patterns_) {
    if (std::find(other.patterns_.begin(), other.patterns_.end(), pattern) ==
        other.patterns_.end()) {
      out.patterns_.push_back(pattern);
    }
  }
  return out;
}

bool CollectionSet::covers(const CollectionPattern& wanted) const noexcept {
  for (const auto& pattern : patterns_) {
    if (pattern.kind == CollectionPatternKind::kPrefix && wanted.value.starts_with(pattern.value)) {
      return true;  // a prefix covers every exact name and narrower prefix under it
    }
    if (pattern == wanted) return true;
  }
  return false;
}

bool CollectionSet::overlaps(const CollectionPattern& wanted) const noexcept {
  const bool wanted_prefix = wanted.kind == CollectionPatternKind::kPrefix;
  for (const auto& pattern : patterns_) {
    const bool prefix = pattern.kind == CollectionPatternKind::kPrefix;
    if (prefix && wanted.value.starts_with(pattern.value)) return true;         // under this prefix
    if (wanted_prefix && pattern.value.starts_with(wanted.value)) return true;  // under wanted
    if (pattern == wanted) return true;
  }
  return false;
}

}  // namespace jetstream::syntax
