#include "services/fanout/subscriber_options.hpp"

#include <limits>
#include <utility>

#include "common/syntax/syntax.hpp"
#include "services/fanout/query_string.hpp"

namespace jetstream::fanout {

std::uint32_t max_message_size_from(std::optional<std::int64_t> value) noexcept {
  if (!value || *value <= 0 || *value > std::numeric_limits<std::uint32_t>::max()) return 0;
  return static_cast<std::uint32_t>(*value);
}

void FilterBuilder::reset_collections() {
  filters_.collections.clear();
  filters_.collection_prefixes.clear();
  seen_patterns_.clear();
  invalid_collection_.reset();
  too_many_collections_ = false;
}

void FilterBuilder::reset_dids() {
  dids_.clear();
  invalid_did_ = false;
  too_many_dids_ = false;
}

void FilterBuilder::add_collection(std::string_view value) {
  if (invalid_collection_) return;  // the first invalid value is the answer
  auto pattern = syntax::parse_collection_pattern(value);
  if (!pattern) {
    invalid_collection_.emplace(value);
    return;
  }
  if (seen_patterns_.contains(pattern->value)) return;
  if (seen_patterns_.size() >= kMaxWantedCollections) {
    too_many_collections_ = true;
    return;
  }
  // Exact NSIDs never end in `.` and prefixes always do, so one set holds both kinds.
  seen_patterns_.insert(pattern->value);
  auto& list = pattern->kind == syntax::CollectionPatternKind::kPrefix
                   ? filters_.collection_prefixes
                   : filters_.collections;
  list.push_back(std::move(pattern->value));
}

void FilterBuilder::add_did(std::string_view value) {
  if (invalid_did_) return;
  if (!syntax::is_valid_did(value)) {
    invalid_did_ = true;
    return;
  }
  if (too_many_dids_) return;
  if (dids_.size() >= kMaxWantedDids) {
    // One more distinct DID is too many; a repeated one is not.
    if (!dids_.contains(value)) too_many_dids_ = true;
    return;
  }
  dids_.add(value);
}

std::string FilterBuilder::finish(SubscriberFilters& out) {
  if (invalid_collection_) {
    std::string error;
    error.reserve(kInvalidCollectionPrefix.size() + invalid_collection_->size());
    error.append(kInvalidCollectionPrefix).append(*invalid_collection_);
    return error;
  }
  if (invalid_did_) return std::string(kInvalidOptionsText);
  if (too_many_dids_) return std::string(kTooManyDidsText);
  if (too_many_collections_) return std::string(kTooManyCollectionsText);
  filters_.dids = dids_.build();
  out = std::move(filters_);
  return {};
}

ParseResult parse_subscribe_request(std::string_view query,
                                    std::optional<std::string_view> socket_encoding_header) {
  ParseResult result;
  QueryParseResult parsed = parse_query(query);
  if (!parsed.ok()) {
    result.error = std::move(parsed.error);
    return result;
  }
  // Go's Values.Get: the first value, "" when the key is absent.
  const auto first = [&](std::string_view key) -> std::string_view {
    for (const QueryParam& param : parsed.params) {
      if (param.key == key) return param.value;
    }
    return {};
  };

  SubscriberOptions options;
  if (const std::string_view cursor = first("cursor"); !cursor.empty()) {
    options.cursor = parse_go_int64(cursor);
    if (!options.cursor) {
      result.error.reserve(kInvalidCursorPrefix.size() + cursor.size());
      result.error.append(kInvalidCursorPrefix).append(cursor);
      return result;
    }
  }

  FilterBuilder builder;
  for (const QueryParam& param : parsed.params) {
    if (param.key == "wantedCollections") {
      builder.add_collection(param.value);
    } else if (param.key == "wantedDids") {
      builder.add_did(param.value);
    }
  }
  result.error = builder.finish(options.filters);
  if (!result.error.empty()) return result;

  options.max_message_size_bytes =
      max_message_size_from(parse_go_int64(first("maxMessageSizeBytes")));
  options.compress =
      first("compress") == "true" ||
      (socket_encoding_header && socket_encoding_header->find("zstd") != std::string_view::npos);
  options.require_hello = first("requireHello") == "true";
  options.snapshot = first("snapshot") == "true";
  result.options = std::move(options);
  return result;
}

std::string apply_snapshot_collections(SubscriberFilters& filters,
                                       const syntax::CollectionSet& compacted) {
  if (compacted.empty()) return std::string(kSnapshotNoSetText);
  const auto outside = [&](const syntax::CollectionPattern& pattern) -> std::string {
    if (compacted.covers(pattern)) return {};
    return std::string(kSnapshotCollectionPrefix) + syntax::pattern_text(pattern);
  };
  for (const auto& exact : filters.collections) {
    auto error = outside({syntax::CollectionPatternKind::kExact, exact});
    if (!error.empty()) return error;
  }
  for (const auto& prefix : filters.collection_prefixes) {
    auto error = outside({syntax::CollectionPatternKind::kPrefix, prefix});
    if (!error.empty()) return error;
  }
  if (filters.wants_all_collections()) {
    for (const auto& pattern : compacted.patterns()) {
      (pattern.kind == syntax::CollectionPatternKind::kPrefix ? filters.collection_prefixes
                                                              : filters.collections)
          .push_back(pattern.value);
    }
  }
  return {};
}

std::optional<std::string> snapshot_being_built(const SubscriberFilters& filters,
                                                const syntax::CollectionSet& building) {
  if (building.empty()) return std::nullopt;
  const auto text = [](const syntax::CollectionPattern& pattern) {
    return "snapshot unavailable while the state of " + syntax::pattern_text(pattern) +
           " is being built from the log; try again later";
  };
  for (const auto& exact : filters.collections) {
    const syntax::CollectionPattern pattern{syntax::CollectionPatternKind::kExact, exact};
    if (building.overlaps(pattern)) return text(pattern);
  }
  for (const auto& prefix : filters.collection_prefixes) {
    const syntax::CollectionPattern pattern{syntax::CollectionPatternKind::kPrefix, prefix};
    if (building.overlaps(pattern)) return text(pattern);
  }
  return std::nullopt;
}

}  // namespace jetstream::fanout
