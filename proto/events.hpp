// The messages decode publishes to every fanout (proto/README.md, "decode → fanout"):
//
//   decode PUB :6012 ──▶ fanout SUB    ["E"][event batch: 1..N events]
//   decode PUB :6012 ──▶ fanout SUB    ["H"][Heartbeat, 18 bytes]
//   decode PUB :6012 ──▶ fanout SUB    ["C"][StateInfo]
//
// and the per-event layout that replay pages reuse. Decoding is zero-copy: an EventView's strings
// and bytes point into the received buffer, which must outlive it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "proto/event_kind.hpp"
#include "proto/wire.hpp"

namespace jetstream::proto {

/// One stored event as it crosses the wire. Non-owning: every view points into a buffer held by
/// whoever built or received the event.
struct EventView {
  /// When decode sequenced the event (unix µs); unique and strictly increasing; the cursor.
  std::int64_t time_us = 0;
  /// time_us of the event decode stored and published immediately before this one, globally
  /// (whatever its DID or collection); 0 for the first event ever. Always < time_us.
  std::int64_t prev_time_us = 0;
  EventKind kind = EventKind::commit;
  /// Non-empty, at most kMaxStringBytes.
  std::string_view did;
  /// The NSID for commits (non-empty); empty for identity and account events.
  std::string_view collection;
  /// The v1 JSON event, byte for byte what a client receives; non-empty, at most kMaxPayloadBytes.
  std::string_view json;
  /// The same JSON as one zstd frame made with the v1 dictionary; empty when no dictionary is
  /// configured (and in replay pages whose request did not ask for it). At most kMaxPayloadBytes.
  std::span<const std::uint8_t> zstd;
  /// A record written by backfill (services/backfill), not by a live commit: delivered only to
  /// `snapshot=true` connections (API.md "Backfill"). Commits only. On the wire: bit 7 of the
  /// kind byte (README §3.4).
  bool backfill = false;

  /// Field-by-field; views compare by content.
  friend bool operator==(const EventView& a, const EventView& b) noexcept;
};

/// Decode's chain head while idle: sent at least once per heartbeat interval (default 1 s) in
/// which no batch was published, in order with the batches on the same socket.
struct Heartbeat {
  /// time_us of the newest event decode has published: the prev_time_us the next event will
  /// carry. 0 when there has never been an event.
  std::int64_t newest_time_us = 0;
  /// time_us of the oldest event still retained; 0 when the log is empty.
  std::int64_t oldest_time_us = 0;

  friend bool operator==(const Heartbeat&, const Heartbeat&) = default;
};

inline constexpr std::size_t kHeartbeatSize = 18;

/// What fanout must know of decode's compacted twin (API.md "State") before it answers a
/// `snapshot=true` handshake: published with every heartbeat interval, whatever the load.
struct StateInfo {
  /// `--compact-collections` in canonical form (sorted, `*` kept); empty: no twin.
  std::string_view compacted;
  /// time_us below which tombstones were expired: a snapshot cursor at or below it restarts.
  std::int64_t tombstone_horizon_us = 0;
  /// The patterns of `compacted` whose twin is still being built from the log (canonical;
  /// empty when none): a snapshot of them would miss records, so fanout answers 503.
  std::string_view building;

  friend bool operator==(const StateInfo&, const StateInfo&) = default;
};
/// The pipeline's figures for fanout's status page (API.md "Status page", proto README §3.6c):
/// published by decode with every heartbeat interval. Counters count since decode started; fanout
/// turns them into rates.
struct PipelineStatus {
  /// ingest's last status (at most 5 s old) said its upstream websocket is open.
  bool upstream_connected = false;
  /// Age of the newest firehose event decode stored when it stored it (its `time` to decode's
  /// clock); -1 before any.
  std::int64_t upstream_lag_us = -1;
  std::uint64_t frames_received = 0;    ///< frames taken from ingest
  std::uint64_t events_stored = 0;      ///< events stored in the log (live and backfilled)
  std::int64_t log_oldest_time_us = 0;  ///< the oldest retained event; 0 = empty log
  std::int64_t log_newest_time_us = 0;  ///< the newest stored event; 0 = none ever
  /// decode keeps a compacted twin (`--compact-collections`), holding `compacted_records`.
  bool twin = false;
  std::uint64_t compacted_records = 0;
  /// A backfill has reported its progress in the last 30 s.
  bool backfill = false;
  std::uint64_t backfill_repos_done = 0;
  std::uint64_t backfill_repos_total = 0;
  std::uint64_t backfill_repos_failed = 0;
  std::uint64_t backfill_records_applied = 0;  ///< backfilled records decode stored
  std::int64_t sent_time_us = 0;               ///< decode's clock when sending; > 0

  friend bool operator==(const PipelineStatus&, const PipelineStatus&) = default;
};
inline constexpr std::size_t kPipelineStatusSize = 91;

/// The longest compacted-set text a StateInfo carries.
inline constexpr std::uint32_t kMaxCompactedSetBytes = 64u * 1024u;
/// Bit 7 of an event's kind byte (proto README §3.4; the log's value header uses the same byte).
inline constexpr std::uint8_t kBackfillKindBit = 0x80;
/// The kind byte of `event`: its EventKind, with kBackfillKindBit for a backfilled record.
constexpr std::uint8_t kind_byte(EventKind kind, bool backfill) noexcept {
  return static_cast<std::uint8_t>(static_cast<std::uint8_t>(kind) |
                                   (backfill ? kBackfillKindBit : 0));
}
/// Bytes of an event with every string empty: time_us, prev_time_us, kind, four u32 lengths.
inline constexpr std::size_t kEventFixedSize = 8 + 8 + 1 + 4 * 4;

// ---- Validation: the rules decoders enforce, for senders holding data they did not produce.

/// One event: kind is known (backfill only with commit); time_us > prev_time_us >= 0; did
/// non-empty; collection non-empty exactly for commits; json non-empty; lengths within their
/// limits.
std::optional<DecodeError> validate(const EventView& event) noexcept;
/// A batch: 1..kMaxEventsPerMessage valid events, each one's prev_time_us equal to the time_us of
/// the event before it in the batch (a batch is a run of consecutive published events).
std::optional<DecodeError> validate_event_batch(std::span<const EventView> events) noexcept;
std::optional<DecodeError> validate(const Heartbeat& heartbeat) noexcept;
std::optional<DecodeError> validate(const StateInfo& info) noexcept;
/// upstream_lag_us >= -1; log times >= 0; done + failed <= total; sent_time_us > 0.
std::optional<DecodeError> validate(const PipelineStatus& status) noexcept;

// ---- Encoders. Input must pass validation, else they abort (a bug in the sender).

/// Exact encoded size of a batch, so the body can be written straight into a ZeroMQ message.
std::size_t event_batch_size(std::span<const EventView> events) noexcept;
/// Writes the batch into `out`, which must be exactly event_batch_size(events) bytes.
void encode_event_batch_into(std::span<const EventView> events,
                             std::span<std::uint8_t> out) noexcept;
std::vector<std::uint8_t> encode_event_batch(std::span<const EventView> events);
std::array<std::uint8_t, kHeartbeatSize> encode_heartbeat(const Heartbeat& heartbeat) noexcept;
std::vector<std::uint8_t> encode_state_info(const StateInfo& info);
std::array<std::uint8_t, kPipelineStatusSize> encode_pipeline_status(
    const PipelineStatus& status) noexcept;

// ---- Decoders: strict, bounds-checked, no exceptions. The batch decoder allocates the vector of
// ---- views only (at most one entry per kEventFixedSize bytes of input).

DecodeResult<std::vector<EventView>> decode_event_batch(std::span<const std::uint8_t> body);
DecodeResult<Heartbeat> decode_heartbeat(std::span<const std::uint8_t> body) noexcept;
/// The view points into `body`.
DecodeResult<StateInfo> decode_state_info(std::span<const std::uint8_t> body) noexcept;
DecodeResult<PipelineStatus> decode_pipeline_status(std::span<const std::uint8_t> body) noexcept;

}  // namespace jetstream::proto
