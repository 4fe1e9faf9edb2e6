#include "common/codec/cid.hpp"

#include <cstring>

#include "common/codec/multibase.hpp"
#include "common/codec/sha256.hpp"

namespace jetstream::codec {

std::size_t read_uvarint(byte_view input, std::uint64_t& value) {
  value = 0;
  for (std::size_t i = 0; i < input.size() && i < 9; ++i) {
    const std::uint8_t byte = input[i];
    value |= std::uint64_t{byte & 0x7fu} << (7 * i);
    if ((byte & 0x80u) == 0) {
      if (byte == 0 && i > 0) return 0;  // a trailing zero group is a non-minimal encoding
      return i + 1;
    }
  }
  return 0;
}

std::optional<CidView> parse_cid_prefix(byte_view input, std::size_t& consumed) {
  CidView cid;
  std::size_t offset = 0;
  auto next = [&](std::uint64_t& field) {
    const std::size_t used = read_uvarint(input.subspan(offset), field);
    offset += used;
    return used != 0;
  };
  std::uint64_t digest_size = 0;
  if (!next(cid.version) || cid.version != 1) return std::nullopt;
  if (!next(cid.codec) || !next(cid.hash_code) || !next(digest_size)) return std::nullopt;
  if (digest_size > input.size() - offset || digest_size > 128) return std::nullopt;
  cid.digest = input.subspan(offset, digest_size);
  offset += digest_size;
  cid.bytes = input.first(offset);
  consumed = offset;
  return cid;
}

std::optional<CidView> parse_cid(byte_view input) {
  std::size_t consumed = 0;
  auto cid = parse_cid_prefix(input, consumed);
  if (!cid || consumed != input.size()) return std::nullopt;
  return cid;
}

void append_cid_string(std::string& out, byte_view cid_bytes) {
  out.push_back('b');
  append_base32_lower(out, cid_bytes);
}

std::string cid_to_string(byte_view cid_bytes) {
  std::string out;
  append_cid_string(out, cid_bytes);
  return out;
}

std::optional<std::vector<std::uint8_t>> parse_cid_string(std::string_view text) {
  if (text.size() < 2 || text.front() != 'b') return std::nullopt;
  auto bytes = decode_base32(text.substr(1));
  if (!bytes || !parse_cid(*bytes)) return std::nullopt;
  return bytes;
}

std::array<std::uint8_t, kSha256CidSize> compute_cid(std::uint64_t codec, byte_view data) {
  // Both codecs atproto uses (0x55, 0x71) fit in one varint byte; anything else is a bug here.
  if (codec >= 0x80) __builtin_trap();
  std::array<std::uint8_t, kSha256CidSize> cid{};
  cid[0] = 0x01;
  cid[1] = static_cast<std::uint8_t>(codec);
  cid[2] = static_cast<std::uint8_t>(kMultihashSha256);
  cid[3] = 32;
  const Sha256Digest digest = sha256(data);
  std::memcpy(cid.data() + 4, digest.data(), digest.size());
  return cid;
}

bool cid_matches(const CidView& cid, byte_view data) {
  if (cid.hash_code != kMultihashSha256 || cid.digest.size() != 32) return false;
  const Sha256Digest digest = sha256(data);
  return std::memcmp(digest.data(), cid.digest.data(), digest.size()) == 0;
}

}  // namespace jetstream::codec
