// Test-only `#commit` frames signed like a PDS signs them: the CAR holds the signed commit block
// and the record, the frame's `commit` links the commit block. Variants forge what --verify must
// catch (another key, a high-S signature, a commit block of another repository).
#pragma once

#include <string>
#include <string_view>

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

/// An `#identity` frame for `did`.
inline Bytes make_identity_frame(std::int64_t seq, std::string_view did) {
  CborBuilder frame;
  frame.map(2).text("t").text("#identity").text("op").uint(1);
  frame.map(3).text("did").text(did).text("seq").integer(seq);
  frame.text("time").text("2026-07-04T14:38:08.999Z");
  return frame.take();
}

}  // namespace jetstream::testing
