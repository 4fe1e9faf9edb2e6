#include "services/decode/repo_revisions.hpp"

namespace jetstream::decode {

RepoRevisions::RepoRevisions(std::size_t capacity,
                             std::function<std::optional<std::string>(std::string_view)> load)
    : capacity_(capacity == 0 ? 1 : capacity), load_(std::move(load)) {}

bool RepoRevisions::advance(std::string_view did, std::string_view rev) {
  auto found = index_.find(did);
  if (found == index_.end()) {
    ++store_reads_;
    std::optional<std::string> stored = load_(did);
    if (stored && rev <= *stored) {
      remember(did, std::move(*stored));  // known now: the next commit is checked in memory
      return false;
    }
    remember(did, std::string(rev));
  } else {
    if (rev <= found->second->second) return false;
    found->second->second.assign(rev);
    entries_.splice(entries_.begin(), entries_, found->second);
  }
  pending_.emplace_back(std::string(did), std::string(rev));
  return true;
}

void RepoRevisions::remember(std::string_view did, std::string rev) {
  entries_.emplace_front(std::string(did), std::move(rev));
  index_.emplace(entries_.front().first, entries_.begin());
  if (entries_.size() > capacity_) {
    index_.erase(entries_.back().first);
    entries_.pop_back();
  }
}

}  // namespace jetstream::decode
