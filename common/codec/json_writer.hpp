// Appending JSON text exactly as Jetstream v1 (Go, goccy/go-json) wrote it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace jetstream::codec {

/// Appends `text` as a JSON string literal (with quotes) escaped the way Go's encoder does with
/// HTML escaping on: `\"` `\\` `\n` `\r` `\t`; other bytes below 0x20 as `\u00xx` (lowercase hex);
/// `<` `>` `&` as `\u003c` `\u003e` `\u0026`; U+2028/U+2029 as `\u2028`/`\u2029`; every byte
/// that does not start a valid UTF-8 sequence as `\ufffd`; all other UTF-8 raw; `/` unescaped.
void append_json_string(std::string& out, std::string_view text);

void append_json_int(std::string& out, std::int64_t value);
void append_json_uint(std::string& out, std::uint64_t value);

}  // namespace jetstream::codec
