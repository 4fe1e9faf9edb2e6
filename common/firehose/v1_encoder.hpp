// Firehose frame → Jetstream v1 events, byte for byte as v1 served them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/car.hpp"
#include "common/codec/record_json.hpp"
#include "common/firehose/frame.hpp"
#include "proto/event_kind.hpp"

namespace jetstream::firehose {

using proto::EventKind;  // the one EventKind (proto/event_kind.hpp)

/// One v1 event before sequencing: its JSON with a hole where the `time_us` digits go. The
/// sequencer owns `time_us`; everything costly (CBOR, CAR, hashing, JSON) happens before it.
struct PendingEvent {
  EventKind kind = EventKind::commit;
  std::int64_t upstream_seq = 0;
  std::int64_t upstream_time_us = 0;  ///< the upstream `time` of its commit/identity/account
  std::string did;
  std::string collection;  ///< empty for identity and account events
  std::string json;        ///< v1 JSON without the time_us digits
  std::uint32_t time_us_offset = 0;
  /// Commit events: the record key as a client reads it from the JSON (bytes that are not UTF-8
  /// become U+FFFD, as the JSON writes them), the commit's rev, and whether the op deletes. The
  /// compacted twin keys records by them (services/decode/compacted_twin.hpp).
  std::string rkey;
  std::string rev;
  bool is_delete = false;
  /// A record backfill fetched (V1Encoder::record_event), not a live commit's op.
  bool backfill = false;

  /// The final JSON with `time_us` in place.
  std::string finalize(std::int64_t time_us) const;
  void append_finalized(std::string& out, std::int64_t time_us) const;
};

/// Why something read from upstream produced no event. Counted, never fatal.
enum class DropReason : std::uint8_t {
  malformed_frame,  ///< header or body unreadable, unknown op, or a required field missing
  error_frame,      ///< op = -1 from upstream
  unknown_type,     ///< a frame type this code does not know
  too_big,          ///< commit with tooBig set
  bad_car,          ///< the commit's CAR cannot be parsed: whole commit dropped
  bad_time,         ///< `time` is not RFC 3339: whole commit, or the identity/account event
  bad_path,         ///< op path is not "collection/rkey" with a non-empty collection
  unknown_action,
  missing_cid,      ///< create/update without a CID
  unsupported_cid,  ///< not a sha2-256 dag-cbor CIDv1
  missing_block,    ///< the op's record block is not in the CAR
  cid_mismatch,     ///< the block's recomputed CID differs from the op's
  invalid_record,   ///< not valid atproto data (floats, bad $type, bad blob, too large/deep, …)
  // --verify (decode's CommitGate): the whole commit is dropped.
  bad_commit,        ///< the signed commit block is missing, malformed, or of another repo/rev
  bad_signature,     ///< not signed by the DID's current #atproto key (also high-S)
  unknown_key,       ///< the DID document has no usable #atproto key
  unresolvable_did,  ///< the DID document could not be had (not found, directory down, ...)
  // --verify full (Sync 1.1, common/firehose/commit_proof.hpp)
  ops_mismatch,        ///< an op is not what the signed tree holds, or is malformed for Sync 1.1
  mst_mismatch,        ///< the ops do not invert through the frame's tree blocks to prevData
  rev_not_increasing,  ///< the rev is not above the repository's last stored rev
  rev_in_future,       ///< the rev (a TID) is more than 5 minutes ahead of the clock
  no_prev_data,        ///< --verify-strict: a frame older than Sync 1.1 (no prevData or prev)
};
inline constexpr std::size_t kDropReasonCount = 22;
static_assert(static_cast<std::size_t>(DropReason::no_prev_data) + 1 == kDropReasonCount);
std::string_view to_string(DropReason reason);

struct DecodeStats {
  std::uint64_t frames = 0;
  std::array<std::uint64_t, kFrameTypeCount> frames_by_type{};
  std::array<std::uint64_t, kDropReasonCount> drops{};
  std::array<std::uint64_t, 4> events_by_kind{};  ///< indexed by EventKind
  std::uint64_t events = 0;
  /// Commits a CommitGate passed: checked, or passed unchecked (fail-open).
  std::uint64_t commits_verified = 0;
  std::uint64_t commits_passed_unverified = 0;
  /// --verify full: commits passed without a Sync 1.1 proof (frames older than Sync 1.1).
  std::uint64_t commits_unproven = 0;

  void add(const DecodeStats& other);
};

/// Decides whether a commit may produce events before any exists (decode's `--verify`). Called
/// with the commit read and its CAR open; one instance per encoder (per thread).
class CommitGate {
 public:
  enum class Verdict : std::uint8_t {
    pass,
    drop,  ///< counted under `reason`
    hold,  ///< the gate cannot decide yet (a key to resolve): no events, the frame is kept
  };
  struct Decision {
    Verdict verdict = Verdict::pass;
    DropReason reason = DropReason::bad_signature;
    /// A pass without a check (decode --verify-fail-open for a DID that did not resolve).
    bool unverified = false;
    /// A pass whose ops could not be proven (--verify full, a frame older than Sync 1.1).
    bool unproven = false;
  };
  virtual ~CommitGate() = default;
  virtual Decision check_commit(const CommitBody& commit, const codec::CarFile& car) = 0;
  /// An `#identity` frame for `did`: its key or PDS may have changed.
  virtual void identity_changed(std::string_view did) = 0;
};

/// What one frame was, beside the events it produced.
struct FrameOutcome {
  FrameType type = FrameType::unknown;
  std::optional<std::int64_t> seq;  ///< upstream seq when the body carries one
  std::optional<FrameError> error;  ///< set when the frame could not be read at all
  std::string upstream_error;       ///< "error: message" of an error frame, at most 256 bytes
  bool held = false;                ///< the CommitGate held the commit: no events, keep the frame
  std::string_view repo;            ///< the commit's repository (valid until the next frame)
  /// The CommitGate passed the commit (its events, if any, are in the output); `rev` is its rev
  /// (valid until the next frame).
  bool gate_passed = false;
  bool gate_unverified = false;  ///< passed by fail-open, not verified (counted as such)
  bool gate_unproven = false;    ///< --verify full: passed without a Sync 1.1 proof
  std::string_view rev;
  /// A reason for backfill to fetch `resync_did`'s repository again, or to forget what it knows
  /// of the DID (API.md "Backfill"): a `#sync` frame, an `#account` event that says active, an
  /// `#identity` event (the PDS may have moved). Valid until the next frame.
  enum class Resync : std::uint8_t { none = 0, sync = 1, account_active = 2, identity = 3 };
  Resync resync = Resync::none;
  std::string_view resync_did;
};

/// Turns frames into pending v1 events. Holds reusable buffers: one instance per thread.
class V1Encoder {
 public:
  V1Encoder();

  /// Appends the events of `frame` to `out`, one per commit op, identity or account.
  FrameOutcome events_from_frame(byte_view frame, std::vector<PendingEvent>& out);

  /// A record a backfilled repository holds (API.md "Backfill") as a v1 commit event appended to
  /// `out`: `operation` `create` with the record and its CID, or, with `record` empty, a
  /// `delete` (the repository no longer holds it). upstream_seq and upstream_time_us are 0.
  /// false, with nothing appended and `invalid_record` counted, when the record is not valid
  /// atproto data.
  bool record_event(std::string_view did, std::string_view rev, std::string_view collection,
                    std::string_view rkey, byte_view cid, byte_view record,
                    std::vector<PendingEvent>& out);

  /// Commits go through `gate` (not owned; null, the default, passes every commit).
  void set_commit_gate(CommitGate* gate) { gate_ = gate; }

  const DecodeStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 private:
  void commit_events(std::vector<PendingEvent>& out, FrameOutcome& outcome);
  void identity_event(std::vector<PendingEvent>& out);
  /// Returns whether the account is active (false also when no event was made).
  bool account_event(std::vector<PendingEvent>& out);
  /// The checks identity and account events share: a readable body, a plausible DID, an RFC 3339
  /// time. Returns the time in µs, or nullopt after counting the drop.
  std::optional<std::int64_t> admit_identity_event(bool unreadable, std::string_view did,
                                                   std::string_view time);
  void drop(DropReason reason) { ++stats_.drops[static_cast<std::size_t>(reason)]; }
  /// The commit part of a commit event (after start_event): the fields the twin keys by, then
  /// the JSON. `record` null: no record and no CID (a delete). false: the record is not valid
  /// atproto data (the JSON is then incomplete: discard_last).
  bool append_commit(PendingEvent& event, std::string_view rev, std::string_view action,
                     std::string_view collection, std::string_view rkey, const byte_view* record,
                     byte_view cid);
  /// Removes the event just started and counts it as `invalid_record`.
  void discard_last(std::vector<PendingEvent>& out);
  PendingEvent& start_event(std::vector<PendingEvent>& out, EventKind kind, std::int64_t seq,
                            std::string_view did, std::int64_t upstream_time_us);

  FrameDecoder decoder_;
  codec::CarFile car_;
  codec::RecordConverter records_;
  CommitBody commit_;
  DecodeStats stats_;
  CommitGate* gate_ = nullptr;
};

}  // namespace jetstream::firehose
