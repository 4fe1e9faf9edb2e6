// The messages a `/subscribe` client sends after the upgrade (API.md "Client messages",
// v1-spec §4): an options_update replaces the filters, anything else is ignored, and a message
// v1 could not read closes the connection with v1's reason.
//
// Pure code: no I/O, no logging, no exceptions on client input (only std::bad_alloc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "services/fanout/subscriber_options.hpp"

namespace jetstream::fanout {

/// A text message from a client above this many bytes is not parsed: the connection layer
/// closes with 1009 (API.md). v1's limit, in decimal bytes.
inline constexpr std::size_t kMaxClientMessageBytes = 10'000'000;
/// The close code v1 used for every client-caused close (bad JSON, bad payload, bad options).
inline constexpr std::uint16_t kClientErrorCloseCode = 1000;

// ---- Close-reason prefixes of parse_client_message (v1 texts).

inline constexpr std::string_view kBadMessagePrefix =
    "failed to unmarshal subscriber sourced message: ";
inline constexpr std::string_view kBadPayloadPrefix =
    "failed to unmarshal subscriber options update: ";
inline constexpr std::string_view kBadOptionsPrefix = "failed to parse subscriber options: ";

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
