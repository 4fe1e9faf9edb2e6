// Test-only `#commit` frames signed like a PDS signs them: the CAR holds the signed commit block
// and the record, the frame's `commit` links the commit block. Variants forge what --verify must
// catch (another key, a high-S signature, a commit block of another repository). TestRepo keeps a
// real repository (records in an MST) and writes Sync 1.1 frames for its commits, with forgeries
// of what --verify full must catch (ops unlike the blocks, another prevData).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/mst.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/test_signing_key.hpp"

namespace jetstream::testing {

struct SignedCommitOptions {
  bool high_s = false;
  /// Sign and carry the commit of this repository instead of the frame's own.
  std::string commit_repo;
};

/// A create of `collection/rkey` with a small record whose text is `text`, in repository `did`
/// at revision `rev`, signed by `signer`.
inline Bytes make_signed_commit_frame(std::int64_t seq, std::string_view did, std::string_view rev,
                                      const TestSigningKey& signer, std::string_view collection,
                                      std::string_view rkey, std::string_view text,
                                      const SignedCommitOptions& options = {}) {
  CborBuilder record;
  record.map(3).text("text").text(text).text("$type").text(collection);
  record.text("createdAt").text("2026-07-04T14:38:08.999Z");
  const Bytes record_bytes = record.take();
  const Bytes record_cid = cid_of(codec::kCodecDagCbor, record_bytes);
  // The MST root is not walked by --verify signatures: any block CID stands for it.
  const Bytes data_cid = cid_of(codec::kCodecDagCbor, {0xa1, 0x61, 0x78, 0x01});
  const std::string commit_repo =
      options.commit_repo.empty() ? std::string(did) : options.commit_repo;
  const Bytes commit = make_signed_commit(commit_repo, rev, data_cid, signer, options.high_s);
  const Bytes commit_cid = cid_of(codec::kCodecDagCbor, commit);
  const Bytes car = make_car({commit_cid}, {{commit_cid, commit}, {record_cid, record_bytes}});
  const std::string path = std::string(collection) + "/" + std::string(rkey);
  return make_commit_frame(seq, did, rev, car, {{"create", path, record_cid}},
                           "2026-07-04T14:38:08.999Z", false, &commit_cid);
}

/// The TID (a commit rev) of `time_us` with clock id `clock_id` (0..1023).
inline std::string tid_at(std::int64_t time_us, unsigned clock_id = 0) {
  constexpr std::string_view kAlphabet = "234567abcdefghijklmnopqrstuvwxyz";
  std::uint64_t bits = (static_cast<std::uint64_t>(time_us) << 10) | (clock_id & 1023u);
  std::string tid(13, '2');
  for (std::size_t i = tid.size(); i-- > 0;) {
    tid[i] = kAlphabet[bits & 31u];
    bits >>= 5;
  }
  return tid;
}

/// A repository signed by one key, whose commits become Sync 1.1 `#commit` frames: `prevData` and
/// each op's `prev` set, the CAR holding the signed commit, the records written and the tree nodes
/// a proof needs, as a PDS sends them (found by inverting the commit through the whole tree and
/// keeping the blocks that read; the inversion must give back the root before, or the test
/// aborts).
class TestRepo {
 public:
  TestRepo(std::string did, const TestSigningKey& signer) : did_(std::move(did)), signer_(signer) {}

  struct Change {
    std::string action;  ///< create | update | delete
    std::string path;    ///< collection/rkey
    std::string text;    ///< the record's text (create, update)
  };
  struct Forgery {
    bool other_prev_data = false;     ///< prevData names another tree
    bool op_cid_unlike_tree = false;  ///< the first op's CID is not what the tree holds
    bool no_prev_data = false;        ///< a frame older than Sync 1.1
  };

  const std::string& did() const { return did_; }

  /// The frame of a commit at `rev` applying `changes`. The repository moves on even when the
  /// frame is forged, as a PDS's would.
  Bytes commit(std::int64_t seq, std::string_view rev, const std::vector<Change>& changes) {
    return commit(seq, rev, changes, Forgery{});
  }
  Bytes commit(std::int64_t seq, std::string_view rev, const std::vector<Change>& changes,
               const Forgery& forgery) {
    const std::string before = tree_.root_cid();
    std::vector<TestOp> ops;
    std::vector<std::pair<Bytes, Bytes>> blocks;
    for (const Change& change : changes) {
      TestOp op{change.action, change.path, {}, {}};
      const auto stored = records_.find(change.path);
      if (stored != records_.end()) op.prev = stored->second;
      if (change.action == "delete") {
        require(!tree_.remove(change.path), change.path);
        records_.erase(change.path);
      } else {
        CborBuilder record;
        const std::string collection = change.path.substr(0, change.path.find('/'));
        record.map(3).text("text").text(change.text).text("$type").text(collection);
        record.text("createdAt").text("2026-07-04T14:38:08.999Z");
        const Bytes bytes = record.take();
        op.cid = cid_of(codec::kCodecDagCbor, bytes);
        blocks.emplace_back(op.cid, bytes);
        record_blocks_[op.cid] = bytes;
        const auto error = change.action == "create" ? tree_.insert(change.path, op.cid)
                                                     : tree_.update(change.path, op.cid);
        require(!error, change.path);
        records_[change.path] = op.cid;
      }
      ops.push_back(std::move(op));
    }
    const std::string after = tree_.root_cid();
    add_proof_blocks(before, after, ops, blocks);
    const Bytes data(after.begin(), after.end());
    const Bytes signed_commit = make_signed_commit(did_, rev, data, signer_);
    const Bytes commit_cid = cid_of(codec::kCodecDagCbor, signed_commit);
    blocks.emplace_back(commit_cid, signed_commit);
    Bytes prev_data(before.begin(), before.end());
    if (forgery.other_prev_data) prev_data = cid_of(codec::kCodecDagCbor, {0xa1, 0x61, 0x7a, 0x07});
    if (forgery.op_cid_unlike_tree && !ops.empty()) {
      ops.front().cid = cid_of(codec::kCodecDagCbor, {0xa1, 0x61, 0x79, 0x07});
    }
    if (forgery.no_prev_data) {
      for (TestOp& op : ops) op.prev.clear();
    }
    const Bytes car = make_car({commit_cid}, blocks);
    return make_commit_frame(seq, did_, rev, car, ops, "2026-07-04T14:38:08.999Z", false,
                             &commit_cid, forgery.no_prev_data ? nullptr : &prev_data);
  }

  /// The whole repository as getRepo sends it: every record and tree node and a commit at `rev`
  /// signed by the signer, blocks sorted by CID (as the reference PDS orders them).
  Bytes export_car(std::string_view rev) {
    std::vector<std::pair<Bytes, Bytes>> blocks;
    tree_.for_each_encoded_node([&](std::string_view cid, byte_view block) {
      blocks.emplace_back(Bytes(cid.begin(), cid.end()), Bytes(block.begin(), block.end()));
    });
    for (const auto& [path, cid] : records_) blocks.emplace_back(cid, record_blocks_.at(cid));
    const std::string root = tree_.root_cid();
    const Bytes signed_commit =
        make_signed_commit(did_, rev, Bytes(root.begin(), root.end()), signer_);
    const Bytes commit_cid = cid_of(codec::kCodecDagCbor, signed_commit);
    blocks.emplace_back(commit_cid, signed_commit);
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    return make_car({commit_cid}, blocks);
  }

 private:
  /// Appends to `blocks` the tree nodes a verifier reads to check `ops` and undo them.
  void add_proof_blocks(const std::string& before, const std::string& after,
                        const std::vector<TestOp>& ops,
                        std::vector<std::pair<Bytes, Bytes>>& blocks) {
    std::vector<std::pair<Bytes, Bytes>> nodes;
    tree_.for_each_encoded_node([&](std::string_view cid, byte_view block) {
      nodes.emplace_back(Bytes(cid.begin(), cid.end()), Bytes(block.begin(), block.end()));
    });
    const Bytes whole = make_car({Bytes(after.begin(), after.end())}, nodes);
    codec::CarFile car;
    require(!car.open(whole), "the whole tree");
    codec::MstTree proof;
    require(!proof.load(car, as_bytes(after)), "the tree after");
    std::optional<std::string> value;
    for (const TestOp& op : ops) require(!proof.get(op.path, value), op.path);
    for (const TestOp& op : ops) {
      const auto error = op.action == "create"   ? proof.remove(op.path)
                         : op.action == "update" ? proof.update(op.path, op.prev)
                                                 : proof.insert(op.path, op.prev);
      require(!error, op.path);
    }
    require(proof.root_cid() == before, "the inversion to the tree before");
    const std::set<std::string> read(proof.blocks_read().begin(), proof.blocks_read().end());
    for (auto& node : nodes) {
      if (read.count(std::string(node.first.begin(), node.first.end())) != 0) {
        blocks.push_back(std::move(node));
      }
    }
  }

  /// A change the repository cannot make is a mistake in the test itself.
  static void require(bool ok, const std::string& what) {
    if (ok) return;
    std::fprintf(stderr, "TestRepo: cannot build the commit (%s)\n", what.c_str());
    std::abort();
  }

  std::string did_;
  const TestSigningKey& signer_;
  codec::MstTree tree_;
  std::map<std::string, Bytes> records_;
  std::map<Bytes, Bytes> record_blocks_;  ///< record CID → its block
};

/// An `#identity` frame for `did`.
inline Bytes make_identity_frame(std::int64_t seq, std::string_view did) {
  CborBuilder frame;
  frame.map(2).text("t").text("#identity").text("op").uint(1);
  frame.map(3).text("did").text(did).text("seq").integer(seq);
  frame.text("time").text("2026-07-04T14:38:08.999Z");
  return frame.take();
}

/// An `#account` frame for `did`.
inline Bytes make_account_frame(std::int64_t seq, std::string_view did, bool active) {
  CborBuilder frame;
  frame.map(2).text("t").text("#account").text("op").uint(1);
  frame.map(4).text("did").text(did).text("seq").integer(seq);
  frame.text("time").text("2026-07-04T14:38:08.999Z").text("active").boolean(active);
  return frame.take();
}

/// A `#sync` frame for `did` at `rev` (its `blocks` an empty byte string: decode reads the DID).
inline Bytes make_sync_frame(std::int64_t seq, std::string_view did, std::string_view rev) {
  CborBuilder frame;
  frame.map(2).text("t").text("#sync").text("op").uint(1);
  frame.map(5).text("did").text(did).text("rev").text(rev).text("seq").integer(seq);
  frame.text("time").text("2026-07-04T14:38:08.999Z").text("blocks").bytes({});
  return frame.take();
}

}  // namespace jetstream::testing
