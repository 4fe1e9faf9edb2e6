// The compacted twin of the event log (API.md "State", DESIGN.md "State, backfill and
// verification"): what decode keeps per record of the compacted collections, and per DID for
// identity and account events. This file holds the pure parts — which collections are
// compacted, how a record's key and its state entry are written in RocksDB, and the fold of
// events into state that the store, the state build and `--check-state` all use — so the three
// can never disagree. EventStore (event_store.hpp) writes it, in the same batch as the log.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/syntax/collection_set.hpp"
#include "proto/events.hpp"

namespace jetstream::decode {

using syntax::CollectionSet;  // `--compact-collections` (common/syntax/collection_set.hpp)

/// What an appended event does to the twin, beside its EventView: the record it writes or
/// deletes (commit events only; identity and account events are keyed by DID alone).
struct RecordChange {
  std::string_view rkey;
  std::string_view rev;  ///< the commit's rev (a TID); empty when the commit had none
  bool is_delete = false;
};

/// Which twin entry an event moves. Key bytes: `did \0 collection \0 rkey` for a record,
/// `did \0 #identity` and `did \0 #account` for a DID's latest identity and account event
/// (`#` never starts an NSID, `\0` never occurs in a DID).
[[nodiscard]] std::string twin_key(std::string_view did, std::string_view collection,
                                   std::string_view rkey);
[[nodiscard]] std::string twin_key(proto::EventKind kind, std::string_view did);
/// The key `event` moves: its record's for a commit (empty when the commit names no rkey, so
/// there is no record to key), its DID's identity or account key otherwise.
[[nodiscard]] std::string twin_key_of(const proto::EventView& event, const RecordChange& change);

/// A twin key taken apart; nullopt when the bytes are not a key this code writes.
struct TwinKey {
  proto::EventKind kind = proto::EventKind::commit;
  std::string_view did;
  std::string_view collection;  ///< commit only
  std::string_view rkey;        ///< commit only
};
[[nodiscard]] std::optional<TwinKey> parse_twin_key(std::string_view bytes) noexcept;

/// A record's (or DID's) state entry: the time_us of its latest event, whether that event was a
/// delete (a tombstone, kept for --tombstone-ttl), and the rev that wrote it (backfill compares
/// revs). Bytes: time_us 8 big-endian, flags 1 (bit 0: tombstone), rev.
struct TwinEntry {
  std::int64_t time_us = 0;
  bool tombstone = false;
  std::string rev;

  friend bool operator==(const TwinEntry&, const TwinEntry&) = default;
};
[[nodiscard]] std::string encode_twin_entry(const TwinEntry& entry);
[[nodiscard]] std::optional<TwinEntry> parse_twin_entry(std::string_view bytes);

/// Whether `event` (with its change) replaces `existing`, the entry its key holds (nullopt:
/// none): the one rule every writer of the twin follows. A live event replaces any older entry
/// (by time_us); a backfilled one (EventView::backfill, API.md "Backfill") only an entry written
/// at a rev below its own, so a live commit at a later rev wins whatever the order of arrival.
[[nodiscard]] bool twin_replaces(const std::optional<TwinEntry>& existing,
                                 const proto::EventView& event,
                                 const RecordChange& change) noexcept;

/// The twin computed in memory by folding events in time_us order: the reference the stored twin
/// is checked against (`jetstream-decode --check-state`), and the tests' oracle.
class TwinFold {
 public:
  explicit TwinFold(CollectionSet set) : set_(std::move(set)) {}

  /// Applies one event, with its change (ignored for identity and account events).
  void apply(const proto::EventView& event, const RecordChange& change);
  /// Drops tombstones whose event is older than `cutoff_time_us` (the TTL's horizon).
  void expire_tombstones(std::int64_t cutoff_time_us);

  [[nodiscard]] const std::map<std::string, TwinEntry>& entries() const noexcept {
    return entries_;
  }
  [[nodiscard]] const CollectionSet& set() const noexcept { return set_; }

 private:
  CollectionSet set_;
  std::map<std::string, TwinEntry> entries_;
};

/// Whether `event` belongs in the twin of `set`: a commit of a compacted collection, or any
/// identity or account event (kept for every DID once a twin exists).
[[nodiscard]] bool is_compacted(const CollectionSet& set, const proto::EventView& event) noexcept;

/// A RecordChange that owns its strings.
struct OwnedRecordChange {
  std::string rkey;
  std::string rev;
  bool is_delete = false;

  [[nodiscard]] RecordChange view() const noexcept { return {rkey, rev, is_delete}; }
};

/// The change a stored v1 commit event makes, read back from its JSON (`commit.rkey`,
/// `commit.rev`, `commit.operation`): for the state build and the check, which read the log,
/// where only the JSON is kept. nullopt when the JSON is not a v1 commit event.
[[nodiscard]] std::optional<OwnedRecordChange> change_from_json(std::string_view json);

}  // namespace jetstream::decode
