// decode's durable event log: every sequenced event and the upstream cursor, in an embedded
// RocksDB, written in one atomic batch per append; replay pages read back from it; retention
// deletes by time range. README.md ("Event store") has the on-disk layout and the decisions.
//
// Threads: one writer at a time (append and delete_before serialize on an internal mutex; decode
// calls append from its sequencer and delete_before from a background actor); any number of
// concurrent read_page callers, each with its own ReplayPageBuffer. Every accessor is
// thread-safe, reopen_writable() included.
//
// Read-only: on a disk too full to open RocksDB for writing (RocksDB aborts the process when
// its open-time writes fail), the store opens read-only: replay serves what it holds, appends
// fail, retention does nothing, and reopen_writable() switches to writing once there is room.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proto/events.hpp"
#include "proto/replay.hpp"
#include "services/decode/compacted_twin.hpp"

namespace rocksdb {
class WriteBatch;
}  // namespace rocksdb

namespace jetstream::decode {

class EventStore;

/// The bytes of one replay page and the proto::ReplayPageView over them. Reused between
/// read_page calls so a steady reader allocates nothing once its buffers reached their working
/// size. The view's events point into this buffer: they stay valid until the next read_page into
/// it or its destruction (a move keeps them valid: the views are rebuilt). One per reader thread.
class ReplayPageBuffer {
 public:
  ReplayPageBuffer() = default;
  ReplayPageBuffer(const ReplayPageBuffer&) = delete;
  ReplayPageBuffer& operator=(const ReplayPageBuffer&) = delete;
  ReplayPageBuffer(ReplayPageBuffer&& other) noexcept;
  ReplayPageBuffer& operator=(ReplayPageBuffer&& other) noexcept;
  ~ReplayPageBuffer() = default;

  /// The last page read into this buffer (request_id, status, done, next/oldest/newest, events).
  const proto::ReplayPageView& page() const noexcept { return page_; }
  /// Stored events the last read examined (kept or filtered out): for metrics.
  std::size_t scanned() const noexcept { return scanned_; }
  /// Payload bytes of the page as counted against max_bytes (JSON, plus zstd when wanted).
  std::size_t payload_bytes() const noexcept { return payload_bytes_; }
  /// Why the last read was not ok (bad_request, too_old, internal_error); empty when ok. For logs.
  const std::string& error() const noexcept { return error_; }

 private:
  friend class EventStore;

  /// Where one event's fields sit in bytes_ (offsets, so bytes_ may grow while the page fills).
  struct Slot {
    std::int64_t time_us;
    std::int64_t prev_time_us;
    proto::EventKind kind;
    bool backfill;
    std::size_t did_offset;
    std::size_t did_size;
    std::size_t collection_offset;
    std::size_t collection_size;
    std::size_t json_offset;
    std::size_t json_size;
    std::size_t zstd_offset;
    std::size_t zstd_size;
  };

  void reset(std::uint64_t request_id);
  void rebuild_views();

  std::string bytes_;
  std::vector<Slot> slots_;
  proto::ReplayPageView page_;
  std::size_t scanned_ = 0;
  std::size_t payload_bytes_ = 0;
  std::string error_;
  // Per-request filter sets (views into the request), kept to reuse their buckets.
  std::unordered_set<std::string_view> dids_;
  std::unordered_set<std::string_view> collections_;
};

/// The event log. Keys are time_us (unique, strictly increasing); values hold kind, DID,
/// collection, the v1 JSON and its zstd frame. A crash never leaves an event without its cursor
/// or a cursor without its events: both are in the same WriteBatch (WAL on).
class EventStore {
 public:
  /// Block compression of the events column family. LZ4 is the default: it roughly halves the
  /// JSON on disk for a small read cost (README.md "Event store" has the measurements).
  enum class Compression : std::uint8_t { none, lz4 };

  struct Options {
    /// The RocksDB directory; created (with its parents) when missing.
    std::string path;
    /// LRU block cache shared by both column families.
    std::size_t block_cache_bytes = std::size_t{256} << 20;
    /// fsync the WAL on every append (WriteOptions::sync). Off: an OS crash (not a process
    /// crash) may lose the last appends, cursor included, so nothing is skipped on restart.
    bool sync_writes = false;
    Compression compression = Compression::lz4;
    /// A read_page examines at most this many stored events, so a filter that matches nothing
    /// cannot hold a reader for long; the page then says where to continue (done = false).
    std::size_t max_scan_keys = 200'000;
    /// Open without writing anything (RocksDB's read-only mode). A store that does not exist yet
    /// is then an empty log until reopen_writable() creates it.
    bool read_only = false;
    /// The collections whose compacted twin is kept (`--compact-collections`); empty: none, and
    /// the twin's column families stay empty. A set different from the one stored drops what
    /// the new set no longer covers at open and builds what it adds from the log in the
    /// background (build_twin_step).
    CollectionSet compact;
  };

  /// Records and tombstones of one group of the twin: a pattern of the set (`app.bsky.*`), or
  /// `#identity` / `#account` for the DIDs' latest identity and account events.
  struct TwinCounts {
    std::int64_t records = 0;
    std::int64_t tombstones = 0;
    friend bool operator==(const TwinCounts&, const TwinCounts&) = default;
  };

  /// Where the background build of newly compacted collections stands.
  struct TwinBuild {
    bool pending = false;           ///< collections added on this start are still being built
    std::string collections;        ///< what is being built (canonical), empty when none
    std::int64_t position = 0;      ///< the log is read from here (time_us) onwards
    std::int64_t newest = 0;        ///< the log's newest event when this was read
    std::uint64_t events_read = 0;  ///< log events read by build steps since open
  };

  /// The result of check_twin: every problem found (bounded), and what was compared.
  struct TwinCheck {
    std::vector<std::string> problems;  ///< at most 50, each naming the key or time_us
    std::uint64_t problem_count = 0;
    std::uint64_t entries_checked = 0;
    std::uint64_t log_events_folded = 0;
    [[nodiscard]] bool ok() const noexcept { return problem_count == 0; }
  };

  /// Opens (creating when missing, unless read_only) the store at options.path. nullptr with
  /// `error` set when the path cannot be created or written, another process (or another
  /// EventStore in this one) holds the DB's lock, or the stored data is inconsistent.
  static std::unique_ptr<EventStore> open(const Options& options, std::string& error);

  /// Whether appends and retention write (false after a read-only open, until reopen_writable).
  bool writable() const noexcept { return writable_.load(std::memory_order_acquire); }
  /// A read-only store opens for writing (creating the store when it did not exist), checking
  /// its data as open() does; replay readers wait for the switch, nothing they read changes.
  /// true at once when already writable; false with `error` set (still read-only) on failure.
  bool reopen_writable(std::string& error);

  ~EventStore();
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  /// Stores `events` and the upstream cursor in ONE atomic write. The events must continue the
  /// chain: each time_us strictly above the previous one (the first above last_time_us()), each
  /// prev_time_us equal to the previous event's time_us (the first's to last_time_us()), each
  /// event valid per proto::validate. Anything else is a bug in the sequencer: it prints what and
  /// aborts. `events` may be empty (a frame that yielded no event still advances the cursor).
  /// `upstream_cursor` is the upstream seq of the last frame whose events are stored (>= -1).
  /// false with `error` set when RocksDB fails the write or the store is read-only; nothing of it
  /// is then stored.
  bool append(std::span<const proto::EventView> events, std::int64_t upstream_cursor,
              std::string& error) {
    return append(events, {}, upstream_cursor, error);
  }
  /// The same, moving the compacted twin in the same write: `changes[i]` is what `events[i]`
  /// does to its record (read for commit events only). With a twin configured, `changes` must
  /// hold one entry per event (else: a bug in the sequencer, abort).
  bool append(std::span<const proto::EventView> events, std::span<const RecordChange> changes,
              std::int64_t upstream_cursor, std::string& error);

  /// --verify's own rows, written in the same batch as the events they go with, so a crash loses
  /// none and applies none twice: frames held until their DID resolves
  /// (services/decode/held_commits.hpp), put beside the events they were held among and deleted
  /// in the batch that stores their events; and (--verify full) each repository's last rev.
  struct VerificationWrites {
    std::vector<std::pair<std::uint64_t, std::string>> held_puts;  ///< id → opaque bytes
    std::vector<std::uint64_t> held_deletes;
    std::vector<std::pair<std::string, std::string>> repo_revs;  ///< DID → rev
    /// Backfill's resync queue (`resync:` rows, DID → reason): written with the events of the
    /// frames that asked for it, read and cleared by backfill's polls (proto §3.11).
    std::vector<std::pair<std::string, std::uint8_t>> resyncs;
    bool empty() const {
      return held_puts.empty() && held_deletes.empty() && repo_revs.empty() && resyncs.empty();
    }
  };
  bool append(std::span<const proto::EventView> events, std::span<const RecordChange> changes,
              std::int64_t upstream_cursor, const VerificationWrites& verification,
              std::string& error);
  /// Every held frame, by id (read once at start).
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::string>> held_frames() const;
  /// The last rev stored for the repository `did` (--verify full); nullopt when none.
  [[nodiscard]] std::optional<std::string> repo_rev(std::string_view did) const;
  /// Backfill's resync queue: up to `max` rows (DID, reason), in DID order.
  [[nodiscard]] std::vector<std::pair<std::string, std::uint8_t>> pending_resyncs(
      std::size_t max) const;
  /// Removes the rows of `dids` (backfill stored them). false with `error` on failure.
  bool clear_resyncs(const std::vector<std::string>& dids, std::string& error);

  // ---- The compacted twin (compacted_twin.hpp; README.md "Compacted twin").

  /// Tombstones whose delete is older than `cutoff_time_us` are removed (with their event), and
  /// the tombstone horizon becomes the newest removed tombstone's time_us: a snapshot cursor at
  /// or below it may have missed a delete and cannot be resumed.
  /// Returns how many expired; -1 with `error` set when RocksDB fails.
  std::int64_t expire_tombstones(std::int64_t cutoff_time_us, std::string& error);
  /// Reads up to `max_events` log events from the build position and adds those of the
  /// collections being built to the twin, where the twin holds nothing newer. The build is done
  /// once it reaches the log's newest event. false with `error` when RocksDB fails.
  bool build_twin_step(std::size_t max_events, std::string& error);
  [[nodiscard]] TwinBuild twin_build() const;
  /// Backfill (proto/README.md §3.9): the stored twin entries of `keys`, in their order (nullopt
  /// where none is stored). Empty with `error` set when RocksDB fails or an entry is corrupt.
  /// The sequencer, the single writer of events, reads them just before it appends.
  [[nodiscard]] std::vector<std::optional<TwinEntry>> twin_entries(
      const std::vector<std::string>& keys, std::string& error) const;
  /// The twin keys of `did`'s records (not tombstones) in collections both `wanted` and the
  /// compacted set match, written at a rev below `rev`: what a repository fetched at `rev` no
  /// longer holds once every record it does hold was applied. false with `error` on failure.
  bool stale_records(std::string_view did, std::string_view rev, const CollectionSet& wanted,
                     std::vector<std::string>& keys, std::string& error) const;
  /// The collections whose twin is still being built, canonical (empty when none): what state
  /// info tells fanout, so that no snapshot reads a twin that still lacks records.
  [[nodiscard]] std::string building_collections() const;
  /// What open did to the twin when the collection set had changed (for the log); empty when
  /// the set was the stored one.
  [[nodiscard]] const std::string& twin_open_report() const noexcept { return twin_open_report_; }
  /// Counts per group (see TwinCounts).
  [[nodiscard]] std::map<std::string, TwinCounts> twin_counts() const;
  /// SST bytes of the twin's column families (and their memtables).
  [[nodiscard]] std::uint64_t twin_disk_bytes() const;
  /// Writes every memtable to SST files and compacts the twin's families fully, so disk sizes
  /// mean what is stored (the state benchmark's bytes per record). Slow: not for the hot path.
  bool flush_and_compact(std::string& error);
  /// time_us of the newest tombstone ever expired; 0 when none was.
  [[nodiscard]] std::int64_t tombstone_horizon_us() const noexcept {
    return tombstone_horizon_.load(std::memory_order_acquire);
  }
  /// Recomputes the twin from the log this store holds and compares it with the stored twin:
  /// every entry, its event (byte for byte with the log's where the log still has it), the
  /// tombstone index and the counts. Reads one consistent snapshot; for `--check-state`.
  [[nodiscard]] TwinCheck check_twin() const;

  /// Reads one replay page (proto/README.md §5.3) into `out` and returns its status (also in
  /// out.page().status). Thread-safe; reads one consistent snapshot.
  proto::ReplayStatus read_page(const proto::ReplayRequest& request, ReplayPageBuffer& out) const;

  /// Retention: deletes every event with time_us < cutoff_time_us (never the newest event: the
  /// cutoff is lowered to it, so the chain head and its time_us survive), persists the new floor
  /// in the same write, then compacts the deleted range in the calling thread. true when nothing
  /// was below the cutoff. false with `error` set when RocksDB fails the write.
  bool delete_before(std::int64_t cutoff_time_us, std::string& error);

  /// Upstream seq of the last frame whose events are durably stored; -1 when none.
  std::int64_t upstream_cursor() const noexcept;
  /// time_us of the last event ever appended (the next event's prev_time_us); 0 when none.
  std::int64_t last_time_us() const noexcept;
  /// time_us of the oldest retained event; 0 when the log is empty.
  std::int64_t oldest_time_us() const noexcept;
  /// time_us of the newest stored event; 0 when the log is empty.
  std::int64_t newest_time_us() const noexcept;
  /// time_us of the newest event retention deleted (= the prev_time_us of the oldest retained
  /// event); 0 when retention never deleted anything. Replays starting at or below it are too_old.
  std::int64_t deleted_through_time_us() const noexcept;
  /// The cutoff of the last retention delete that removed something; 0 when none.
  std::int64_t retention_floor_time_us() const noexcept;

  /// SST files of both column families plus the memtables (an approximation of the unflushed
  /// WAL), in bytes.
  std::uint64_t disk_usage_bytes() const;
  /// RocksDB's estimate of the number of stored events (rocksdb.estimate-num-keys).
  std::uint64_t approximate_event_count() const;

  const Options& options() const noexcept { return options_; }

  /// At destruction, leaves RocksDB unclosed, as a crash would. For a disk too full to close it
  /// cleanly: RocksDB aborts the process when its close-time writes fail, and a crash loses
  /// nothing (every acknowledged append is in the WAL; RocksDB recovers it on the next open).
  void abandon_at_close() noexcept { abandon_at_close_.store(true); }

 private:
  struct Db;
  struct Opened;
  EventStore(Options options, std::unique_ptr<Db> db);
  static bool open_db(const Options& options, Opened& out, std::string& error);
  void adopt(Opened& opened);
  /// Under write_mutex_: brings the stored twin to options_.compact (drops, recounts, queues
  /// the build). At open, writable stores only.
  bool reconcile_twin(std::string& error);
  /// Under write_mutex_: moves `key`'s entry (twin_key_of the event) to `event` in `batch`
  /// unless the twin (or this batch) holds a newer one. `value` is the event's stored value.
  bool twin_put(rocksdb::WriteBatch& batch, const proto::EventView& event,
                const RecordChange& change, const std::string& key,
                std::span<const std::string_view> value, std::string& error);
  /// Under write_mutex_: reads the stored entries of `keys` (one MultiGet, sorted) into
  /// batch_entries_: the one read path of twin entries (an append reads its batch's keys
  /// ahead; twin_put reads a key not read ahead, as the build's are, itself).
  bool read_twin_entries(std::vector<std::string>& keys, std::string& error);
  std::string group_of(const proto::EventView& event) const;
  void count(const std::string& group, int records, int tombstones);

  Options options_;
  /// Serializes append, delete_before and reopen_writable (the chain checks read the head).
  std::mutex write_mutex_;
  /// Shared by every use of db_, exclusive while reopen_writable swaps it (taken after
  /// write_mutex_ when both are).
  mutable std::shared_mutex db_guard_;
  /// nullptr only for a read-only open of a store that does not exist yet (an empty log).
  std::unique_ptr<Db> db_;
  std::atomic<bool> writable_{false};
  std::atomic<bool> abandon_at_close_{false};
  std::atomic<std::int64_t> upstream_cursor_{-1};
  std::atomic<std::int64_t> last_time_us_{0};
  std::atomic<std::int64_t> oldest_time_us_{0};
  std::atomic<std::int64_t> deleted_through_{0};
  std::atomic<std::int64_t> retention_floor_{0};
  std::atomic<std::int64_t> tombstone_horizon_{0};

  // The twin (writes under write_mutex_).
  /// The newest entry of each key this batch touches: read ahead from the store (nullopt: none
  /// stored), then as the batch rewrote it.
  std::unordered_map<std::string, std::optional<TwinEntry>> batch_entries_;
  std::vector<std::string> batch_keys_;       ///< twin_key_of each event of the append (or empty)
  std::map<std::string, TwinCounts> counts_;  ///< guarded by counts_mutex_
  std::unordered_set<std::string> touched_groups_;  ///< counts this batch changed
  mutable std::mutex counts_mutex_;
  CollectionSet build_set_;  ///< the collections being built (under write_mutex_)
  bool build_dids_ = false;  ///< identity and account events are being built too
  std::atomic<bool> build_pending_{false};
  std::atomic<std::int64_t> build_position_{0};
  std::atomic<std::uint64_t> build_events_read_{0};
  std::string twin_open_report_;
};

}  // namespace jetstream::decode
