#include "common/codec/dag_cbor.hpp"

#include <cstring>

#include "common/codec/cid.hpp"

namespace jetstream::codec {

std::string_view to_string(CborError error) {
  switch (error) {
    case CborError::truncated: return "truncated";
    case CborError::trailing_bytes: return "trailing_bytes";
    case CborError::indefinite_length: return "indefinite_length";
    case CborError::reserved_encoding: return "reserved_encoding";
    case CborError::float_value: return "float_value";
    case CborError::undefined_value: return "undefined_value";
    case CborError::unsupported_tag: return "unsupported_tag";
    case CborError::bad_cid: return "bad_cid";
    case CborError::non_text_map_key: return "non_text_map_key";
    case CborError::integer_out_of_range: return "integer_out_of_range";
    case CborError::too_deep: return "too_deep";
    case CborError::too_many_items: return "too_many_items";
    case CborError::string_too_long: return "string_too_long";
    case CborError::key_too_long: return "key_too_long";
    case CborError::document_too_large: return "document_too_large";
  }
  return "unknown";
}

namespace {

constexpr std::uint64_t kInt64Max = 0x7fffffffffffffffULL;
constexpr std::uint64_t kCidTag = 42;

/// Reads the argument of an initial byte (additional info 0..27). Returns bytes used, 0 if the
/// input is truncated; sets `error` for reserved or indefinite encodings.
std::size_t read_argument(const std::uint8_t* p, std::size_t available, std::uint8_t info,
                          std::uint64_t& value, std::optional<CborError>& error) {
  if (info < 24) {
    value = info;
    return 1;
  }
  std::size_t width = 0;
  switch (info) {
    case 24: width = 1; break;
    case 25: width = 2; break;
    case 26: width = 4; break;
    case 27: width = 8; break;
    case 31: error = CborError::indefinite_length; return 0;
    default: error = CborError::reserved_encoding; return 0;
  }
  if (available < 1 + width) {
    error = CborError::truncated;
    return 0;
  }
  value = 0;
  for (std::size_t i = 1; i <= width; ++i) value = (value << 8) | p[i];
  return 1 + width;
}

}  // namespace

std::optional<CborError> CborDocument::parse(byte_view input, const CborLimits& limits) {
  std::size_t consumed = 0;
  if (auto error = parse_prefix(input, limits, consumed)) return error;
  if (consumed != input.size()) return CborError::trailing_bytes;
  return std::nullopt;
}

std::optional<CborError> CborDocument::parse_prefix(byte_view input, const CborLimits& limits,
                                                    std::size_t& consumed) {
  nodes_.clear();
  stack_.clear();
  consumed = 0;
  const std::uint8_t* const begin = input.data();
  const std::size_t total = input.size();
  std::size_t pos = 0;
  std::optional<CborError> error;

  do {
    if (pos >= total) return CborError::truncated;
    if (pos > limits.max_document_bytes) return CborError::document_too_large;
    const bool is_map_key =
        !stack_.empty() && stack_.back().is_map && stack_.back().remaining % 2 == 0;
    const std::uint8_t initial = begin[pos];
    const std::uint8_t major = initial >> 5;
    const std::uint8_t info = initial & 0x1f;
    if (is_map_key && major != 3) return CborError::non_text_map_key;

    CborNode node;
    std::uint64_t argument = 0;
    if (major == 7) {
      // Simple values and floats: only false, true and null belong to the data model.
      switch (info) {
        case 20:
          node.kind = CborKind::boolean;
          node.integer = 0;
          break;
        case 21:
          node.kind = CborKind::boolean;
          node.integer = 1;
          break;
        case 22: node.kind = CborKind::null; break;
        case 23: return CborError::undefined_value;
        case 25:
        case 26:
        case 27: return CborError::float_value;
        case 31: return CborError::indefinite_length;  // a stray "break"
        default: return CborError::reserved_encoding;
      }
      pos += 1;
    } else {
      const std::size_t used = read_argument(begin + pos, total - pos, info, argument, error);
      if (used == 0) return error ? error : CborError::truncated;
      pos += used;
      switch (major) {
        case 0:
        case 1:
          if (argument > kInt64Max) return CborError::integer_out_of_range;
          node.kind = major == 0 ? CborKind::unsigned_integer : CborKind::negative_integer;
          node.integer = argument;
          break;
        case 2:
        case 3: {
          if (argument > total - pos) return CborError::truncated;
          if (argument > limits.max_string_bytes) return CborError::string_too_long;
          if (is_map_key && argument > limits.max_key_bytes) return CborError::key_too_long;
          node.kind = major == 2 ? CborKind::bytes : CborKind::text;
          node.data = begin + pos;
          node.size = static_cast<std::uint32_t>(argument);
          pos += argument;
          break;
        }
        case 4:
        case 5:
          if (argument > limits.max_container_items) return CborError::too_many_items;
          if (argument > total - pos) return CborError::truncated;  // every child needs a byte
          node.kind = major == 4 ? CborKind::array : CborKind::map;
          node.count = static_cast<std::uint32_t>(argument);
          break;
        case 6: {
          if (argument != kCidTag) return CborError::unsupported_tag;
          // Tag 42 wraps a byte string: 0x00 (multibase "identity") then a binary CID.
          if (pos >= total) return CborError::truncated;
          const std::uint8_t inner = begin[pos];
          if ((inner >> 5) != 2) return CborError::bad_cid;
          std::uint64_t length = 0;
          const std::size_t inner_used =
              read_argument(begin + pos, total - pos, inner & 0x1f, length, error);
          if (inner_used == 0) return error ? error : CborError::truncated;
          pos += inner_used;
          if (length > total - pos) return CborError::truncated;
          if (length < 2 || begin[pos] != 0x00) return CborError::bad_cid;
          const byte_view cid_bytes{begin + pos + 1, static_cast<std::size_t>(length - 1)};
          if (!parse_cid(cid_bytes)) return CborError::bad_cid;
          node.kind = CborKind::cid_link;
          node.data = cid_bytes.data();
          node.size = static_cast<std::uint32_t>(cid_bytes.size());
          pos += length;
          break;
        }
        default: return CborError::reserved_encoding;
      }
    }

    const auto index = static_cast<std::uint32_t>(nodes_.size());
    nodes_.push_back(node);
    if (!stack_.empty()) --stack_.back().remaining;

    const bool is_container = node.kind == CborKind::array || node.kind == CborKind::map;
    // Every container counts towards the depth, empty ones included.
    if (is_container && stack_.size() >= limits.max_depth) return CborError::too_deep;
    if (is_container && node.count > 0) {
      const bool is_map = node.kind == CborKind::map;
      stack_.push_back({index, is_map ? std::uint64_t{node.count} * 2 : node.count, is_map});
    } else {
      nodes_.back().end = index + 1;
      // Close every container this node completed.
      while (!stack_.empty() && stack_.back().remaining == 0) {
        nodes_[stack_.back().index].end = static_cast<std::uint32_t>(nodes_.size());
        stack_.pop_back();
      }
    }
  } while (!stack_.empty());

  if (pos > limits.max_document_bytes) return CborError::document_too_large;
  consumed = pos;
  return std::nullopt;
}

std::optional<std::uint32_t> CborDocument::find(std::uint32_t map_index,
                                                std::string_view key) const {
  const CborNode& map = nodes_[map_index];
  if (map.kind != CborKind::map) return std::nullopt;
  std::uint32_t child = first_child(map_index);
  for (std::uint32_t pair = 0; pair < map.count; ++pair) {
    const CborNode& key_node = nodes_[child];
    const std::uint32_t value = child + 1;
    if (key_node.size == key.size() && std::memcmp(key_node.data, key.data(), key.size()) == 0) {
      return value;
    }
    child = nodes_[value].end;
  }
  return std::nullopt;
}

}  // namespace jetstream::codec
