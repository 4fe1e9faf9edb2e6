// What a `/subscribe` client asks for in the query string of its upgrade request (API.md
// "GET /subscribe", v1-spec §2-§3), and the filters it may later replace with an
// options_update (options_update.hpp), which are checked by the same FilterBuilder.
//
// Pure code: no I/O, no logging, no exceptions on client input (only std::bad_alloc). The error
// texts are the contract: HTTP 400 bodies and (after a prefix) websocket close reasons, byte for
// byte as API.md and v1 wrote them. services/fanout/README.md ("Subscriber options and filters")
// lists every place where this differs from v1 and why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/syntax/collection_set.hpp"
#include "services/fanout/did_set.hpp"

namespace jetstream::fanout {

// ---- Limits.

/// Distinct collection patterns (exact NSIDs + prefixes) one subscriber may want (API.md).
inline constexpr std::size_t kMaxWantedCollections = 100;
/// Distinct DIDs one subscriber may want (API.md).
inline constexpr std::size_t kMaxWantedDids = 10'000;

// ---- Error texts (HTTP 400 bodies; inside close reasons after their prefix).

inline constexpr std::string_view kInvalidCursorPrefix = "invalid cursor: ";
inline constexpr std::string_view kInvalidCollectionPrefix =
    "invalid subscriber options: invalid collection: ";
/// A wantedDids value that is not a DID. Bare, as in v1: the value is not echoed.
inline constexpr std::string_view kInvalidOptionsText = "invalid subscriber options";
inline constexpr std::string_view kTooManyDidsText =
    "invalid subscriber options: too many wanted DIDs";
inline constexpr std::string_view kTooManyCollectionsText =
    "invalid subscriber options: too many wanted collections";

// ---- Options.

/// The filters of one subscriber. Each list is de-duplicated and keeps first-seen order. Empty
/// collections and prefixes = every collection; empty dids = every DID.
struct SubscriberFilters {
  /// Exact collection NSIDs (`app.bsky.feed.post`).
  std::vector<std::string> collections;
  /// Collection prefixes with the `*` removed and the `.` kept: `app.bsky.*` is `app.bsky.`, so
  /// `app.bsky.feed.post.*` does not match `app.bsky.feed.post` itself.
  std::vector<std::string> collection_prefixes;
  /// Wanted DIDs (shared with every subscriber that sent the same list).
  DidSet dids;

  [[nodiscard]] bool wants_all_collections() const noexcept {
    return collections.empty() && collection_prefixes.empty();
  }
  [[nodiscard]] bool wants_all_dids() const noexcept { return dids.empty(); }

  friend bool operator==(const SubscriberFilters&, const SubscriberFilters&) = default;
};

/// How a subscriber's events are sent: v1 text, v1 zstd binary (`compress=true`), or text
/// compressed by the transport (permessage-deflate, negotiated by browsers; API.md "Browsers").
enum class MessageEncoding : std::uint8_t { text, zstd, deflate };
inline constexpr std::size_t kMessageEncodingCount = 3;

/// Everything a `/subscribe` request asks for.
struct SubscriberOptions {
  SubscriberFilters filters;
  /// Skip events whose sent payload is larger (EventFilter::accepts_size); 0 = no limit.
  std::uint32_t max_message_size_bytes = 0;
  /// Unix µs, inclusive, exactly as given (may be 0, negative or in the future: the replay layer
  /// decides); nullopt = live.
  std::optional<std::int64_t> cursor;
  /// Binary zstd messages (v1 dictionary). Fixed for the connection's lifetime.
  bool compress = false;
  /// permessage-deflate was negotiated (by the handshake, never from the query; only without
  /// `compress`): events go as compressed text messages. Fixed for the connection's lifetime.
  bool deflate = false;
  /// Send nothing until the first valid options_update.
  bool require_hello = false;
  /// `snapshot=true` (API.md "State"): the compacted records first, then the log, then live.
  /// `cursor` is then exclusive (`time_us > cursor`) and absent means 0.
  bool snapshot = false;
  /// Snapshot only: decode's compacted collections at the handshake (what options_update may
  /// ask for; the filters when the client named no collection).
  syntax::CollectionSet snapshot_collections;

  MessageEncoding encoding() const {
    return compress  ? MessageEncoding::zstd
           : deflate ? MessageEncoding::deflate
                     : MessageEncoding::text;
  }

  friend bool operator==(const SubscriberOptions&, const SubscriberOptions&) = default;
};

/// The options, or the HTTP 400 body (plain text) to answer before the upgrade.
struct ParseResult {
  std::optional<SubscriberOptions> options;
  /// Empty on success.
  std::string error;

  [[nodiscard]] bool ok() const noexcept { return options.has_value(); }
};

/// Parses the raw query string of `GET /subscribe` (query_string.hpp parse_query) and the first
/// `Socket-Encoding` header value (nullopt when absent).
///
/// Checks in v1's order, the first failure wins: query bounds, `cursor` (first value; empty =
/// live; else parse_go_int64 or `invalid cursor: <value>`), every `wantedCollections` value
/// (`invalid subscriber options: invalid collection: <value>`), every `wantedDids` value (bare
/// `invalid subscriber options`), more than kMaxWantedDids distinct DIDs, more than
/// kMaxWantedCollections distinct collection patterns. `maxMessageSizeBytes` (first value) is never
/// an error: anything but an integer in 1..4294967295 means no limit. `compress` (first value)
/// equal to `true`, or a header containing `zstd`, turns zstd on; `requireHello` (first value)
/// equal to `true` holds delivery; `snapshot` (first value) equal to `true` asks for the state
/// (checked against decode's compacted set by snapshot_error). Keys are case-sensitive; unknown
/// keys are ignored.
[[nodiscard]] ParseResult parse_subscribe_request(
    std::string_view query, std::optional<std::string_view> socket_encoding_header);

/// A `maxMessageSizeBytes` value (query or options_update): 1..UINT32_MAX is a limit; everything
/// else (absent, garbage, zero, negative, above UINT32_MAX) is "no limit" (0).
[[nodiscard]] std::uint32_t max_message_size_from(std::optional<std::int64_t> value) noexcept;

/// Accumulates wantedCollections and wantedDids values with bounded memory, and reports the
/// first problem in v1's order: an invalid collection (the first one), an invalid DID, too many
/// distinct DIDs, too many distinct collection patterns. Values beyond a cap are still validated
/// (an invalid one later in the list wins over the count) but no longer stored. The query and
/// options_update both fill their filters through it, so they agree on every rule and text.
class FilterBuilder {
 public:
  /// Forgets every collection value seen so far (a repeated JSON key: the last one wins).
  void reset_collections();
  /// Forgets every DID value seen so far.
  void reset_dids();
  void add_collection(std::string_view value);
  void add_did(std::string_view value);
  /// The 400 text of the first problem, or empty (and `out` filled) when the filters are valid.
  [[nodiscard]] std::string finish(SubscriberFilters& out);

 private:
  SubscriberFilters filters_;
  std::unordered_set<std::string> seen_patterns_;
  DidSet::Builder dids_;
  std::optional<std::string> invalid_collection_;
  bool too_many_collections_ = false;
  bool invalid_did_ = false;
  bool too_many_dids_ = false;
};

// ---- Snapshots (API.md "State").

inline constexpr std::string_view kSnapshotNoSetText =
    "snapshot unavailable: no compacted collections configured";
inline constexpr std::string_view kSnapshotCollectionPrefix =
    "snapshot unavailable for collection: ";

/// Checks a snapshot subscriber's collections against decode's compacted set: the 400 text of
/// the first collection outside it, kSnapshotNoSetText for an empty set, or empty (then, when the
/// subscriber named no collection, its filters become the set's patterns).
[[nodiscard]] std::string apply_snapshot_collections(SubscriberFilters& filters,
                                                     const syntax::CollectionSet& compacted);

/// After apply_snapshot_collections: the 503 text when a collection the snapshot reads is still
/// being built by decode (`building`, from its state info); nullopt when none is.
[[nodiscard]] std::optional<std::string> snapshot_being_built(
    const SubscriberFilters& filters, const syntax::CollectionSet& building);

}  // namespace jetstream::fanout
