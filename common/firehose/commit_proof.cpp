#include "common/firehose/commit_proof.hpp"

#include <algorithm>
#include <optional>

namespace jetstream::firehose {

std::string_view to_string(CommitProof proof) {
  switch (proof) {
    case CommitProof::proven: return "proven";
    case CommitProof::unproven: return "unproven";
    case CommitProof::ops_mismatch: return "ops_mismatch";
    case CommitProof::mst_mismatch: return "mst_mismatch";
  }
  return "unknown";
}

CommitProof CommitProofChecker::check(const CommitBody& commit, const codec::CarFile& car,
                                      byte_view data_root) {
  detail_ = {};
  paths_.clear();
  // Without prevData, the ops can still be undone to the empty tree: a repository's first commit.
  bool legacy = false;
  for (const CommitOp& op : commit.ops) {
    paths_.push_back(op.path);
    const bool is_create = op.action == "create";
    const bool is_update = op.action == "update";
    const bool is_delete = op.action == "delete";
    if (!is_create && !is_update && !is_delete) return fail(CommitProof::ops_mismatch, "action");
    if ((is_create || is_update) && !op.cid) return fail(CommitProof::ops_mismatch, "no cid");
    if (is_create && op.prev) return fail(CommitProof::ops_mismatch, "create with prev");
    if (is_delete && op.cid) return fail(CommitProof::ops_mismatch, "delete with cid");
    if (!is_create && !op.prev) legacy = true;
  }
  std::sort(paths_.begin(), paths_.end());
  if (std::adjacent_find(paths_.begin(), paths_.end()) != paths_.end()) {
    return fail(CommitProof::ops_mismatch, "two ops on one path");
  }

  if (tree_.load(car, data_root)) return fail(CommitProof::mst_mismatch, "root block");
  // The ops are what the signed tree holds.
  std::optional<std::string> stored;
  for (const CommitOp& op : commit.ops) {
    const bool is_delete = op.action == "delete";
    if (legacy && is_delete) continue;  // a pre-1.1 frame need not carry the path of a delete
    if (tree_.get(op.path, stored)) return fail(CommitProof::ops_mismatch, "path not in blocks");
    if (is_delete ? stored.has_value() : !stored || !bytes_equal(as_bytes(*stored), *op.cid)) {
      return fail(CommitProof::ops_mismatch, is_delete ? "deleted key present" : "cid differs");
    }
  }
  if (legacy) return CommitProof::unproven;

  // Undone in any order: the tree depends on its keys only.
  const bool first_commit = !commit.prev_data.has_value();
  for (const CommitOp& op : commit.ops) {
    const auto error = op.action == "create"   ? tree_.remove(op.path)
                       : op.action == "update" ? tree_.update(op.path, *op.prev)
                                               : tree_.insert(op.path, *op.prev);
    if (error) {
      if (first_commit) return CommitProof::unproven;
      return fail(CommitProof::mst_mismatch, codec::to_string(*error));
    }
  }
  const std::string before = tree_.root_cid();
  if (first_commit) {
    static const std::string kEmptyTree = codec::MstTree().root_cid();
    return before == kEmptyTree ? CommitProof::proven : CommitProof::unproven;
  }
  if (!bytes_equal(as_bytes(before), *commit.prev_data)) {
    return fail(CommitProof::mst_mismatch, "prevData differs");
  }
  return CommitProof::proven;
}

}  // namespace jetstream::firehose
