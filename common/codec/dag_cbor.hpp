// A strict, zero-copy DAG-CBOR reader for the atproto data model.
//
// Input is parsed into a flat, pre-order array of nodes whose strings and bytes point into the
// input buffer. Nothing on this path throws or allocates per value; the node array is reused
// between documents. Limits bound every size, count and depth an attacker controls.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"

namespace jetstream::codec {

enum class CborKind : std::uint8_t {
  unsigned_integer,  ///< value in `integer`
  negative_integer,  ///< value is -1 - `integer`
  bytes,
  text,
  array,     ///< `count` items follow in pre-order
  map,       ///< `count` (text key, value) pairs follow in pre-order
  cid_link,  ///< tag 42; `data`/`size` hold the binary CID (multibase identity prefix removed)
  boolean,   ///< value in `integer` (0 or 1)
  null,
};

struct CborNode {
  CborKind kind = CborKind::null;
  std::uint32_t count = 0;  ///< items of an array, pairs of a map
  std::uint32_t end = 0;    ///< index one past this node's subtree
  std::uint32_t size = 0;   ///< length of bytes/text/cid_link
  std::uint64_t integer = 0;
  const std::uint8_t* data = nullptr;

  std::string_view text() const { return {reinterpret_cast<const char*>(data), size}; }
  byte_view bytes() const { return {data, size}; }
};

enum class CborError : std::uint8_t {
  truncated,
  trailing_bytes,
  indefinite_length,
  reserved_encoding,  ///< additional info 28..30, or a reserved simple value
  float_value,        ///< the atproto data model has no floats
  undefined_value,
  unsupported_tag,  ///< any tag but 42
  bad_cid,          ///< tag 42 whose content is not a 0x00-prefixed CIDv1 byte string
  non_text_map_key,
  integer_out_of_range,  ///< outside int64
  too_deep,
  too_many_items,
  string_too_long,
  key_too_long,
  document_too_large,
};

std::string_view to_string(CborError error);

struct CborLimits {
  std::size_t max_document_bytes = 1u << 20;  // v1: a record over 1 MiB is invalid
  std::uint32_t max_depth = 256;              // API.md: "nesting deeper than a configured limit"
  std::uint32_t max_container_items = 131072;
  std::uint32_t max_string_bytes = 1u << 20;
  std::uint32_t max_key_bytes = 8192;
};

/// One decoded DAG-CBOR item. Reuse an instance across parses to keep its node storage.
class CborDocument {
 public:
  /// Parses exactly one item spanning all of `input`.
  std::optional<CborError> parse(byte_view input, const CborLimits& limits);
  /// Parses one item from the front of `input`; `consumed` receives its encoded length.
  std::optional<CborError> parse_prefix(byte_view input, const CborLimits& limits,
                                        std::size_t& consumed);

  const std::vector<CborNode>& nodes() const { return nodes_; }
  const CborNode& node(std::uint32_t index) const { return nodes_[index]; }
  const CborNode& root() const { return nodes_.front(); }

  /// Index of the value stored under `key` in the map at `map_index`, if present.
  std::optional<std::uint32_t> find(std::uint32_t map_index, std::string_view key) const;

  /// Index of the first child of a container (its first item, or its first key).
  static std::uint32_t first_child(std::uint32_t index) { return index + 1; }
  /// Index of the sibling after the subtree rooted at `index`.
  std::uint32_t next_sibling(std::uint32_t index) const { return nodes_[index].end; }

 private:
  std::vector<CborNode> nodes_;
  struct OpenContainer {
    std::uint32_t index;
    std::uint64_t remaining;  // children still to read (keys and values both count in maps)
    bool is_map;
  };
  std::vector<OpenContainer> stack_;
};

}  // namespace jetstream::codec
