// One logfmt line per notable event, to stderr:
//
//   ts=2026-11-30T00:00:00.000000Z level=info service=decode msg="stored batch" events=64 seq=123
//
// Field values may come from untrusted input (upstream frames, client messages): each one is
// escaped and bounded, so a line can never be forged (no raw newline or control byte gets
// through) nor grow without limit. Per-input warnings go through `warn_every`, so a flood of bad
// input costs one line per interval, with the number of lines it held back.
//
// Every function here is thread-safe. A line is handed to the sink whole, under a lock; the
// default sink writes it to fd 2 with one write(2) call (retrying only after a partial write).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace jetstream::log {

enum class Level : std::uint8_t { kDebug, kInfo, kWarn, kError };

/// `debug`, `info`, `warn`, `error`.
std::string_view level_name(Level level);
/// The inverse of `level_name` (also accepts `warning`); nullopt for anything else.
std::optional<Level> parse_level(std::string_view text);

/// Longest escaped field value (and message) in bytes; longer ones are cut at a character
/// boundary and end with `kTruncatedMarker`.
inline constexpr std::size_t kMaxValueBytes = 256;
inline constexpr std::string_view kTruncatedMarker = "\xe2\x80\xa6(truncated)";  // …(truncated)
/// Longest field key; keys are meant to be literals such as `events` or `seq`.
inline constexpr std::size_t kMaxKeyBytes = 64;

/// One `key=value` pair of a line. It refers to its key and string value without copying them,
/// so it only lives inside the call that logs it: `log::info("stored", {{"events", n}})`.
class Field {
 public:
  Field(std::string_view key, std::string_view value) noexcept : key_(key), value_(value) {}
  Field(std::string_view key, const std::string& value) noexcept
      : key_(key), value_(std::string_view(value)) {}
  /// A null pointer logs as an empty string.
  Field(std::string_view key, const char* value) noexcept
      : key_(key), value_(value != nullptr ? std::string_view(value) : std::string_view()) {}
  template <std::signed_integral T>
  requires(!std::same_as<T, char>) Field(std::string_view key, T value)
  noexcept : key_(key), value_(static_cast<std::int64_t>(value)) {}
  template <std::unsigned_integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) Field(std::string_view key, T value)
  noexcept : key_(key), value_(static_cast<std::uint64_t>(value)) {}
  template <std::floating_point T>
  Field(std::string_view key, T value) noexcept : key_(key), value_(static_cast<double>(value)) {}
  /// Only a real bool: a pointer or number never silently becomes true/false.
  template <std::same_as<bool> T>
  Field(std::string_view key, T value) noexcept : key_(key), value_(value) {}

  using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;
  std::string_view key() const { return key_; }
  const Value& value() const { return value_; }

 private:
  std::string_view key_;
  Value value_;
};

using Fields = std::initializer_list<Field>;

/// Receives each complete line, ending in '\n'. Called under the logger's lock, one line at a
/// time; it must not log.
using Sink = std::function<void(std::string_view line)>;

/// The `service=` field of every line (omitted while empty). Set once at startup.
void set_service(std::string_view service);
/// Lines below `level` are dropped before they are formatted. Default: info.
void set_level(Level level);
Level level();
bool enabled(Level level);
/// Where lines go; an empty function restores the default (stderr). Tests capture lines here.
void set_sink(Sink sink);

void write(Level level, std::string_view message, Fields fields = {});
inline void debug(std::string_view message, Fields fields = {}) {
  write(Level::kDebug, message, fields);
}
inline void info(std::string_view message, Fields fields = {}) {
  write(Level::kInfo, message, fields);
}
inline void warn(std::string_view message, Fields fields = {}) {
  write(Level::kWarn, message, fields);
}
inline void error(std::string_view message, Fields fields = {}) {
  write(Level::kError, message, fields);
}

/// Logs at most one line per `interval` for each `key` (a literal naming the kind of event,
/// e.g. "malformed-frame"). Lines held back are counted; the next one emitted for that key ends
/// with `suppressed=N`. At most `RateLimiter::kDefaultMaxKeys` keys are tracked; beyond that,
/// new keys share one bucket.
void every(Level level, std::chrono::seconds interval, std::string_view key,
           std::string_view message, Fields fields = {});
inline void warn_every(std::chrono::seconds interval, std::string_view key,
                       std::string_view message, Fields fields = {}) {
  every(Level::kWarn, interval, key, message, fields);
}

/// The line `write` would produce at `time`, ending in '\n' (exposed for tests and tools).
std::string format_line(std::chrono::system_clock::time_point time, Level level,
                        std::string_view service, std::string_view message,
                        std::span<const Field> fields);

/// Decides, per key, whether an event is logged now or counted as suppressed. Not thread-safe
/// on its own; `every` uses one behind the logger's lock.
class RateLimiter {
 public:
  static constexpr std::size_t kDefaultMaxKeys = 1024;
  explicit RateLimiter(std::size_t max_keys = kDefaultMaxKeys) : max_keys_(max_keys) {}

  /// nullopt: suppress this one. Otherwise log it, reporting how many were suppressed for `key`
  /// since the last one logged. The first event of a key is always logged.
  std::optional<std::uint64_t> admit(std::string_view key,
                                     std::chrono::steady_clock::duration interval,
                                     std::chrono::steady_clock::time_point now);
  void clear() { entries_.clear(); }

 private:
  struct Entry {
    std::chrono::steady_clock::time_point last;
    std::uint64_t suppressed = 0;
  };
  std::size_t max_keys_;
  std::map<std::string, Entry, std::less<>> entries_;
};

/// Replaces the clocks (for tests); empty functions restore the real ones.
void set_clocks_for_testing(std::function<std::chrono::system_clock::time_point()> wall,
                            std::function<std::chrono::steady_clock::time_point()> steady);
/// Back to the initial state: no service, level info, stderr sink, real clocks, no rate-limit
/// history.
void reset_for_testing();

}  // namespace jetstream::log
