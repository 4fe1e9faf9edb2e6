// Text encodings used by atproto: base32 (CID text form), base64 ($bytes in JSON) and base58btc
// (`did:key` and multikey public keys).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"

namespace jetstream::codec {

/// RFC 4648 base32, lowercase alphabet, no padding: the body of a multibase "b" string.
void append_base32_lower(std::string& out, byte_view data);

/// Decodes unpadded RFC 4648 base32 (either case). nullopt on a character outside the alphabet
/// or on non-zero trailing bits.
std::optional<std::vector<std::uint8_t>> decode_base32(std::string_view text);

/// Bitcoin's base58 alphabet, the body of a multibase "z" string. Leading '1's are zero bytes.
/// nullopt on a character outside the alphabet or on more than `max_bytes` of output (the
/// conversion is quadratic, so callers bound it; keys are 35 bytes).
std::optional<std::vector<std::uint8_t>> decode_base58btc(std::string_view text,
                                                          std::size_t max_bytes = 128);
void append_base58btc(std::string& out, byte_view data);

/// RFC 4648 base64 with the standard alphabet and no padding, as v1 writes `$bytes`.
void append_base64_std_unpadded(std::string& out, byte_view data);

}  // namespace jetstream::codec
