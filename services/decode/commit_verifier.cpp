#include "services/decode/commit_verifier.hpp"

namespace jetstream::decode {

std::string_view to_string(VerifyMode mode) {
  switch (mode) {
    case VerifyMode::off: return "off";
    case VerifyMode::signatures: return "signatures";
  }
  return "unknown";
}

CommitVerifier::CommitVerifier(identity::IdentityCache& cache, std::function<std::int64_t()> now_us,
                               Options options)
    : cache_(cache), now_us_(std::move(now_us)), options_(options) {}

firehose::CommitGate::Decision CommitVerifier::check_commit(const firehose::CommitBody& commit,
                                                            const codec::CarFile& car) {
  using firehose::DropReason;
  const auto drop = [](DropReason reason) { return Decision{Verdict::drop, reason}; };
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

  const identity::ResolutionPtr resolution = cache_.find(commit.repo, now_us_());
  if (resolution == nullptr) {
    // Also in the final check: an #identity of the DID may have emptied the cache between the
    // resolver's answer and the release. The frame waits for another resolution.
    return hold(false);
  }
  if (!resolution->document) {
    if (options_.fail_open) return Decision{Verdict::pass, DropReason::unresolvable_did, true};
    return drop(DropReason::unresolvable_did);
  }
  if (!resolution->document->signing_key) return drop(DropReason::unknown_key);
  switch (
      checker_.check(block->data, commit.repo, commit.rev, *resolution->document->signing_key)) {
    case identity::CommitSignature::valid: return Decision{};
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
