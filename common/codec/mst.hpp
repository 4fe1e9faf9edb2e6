// Reading and changing an atproto repository's Merkle Search Tree (MST): the signed commit, a
// streaming walk of a whole tree, and MstTree, a tree held in memory that can be changed and
// hashed again (Sync 1.1 inverts a commit's ops with it; tests build repositories with it).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/codec/car.hpp"

namespace jetstream::codec {

enum class MstError : std::uint8_t {
  missing_block,  ///< a commit or tree node the walk needs is not in the CAR
  bad_commit,     ///< the commit block is not {did, version: 3, data: link, rev, ...}
  bad_node,       ///< a tree node is not {l: link|null, e: [{p, k, v, t}]}
  bad_key,        ///< a key prefix longer than the previous key, or keys out of order
  too_deep,
  bad_height,      ///< a key on another layer than its node's (the tree is not the canonical MST)
  too_large,       ///< RepoRecordStream: the tree's nodes exceed the memory given to them
  commit_refused,  ///< RepoRecordStream: Options::accept_commit refused the commit
  spill_failed,    ///< RepoRecordStream: the spill file could not be written or read
  // MstTree operations
  key_exists,  ///< insert of a key the tree holds
  key_absent,  ///< update or remove of a key the tree does not hold
};

std::string_view to_string(MstError error);

struct RepoCommit {
  std::string did;
  std::string rev;
  std::vector<std::uint8_t> data_cid;  ///< binary CID of the MST root
  std::int64_t version = 0;
};

/// Reads the commit object stored in `car` under `commit_cid`. `scratch` (optional) is a
/// document to parse into, so a caller on a hot path reuses its storage.
std::optional<MstError> read_repo_commit(const CarFile& car, byte_view commit_cid,
                                         RepoCommit& commit, CborDocument* scratch = nullptr);
/// The same, from the commit block's bytes (already checked against its CID).
std::optional<MstError> read_repo_commit_block(byte_view block, RepoCommit& commit,
                                               CborDocument* scratch = nullptr);

/// Visits every (key, value CID) of the MST rooted at `root_cid` in key order. Keys are
/// "collection/rkey". Every block is hash-checked against the CID that links to it.
std::optional<MstError> walk_mst(
    const CarFile& car, byte_view root_cid,
    const std::function<void(std::string_view key, byte_view value_cid)>& visit,
    std::uint32_t max_depth = 64);

/// The records of a whole repository read from its CAR as it streams in (getRepo, blocks in any
/// order: the reference PDS sends them sorted by CID), in bounded memory. The tree's nodes stay in
/// memory (about a sixth of a repository's bytes); a record whose path is not known yet when it
/// arrives (its node comes later) is written to a spill file and read back once its path is known
/// or at the end. Records of collections `wanted` refuses are never kept. Feed it the blocks of a
/// CarStreamReader (already CID-checked). Not thread-safe.
class RepoRecordStream {
 public:
  struct Options {
    /// Which collections to hand over; empty: all.
    std::function<bool(std::string_view collection)> wanted;
    std::size_t max_node_bytes = std::size_t{512} << 20;
    /// Where the spill file is made (removed as soon as it is opened); empty: the system's temp
    /// directory.
    std::string spill_directory;
    /// Called with the commit block (CID-checked) and what it says, before any record is handed
    /// over; false refuses the repository (MstError::commit_refused). For signature checks.
    std::function<bool(byte_view block, const RepoCommit& commit)> accept_commit;
  };
  using RecordVisitor = std::function<void(std::string_view path, byte_view cid, byte_view record)>;

  RepoRecordStream(Options options, RecordVisitor visit);
  ~RepoRecordStream();
  RepoRecordStream(const RepoRecordStream&) = delete;
  RepoRecordStream& operator=(const RepoRecordStream&) = delete;

  /// The CAR's root: the signed commit's CID.
  void set_root(byte_view commit_cid);
  std::optional<MstError> add_block(byte_view cid, byte_view data);
  /// The input ended: hands over the records that waited in the spill file; missing_block when
  /// the commit, a node or a wanted record never came.
  std::optional<MstError> finish();

  const RepoCommit& commit() const { return commit_; }
  struct Counts {
    std::uint64_t records = 0;          ///< handed over
    std::uint64_t records_skipped = 0;  ///< of collections not wanted
    std::uint64_t spilled_blocks = 0;
    std::uint64_t spilled_bytes = 0;
    std::uint64_t orphan_blocks = 0;  ///< in the CAR, not in the tree (ignored)
  };
  const Counts& counts() const { return counts_; }

 private:
  void reach_node(const std::string& cid);
  void reach_record(const std::string& cid, std::string_view path);
  std::optional<MstError> process_nodes();
  std::optional<MstError> emit(std::string_view path, const std::string& cid, byte_view record);
  std::optional<MstError> spill(const std::string& cid, byte_view data);
  std::optional<MstError> flush_spill();
  std::optional<MstError> read_spilled(const std::string& cid, std::vector<std::uint8_t>& out);

  Options options_;
  RecordVisitor visit_;
  std::string root_;
  bool have_commit_ = false;
  RepoCommit commit_;
  CborDocument document_;
  std::unordered_map<std::string, std::vector<std::uint8_t>> nodes_;  ///< arrived, not reached
  std::size_t node_bytes_ = 0;
  std::unordered_set<std::string> expected_nodes_;  ///< reached, not arrived
  std::vector<std::string> ready_nodes_;            ///< reached and arrived: to read
  /// Reached records not arrived: their paths (empty: not wanted, dropped on arrival).
  std::unordered_map<std::string, std::vector<std::string>> expected_records_;
  std::unordered_map<std::string, std::pair<std::uint64_t, std::uint32_t>> spilled_;
  static constexpr std::size_t kSpillBufferBytes = std::size_t{1} << 20;
  int spill_fd_ = -1;
  std::uint64_t spill_size_ = 0;            ///< bytes spilled, the buffered ones included
  std::vector<std::uint8_t> spill_buffer_;  ///< the last spilled bytes, not written yet
  std::vector<std::uint8_t> read_buffer_;
  Counts counts_;
};

/// The MST layer of `key`: the leading zero bits of SHA-256(key), counted two at a time (the
/// atproto repository v3 fanout of 4).
std::uint32_t mst_key_height(std::string_view key);

/// A Merkle Search Tree in memory. Built from nothing, or loaded lazily from a CAR: a subtree
/// whose block is not in the CAR stays a bare CID (the tree is "partial") until an operation has
/// to enter it, which then fails with missing_block. Every block read is hash-checked, and every
/// node read must be canonical (its keys ordered, within its parent's range, on its own layer), so
/// the shape, and so the root CID, follows from the keys alone. Holds reusable storage: reuse
/// one instance. Not thread-safe.
class MstTree {
 public:
  MstTree() { clear(); }

  /// The empty tree.
  void clear();
  /// Starts from the tree whose root node is `root_cid` in `car`. The CAR and its bytes must
  /// outlive every later call until the next clear() or load().
  std::optional<MstError> load(const CarFile& car, byte_view root_cid);

  /// The value CID stored at `key` (into `value`), or nullopt in `value` when the key is absent.
  std::optional<MstError> get(std::string_view key, std::optional<std::string>& value);
  std::optional<MstError> insert(std::string_view key, byte_view value);
  std::optional<MstError> update(std::string_view key, byte_view value);
  std::optional<MstError> remove(std::string_view key);

  /// The binary CID of the root node, encoding and hashing the nodes changed since they were read.
  std::string root_cid();
  /// The binary CIDs of the blocks read from the CAR since load(), in the order read: what a
  /// Sync 1.1 frame must carry for the operations done (tests build minimal proofs with it).
  const std::vector<std::string>& blocks_read() const { return blocks_read_; }
  /// After root_cid(): every node this tree encoded itself (created or changed), as (binary
  /// CID, DAG-CBOR block). Tests build repository CARs from them.
  void for_each_encoded_node(
      const std::function<void(std::string_view cid, byte_view block)>& visit) const;

 private:
  static constexpr std::int32_t kNone = -1;
  struct Leaf {
    std::string key;
    std::string value;  ///< binary CID
  };
  struct Node {
    std::uint32_t height = 0;
    bool height_known = true;  ///< false only for a loaded root before its block is read
    bool loaded = true;        ///< false: only `cid` is known (its block is read on first use)
    bool dirty = true;         ///< `cid` is out of date
    std::string cid;
    std::vector<std::uint8_t> block;  ///< the encoding this tree made (empty for read nodes)
    std::vector<Leaf> leaves;
    /// leaves.size() + 1 subtrees: children[i] holds the keys between leaves[i-1] and leaves[i].
    std::vector<std::int32_t> children{kNone};
  };
  /// Keys a subtree must lie strictly between; null is unbounded.
  struct Range {
    const std::string* low = nullptr;
    const std::string* high = nullptr;
  };

  std::int32_t new_node(std::uint32_t height);
  std::optional<MstError> ensure_loaded(std::int32_t index, Range range);
  static Range child_range(const Node& node, std::size_t gap, Range range);
  /// No keys and no subtree (a node never read is not known to be empty).
  bool is_empty(std::int32_t index) const {
    const Node& node = nodes_[static_cast<std::size_t>(index)];
    return node.loaded && node.leaves.empty() && node.children[0] == kNone;
  }
  std::int32_t wrap(std::int32_t index, std::uint32_t from_height, std::uint32_t to_height);
  std::optional<MstError> insert_at(std::int32_t index, Range range, std::string_view key,
                                    byte_view value, std::uint32_t height);
  std::optional<MstError> split(std::int32_t index, Range range, std::string_view key,
                                std::int32_t& left, std::int32_t& right);
  std::optional<MstError> remove_at(std::int32_t index, Range range, std::string_view key);
  std::optional<MstError> merge(std::int32_t left, std::int32_t right, Range left_range,
                                Range right_range, std::int32_t& merged);
  const std::string& encode(std::int32_t index);

  const CarFile* car_ = nullptr;
  std::deque<Node> nodes_;  // a deque: references stay valid while nodes are added
  std::int32_t root_ = 0;
  std::vector<std::string> blocks_read_;
  CborDocument document_;
};

}  // namespace jetstream::codec
