#include "services/fanout/event_filter.hpp"

namespace jetstream::fanout {

EventFilter::StringSet::StringSet(const std::vector<std::string>& values) : values_(values) {
  if (values_.size() > kMaxLinear) hashed_.insert(values_.begin(), values_.end());
}

bool EventFilter::StringSet::contains(std::string_view value) const noexcept {
  if (values_.size() > kMaxLinear) return hashed_.find(value) != hashed_.end();
  for (const std::string& candidate : values_) {
    if (candidate == value) return true;
  }
  return false;
}

EventFilter::EventFilter(const SubscriberFilters& filters, std::uint32_t max_message_size_bytes)
    : dids_(filters.dids),
      collections_(filters.collections),
      collection_prefixes_(filters.collection_prefixes),
      max_message_size_bytes_(max_message_size_bytes) {}

bool EventFilter::matches(proto::EventKind kind, std::string_view did,
                          std::string_view collection) const noexcept {
  if (!dids_.empty() && !dids_.contains(did)) return false;
  if (kind != proto::EventKind::commit || collection.empty()) return true;
  if (collections_.empty() && collection_prefixes_.empty()) return true;
  if (!collections_.empty() && collections_.contains(collection)) return true;
  for (const std::string& prefix : collection_prefixes_) {
    if (collection.starts_with(prefix)) return true;
  }
  return false;
}

proto::ReplayRequest to_replay_filters(const SubscriberFilters& filters) {
  proto::ReplayRequest request;
  request.collections = filters.collections;
  request.collection_prefixes = filters.collection_prefixes;
  request.dids = filters.dids.to_vector();
  return request;
}

}  // namespace jetstream::fanout
