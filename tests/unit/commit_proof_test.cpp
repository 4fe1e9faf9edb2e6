// Contracts of firehose::CommitProofChecker (Sync 1.1): every real relay commit of the corpus
// inverts through its own blocks to its prevData; each forgery a relay could try on one of them
// is named: another prevData, an op's CID changed, an op added or left out, a create claimed as
// an update, two ops on one path, a tree block missing; a frame without prevData is unproven.
#include "common/firehose/commit_proof.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <vector>

#include "common/codec/car.hpp"
#include "common/codec/cid.hpp"
#include "common/codec/mst.hpp"
#include "common/firehose/capture.hpp"
#include "common/firehose/frame.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/shared_data.hpp"

namespace jetstream::firehose {

[[maybe_unused]] static void PrintTo(CommitProof proof, std::ostream* os) {
  *os << to_string(proof);
}

namespace {

using testing::Bytes;

/// One real commit frame, read: its body, CAR and the tree root its commit block signs.
struct RealCommit {
  FrameDecoder decoder;
  CommitBody body;
  codec::CarFile car;
  std::vector<std::uint8_t> data_root;

  bool read(byte_view frame) {
    if (decoder.decode(frame) || decoder.type() != FrameType::commit) return false;
    if (decoder.read_commit(body) || !body.commit || car.open(body.blocks)) return false;
    codec::RepoCommit commit;
    if (codec::read_repo_commit(car, *body.commit, commit)) return false;
    data_root = commit.data_cid;
    return true;
  }
};

std::vector<byte_view> corpus_frames(std::vector<std::uint8_t>& capture) {
  const auto path = testing::shared_file("corpus/dev.frames");
  EXPECT_TRUE(path.has_value()) << "../shared/corpus/dev.frames is missing";
  if (!path) return {};
  capture = testing::read_binary_file(*path);
  return split_capture(capture).value_or(std::vector<byte_view>{});
}

TEST(CommitProof, EveryRealRelayCommitInvertsToItsPrevData) {
  std::vector<std::uint8_t> capture;
  const auto frames = corpus_frames(capture);
  ASSERT_FALSE(frames.empty());
  CommitProofChecker checker;
  std::size_t proven = 0;
  std::size_t ops = 0;
  for (const byte_view frame : frames) {
    RealCommit commit;
    if (!commit.read(frame)) continue;
    ASSERT_TRUE(commit.body.prev_data.has_value()) << "seq " << commit.body.seq;
    EXPECT_EQ(checker.check(commit.body, commit.car, commit.data_root), CommitProof::proven)
        << "seq " << commit.body.seq << ": " << checker.last_detail();
    ++proven;
    ops += commit.body.ops.size();
  }
  EXPECT_EQ(proven, 75u) << "every frame of the corpus is a Sync 1.1 commit";
  EXPECT_GE(ops, proven);
}

/// The first corpus commit whose ops include `action`.
template <typename Check>
void with_commit(std::string_view action, Check&& check) {
  std::vector<std::uint8_t> capture;
  const auto frames = corpus_frames(capture);
  for (const byte_view frame : frames) {
    RealCommit commit;
    if (!commit.read(frame)) continue;
    for (std::size_t i = 0; i < commit.body.ops.size(); ++i) {
      if (commit.body.ops[i].action == action) {
        check(commit, i);
        return;
      }
    }
  }
  ADD_FAILURE() << "no corpus commit has a " << action;
}

TEST(CommitProof, ForgeriesOfARealCommitAreNamed) {
  const Bytes other = testing::cid_of(codec::kCodecDagCbor, {0xa1, 0x61, 0x78, 0x02});
  CommitProofChecker checker;
  with_commit("create", [&](RealCommit& commit, std::size_t i) {
    ASSERT_EQ(checker.check(commit.body, commit.car, commit.data_root), CommitProof::proven);
    CommitBody forged = commit.body;
    forged.prev_data = byte_view(other);
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::mst_mismatch);

    forged = commit.body;
    forged.ops[i].cid = byte_view(other);
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::ops_mismatch);

    forged = commit.body;
    forged.ops[i].action = "update";  // claimed as a change of a record that did not exist
    forged.ops[i].prev = byte_view(other);
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::mst_mismatch);

    forged = commit.body;
    forged.ops.push_back(forged.ops[i]);
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::ops_mismatch);

    forged = commit.body;
    forged.ops.erase(forged.ops.begin() + static_cast<std::ptrdiff_t>(i));
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::mst_mismatch)
        << "a change left out of the ops";

    forged = commit.body;
    forged.ops[i].prev = byte_view(other);
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::ops_mismatch)
        << "a create with prev";

    forged = commit.body;
    forged.prev_data.reset();
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::unproven);
  });
  with_commit("delete", [&](RealCommit& commit, std::size_t i) {
    ASSERT_EQ(checker.check(commit.body, commit.car, commit.data_root), CommitProof::proven);
    CommitBody forged = commit.body;
    forged.ops[i].prev = byte_view(other);  // the record deleted was another one
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::mst_mismatch);
    forged = commit.body;
    forged.ops[i].prev.reset();  // a pre-1.1 delete: nothing to undo it with
    EXPECT_EQ(checker.check(forged, commit.car, commit.data_root), CommitProof::unproven);
  });
}

TEST(CommitProof, ATreeBlockMissingFromTheFrameIsNotAProof) {
  with_commit("create", [&](RealCommit& commit, std::size_t) {
    // The same frame's CAR without one of its tree nodes.
    std::vector<std::pair<Bytes, Bytes>> kept;
    bool dropped = false;
    for (const codec::CarBlock& block : commit.car.blocks()) {
      const Bytes cid(block.cid.bytes.begin(), block.cid.bytes.end());
      const bool is_root = cid == commit.data_root;
      if (!dropped && !is_root && as_chars(block.data).substr(0, 3) == "\xa2\x61\x65") {
        dropped = true;  // an MST node ({e: ..., l: ...}) below the root
        continue;
      }
      kept.emplace_back(cid, Bytes(block.data.begin(), block.data.end()));
    }
    ASSERT_TRUE(dropped) << "the frame carries tree nodes below its root";
    const Bytes car_bytes = testing::make_car({commit.data_root}, kept);
    codec::CarFile car;
    ASSERT_EQ(car.open(car_bytes), std::nullopt);
    CommitProofChecker checker;
    const CommitProof proof = checker.check(commit.body, car, commit.data_root);
    EXPECT_TRUE(proof == CommitProof::mst_mismatch || proof == CommitProof::ops_mismatch)
        << to_string(proof);
  });
}

}  // namespace
}  // namespace jetstream::firehose
