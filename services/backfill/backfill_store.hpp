// What backfill keeps of its own (DESIGN.md: "its own small store"): each repository's state
// (queued, done at a rev, failed for a reason) and each source's listing cursor, in a small
// RocksDB of its own. Losing it costs only fetching again: decode applies nothing twice.
// Thread-safe (RocksDB is); written by the coordinator actor only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rocksdb {
class DB;
}

namespace jetstream::backfill {

enum class RepoStatus : std::uint8_t { queued = 0, done = 1, failed = 2 };

struct RepoRow {
  RepoStatus status = RepoStatus::queued;
  std::uint32_t attempts = 0;  ///< fetches that failed in a way worth retrying
  std::string rev;             ///< done: the rev fetched
  std::string reason;          ///< failed: why (a metric reason)
  friend bool operator==(const RepoRow&, const RepoRow&) = default;
};

class BackfillStore {
 public:
  /// Opens (creating) the store at `path`; nullptr with `error` set when it cannot.
  static std::unique_ptr<BackfillStore> open(const std::string& path, std::string& error);
  ~BackfillStore();
  BackfillStore(const BackfillStore&) = delete;
  BackfillStore& operator=(const BackfillStore&) = delete;

  [[nodiscard]] std::optional<RepoRow> repo(std::string_view did) const;
  /// Writes `rows` and (when given) a source's new listing cursor in one atomic write.
  bool put(const std::vector<std::pair<std::string, RepoRow>>& rows,
           const std::optional<std::pair<std::string, std::string>>& cursor, std::string& error);
  /// Every repository, in DID order.
  void for_each_repo(const std::function<void(std::string_view did, const RepoRow&)>& visit) const;
  /// A source's listing cursor ("" = from the start) and whether its listing is complete.
  struct Listing {
    std::string cursor;
    bool complete = false;
  };
  [[nodiscard]] Listing listing(std::string_view source) const;
  bool put_listing(std::string_view source, const Listing& listing, std::string& error);

  /// Repositories decode asked to fetch again, kept until the coordinator queued them.
  bool put_resyncs(const std::vector<std::string>& dids, std::string& error);
  [[nodiscard]] std::vector<std::string> resyncs() const;
  bool clear_resync(std::string_view did, std::string& error);

 private:
  explicit BackfillStore(std::unique_ptr<rocksdb::DB> db);
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace jetstream::backfill
