// What every message between the services shares: the version byte, the message types and their
// one-byte ZeroMQ topics, the decode errors (one per `reason` label of
// `jetstream_proto_rejected_total`), the result type decoders return, and the limits a decoder
// enforces on every count and length. proto/README.md is the written spec; this header mirrors it.
//
// The library deals in byte buffers only: no ZeroMQ, no I/O, no allocation on the fixed-size
// messages, no exceptions on untrusted input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace jetstream::proto {

/// Byte 0 of every message body. A receiver rejects any other value with
/// DecodeError::unknown_version (and counts it); it never guesses at a layout.
inline constexpr std::uint8_t kVersion = 1;

/// Byte 1 of every message body, and the whole content of the one-byte topic frame that comes
/// first in every multipart ZeroMQ message. The values are the ASCII letters of the topics.
enum class MessageType : std::uint8_t {
  frame = 'F',           ///< ingest → decode, PUB :6010: one upstream frame in an envelope
  status = 'S',          ///< ingest → decode, PUB :6010: ingest's periodic state (in-band)
  resume = 'R',          ///< decode → ingest, PUSH → PULL :6011: restart upstream at a cursor
  event_batch = 'E',     ///< decode → fanout, PUB :6012: 1..N consecutive events
  heartbeat = 'H',       ///< decode → fanout, PUB :6012: newest time_us while idle
  state_info = 'C',      ///< decode → fanout, PUB :6012: the compacted twin's set and horizon
  replay_request = 'Q',  ///< fanout → decode, DEALER → ROUTER :6013
  replay_page = 'P',     ///< decode → fanout, ROUTER → DEALER :6013: the answer to one request
  repo_batch = 'B',   ///< backfill → decode, DEALER → ROUTER :6014: records of a fetched repo
  batch_ack = 'A',    ///< decode → backfill, ROUTER → DEALER :6014: a repo batch is stored
  resync_poll = 'N',  ///< backfill → decode, DEALER → ROUTER :6014: acks, and "what to refetch?"
  resync_list = 'K',  ///< decode → backfill, ROUTER → DEALER :6014: repositories to fetch again
  pipeline_status = 'T',    ///< decode → fanout, PUB :6012: figures for fanout's /status page
  backfill_progress = 'G',  ///< backfill → decode, DEALER → ROUTER :6014: repositories done/total
};

/// Why a decoder refused a message. `to_string` gives the `reason` label of
/// `jetstream_proto_rejected_total{message,reason}`.
enum class DecodeError : std::uint8_t {
  truncated = 1,     ///< the buffer ends before the layout does
  unknown_version,   ///< byte 0 is not kVersion (checked before anything else)
  wrong_type,        ///< byte 1 names another message than the one being decoded
  trailing_bytes,    ///< bytes are left after the layout ends
  limit_exceeded,    ///< a count or length is above its documented bound
  invalid_value,     ///< a field holds a value the spec forbids (unknown flag bit, bad enum, ...)
  unknown_topic,     ///< the topic frame is not exactly one known letter
  wrong_part_count,  ///< the multipart message has another number of frames than the spec says
};

/// Lower-case snake name of the error, e.g. "unknown_version" (the metric's `reason` label).
std::string_view to_string(DecodeError error) noexcept;

/// Lower-case snake name of the message, e.g. "event_batch" (the metric's `message` label).
std::string_view to_string(MessageType type) noexcept;

/// The topic frame for `type`: a one-byte string such as "E". Subscribe with it.
std::string_view topic(MessageType type) noexcept;

/// How many ZeroMQ frames a message of `type` has, topic frame included, as the application sees
/// them (a ROUTER's routing-id frame is not counted). 3 for `frame`, 2 for every other type.
std::size_t part_count(MessageType type) noexcept;

/// std::error_code support, so services can log or return DecodeError like any other error.
const std::error_category& proto_category() noexcept;
std::error_code make_error_code(DecodeError error) noexcept;

// ---- Limits. Every count and length read from the wire is checked against one of these before
// ---- anything is allocated or read; anything larger is DecodeError::limit_exceeded.

/// A DID, a collection, a collection pattern: at most 8 KiB (atproto: DIDs ≤ 2 KiB, NSIDs ≤ 317).
inline constexpr std::uint32_t kMaxStringBytes = 8u * 1024u;
/// The v1 JSON of one event, and its zstd frame: at most 16 MiB each (decode drops records over
/// 1 MiB; escaping grows JSON by at most ~6x).
inline constexpr std::uint32_t kMaxPayloadBytes = 16u * 1024u * 1024u;
/// One upstream websocket frame carried by ingest: at most 16 MiB (ingest sets its websocket read
/// limit to this, so it never publishes a larger one).
inline constexpr std::uint32_t kMaxUpstreamFrameBytes = 16u * 1024u * 1024u;
/// Events in one event batch or one replay page.
inline constexpr std::uint32_t kMaxEventsPerMessage = 100'000;
/// Collection patterns (exact + prefix together) in one replay request (API.md: at most 100).
inline constexpr std::uint32_t kMaxCollectionPatterns = 100;
/// DIDs in one replay request (API.md: at most 10,000).
inline constexpr std::uint32_t kMaxWantedDids = 10'000;
/// The largest `max_bytes` a replay request may ask for: 64 MiB.
inline constexpr std::uint32_t kMaxPageBytes = 64u * 1024u * 1024u;

/// The value a decoder produced, or the reason it refused the input. Never throws; asking a
/// failed result for its value (or a good one for its error) is a bug and aborts.
template <typename T>
class [[nodiscard]] DecodeResult {
 public:
  DecodeResult(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  DecodeResult(DecodeError error) : state_(std::in_place_index<1>, error) {}   // NOLINT

  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  const T& value() const& { return *checked_value(); }
  T& value() & { return *checked_value(); }
  T&& value() && { return std::move(*checked_value()); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return checked_value(); }
  T* operator->() { return checked_value(); }

  DecodeError error() const {
    const DecodeError* error = std::get_if<1>(&state_);
    if (error == nullptr) misuse("error() called on a successful DecodeResult");
    return *error;
  }

 private:
  [[noreturn]] static void misuse(const char* what);
  const T* checked_value() const {
    const T* value = std::get_if<0>(&state_);
    if (value == nullptr) misuse("value() called on a failed DecodeResult");
    return value;
  }
  T* checked_value() {
    T* value = std::get_if<0>(&state_);
    if (value == nullptr) misuse("value() called on a failed DecodeResult");
    return value;
  }

  std::variant<T, DecodeError> state_;
};

namespace detail {
/// Prints "jetstream::proto: <what>" to stderr and aborts: a broken contract on our own side (an
/// encoder given a value its peer would reject, a result misused), never bad input.
[[noreturn]] void contract_violation(const char* what) noexcept;
}  // namespace detail

template <typename T>
void DecodeResult<T>::misuse(const char* what) {
  detail::contract_violation(what);
}

/// The type named by a topic frame: exactly one byte, one of the MessageType letters, else
/// DecodeError::unknown_topic.
DecodeResult<MessageType> decode_topic(std::span<const std::uint8_t> topic_frame) noexcept;

}  // namespace jetstream::proto

template <>
struct std::is_error_code_enum<jetstream::proto::DecodeError> : std::true_type {};
