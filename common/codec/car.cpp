#include "common/codec/car.hpp"

#include <cstring>
#include <random>

namespace jetstream::codec {

std::string_view to_string(CarError error) {
  switch (error) {
    case CarError::truncated: return "truncated";
    case CarError::bad_header: return "bad_header";
    case CarError::unsupported_version: return "unsupported_version";
    case CarError::bad_block: return "bad_block";
    case CarError::too_many_blocks: return "too_many_blocks";
    case CarError::block_too_large: return "block_too_large";
    case CarError::cid_mismatch: return "cid_mismatch";
  }
  return "unknown";
}

namespace {

constexpr std::uint32_t kEmptySlot = 0xffffffffu;

/// A per-process random key: block CIDs in an untrusted CAR are not checked against their data,
/// so an unkeyed hash would let a crafted CAR make the index quadratic.
std::uint64_t hash_key() {
  static const std::uint64_t key = [] {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device() ^ 0x9e3779b97f4a7c15ULL;
  }();
  return key;
}

std::uint64_t mix(std::uint64_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdULL;
  value ^= value >> 33;
  value *= 0xc4ceb9fe1a85ec53ULL;
  value ^= value >> 33;
  return value;
}

std::uint64_t hash_cid(byte_view cid) {
  std::uint64_t hash = hash_key() ^ cid.size();
  std::size_t i = 0;
  for (; i + 8 <= cid.size(); i += 8) {
    std::uint64_t chunk = 0;
    std::memcpy(&chunk, cid.data() + i, 8);
    hash = mix(hash ^ chunk);
  }
  std::uint64_t tail = 0;
  for (std::size_t shift = 0; i < cid.size(); ++i, shift += 8) {
    tail |= std::uint64_t{cid[i]} << shift;
  }
  return mix(hash ^ tail);
}

/// The one reader of CAR headers: a DAG-CBOR map {version: 1, roots: [links]}.
std::optional<CarError> read_car_header(byte_view header, CborDocument& document,
                                        std::vector<CidView>& roots) {
  CborLimits header_limits;
  header_limits.max_depth = 4;
  if (document.parse(header, header_limits)) return CarError::bad_header;
  const auto version = document.find(0, "version");
  const auto list = document.find(0, "roots");
  if (!version || !list || document.node(*list).kind != CborKind::array) {
    return CarError::bad_header;
  }
  const CborNode& version_node = document.node(*version);
  if (version_node.kind != CborKind::unsigned_integer) return CarError::bad_header;
  if (version_node.integer != 1) return CarError::unsupported_version;
  for (std::uint32_t i = CborDocument::first_child(*list); i < document.node(*list).end;
       i = document.next_sibling(i)) {
    const CborNode& root = document.node(i);
    if (root.kind != CborKind::cid_link) return CarError::bad_header;
    roots.push_back(*parse_cid(root.bytes()));  // links were validated while parsing
  }
  return std::nullopt;
}

}  // namespace

std::optional<CarError> CarFile::open(byte_view car, std::size_t max_blocks) {
  roots_.clear();
  blocks_.clear();
  hash_slots_.clear();

  std::uint64_t header_size = 0;
  std::size_t offset = read_uvarint(car, header_size);
  if (offset == 0) return CarError::truncated;
  if (header_size > car.size() - offset) return CarError::truncated;
  if (auto error = read_car_header(car.subspan(offset, header_size), header_, roots_)) {
    return error;
  }
  offset += header_size;

  while (offset < car.size()) {
    if (blocks_.size() >= max_blocks) return CarError::too_many_blocks;
    std::uint64_t section_size = 0;
    const std::size_t used = read_uvarint(car.subspan(offset), section_size);
    if (used == 0) return CarError::truncated;
    offset += used;
    if (section_size > car.size() - offset) return CarError::truncated;
    const byte_view section = car.subspan(offset, section_size);
    std::size_t cid_size = 0;
    const auto cid = parse_cid_prefix(section, cid_size);
    if (!cid) return CarError::bad_block;
    blocks_.push_back({*cid, section.subspan(cid_size)});
    offset += section_size;
  }
  return std::nullopt;
}

void CarFile::build_lookup_index() {
  std::size_t capacity = 16;
  while (capacity < blocks_.size() * 2) capacity *= 2;
  hash_slots_.assign(capacity, kEmptySlot);
  for (std::uint32_t i = 0; i < blocks_.size(); ++i) {
    std::size_t slot = hash_cid(blocks_[i].cid.bytes) & (capacity - 1);
    bool duplicate = false;
    while (hash_slots_[slot] != kEmptySlot) {
      // A repeated CID is indexed once (the first block wins): repeats cannot pile up a chain.
      if (bytes_equal(blocks_[hash_slots_[slot]].cid.bytes, blocks_[i].cid.bytes)) {
        duplicate = true;
        break;
      }
      slot = (slot + 1) & (capacity - 1);
    }
    if (!duplicate) hash_slots_[slot] = i;
  }
}

std::optional<CarError> CarStreamReader::feed(byte_view chunk, const BlockVisitor& visit) {
  if (error_) return error_;
  bytes_read_ += chunk.size();
  // Keep only what is not consumed yet, then the new bytes.
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(consumed_));
  consumed_ = 0;
  pending_.insert(pending_.end(), chunk.begin(), chunk.end());
  for (;;) {
    const byte_view rest = byte_view(pending_).subspan(consumed_);
    std::uint64_t size = 0;
    const std::size_t used = read_uvarint(rest, size);
    if (used == 0) {
      // An incomplete varint waits for more bytes; ten bytes that are none is not a CAR.
      if (rest.size() >= 10) return fail(header_done_ ? CarError::bad_block : CarError::bad_header);
      return std::nullopt;
    }
    const std::size_t limit = header_done_ ? limits_.max_block_bytes : limits_.max_header_bytes;
    if (size > limit) return fail(header_done_ ? CarError::block_too_large : CarError::bad_header);
    if (rest.size() - used < size) return std::nullopt;  // the rest of it is still to come
    const byte_view section = rest.subspan(used, static_cast<std::size_t>(size));
    if (!header_done_) {
      header_bytes_.assign(section.begin(), section.end());
      if (auto error = read_car_header(header_bytes_, header_, roots_)) return fail(*error);
      header_done_ = true;
    } else {
      std::size_t cid_size = 0;
      const auto cid = parse_cid_prefix(section, cid_size);
      if (!cid) return fail(CarError::bad_block);
      const byte_view data = section.subspan(cid_size);
      if (!cid_matches(*cid, data)) return fail(CarError::cid_mismatch);
      ++blocks_read_;
      visit(*cid, data);
    }
    consumed_ += used + static_cast<std::size_t>(size);
  }
}

std::optional<CarError> CarStreamReader::finish() {
  if (error_) return error_;
  if (!header_done_ || buffered_bytes() != 0) return fail(CarError::truncated);
  return std::nullopt;
}

const CarBlock* CarFile::find(byte_view cid_bytes) const {
  if (hash_slots_.empty()) {
    for (const CarBlock& block : blocks_) {
      if (bytes_equal(block.cid.bytes, cid_bytes)) return &block;
    }
    return nullptr;
  }
  const std::size_t mask = hash_slots_.size() - 1;
  for (std::size_t slot = hash_cid(cid_bytes) & mask; hash_slots_[slot] != kEmptySlot;
       slot = (slot + 1) & mask) {
    const CarBlock& block = blocks_[hash_slots_[slot]];
    if (bytes_equal(block.cid.bytes, cid_bytes)) return &block;
  }
  return nullptr;
}

}  // namespace jetstream::codec
