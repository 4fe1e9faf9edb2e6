#include "common/codec/multibase.hpp"

#include <array>

namespace jetstream::codec {
namespace {

constexpr std::string_view kBase32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_base32_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& entry : table) entry = -1;
  for (std::size_t i = 0; i < kBase32Alphabet.size(); ++i) {
    const auto lower = static_cast<unsigned char>(kBase32Alphabet[i]);
    table[lower] = static_cast<std::int8_t>(i);
    if (lower >= 'a' && lower <= 'z') table[lower - 'a' + 'A'] = static_cast<std::int8_t>(i);
  }
  return table;
}

constexpr auto kBase32DecodeTable = make_base32_decode_table();

constexpr std::string_view kBase58Alphabet =
    "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

constexpr std::array<std::int8_t, 256> make_base58_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& entry : table) entry = -1;
  for (std::size_t i = 0; i < kBase58Alphabet.size(); ++i) {
    table[static_cast<unsigned char>(kBase58Alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}

constexpr auto kBase58DecodeTable = make_base58_decode_table();

}  // namespace

void append_base32_lower(std::string& out, byte_view data) {
  out.reserve(out.size() + (data.size() * 8 + 4) / 5);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const std::uint8_t byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kBase32Alphabet[(buffer >> bits) & 0x1f]);
    }
    buffer &= (1u << bits) - 1;  // keep only the unread bits so the buffer never overflows
  }
  if (bits > 0) out.push_back(kBase32Alphabet[(buffer << (5 - bits)) & 0x1f]);
}

std::optional<std::vector<std::uint8_t>> decode_base32(std::string_view text) {
  std::vector<std::uint8_t> out;
  out.reserve(text.size() * 5 / 8);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const std::int8_t value = kBase32DecodeTable[static_cast<unsigned char>(c)];
    if (value < 0) return std::nullopt;
    buffer = (buffer << 5) | static_cast<std::uint32_t>(value);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(buffer >> bits));
      buffer &= (1u << bits) - 1;
    }
  }
  if (bits >= 5 || buffer != 0) return std::nullopt;  // a dangling symbol or non-zero pad bits
  return out;
}

std::optional<std::vector<std::uint8_t>> decode_base58btc(std::string_view text,
                                                          std::size_t max_bytes) {
  std::size_t leading_zeros = 0;
  while (leading_zeros < text.size() && text[leading_zeros] == '1') ++leading_zeros;
  if (leading_zeros > max_bytes) return std::nullopt;
  // Big-endian base-256 accumulator of the digits after the leading '1's.
  std::vector<std::uint8_t> magnitude;
  for (std::size_t i = leading_zeros; i < text.size(); ++i) {
    const std::int8_t digit = kBase58DecodeTable[static_cast<unsigned char>(text[i])];
    if (digit < 0) return std::nullopt;
    std::uint32_t carry = static_cast<std::uint32_t>(digit);
    for (auto it = magnitude.rbegin(); it != magnitude.rend(); ++it) {
      carry += std::uint32_t{*it} * 58;
      *it = static_cast<std::uint8_t>(carry);
      carry >>= 8;
    }
    while (carry != 0) {
      magnitude.insert(magnitude.begin(), static_cast<std::uint8_t>(carry));
      carry >>= 8;
    }
    if (leading_zeros + magnitude.size() > max_bytes) return std::nullopt;
  }
  std::vector<std::uint8_t> out(leading_zeros, 0);
  out.insert(out.end(), magnitude.begin(), magnitude.end());
  return out;
}

void append_base58btc(std::string& out, byte_view data) {
  std::size_t leading_zeros = 0;
  while (leading_zeros < data.size() && data[leading_zeros] == 0) ++leading_zeros;
  // Little-endian base-58 digits of the bytes after the leading zeros.
  std::vector<std::uint8_t> digits;
  for (std::size_t i = leading_zeros; i < data.size(); ++i) {
    std::uint32_t carry = data[i];
    for (auto& digit : digits) {
      carry += std::uint32_t{digit} << 8;
      digit = static_cast<std::uint8_t>(carry % 58);
      carry /= 58;
    }
    while (carry != 0) {
      digits.push_back(static_cast<std::uint8_t>(carry % 58));
      carry /= 58;
    }
  }
  out.append(leading_zeros, '1');
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) out.push_back(kBase58Alphabet[*it]);
}

void append_base64_std_unpadded(std::string& out, byte_view data) {
  out.reserve(out.size() + (data.size() * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t triple = (std::uint32_t{data[i]} << 16) |
                                 (std::uint32_t{data[i + 1]} << 8) | std::uint32_t{data[i + 2]};
    out.push_back(kBase64Alphabet[(triple >> 18) & 0x3f]);
    out.push_back(kBase64Alphabet[(triple >> 12) & 0x3f]);
    out.push_back(kBase64Alphabet[(triple >> 6) & 0x3f]);
    out.push_back(kBase64Alphabet[triple & 0x3f]);
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16;
    out.push_back(kBase64Alphabet[(v >> 18) & 0x3f]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3f]);
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out.push_back(kBase64Alphabet[(v >> 18) & 0x3f]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3f]);
    out.push_back(kBase64Alphabet[(v >> 6) & 0x3f]);
  }
}

}  // namespace jetstream::codec
