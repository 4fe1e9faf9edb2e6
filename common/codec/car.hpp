// CAR v1 (content-addressable archive) reading: the header's roots and the blocks, zero-copy.
#pragma once

#include <cstdint>
#include <functional>
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
  block_too_large,  ///< CarStreamReader: a block above its limit (not buffered)
  cid_mismatch,     ///< CarStreamReader: a block whose bytes are not what its CID names
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

/// A CAR v1 read as it arrives (a getRepo body reaches hundreds of MiB), in bounded memory: bytes
/// are fed in chunks of any size, and each block is handed over as soon as it is complete, its
/// CID checked against its bytes. What it holds at any time: the header, one partial block (at
/// most `max_block_bytes`) and the rest of the last chunk. After an error it takes nothing more.
class CarStreamReader {
 public:
  struct Limits {
    std::size_t max_header_bytes = 64 * 1024;
    std::size_t max_block_bytes = 2 * 1024 * 1024;  ///< atproto bounds records to 1 MiB
  };
  using BlockVisitor = std::function<void(const CidView& cid, byte_view data)>;

  CarStreamReader() : CarStreamReader(Limits{}) {}
  explicit CarStreamReader(Limits limits) : limits_(limits) {}

  /// Takes the next bytes; calls `visit` for every block they complete (views valid during the
  /// call only).
  std::optional<CarError> feed(byte_view chunk, const BlockVisitor& visit);
  /// The input ended: `truncated` when the header or a block is incomplete.
  std::optional<CarError> finish();

  /// The header's roots, once it has been read.
  const std::vector<CidView>& roots() const { return roots_; }
  std::uint64_t blocks_read() const { return blocks_read_; }
  std::uint64_t bytes_read() const { return bytes_read_; }
  /// Bytes held now (bounded as above).
  std::size_t buffered_bytes() const { return pending_.size() - consumed_; }

 private:
  std::optional<CarError> fail(CarError error) {
    error_ = error;
    return error;
  }

  Limits limits_;
  std::vector<std::uint8_t> pending_;  // bytes not yet consumed start at consumed_
  std::size_t consumed_ = 0;
  std::vector<std::uint8_t> header_bytes_;  // roots_ views point into it
  CborDocument header_;
  std::vector<CidView> roots_;
  bool header_done_ = false;
  std::optional<CarError> error_;
  std::uint64_t blocks_read_ = 0;
  std::uint64_t bytes_read_ = 0;
};

}  // namespace jetstream::codec
