// Sync 1.1 ("inductive firehose") proof of a `#commit`: its ops are what the tree it signs holds,
// and undoing them through the tree blocks the frame carries gives back the tree before it
// (`prevData`). A relay or PDS cannot then add, drop or alter a record change without the root
// (and so the signature) or prevData giving it away. decode --verify full checks it per commit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/car.hpp"
#include "common/codec/mst.hpp"
#include "common/firehose/frame.hpp"

namespace jetstream::firehose {

enum class CommitProof : std::uint8_t {
  proven,
  /// Older than Sync 1.1: an update/delete without `prev`, or no prevData on a commit that is not
  /// a repository's first (whose ops undo to the empty tree: that one is proven). Its creates and
  /// updates were still found in the tree; nothing else can be shown.
  unproven,
  /// An op is not what the signed tree holds (CID, presence), is malformed for Sync 1.1 (a create
  /// with `prev`, an update or create without `cid`), or two ops share a path.
  ops_mismatch,
  /// The tree's blocks needed to undo the ops are missing or not a canonical MST, or undoing the
  /// ops gives another root than prevData.
  mst_mismatch,
};
std::string_view to_string(CommitProof proof);

/// Holds a reusable tree: one instance per thread.
class CommitProofChecker {
 public:
  /// `data_root` is the binary CID of the MST the commit signs (its `data`).
  CommitProof check(const CommitBody& commit, const codec::CarFile& car, byte_view data_root);

  /// Why the last mst_mismatch or ops_mismatch happened, for rate-limited logs.
  std::string_view last_detail() const { return detail_; }

 private:
  CommitProof fail(CommitProof proof, std::string_view detail) {
    detail_ = detail;
    return proof;
  }

  codec::MstTree tree_;
  std::vector<std::string_view> paths_;
  std::string_view detail_;
};

}  // namespace jetstream::firehose
