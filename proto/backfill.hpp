// The backfill channel (proto/README.md §3.9, §3.10):
//
//   backfill DEALER ──▶ decode ROUTER :6014   ["B"][RepoBatch]   records of one fetched repository
//   decode ROUTER ──▶ backfill DEALER         ["A"][BatchAck]    once the batch is stored
//
// decode stays the single writer: backfill hands it what a getRepo held, decode decides per record
// (revs compare) and stores what is newer, then acknowledges. Backfill keeps every batch until it
// is acknowledged and sends it again after a timeout; applying a batch twice changes nothing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/wire.hpp"

namespace jetstream::proto {

/// One record of a fetched repository. Non-owning: views into the buffer it was decoded from.
struct BackfillRecordView {
  std::string_view collection;           ///< NSID, 1..kMaxStringBytes
  std::string_view rkey;                 ///< 1..kMaxStringBytes
  std::span<const std::uint8_t> cid;     ///< the record's binary CID, 1..kMaxCidBytes
  std::span<const std::uint8_t> record;  ///< its DAG-CBOR block, 1..kMaxPayloadBytes

  friend bool operator==(const BackfillRecordView& a, const BackfillRecordView& b) noexcept;
};

/// Part of one fetched repository (one getRepo at one rev).
struct RepoBatchView {
  /// Nonzero, chosen by backfill; echoed in the ack. Never reused for other content.
  std::uint64_t batch_id = 0;
  /// The fetch's last batch: every record it held was sent (and acknowledged) before this one,
  /// so decode tombstones the records of `did` in `collections` that it holds at an older rev.
  bool last = false;
  std::string_view did;          ///< 1..kMaxStringBytes
  std::string_view rev;          ///< the fetched commit's rev (a TID), 1..kMaxRevBytes
  std::string_view collections;  ///< the compacted set the fetch kept (canonical text), ≤ 64 KiB
  std::vector<BackfillRecordView> records;  ///< 0..kMaxRecordsPerBatch

  friend bool operator==(const RepoBatchView&, const RepoBatchView&) = default;
};

/// What decode did with a batch.
enum class BatchOutcome : std::uint8_t {
  stored = 0,    ///< applied (what was newer) and durably stored: forget the batch
  rejected = 1,  ///< cannot ever be applied (invalid, or no compacted twin): do not resend
  busy = 2,      ///< not applied now (disk full, log read-only): send again later
};
std::string_view to_string(BatchOutcome outcome) noexcept;

struct BatchAck {
  std::uint64_t batch_id = 0;
  BatchOutcome outcome = BatchOutcome::stored;
  std::uint32_t applied = 0;     ///< records stored as new events
  std::uint32_t unchanged = 0;   ///< records the twin held at the same or a newer rev
  std::uint32_t tombstoned = 0;  ///< records the repository no longer holds, deleted (last batch)
  std::uint32_t invalid = 0;     ///< records that are not valid atproto data, dropped

  friend bool operator==(const BatchAck&, const BatchAck&) = default;
};
inline constexpr std::size_t kBatchAckSize = 2 + 8 + 1 + 4 * 4;

inline constexpr std::uint32_t kMaxRecordsPerBatch = 10'000;
inline constexpr std::uint32_t kMaxRevBytes = 64;
inline constexpr std::uint32_t kMaxCidBytes = 128;

/// Why decode asks backfill to look at a DID again (firehose::FrameOutcome::Resync).
enum class ResyncReason : std::uint8_t {
  sync = 1,            ///< a `#sync` frame: the repository was reset; fetch it again
  account_active = 2,  ///< an `#account` event that says active (back, or new): fetch it again
  identity = 3,        ///< an `#identity` event: forget the cached DID document
};
std::string_view to_string(ResyncReason reason) noexcept;

/// backfill → decode: the DIDs of the last list it has stored (decode forgets them), and how
/// many more it takes. Owning: small and rare (once a second).
struct ResyncPoll {
  std::uint32_t max = 0;  ///< 1..kMaxResyncs
  std::vector<std::string> acked;
  friend bool operator==(const ResyncPoll&, const ResyncPoll&) = default;
};
/// decode → backfill: repositories (DIDs) to look at again, each with its reason.
struct ResyncList {
  std::vector<std::pair<std::string, ResyncReason>> dids;
  friend bool operator==(const ResyncList&, const ResyncList&) = default;
};
inline constexpr std::uint32_t kMaxResyncs = 10'000;

/// backfill → decode, once a second: how far it has come (for fanout's status page, which gets
/// it through decode's pipeline status, §3.6c).
struct BackfillProgress {
  std::uint64_t repos_done = 0;    ///< repositories fetched and stored
  std::uint64_t repos_total = 0;   ///< repositories known (listed or named)
  std::uint64_t repos_failed = 0;  ///< given up
  std::uint64_t records_sent = 0;  ///< records handed to decode (acknowledged)
  friend bool operator==(const BackfillProgress&, const BackfillProgress&) = default;
};
inline constexpr std::size_t kBackfillProgressSize = 34;

std::optional<DecodeError> validate(const ResyncPoll& poll) noexcept;
std::optional<DecodeError> validate(const ResyncList& list) noexcept;
/// done + failed <= total.
std::optional<DecodeError> validate(const BackfillProgress& progress) noexcept;
std::array<std::uint8_t, kBackfillProgressSize> encode_backfill_progress(
    const BackfillProgress& progress) noexcept;
DecodeResult<BackfillProgress> decode_backfill_progress(
    std::span<const std::uint8_t> body) noexcept;
std::vector<std::uint8_t> encode_resync_poll(const ResyncPoll& poll);
std::vector<std::uint8_t> encode_resync_list(const ResyncList& list);
DecodeResult<ResyncPoll> decode_resync_poll(std::span<const std::uint8_t> body);
DecodeResult<ResyncList> decode_resync_list(std::span<const std::uint8_t> body);

std::optional<DecodeError> validate(const RepoBatchView& batch) noexcept;
std::optional<DecodeError> validate(const BatchAck& ack) noexcept;

/// Encoders abort on input that fails validation (a bug in the sender).
std::size_t repo_batch_size(const RepoBatchView& batch) noexcept;
std::vector<std::uint8_t> encode_repo_batch(const RepoBatchView& batch);
std::array<std::uint8_t, kBatchAckSize> encode_batch_ack(const BatchAck& ack) noexcept;

/// The views point into `body`.
DecodeResult<RepoBatchView> decode_repo_batch(std::span<const std::uint8_t> body);
DecodeResult<BatchAck> decode_batch_ack(std::span<const std::uint8_t> body) noexcept;

}  // namespace jetstream::proto
