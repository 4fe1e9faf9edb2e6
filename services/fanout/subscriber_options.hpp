// What a `/subscribe` client asks for: the query string of the upgrade request and the
// `options_update` messages it sends later (API.md "GET /subscribe", v1-spec §2-§4).
//
// Pure code: no I/O, no logging, no exceptions on client input (only std::bad_alloc). The error
// texts are the contract: HTTP 400 bodies and websocket close reasons, byte for byte as API.md
// and v1 wrote them. services/fanout/README.md ("Subscriber options and filters") lists every
// place where this differs from v1 and why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "services/fanout/did_set.hpp"

namespace jetstream::fanout {

// ---- Limits.

/// Distinct collection patterns (exact NSIDs + prefixes) one subscriber may want (API.md).
inline constexpr std::size_t kMaxWantedCollections = 100;
/// Distinct DIDs one subscriber may want (API.md).
inline constexpr std::size_t kMaxWantedDids = 10'000;
/// The longest raw query string parse_query reads; longer gets 400 kQueryTooLongText.
inline constexpr std::size_t kMaxQueryBytes = 1024 * 1024;
/// The most `&`-separated pairs parse_query reads; more gets 400 kTooManyQueryPairsText.
inline constexpr std::size_t kMaxQueryPairs = 20'000;
/// A text message from a client above this many bytes is not parsed: the connection layer
/// closes with 1009 (API.md). v1's limit, in decimal bytes.
inline constexpr std::size_t kMaxClientMessageBytes = 10'000'000;
/// The close code v1 used for every client-caused close (bad JSON, bad payload, bad options).
inline constexpr std::uint16_t kClientErrorCloseCode = 1000;

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
/// Ours (v1 had no bound): a query string over kMaxQueryBytes.
inline constexpr std::string_view kQueryTooLongText = "invalid query: longer than 1048576 bytes";
/// Ours (v1 had no bound): more than kMaxQueryPairs `&`-separated pairs.
inline constexpr std::string_view kTooManyQueryPairsText =
    "invalid query: more than 20000 parameters";

// ---- Close-reason prefixes of parse_client_message (v1 texts).

inline constexpr std::string_view kBadMessagePrefix =
    "failed to unmarshal subscriber sourced message: ";
inline constexpr std::string_view kBadPayloadPrefix =
    "failed to unmarshal subscriber options update: ";
inline constexpr std::string_view kBadOptionsPrefix = "failed to parse subscriber options: ";

// ---- Query strings.

/// One `key=value` pair of a query string, both URL-decoded.
struct QueryParam {
  std::string key;
  std::string value;

  friend bool operator==(const QueryParam&, const QueryParam&) = default;
};

/// The pairs of a query string in order (repeated keys kept), or the 400 body when it is over a
/// bound.
struct QueryParseResult {
  std::vector<QueryParam> params;
  /// Empty on success; else kQueryTooLongText or kTooManyQueryPairsText.
  std::string error;

  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

/// Splits a raw query string (what follows `?`, without any `#fragment`) like Go's
/// `URL.Query()`: pairs are separated by `&` only; empty pairs are skipped; a pair without `=`
/// has an empty value; key and value are unescaped as `url.QueryUnescape` does (`+` is a space,
/// `%XX` is one byte, any other byte is kept). A pair that contains `;` or a bad `%` escape is
/// dropped silently, as Go (≥ 1.17) does. Over kMaxQueryBytes or kMaxQueryPairs non-empty pairs:
/// an error and no pairs.
[[nodiscard]] QueryParseResult parse_query(std::string_view raw_query);

/// Go's `strconv.ParseInt(text, 10, 64)`: an optional `+` or `-`, then one or more ASCII digits,
/// nothing else (no spaces, no `_`, no decimals, no exponent), and no overflow.
[[nodiscard]] std::optional<std::int64_t> parse_go_int64(std::string_view text) noexcept;

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
  /// Send nothing until the first valid options_update.
  bool require_hello = false;

  friend bool operator==(const SubscriberOptions&, const SubscriberOptions&) = default;
};

/// The options, or the HTTP 400 body (plain text) to answer before the upgrade.
struct ParseResult {
  std::optional<SubscriberOptions> options;
  /// Empty on success.
  std::string error;

  [[nodiscard]] bool ok() const noexcept { return options.has_value(); }
};

/// Parses the raw query string of `GET /subscribe` (see parse_query) and the first
/// `Socket-Encoding` header value (nullopt when absent).
///
/// Checks in v1's order, the first failure wins: query bounds, `cursor` (first value; empty =
/// live; else parse_go_int64 or `invalid cursor: <value>`), every `wantedCollections` value
/// (`invalid subscriber options: invalid collection: <value>`), every `wantedDids` value (bare
/// `invalid subscriber options`), more than kMaxWantedDids distinct DIDs, more than
/// kMaxWantedCollections distinct collection patterns. `maxMessageSizeBytes` (first value) is never
/// an error: anything but an integer in 1..4294967295 means no limit. `compress` (first value)
/// equal to `true`, or a header containing `zstd`, turns zstd on; `requireHello` (first value)
/// equal to `true` holds delivery. Keys are case-sensitive; unknown keys are ignored.
[[nodiscard]] ParseResult parse_subscribe_request(
    std::string_view query, std::optional<std::string_view> socket_encoding_header);

// ---- Client messages.

/// A valid options_update: new filters, replacing the old ones wholesale.
struct OptionsUpdate {
  SubscriberFilters filters;
  /// nullopt when `maxMessageSizeBytes` was omitted or null: keep the current limit. Else the new
  /// limit (0 = none; negative or above 4294967295 also mean none).
  std::optional<std::uint32_t> max_message_size_bytes;

  friend bool operator==(const OptionsUpdate&, const OptionsUpdate&) = default;
};

enum class UpdateAction : std::uint8_t {
  ignored,  ///< not an options_update (unknown or empty `type`): nothing changes
  update,   ///< apply `update` (and release a pending requireHello)
  close,    ///< close the socket with kClientErrorCloseCode and `close_reason`
};

struct UpdateResult {
  UpdateAction action = UpdateAction::ignored;
  /// Set when action == update.
  OptionsUpdate update;
  /// Set when action == close: already fitted to a close frame (websocket::fit_close_reason).
  std::string close_reason;
};

/// Reads one text message from a client (at most kMaxClientMessageBytes; the caller closes with
/// 1009 above that). The envelope is `{"type": string, "payload": any}` and the payload of an
/// `options_update` is `{"wantedCollections": [string], "wantedDids": [string],
/// "maxMessageSizeBytes": int}`, both read with the Go encoding/json semantics v1 had: keys match
/// case-insensitively, unknown keys are ignored, the last of repeated keys wins, `null` leaves a
/// field empty. Close reasons: `failed to unmarshal subscriber sourced message: <why>` (not JSON,
/// or a wrong type in the envelope), `failed to unmarshal subscriber options update: <why>`
/// (payload missing or of the wrong shape), `failed to parse subscriber options: <the 400 text of
/// parse_subscribe_request>` (invalid filters); `<why>` is ours (README), not Go's.
[[nodiscard]] UpdateResult parse_client_message(std::string_view text);

/// Applies a valid update: filters replaced wholesale, the size limit only when one was given.
/// Cursor, compression and requireHello are not touched.
void apply_update(SubscriberOptions& options, const OptionsUpdate& update);

}  // namespace jetstream::fanout
