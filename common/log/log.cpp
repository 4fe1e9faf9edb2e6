#include "common/log/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <vector>

#include "common/text/utf8.hpp"

namespace jetstream::log {
namespace {

using std::chrono::steady_clock;
using std::chrono::system_clock;

constexpr char kHex[] = "0123456789abcdef";
/// Key of the bucket shared by keys beyond a RateLimiter's capacity.
constexpr std::string_view kOverflowKey = "\x01overflow";

void write_to_stderr(std::string_view line) {
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t written = ::write(STDERR_FILENO, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report it
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

struct State {
  std::atomic<Level> level{Level::kInfo};
  std::mutex mutex;  // guards everything below, and serialises sink calls
  std::string service;
  Sink sink;
  std::function<system_clock::time_point()> wall;
  std::function<steady_clock::time_point()> steady;
  RateLimiter limiter;
};

State& state() {
  // Never destroyed: threads may still log while static destructors run.
  static State* const instance = new State;
  return *instance;
}

void append_u_escape(std::string& out, char32_t code_point) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(code_point >> shift) & 0xfu];
}

/// Appends `raw` as a logfmt value: bare when it is a plain token, else quoted with JSON-style
/// escapes (`\"`, `\\`, `\n`, `\r`, `\t`, `\u00XX` for other controls and C1 controls, `\u2028`,
/// `\u2029`, `\ufffd` for each byte of invalid UTF-8), so go-logfmt and Loki parse every line.
/// The escaped text is cut at `kMaxValueBytes` without splitting an escape or a character.
void append_value(std::string& out, std::string_view raw) {
  std::string body;
  body.reserve(std::min(raw.size(), kMaxValueBytes) + 8);
  bool quote = raw.empty();
  bool truncated = false;
  std::string unit;
  std::size_t i = 0;
  while (i < raw.size()) {
    unit.clear();
    const auto byte = static_cast<unsigned char>(raw[i]);
    std::size_t consumed = 1;
    if (byte < 0x80) {
      switch (byte) {
        case '"': unit = "\\\""; break;
        case '\\': unit = "\\\\"; break;
        case '\n': unit = "\\n"; break;
        case '\r': unit = "\\r"; break;
        case '\t': unit = "\\t"; break;
        default:
          if (byte < 0x20 || byte == 0x7f) {
            append_u_escape(unit, byte);
          } else {
            unit = static_cast<char>(byte);
            if (byte == ' ' || byte == '=') quote = true;
          }
      }
      if (unit.size() > 1) quote = true;
    } else {
      const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data()) + i;
      const std::size_t length = text::utf8_sequence_length(bytes, raw.size() - i);
      const char32_t code_point = length == 0 ? 0 : text::utf8_code_point(bytes, length);
      if (length == 0) {
        append_u_escape(unit, 0xfffd);
        quote = true;
      } else if (code_point <= 0x9f || code_point == 0x2028 || code_point == 0x2029) {
        append_u_escape(unit, code_point);
        quote = true;
        consumed = length;
      } else {
        unit.assign(raw.substr(i, length));
        consumed = length;
      }
    }
    if (body.size() + unit.size() > kMaxValueBytes) {
      truncated = true;
      break;
    }
    body += unit;
    i += consumed;
  }
  if (truncated) body += kTruncatedMarker;
  if (quote) out += '"';
  out += body;
  if (quote) out += '"';
}

/// Keys are literals, but still kept to `[A-Za-z0-9_.-]` and `kMaxKeyBytes` so no key can break
/// the line either.
void append_key(std::string& out, std::string_view key) {
  if (key.empty()) {
    out += '_';
    return;
  }
  for (std::size_t i = 0; i < key.size() && i < kMaxKeyBytes; ++i) {
    const char c = key[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    out += ok ? c : '_';
  }
}

void append_field(std::string& out, const Field& field) {
  out += ' ';
  append_key(out, field.key());
  out += '=';
  const Field::Value& value = field.value();
  if (const auto* text = std::get_if<std::string_view>(&value)) {
    append_value(out, *text);
  } else if (const auto* signed_value = std::get_if<std::int64_t>(&value)) {
    out += std::to_string(*signed_value);
  } else if (const auto* unsigned_value = std::get_if<std::uint64_t>(&value)) {
    out += std::to_string(*unsigned_value);
  } else if (const auto* real = std::get_if<double>(&value)) {
    if (std::isnan(*real)) {
      out += "NaN";
    } else if (std::isinf(*real)) {
      out += *real > 0 ? "+Inf" : "-Inf";
    } else {
      char buffer[64];
      const auto result = std::to_chars(buffer, buffer + sizeof buffer, *real);
      out.append(buffer, result.ptr);
    }
  } else {
    out += std::get<bool>(value) ? "true" : "false";
  }
}

void append_timestamp(std::string& out, system_clock::time_point time) {
  const auto micros = std::chrono::floor<std::chrono::microseconds>(time.time_since_epoch());
  const auto seconds = std::chrono::floor<std::chrono::seconds>(micros);
  const auto fraction = (micros - seconds).count();
  const auto whole = static_cast<std::time_t>(seconds.count());
  std::tm parts{};
  gmtime_r(&whole, &parts);
  char buffer[64];
  const int length =
      std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                    parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour,
                    parts.tm_min, parts.tm_sec, static_cast<long long>(fraction));
  if (length > 0) out.append(buffer, std::min(static_cast<std::size_t>(length), sizeof buffer - 1));
}

/// Formats and hands one line to the sink. Caller holds `s.mutex`.
void emit_locked(State& s, Level level, std::string_view message, std::span<const Field> fields) {
  const system_clock::time_point now = s.wall ? s.wall() : system_clock::now();
  const std::string line = format_line(now, level, s.service, message, fields);
  try {
    if (s.sink) {
      s.sink(line);
    } else {
      write_to_stderr(line);
    }
  } catch (...) {
    // A failing sink must not take the caller down with it.
  }
}

}  // namespace

std::string_view level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "unknown";
}

std::optional<Level> parse_level(std::string_view text) {
  if (text == "debug") return Level::kDebug;
  if (text == "info") return Level::kInfo;
  if (text == "warn" || text == "warning") return Level::kWarn;
  if (text == "error") return Level::kError;
  return std::nullopt;
}

std::string format_line(system_clock::time_point time, Level level, std::string_view service,
                        std::string_view message, std::span<const Field> fields) {
  std::string line;
  line.reserve(96 + message.size() + fields.size() * 24);
  line += "ts=";
  append_timestamp(line, time);
  line += " level=";
  line += level_name(level);
  if (!service.empty()) {
    line += " service=";
    append_value(line, service);
  }
  line += " msg=";
  append_value(line, message);
  for (const Field& field : fields) append_field(line, field);
  line += '\n';
  return line;
}

std::optional<std::uint64_t> RateLimiter::admit(std::string_view key,
                                                steady_clock::duration interval,
                                                steady_clock::time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end() && entries_.size() >= max_keys_) it = entries_.find(kOverflowKey);
  if (it == entries_.end()) {
    const std::string_view stored = entries_.size() >= max_keys_ ? kOverflowKey : key;
    entries_.emplace(std::string(stored), Entry{now, 0});
    return 0;
  }
  Entry& entry = it->second;
  if (now - entry.last < interval) {
    ++entry.suppressed;
    return std::nullopt;
  }
  const std::uint64_t suppressed = entry.suppressed;
  entry.last = now;
  entry.suppressed = 0;
  return suppressed;
}

void set_service(std::string_view service) {
  State& s = state();
  const std::lock_guard lock(s.mutex);
  s.service.assign(service);
}

void set_level(Level level) { state().level.store(level, std::memory_order_relaxed); }

Level level() { return state().level.load(std::memory_order_relaxed); }

bool enabled(Level level) { return static_cast<int>(level) >= static_cast<int>(log::level()); }

void set_sink(Sink sink) {
  State& s = state();
  const std::lock_guard lock(s.mutex);
  s.sink = std::move(sink);
}

void write(Level level, std::string_view message, Fields fields) {
  if (!enabled(level)) return;
  State& s = state();
  const std::lock_guard lock(s.mutex);
  emit_locked(s, level, message, std::span<const Field>(fields.begin(), fields.size()));
}

void every(Level level, std::chrono::seconds interval, std::string_view key,
           std::string_view message, Fields fields) {
  if (!enabled(level)) return;
  State& s = state();
  const std::lock_guard lock(s.mutex);
  const steady_clock::time_point now = s.steady ? s.steady() : steady_clock::now();
  const std::optional<std::uint64_t> suppressed = s.limiter.admit(key, interval, now);
  if (!suppressed) return;
  if (*suppressed == 0) {
    emit_locked(s, level, message, std::span<const Field>(fields.begin(), fields.size()));
    return;
  }
  std::vector<Field> with_count(fields.begin(), fields.end());
  with_count.emplace_back("suppressed", *suppressed);
  emit_locked(s, level, message, with_count);
}

void set_clocks_for_testing(std::function<system_clock::time_point()> wall,
                            std::function<steady_clock::time_point()> steady) {
  State& s = state();
  const std::lock_guard lock(s.mutex);
  s.wall = std::move(wall);
  s.steady = std::move(steady);
}

void reset_for_testing() {
  State& s = state();
  const std::lock_guard lock(s.mutex);
  s.level.store(Level::kInfo, std::memory_order_relaxed);
  s.service.clear();
  s.sink = nullptr;
  s.wall = nullptr;
  s.steady = nullptr;
  s.limiter.clear();
}

}  // namespace jetstream::log
