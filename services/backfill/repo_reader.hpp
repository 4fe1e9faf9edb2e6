// One getRepo response read as it streams (API.md "Backfill"): its CAR's blocks CID-checked
// (codec::CarStreamReader), the repository's records found through its tree in whatever order
// the blocks come (codec::RepoRecordStream), and those of the compacted collections packed into
// repository batches for decode (proto/README.md §3.9). Memory: one chunk, one block, the tree's
// nodes and one batch; records whose path is not known yet wait in a spill file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/car.hpp"
#include "common/codec/mst.hpp"
#include "common/crypto/public_key.hpp"
#include "common/identity/commit_signature.hpp"
#include "common/syntax/collection_set.hpp"

namespace jetstream::backfill {

/// A repository batch as it goes to decode: its proto §3.9 bytes and what they hold.
struct OutgoingBatch {
  std::uint64_t id = 0;
  bool last = false;
  std::size_t records = 0;
  std::vector<std::uint8_t> bytes;
};

/// Why a fetched repository could not be read; each is a `reason` label of backfill's metrics.
enum class RepoFailure : std::uint8_t {
  truncated,        ///< the CAR ended inside its header or a block
  bad_car,          ///< the CAR's header or a block's framing is not a CAR v1
  block_too_large,  ///< a block above the CAR reader's limit
  cid_mismatch,     ///< a block whose bytes are not what its CID names
  bad_repo,         ///< the commit or the tree is malformed, or a block it needs is missing
  wrong_repo,       ///< the commit is another DID's repository
  too_large,        ///< the tree's nodes exceed the memory given to them
  spill_failed,     ///< the spill file could not be written or read (disk full?)
  bad_signature,    ///< --verify: the commit is not signed by the DID's #atproto key (or no key)
};
inline constexpr std::size_t kRepoFailureCount = 9;
std::string_view to_string(RepoFailure failure);

class RepoReader {
 public:
  struct Options {
    std::string did;  ///< the repository asked for
    /// The compacted set (canonical text, from decode): which records are kept, and what each
    /// batch says it kept.
    syntax::CollectionSet collections;
    std::size_t batch_records = 500;
    std::size_t batch_bytes = std::size_t{4} << 20;
    std::size_t max_block_bytes = std::size_t{2} << 20;
    std::size_t max_node_bytes = std::size_t{512} << 20;
    std::string spill_directory;  ///< empty: the system's temp directory
    std::function<std::uint64_t()> next_batch_id;
    /// --verify: the commit must be signed by this key (the DID's #atproto key), checked before
    /// any record is handed over. nullopt: not checked.
    std::optional<crypto::PublicKey> signing_key;
  };
  using BatchSink = std::function<void(OutgoingBatch)>;

  RepoReader(Options options, BatchSink sink);

  /// The next bytes of the body; false once the repository cannot be read (failure()).
  bool feed(std::span<const std::uint8_t> chunk);
  /// The body ended: the records that waited, the last full batch, then the `last` batch
  /// (no records). false when the repository cannot be read.
  bool finish();

  [[nodiscard]] std::optional<RepoFailure> failure() const { return failure_; }
  /// What failed, for a log line (bounded).
  [[nodiscard]] const std::string& detail() const { return detail_; }
  /// The fetched commit's rev, once its commit block was read.
  [[nodiscard]] const std::string& rev() const { return stream_.commit().rev; }
  [[nodiscard]] std::uint64_t bytes_read() const { return car_.bytes_read(); }
  [[nodiscard]] std::uint64_t records_sent() const { return records_sent_; }
  [[nodiscard]] std::uint64_t batches_sent() const { return batches_sent_; }

 private:
  bool fail(RepoFailure failure, std::string detail);
  bool fail_mst(codec::MstError error);
  void on_record(std::string_view path, byte_view cid, byte_view record);
  void flush(bool last);

  struct Record {
    std::string collection;
    std::string rkey;
    std::vector<std::uint8_t> cid;
    std::vector<std::uint8_t> record;
  };

  Options options_;
  std::string collections_text_;
  BatchSink sink_;
  codec::CarStreamReader car_;
  identity::CommitSignatureChecker signatures_;
  codec::RepoRecordStream stream_;
  bool root_set_ = false;
  std::vector<Record> pending_;
  std::size_t pending_bytes_ = 0;
  std::uint64_t records_sent_ = 0;
  std::uint64_t batches_sent_ = 0;
  std::optional<RepoFailure> failure_;
  std::string detail_;
};

}  // namespace jetstream::backfill
