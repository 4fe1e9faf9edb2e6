// The replay channel (proto/README.md, "fanout ⇄ decode replay"):
//
//   fanout DEALER ──▶ decode ROUTER :6013   ["Q"][ReplayRequest]
//   decode ROUTER ──▶ fanout DEALER         ["P"][ReplayPage]     exactly one page per request
//
// Fanout pulls the event log page by page; decode never sends a page nobody asked for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proto/events.hpp"
#include "proto/wire.hpp"

namespace jetstream::proto {

/// One page's worth of the event log, with the client's filters. Owning: requests are rare and
/// small next to pages.
struct ReplayRequest {
  /// Nonzero; chosen by fanout, echoed in the page. Bytes 2..9 of every version (see
  /// peek_request_id).
  std::uint64_t request_id = 0;
  /// Inclusive. At or below the oldest retained event's time_us: see `clamp_to_oldest`.
  std::int64_t start_time_us = 0;
  /// Exclusive; 0 = up to the newest stored event at the time of reading. Else > start_time_us.
  std::int64_t end_time_us = 0;
  /// 1..kMaxEventsPerMessage matching events per page.
  std::uint32_t max_events = 0;
  /// 1..kMaxPageBytes: the page stops before an event whose JSON (+ zstd when wanted) would take
  /// the page's total past this; a page always holds at least one matching event if there is one.
  std::uint32_t max_bytes = 0;
  /// Fill EventView::zstd (else it is empty in the page).
  bool want_zstd = false;
  /// When events at or after start_time_us were already deleted by retention: serve from the
  /// oldest retained event (client cursors) instead of answering too_old (gap repair).
  bool clamp_to_oldest = false;
  /// Read the compacted twin (API.md "State") instead of the log: the latest event of every
  /// record, in time_us order. A start at or below the tombstone horizon (start > 1) answers
  /// too_old (the snapshot must restart from 0), unless clamp_to_oldest is set, which for a
  /// snapshot means "continuing a snapshot already under way".
  bool snapshot = false;
  /// Include backfilled records (EventView::backfill) from the log: only a `snapshot=true`
  /// connection sees them (API.md "Backfill"). A snapshot read of the twin always includes them.
  bool include_backfill = false;
  /// Exact collection NSIDs. Empty exact and prefix lists = every collection.
  std::vector<std::string> collections;
  /// Collection prefixes, matched with starts_with: `app.bsky.feed.*` travels as `app.bsky.feed.`.
  /// collections.size() + collection_prefixes.size() <= kMaxCollectionPatterns.
  std::vector<std::string> collection_prefixes;
  /// Wanted DIDs (at most kMaxWantedDids); empty = every DID. Identity and account events pass
  /// every collection filter; the DID filter applies to every kind.
  std::vector<std::string> dids;

  friend bool operator==(const ReplayRequest&, const ReplayRequest&) = default;
};

enum class ReplayStatus : std::uint8_t {
  ok = 0,
  bad_request = 1,          ///< the request failed to decode or validate
  too_old = 2,              ///< events in range were deleted by retention (and no clamp asked)
  internal_error = 3,       ///< the store failed; retry later
  unsupported_version = 4,  ///< the request's version byte is not one decode speaks
};

/// The answer to one request. Non-owning events, as in an event batch.
struct ReplayPageView {
  /// The request's id; 0 only in a non-ok page answering a request too short to carry one.
  std::uint64_t request_id = 0;
  ReplayStatus status = ReplayStatus::ok;
  /// No more stored events in range at the time of reading: fanout hands over to live events
  /// with time_us >= next_time_us.
  bool done = false;
  /// Where the next request starts: every stored event in [start, next_time_us) was considered
  /// for this page. Greater than the time_us of every event in the page.
  std::int64_t next_time_us = 0;
  /// time_us of the oldest retained event; 0 = the log is empty.
  std::int64_t oldest_time_us = 0;
  /// time_us of the newest stored event; 0 = the log is empty.
  std::int64_t newest_time_us = 0;
  /// The matching events, in increasing time_us; empty unless status is ok. Their prev_time_us
  /// is the stored one (the previous event in the log, matching the filters or not).
  std::vector<EventView> events;

  friend bool operator==(const ReplayPageView&, const ReplayPageView&) = default;
};

/// Fixed part of a replay request before its three string lists.
inline constexpr std::size_t kReplayRequestFixedSize = 35;
/// Fixed part of a replay page before its events.
inline constexpr std::size_t kReplayPageFixedSize = 40;
inline constexpr std::uint8_t kReplayFlagWantZstd = 0x01;
inline constexpr std::uint8_t kReplayFlagClampToOldest = 0x02;
inline constexpr std::uint8_t kReplayFlagSnapshot = 0x04;
inline constexpr std::uint8_t kReplayFlagBackfill = 0x08;

std::string_view to_string(ReplayStatus status) noexcept;

// ---- Validation: the rules decoders enforce.

std::optional<DecodeError> validate(const ReplayRequest& request) noexcept;
std::optional<DecodeError> validate(const ReplayPageView& page) noexcept;

// ---- Encoders. Input must pass validation, else they abort (a bug in the sender).

std::vector<std::uint8_t> encode_replay_request(const ReplayRequest& request);
/// Exact encoded size of a page, so it can be written straight into a ZeroMQ message.
std::size_t replay_page_size(const ReplayPageView& page) noexcept;
/// Writes the page into `out`, which must be exactly replay_page_size(page) bytes.
void encode_replay_page_into(const ReplayPageView& page, std::span<std::uint8_t> out) noexcept;
std::vector<std::uint8_t> encode_replay_page(const ReplayPageView& page);

// ---- Decoders: strict, bounds-checked, no exceptions (beyond std::bad_alloc).

DecodeResult<ReplayRequest> decode_replay_request(std::span<const std::uint8_t> body);
DecodeResult<ReplayPageView> decode_replay_page(std::span<const std::uint8_t> body);

/// The request id of a replay request or page of any version (bytes 0..9 — version, type,
/// request id — are the same in every version), so an undecodable request still gets a
/// bad_request or unsupported_version page its sender can match. nullopt when the body is
/// shorter than 10 bytes or byte 1 is neither 'Q' nor 'P'.
std::optional<std::uint64_t> peek_request_id(std::span<const std::uint8_t> body) noexcept;

}  // namespace jetstream::proto
