// The wantedDids of one subscriber, compact and shared. v1 takes 10,000 DIDs per client; kept as
// strings in vectors and hash sets they cost ~3 MB per client, so 1,000 feed clients following
// the same list would hold gigabytes of copies. A DidSet keeps the DIDs in one byte string with
// a table of 32-bit slots, about 45 bytes a DID, and identical lists (the same DIDs in the same
// order) share one table process-wide: copying a DidSet copies a pointer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace jetstream::fanout {

class DidSet {
 public:
  /// No DIDs (no DID filter).
  DidSet() = default;
  /// The distinct values of `dids`, first-seen order kept.
  explicit DidSet(const std::vector<std::string>& dids);

  /// Collects DIDs while a request is parsed: the set's own table de-duplicates them, so no
  /// second set of strings exists while parsing either.
  class Builder {
   public:
    /// Adds `did` unless it is already there; false when it was.
    bool add(std::string_view did);
    [[nodiscard]] bool contains(std::string_view did) const noexcept;
    [[nodiscard]] std::size_t size() const noexcept { return offsets_.size() - 1; }
    void clear();
    /// The set, sharing the table of an identical set already alive. Leaves the builder empty.
    [[nodiscard]] DidSet build();

   private:
    friend class DidSet;
    void grow();
    /// The slot holding `did`, or the free slot where it would go (slots_ must not be empty).
    [[nodiscard]] std::size_t find_slot(std::string_view did) const noexcept;
    std::string bytes_;
    std::vector<std::uint32_t> offsets_{0};  // DID i is bytes_[offsets_[i], offsets_[i + 1])
    std::vector<std::uint32_t> slots_;       // index + 1 of a DID, 0 = free; power-of-two size
  };

  [[nodiscard]] bool empty() const noexcept { return table_ == nullptr; }
  [[nodiscard]] std::size_t size() const noexcept;
  /// Byte for byte. Called for every event of a client with a DID filter.
  [[nodiscard]] bool contains(std::string_view did) const noexcept;
  /// The i-th distinct DID in first-seen order.
  [[nodiscard]] std::string_view operator[](std::size_t index) const noexcept;
  [[nodiscard]] std::vector<std::string> to_vector() const;
  /// Bytes this set's table holds (shared by every identical set).
  [[nodiscard]] std::size_t memory_bytes() const noexcept;
  /// Whether both hold the same table: identical lists built while the other was alive do.
  [[nodiscard]] bool shares_table_with(const DidSet& other) const noexcept {
    return table_ == other.table_;
  }
  /// Tables alive in the process (for tests and the memory benchmark).
  [[nodiscard]] static std::size_t live_tables();

  friend bool operator==(const DidSet& a, const DidSet& b) noexcept;

 private:
  struct Table;
  std::shared_ptr<const Table> table_;
};

}  // namespace jetstream::fanout
