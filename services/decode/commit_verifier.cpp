#include "services/decode/commit_verifier.hpp"

#include "common/log/log.hpp"
#include "common/syntax/syntax.hpp"

namespace jetstream::decode {

std::string_view to_string(VerifyMode mode) {
  switch (mode) {
    case VerifyMode::off: return "off";
    case VerifyMode::signatures: return "signatures";
    case VerifyMode::full: return "full";
  }
  return "unknown";
}

CommitVerifier::CommitVerifier(identity::IdentityCache& cache, std::function<std::int64_t()> now_us,
                               Options options)
    : cache_(cache), now_us_(std::move(now_us)), options_(options) {}

firehose::CommitGate::Decision CommitVerifier::check_commit(const firehose::CommitBody& commit,
                                                            const codec::CarFile& car) {
  using firehose::DropReason;
  const auto drop = [&commit, this](DropReason reason) {
    // Rate-limited per kind of failure, with bounded fields (log.hpp escapes and caps them).
    log::warn_every(
        std::chrono::seconds(10), firehose::to_string(reason),
        "a commit failed verification; dropped",
        {{"reason", firehose::to_string(reason)},
         {"did", commit.repo},
         {"seq", commit.seq},
         {"detail", reason == DropReason::ops_mismatch || reason == DropReason::mst_mismatch
                        ? proof_checker_.last_detail()
                        : std::string_view()}});
    return Decision{Verdict::drop, reason};
  };
  const auto hold = [this](bool refresh) {
    last_hold_wants_refresh_ = refresh;
    return Decision{Verdict::hold, DropReason::unresolvable_did};
  };
  if (!commit.commit) return drop(DropReason::bad_commit);
  const codec::CarBlock* block = car.find(*commit.commit);
  if (block == nullptr) return drop(DropReason::bad_commit);
  // The block must be the one its CID names, or a valid signature over other bytes would pass.
  const auto cid = codec::parse_cid(*commit.commit);
  if (!cid || !codec::cid_matches(*cid, block->data)) return drop(DropReason::bad_commit);

  // Sync 1.1 first: it needs no key, so a forged frame is dropped without a resolution.
  bool unproven = false;
  if (options_.full) {
    const auto rev_time = syntax::tid_time_us(commit.rev);
    if (!rev_time) return drop(DropReason::bad_commit);
    if (*rev_time > now_us_() + options_.future_rev_tolerance_us) {
      return drop(DropReason::rev_in_future);
    }
    if (codec::read_repo_commit(car, *commit.commit, repo_commit_, &commit_document_)) {
      return drop(DropReason::bad_commit);
    }
    const firehose::CommitProof proof = proof_checker_.check(commit, car, repo_commit_.data_cid);
    switch (proof) {
      case firehose::CommitProof::proven: break;
      case firehose::CommitProof::unproven:
        if (options_.strict) return drop(DropReason::no_prev_data);
        unproven = true;
        break;
      case firehose::CommitProof::ops_mismatch:
      case firehose::CommitProof::mst_mismatch:
        return drop(proof == firehose::CommitProof::ops_mismatch ? DropReason::ops_mismatch
                                                                 : DropReason::mst_mismatch);
    }
  }

  const identity::ResolutionPtr resolution = cache_.find(commit.repo, now_us_());
  if (resolution == nullptr) {
    // Also in the final check: an #identity of the DID may have emptied the cache between the
    // resolver's answer and the release. The frame waits for another resolution.
    return hold(false);
  }
  if (!resolution->document) {
    if (options_.fail_open) {
      return Decision{Verdict::pass, DropReason::unresolvable_did, true, unproven};
    }
    return drop(DropReason::unresolvable_did);
  }
  if (!resolution->document->signing_key) return drop(DropReason::unknown_key);
  switch (
      checker_.check(block->data, commit.repo, commit.rev, *resolution->document->signing_key)) {
    case identity::CommitSignature::valid: {
      Decision pass;
      pass.unproven = unproven;
      return pass;
    }
    case identity::CommitSignature::bad_signature:
      if (!options_.final_check || !refresh_tried_) return hold(true);
      return drop(DropReason::bad_signature);
    case identity::CommitSignature::bad_commit:
    case identity::CommitSignature::wrong_repo:
    case identity::CommitSignature::wrong_rev: return drop(DropReason::bad_commit);
  }
  return drop(DropReason::bad_commit);
}

void CommitVerifier::identity_changed(std::string_view did) { cache_.invalidate(did); }

}  // namespace jetstream::decode
