// Content identifiers (CIDv1) as atproto uses them: binary parsing, the base32 text form, and
// computing/checking a CID from block bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"

namespace jetstream::codec {

inline constexpr std::uint64_t kCodecRaw = 0x55;
inline constexpr std::uint64_t kCodecDagCbor = 0x71;
inline constexpr std::uint64_t kMultihashSha256 = 0x12;
inline constexpr std::size_t kSha256CidSize = 36;  // version, codec, hash code, length, 32 bytes

/// A parsed binary CID. Views point into the buffer it was parsed from.
struct CidView {
  byte_view bytes;  ///< the whole binary CID, without any multibase prefix
  std::uint64_t version = 0;
  std::uint64_t codec = 0;
  std::uint64_t hash_code = 0;
  byte_view digest;
};

/// Reads an unsigned LEB128 varint (at most 9 bytes, 63 bits, minimal encoding as multiformats
/// requires). Returns the number of bytes used, 0 on malformed or truncated input.
std::size_t read_uvarint(byte_view input, std::uint64_t& value);

/// Parses a CIDv1 from the front of `input`; `consumed` receives its length. CIDv0 is rejected:
/// atproto data never carries it. nullopt on truncated or malformed input.
std::optional<CidView> parse_cid_prefix(byte_view input, std::size_t& consumed);

/// Parses a CIDv1 that spans all of `input`.
std::optional<CidView> parse_cid(byte_view input);

/// Appends the multibase base32 text form ("b" + lowercase base32), e.g. "bafyrei...".
void append_cid_string(std::string& out, byte_view cid_bytes);
std::string cid_to_string(byte_view cid_bytes);

/// Parses the base32 text form of a CIDv1 into binary. nullopt if it is not one.
std::optional<std::vector<std::uint8_t>> parse_cid_string(std::string_view text);

/// The CIDv1 of `data` under `codec` with a sha2-256 multihash.
std::array<std::uint8_t, kSha256CidSize> compute_cid(std::uint64_t codec, byte_view data);

/// True when `cid` is a sha2-256 CID and the digest of `data` equals it.
bool cid_matches(const CidView& cid, byte_view data);

}  // namespace jetstream::codec
