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

}  // namespace

std::optional<CarError> CarFile::open(byte_view car, std::size_t max_blocks) {
  roots_.clear();
  blocks_.clear();
  hash_slots_.clear();

  std::uint64_t header_size = 0;
  std::size_t offset = read_uvarint(car, header_size);
  if (offset == 0) return CarError::truncated;
  if (header_size > car.size() - offset) return CarError::truncated;
  CborLimits header_limits;
  header_limits.max_depth = 4;
  if (header_.parse(car.subspan(offset, header_size), header_limits)) return CarError::bad_header;
  const auto version = header_.find(0, "version");
  const auto roots = header_.find(0, "roots");
  if (!version || !roots || header_.node(*roots).kind != CborKind::array) {
    return CarError::bad_header;
  }
  const CborNode& version_node = header_.node(*version);
  if (version_node.kind != CborKind::unsigned_integer) return CarError::bad_header;
  if (version_node.integer != 1) return CarError::unsupported_version;
  for (std::uint32_t i = CborDocument::first_child(*roots); i < header_.node(*roots).end;
       i = header_.next_sibling(i)) {
    const CborNode& root = header_.node(i);
    if (root.kind != CborKind::cid_link) return CarError::bad_header;
    roots_.push_back(*parse_cid(root.bytes()));  // links were validated while parsing
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
