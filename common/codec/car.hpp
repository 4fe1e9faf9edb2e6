// CAR v1 (content-addressable archive) reading: the header's roots and the blocks, zero-copy.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/cid.hpp"
#include "common/codec/dag_cbor.hpp"

namespace jetstream::codec {

enum class CarError : std::uint8_t {
  truncated,
  bad_header,  ///< not a DAG-CBOR map {version: 1, roots: [links]}
  unsupported_version,
  bad_block,  ///< a block whose length or CID cannot be read
  too_many_blocks,
};

std::string_view to_string(CarError error);

struct CarBlock {
  CidView cid;
  byte_view data;
};

/// A CAR file held in memory: its roots and an index of its blocks (views into the input).
class CarFile {
 public:
  /// Parses the header and indexes every block. The input must outlive the CarFile.
  std::optional<CarError> open(byte_view car, std::size_t max_blocks = 1u << 20);

  const std::vector<CidView>& roots() const { return roots_; }
  const std::vector<CarBlock>& blocks() const { return blocks_; }

  /// The block whose CID bytes equal `cid_bytes` (linear scan: firehose CARs hold a few blocks;
  /// use `build_lookup_index` first for whole repositories).
  const CarBlock* find(byte_view cid_bytes) const;

  /// Builds a hash index so `find` is O(1); worth it for whole-repository CARs.
  void build_lookup_index();

 private:
  CborDocument header_;
  std::vector<CidView> roots_;
  std::vector<CarBlock> blocks_;
  std::vector<std::uint32_t> hash_slots_;  // open addressing over blocks_; empty = no index
};

}  // namespace jetstream::codec
