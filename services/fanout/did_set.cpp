#include "services/fanout/did_set.hpp"

#include <cstdlib>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace jetstream::fanout {
namespace {

/// Up to this many DIDs a linear scan is cheaper than hashing the event's DID.
constexpr std::size_t kMaxLinear = 8;
constexpr std::size_t kMinSlots = 16;

std::size_t hash_of(std::string_view did) noexcept { return std::hash<std::string_view>{}(did); }

}  // namespace

struct DidSet::Table {
  std::string bytes;
  std::vector<std::uint32_t> offsets;
  std::vector<std::uint32_t> slots;
  std::size_t content_hash = 0;

  std::size_t size() const noexcept { return offsets.size() - 1; }
  std::string_view at(std::size_t i) const noexcept {
    return std::string_view(bytes).substr(offsets[i], offsets[i + 1] - offsets[i]);
  }
  bool same_content(const Table& other) const noexcept {
    return bytes == other.bytes && offsets == other.offsets;
  }
};

namespace {

/// Identical lists share one table: looked up by content hash, forgotten when the last set
/// holding a table goes (its deleter removes it under the same lock).
struct TableRegistry {
  std::mutex mutex;
  std::unordered_multimap<std::size_t, std::pair<const void*, std::weak_ptr<const void>>> tables;
};

TableRegistry& registry() {
  static auto* instance = new TableRegistry();  // never destroyed: sets may outlive main
  return *instance;
}

}  // namespace

std::size_t DidSet::Builder::find_slot(std::string_view did) const noexcept {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t slot = hash_of(did) & mask;; slot = (slot + 1) & mask) {
    const std::uint32_t entry = slots_[slot];
    if (entry == 0) return slot;
    const std::size_t i = entry - 1;
    if (std::string_view(bytes_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]) == did) {
      return slot;
    }
  }
}

bool DidSet::Builder::contains(std::string_view did) const noexcept {
  return !slots_.empty() && slots_[find_slot(did)] != 0;
}

bool DidSet::Builder::add(std::string_view did) {
  // Offsets are 32-bit: the request size (1 MiB) bounds the bytes far below that.
  if (bytes_.size() + did.size() > UINT32_MAX) std::abort();
  if (slots_.empty() || 2 * (size() + 1) > slots_.size()) grow();
  const std::size_t slot = find_slot(did);
  if (slots_[slot] != 0) return false;
  bytes_.append(did);
  offsets_.push_back(static_cast<std::uint32_t>(bytes_.size()));
  slots_[slot] = static_cast<std::uint32_t>(size());
  return true;
}

void DidSet::Builder::grow() {
  const std::size_t capacity = slots_.empty() ? kMinSlots : 2 * slots_.size();
  std::vector<std::uint32_t> slots(capacity, 0);
  const std::size_t mask = capacity - 1;
  for (std::size_t i = 0; i < size(); ++i) {
    const std::string_view did =
        std::string_view(bytes_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
    std::size_t slot = hash_of(did) & mask;
    while (slots[slot] != 0) slot = (slot + 1) & mask;
    slots[slot] = static_cast<std::uint32_t>(i + 1);
  }
  slots_ = std::move(slots);
}

void DidSet::Builder::clear() {
  bytes_.clear();
  offsets_.assign(1, 0);
  slots_.clear();
}

DidSet DidSet::Builder::build() {
  DidSet set;
  if (size() == 0) return set;
  auto table = std::make_unique<Table>();
  table->bytes = std::move(bytes_);
  table->offsets = std::move(offsets_);
  if (table->size() > kMaxLinear) table->slots = std::move(slots_);
  table->bytes.shrink_to_fit();
  table->offsets.shrink_to_fit();
  table->content_hash = hash_of(table->bytes) ^ (table->size() * 0x9e3779b97f4a7c15ull);
  clear();

  TableRegistry& shared = registry();
  std::lock_guard lock(shared.mutex);
  auto [begin, end] = shared.tables.equal_range(table->content_hash);
  for (auto it = begin; it != end; ++it) {
    auto alive = std::static_pointer_cast<const Table>(it->second.second.lock());
    if (alive && alive->same_content(*table)) {
      set.table_ = std::move(alive);
      return set;
    }
  }
  const std::size_t key = table->content_hash;
  std::shared_ptr<const Table> owned(table.release(), [](const Table* gone) {
    {
      TableRegistry& tables = registry();
      std::lock_guard forget(tables.mutex);
      auto [first, last] = tables.tables.equal_range(gone->content_hash);
      for (auto it = first; it != last; ++it) {
        if (it->second.first == gone) {
          tables.tables.erase(it);
          break;
        }
      }
    }
    delete gone;
  });
  shared.tables.emplace(key, std::make_pair(owned.get(), std::weak_ptr<const void>(owned)));
  set.table_ = std::move(owned);
  return set;
}

DidSet::DidSet(const std::vector<std::string>& dids) {
  Builder builder;
  for (const auto& did : dids) builder.add(did);
  *this = builder.build();
}

std::size_t DidSet::size() const noexcept { return table_ ? table_->size() : 0; }

bool DidSet::contains(std::string_view did) const noexcept {
  if (!table_) return false;
  const Table& t = *table_;
  if (t.slots.empty()) {
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (t.at(i) == did) return true;
    }
    return false;
  }
  const std::size_t mask = t.slots.size() - 1;
  for (std::size_t slot = hash_of(did) & mask;; slot = (slot + 1) & mask) {
    const std::uint32_t entry = t.slots[slot];
    if (entry == 0) return false;
    if (t.at(entry - 1) == did) return true;
  }
}

std::string_view DidSet::operator[](std::size_t index) const noexcept { return table_->at(index); }

std::vector<std::string> DidSet::to_vector() const {
  std::vector<std::string> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) out.emplace_back(table_->at(i));
  return out;
}

std::size_t DidSet::memory_bytes() const noexcept {
  if (!table_) return 0;
  return sizeof(Table) + table_->bytes.capacity() +
         sizeof(std::uint32_t) * (table_->offsets.capacity() + table_->slots.capacity());
}

std::size_t DidSet::live_tables() {
  TableRegistry& shared = registry();
  std::lock_guard lock(shared.mutex);
  return shared.tables.size();
}

bool operator==(const DidSet& a, const DidSet& b) noexcept {
  if (a.table_ == b.table_) return true;
  if (!a.table_ || !b.table_) return false;
  return a.table_->same_content(*b.table_);
}

}  // namespace jetstream::fanout
