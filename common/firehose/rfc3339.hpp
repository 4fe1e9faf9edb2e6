// The timestamp check v1 applied to upstream `time` fields (Go's time.Parse with RFC 3339).
#pragma once

#include <string_view>

namespace jetstream::firehose {

/// True for "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" with a real calendar date, hours < 24,
/// minutes and seconds < 60 and a zone offset under 24 h, as Go's RFC 3339 parser accepts.
bool is_rfc3339(std::string_view text);

}  // namespace jetstream::firehose
