// The timestamp check v1 applied to upstream `time` fields (Go's time.Parse with RFC 3339).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace jetstream::firehose {

/// True for "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" with a real calendar date, hours < 24,
/// minutes and seconds < 60 and a zone offset under 24 h, as Go's RFC 3339 parser accepts.
bool is_rfc3339(std::string_view text);

/// The instant `text` names, in unix microseconds (fractions beyond µs truncated), or nullopt
/// when it is not RFC 3339 as `is_rfc3339` defines it. Used for lag metrics.
std::optional<std::int64_t> parse_rfc3339_us(std::string_view text);

}  // namespace jetstream::firehose
