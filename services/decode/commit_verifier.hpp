// decode's `--verify`: the CommitGate that checks each commit's signature against the #atproto
// key of its DID, read from the shared identity cache, and with `full` first its Sync 1.1 proof
// (common/firehose/commit_proof.hpp) and its rev's syntax and time. It never waits: a DID whose
// resolution is not cached is held (the sequencer keeps the frame and asks the resolver), and so
// is a signature that fails against a cached key while a fresh resolution has not been tried
// (keys rotate). Whether a rev increases is the sequencer's check (repo_revisions.hpp): only it
// sees the commits in log order. One instance per thread (it holds parse buffers).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/codec/mst.hpp"
#include "common/firehose/commit_proof.hpp"
#include "common/firehose/v1_encoder.hpp"
#include "common/identity/commit_signature.hpp"
#include "common/identity/identity_cache.hpp"

namespace jetstream::decode {

enum class VerifyMode : std::uint8_t { off, signatures, full };
std::string_view to_string(VerifyMode mode);

class CommitVerifier final : public firehose::CommitGate {
 public:
  struct Options {
    /// Pass (and count) a commit whose DID does not resolve instead of dropping it.
    bool fail_open = false;
    /// Decide everything, never hold: the sequencer's check of frames released after their
    /// DID was resolved (a failure then is final).
    bool final_check = false;
    /// Also check the Sync 1.1 proof and the rev (--verify full).
    bool full = false;
    /// With `full`: drop a commit older than Sync 1.1 (no_prev_data) instead of passing it.
    bool strict = false;
    /// A rev whose time is further ahead of the clock than this is dropped (rev_in_future).
    std::int64_t future_rev_tolerance_us = 5 * 60 * 1'000'000LL;
  };

  CommitVerifier(identity::IdentityCache& cache, std::function<std::int64_t()> now_us,
                 Options options);

  Decision check_commit(const firehose::CommitBody& commit, const codec::CarFile& car) override;
  void identity_changed(std::string_view did) override;

  /// For the final check: whether the document in the cache is a refreshed one. Until it is, a
  /// failing signature is held for a refresh (keys rotate) rather than dropped.
  void set_refresh_tried(bool tried) { refresh_tried_ = tried; }

  /// Whether the last held commit asks for a fresh resolution (its signature failed against a
  /// cached key) rather than a first one.
  bool last_hold_wants_refresh() const { return last_hold_wants_refresh_; }

 private:
  identity::IdentityCache& cache_;
  std::function<std::int64_t()> now_us_;
  Options options_;
  identity::CommitSignatureChecker checker_;
  firehose::CommitProofChecker proof_checker_;
  codec::RepoCommit repo_commit_;
  codec::CborDocument commit_document_;  // read_repo_commit's, reused
  bool last_hold_wants_refresh_ = false;
  bool refresh_tried_ = false;
};

/// What each decode worker needs to build its own CommitVerifier.
struct WorkerVerification {
  identity::IdentityCache* cache = nullptr;
  CommitVerifier::Options options;
  std::function<std::int64_t()> now_us;
};

}  // namespace jetstream::decode
