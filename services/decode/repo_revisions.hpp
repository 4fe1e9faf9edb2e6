// decode --verify full: the last rev stored for each repository, so that a commit whose rev does
// not increase (a replay, a reorder, a fork) is dropped. The sequencer checks every commit in log
// order; the most recent repositories stay in memory (LRU, --verify-rev-cache-size), the rest are
// read back from the event store, where each accepted rev is written in the same batch as its
// commit's events: after any crash the store's revs are exactly those of the events it holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace jetstream::decode {

class RepoRevisions {
 public:
  /// `load(did)` reads the stored rev of a repository not in memory (nullopt: never seen).
  RepoRevisions(std::size_t capacity,
                std::function<std::optional<std::string>(std::string_view did)> load);

  /// True, and `rev` becomes the repository's last, when `rev` is above its last rev (revs are
  /// TIDs: their text order is their time order); false when it is not.
  bool advance(std::string_view did, std::string_view rev);

  /// The revs accepted since the last call, to write with the next append (then cleared).
  std::vector<std::pair<std::string, std::string>>& pending_writes() { return pending_; }

  std::size_t size() const { return entries_.size(); }
  std::uint64_t store_reads() const { return store_reads_; }

 private:
  void remember(std::string_view did, std::string rev);

  using Entry = std::pair<std::string, std::string>;  // DID, rev; most recent first
  std::size_t capacity_;
  std::function<std::optional<std::string>(std::string_view)> load_;
  std::list<Entry> entries_;
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;  // keys view entries_
  std::vector<std::pair<std::string, std::string>> pending_;
  std::uint64_t store_reads_ = 0;
};

}  // namespace jetstream::decode
