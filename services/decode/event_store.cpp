#include "services/decode/event_store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <mutex>
#include <utility>

namespace jetstream::decode {
namespace {

// ---- Layout (README.md "Event store").

constexpr const char* kEventsFamily = "events";
constexpr const char* kMetaFamily = "meta";
// The compacted twin (compacted_twin.hpp): twin key -> TwinEntry; time_us -> the stored event
// (the same value format as the log's); time_us of a tombstone -> its twin key (for the TTL).
constexpr const char* kTwinKeysFamily = "twin_keys";
constexpr const char* kTwinEventsFamily = "twin_events";
constexpr const char* kTwinTombstonesFamily = "twin_tombstones";

/// kind u8 (bit 7: backfill, as on the wire), did_len u16 LE, collection_len u16 LE, json_len u32
/// LE; then did, collection, json, and the zstd frame (the remainder of the value).
constexpr std::size_t kValueHeaderSize = 1 + 2 + 2 + 4;

constexpr std::int64_t kFormatVersion = 1;
constexpr std::string_view kMetaFormatVersion = "format_version";
constexpr std::string_view kMetaUpstreamCursor = "upstream_cursor";
constexpr std::string_view kMetaLastTimeUs = "last_time_us";
constexpr std::string_view kMetaOldestTimeUs = "oldest_time_us";
constexpr std::string_view kMetaDeletedThrough = "deleted_through_time_us";
constexpr std::string_view kMetaRetentionFloor = "retention_floor_time_us";
constexpr std::string_view kMetaTwinCollections = "twin_collections";  // CollectionSet text
constexpr std::string_view kMetaTwinBuild = "twin_build";              // "0|" or "1|" + text
constexpr std::string_view kMetaTwinBuildPosition = "twin_build_position";
constexpr std::string_view kMetaTombstoneHorizon = "tombstone_horizon_time_us";
constexpr std::string_view kMetaTwinCountPrefix = "twin_count:";  // + group: records, tombstones
constexpr std::string_view kMetaTwinCountEnd = "twin_count;";     // ';' follows ':'
constexpr std::string_view kMetaHeldPrefix = "held:";  // + 8-byte big-endian id: a held frame
constexpr std::string_view kMetaHeldEnd = "held;";
constexpr std::string_view kMetaRepoRevPrefix = "rev:";    // + DID: its last rev (--verify full)
constexpr std::string_view kMetaResyncPrefix = "resync:";  // + DID: reason byte (for backfill)
constexpr std::string_view kMetaResyncEnd = "resync;";
/// Twin rows changed per write while the twin is reconciled, built or expired.
constexpr std::size_t kTwinRowsPerWrite = 10'000;

/// Readahead for replay scans: pages are sequential reads of up to tens of MB.
constexpr std::size_t kReplayReadaheadBytes = std::size_t{2} << 20;

using Key = std::array<char, 8>;

/// Big-endian, so the bytewise comparator orders keys numerically (time_us is always >= 0).
Key encode_key(std::int64_t time_us) noexcept {
  auto value = static_cast<std::uint64_t>(std::max<std::int64_t>(time_us, 0));
  Key key{};
  for (std::size_t i = key.size(); i-- > 0;) {
    key[i] = static_cast<char>(static_cast<std::uint8_t>(value & 0xffu));
    value >>= 8;
  }
  return key;
}

bool decode_key(const rocksdb::Slice& key, std::int64_t& time_us) noexcept {
  if (key.size() != 8) return false;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    value = (value << 8) | static_cast<std::uint8_t>(key.data()[i]);
  }
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
  time_us = static_cast<std::int64_t>(value);
  return true;
}

rocksdb::Slice slice(const Key& key) noexcept { return {key.data(), key.size()}; }
rocksdb::Slice slice(std::string_view text) noexcept { return {text.data(), text.size()}; }

using MetaValue = std::array<char, 8>;

MetaValue encode_i64(std::int64_t number) noexcept {
  auto value = static_cast<std::uint64_t>(number);
  MetaValue out{};
  for (auto& byte : out) {
    byte = static_cast<char>(static_cast<std::uint8_t>(value & 0xffu));
    value >>= 8;
  }
  return out;
}

bool decode_i64(const rocksdb::Slice& bytes, std::int64_t& number) noexcept {
  if (bytes.size() != 8) return false;
  std::uint64_t value = 0;
  for (std::size_t i = 8; i-- > 0;) value = (value << 8) | static_cast<std::uint8_t>(bytes[i]);
  number = static_cast<std::int64_t>(value);
  return true;
}

struct ValueHeader {
  proto::EventKind kind;
  bool backfill;
  std::size_t did_size;
  std::size_t collection_size;
  std::size_t json_size;
  std::size_t zstd_size;
};

void encode_header(const proto::EventView& event, std::array<char, kValueHeaderSize>& out) {
  const auto put = [&out](std::size_t at, std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i) {
      out[at + i] = static_cast<char>(static_cast<std::uint8_t>(value & 0xffu));
      value >>= 8;
    }
  };
  put(0, proto::kind_byte(event.kind, event.backfill), 1);
  put(1, event.did.size(), 2);
  put(3, event.collection.size(), 2);
  put(5, event.json.size(), 4);
}

/// The header of a stored value, checked against the value's size; false when the value is not
/// one this store wrote (corruption).
bool decode_header(const rocksdb::Slice& value, ValueHeader& header) noexcept {
  if (value.size() < kValueHeaderSize) return false;
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(value.data());
  const auto kind = static_cast<std::uint8_t>(bytes[0] & ~proto::kBackfillKindBit);
  header.backfill = (bytes[0] & proto::kBackfillKindBit) != 0;
  if (kind < static_cast<std::uint8_t>(proto::EventKind::commit) ||
      kind > static_cast<std::uint8_t>(proto::EventKind::account) ||
      (header.backfill && kind != static_cast<std::uint8_t>(proto::EventKind::commit))) {
    return false;
  }
  header.kind = static_cast<proto::EventKind>(kind);
  header.did_size = std::size_t{bytes[1]} | (std::size_t{bytes[2]} << 8);
  header.collection_size = std::size_t{bytes[3]} | (std::size_t{bytes[4]} << 8);
  header.json_size = std::size_t{bytes[5]} | (std::size_t{bytes[6]} << 8) |
                     (std::size_t{bytes[7]} << 16) | (std::size_t{bytes[8]} << 24);
  const std::size_t fixed =
      kValueHeaderSize + header.did_size + header.collection_size + header.json_size;
  if (fixed > value.size()) return false;
  header.zstd_size = value.size() - fixed;
  return true;
}

[[noreturn]] void sequencer_bug(const char* format, auto... args) {
  std::fprintf(stderr, "jetstream::decode::EventStore::append: ");
  std::fprintf(stderr, format, args...);
  std::fprintf(stderr, " (a bug in the sequencer; aborting)\n");
  std::fflush(stderr);
  std::abort();
}

std::string describe(const rocksdb::Status& status) { return status.ToString(); }

/// One consistent view of the whole store for as long as it lives.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(rocksdb::DB& db) : db_(db), snapshot_(db.GetSnapshot()) {}
  ~ReadSnapshot() { db_.ReleaseSnapshot(snapshot_); }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

  [[nodiscard]] rocksdb::ReadOptions read_options() const {
    rocksdb::ReadOptions read;
    read.snapshot = snapshot_;
    return read;
  }

 private:
  rocksdb::DB& db_;
  const rocksdb::Snapshot* snapshot_;
};

}  // namespace

// ---- ReplayPageBuffer

ReplayPageBuffer::ReplayPageBuffer(ReplayPageBuffer&& other) noexcept
    : bytes_(std::move(other.bytes_)),
      slots_(std::move(other.slots_)),
      page_(std::move(other.page_)),
      scanned_(other.scanned_),
      payload_bytes_(other.payload_bytes_),
      error_(std::move(other.error_)) {
  rebuild_views();
  other.reset(0);
}

ReplayPageBuffer& ReplayPageBuffer::operator=(ReplayPageBuffer&& other) noexcept {
  if (this != &other) {
    bytes_ = std::move(other.bytes_);
    slots_ = std::move(other.slots_);
    page_ = std::move(other.page_);
    scanned_ = other.scanned_;
    payload_bytes_ = other.payload_bytes_;
    error_ = std::move(other.error_);
    rebuild_views();
    other.reset(0);
  }
  return *this;
}

void ReplayPageBuffer::reset(std::uint64_t request_id) {
  bytes_.clear();
  slots_.clear();
  page_.request_id = request_id;
  page_.status = proto::ReplayStatus::ok;
  page_.done = false;
  page_.next_time_us = 0;
  page_.oldest_time_us = 0;
  page_.newest_time_us = 0;
  page_.events.clear();
  scanned_ = 0;
  payload_bytes_ = 0;
  error_.clear();
}

void ReplayPageBuffer::rebuild_views() {
  page_.events.resize(slots_.size());
  const char* base = bytes_.data();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = slots_[i];
    proto::EventView& event = page_.events[i];
    event.time_us = slot.time_us;
    event.prev_time_us = slot.prev_time_us;
    event.kind = slot.kind;
    event.backfill = slot.backfill;
    event.did = {base + slot.did_offset, slot.did_size};
    event.collection = {base + slot.collection_offset, slot.collection_size};
    event.json = {base + slot.json_offset, slot.json_size};
    event.zstd = {reinterpret_cast<const std::uint8_t*>(base + slot.zstd_offset), slot.zstd_size};
  }
}

// ---- EventStore

struct EventStore::Db {
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* default_family = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* twin_keys = nullptr;
  rocksdb::ColumnFamilyHandle* twin_events = nullptr;
  rocksdb::ColumnFamilyHandle* twin_tombstones = nullptr;
  rocksdb::WriteOptions write_options;
  /// Reused by append so a steady writer does not reallocate the batch's buffer.
  rocksdb::WriteBatch batch;

  ~Db() {
    if (!db) return;
    for (auto* handle : {events, meta, twin_keys, twin_events, twin_tombstones, default_family}) {
      if (handle != nullptr) (void)db->DestroyColumnFamilyHandle(handle);
    }
    (void)db->Close();
  }
};

namespace {

rocksdb::ColumnFamilyOptions events_family_options(const EventStore::Options& options,
                                                   const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Values are ~0.5-1 KB: 16 KB blocks keep the index small and scans sequential.
  table.block_size = 16 * 1024;
  // A 24 h log holds thousands of SST files: partitioned indexes, charged to the block cache.
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.cache_index_and_filter_blocks = true;
  table.pin_top_level_index_and_filter = true;
  // No bloom filter: every read is a range scan.

  rocksdb::ColumnFamilyOptions family;
  family.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Keys are 8-byte big-endian time_us: the default bytewise comparator orders them numerically,
  // and no prefix extractor is set (every seek is a total-order seek).
  family.write_buffer_size = std::size_t{64} << 20;
  family.max_write_buffer_number = 3;
  family.target_file_size_base = std::uint64_t{64} << 20;
  family.max_bytes_for_level_base = std::uint64_t{256} << 20;
  family.level_compaction_dynamic_level_bytes = true;
  const auto compression = options.compression == EventStore::Compression::lz4
                               ? rocksdb::kLZ4Compression
                               : rocksdb::kNoCompression;
  family.compression = compression;
  family.bottommost_compression = compression;
  return family;
}

rocksdb::ColumnFamilyOptions small_family_options(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  rocksdb::ColumnFamilyOptions family;
  family.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  family.write_buffer_size = std::size_t{4} << 20;
  family.compression = rocksdb::kNoCompression;
  return family;
}

rocksdb::ColumnFamilyOptions twin_keys_family_options(
    const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.cache_index_and_filter_blocks = true;
  table.pin_top_level_index_and_filter = true;
  // Every append looks its records up: a bloom filter spares the disk for records not seen yet.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions family;
  family.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  family.write_buffer_size = std::size_t{32} << 20;
  // Most keys an append looks up are new records: a memtable bloom filter answers "not here"
  // without walking the skiplist (the filter takes 2% of the memtable).
  family.memtable_prefix_bloom_size_ratio = 0.02;
  family.memtable_whole_key_filtering = true;
  family.level_compaction_dynamic_level_bytes = true;
  family.compression = rocksdb::kLZ4Compression;
  family.bottommost_compression = rocksdb::kLZ4Compression;
  return family;
}

/// A meta value as bytes; `found` false when absent.
bool read_meta_bytes(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* meta,
                     const rocksdb::ReadOptions& read, std::string_view key, std::string& value,
                     bool& found, std::string& error) {
  const rocksdb::Status status = db.Get(read, meta, slice(key), &value);
  if (status.IsNotFound()) {
    found = false;
    return true;
  }
  if (!status.ok()) {
    error = "reading meta '" + std::string(key) + "': " + describe(status);
    return false;
  }
  found = true;
  return true;
}

/// A twin key for messages: `\0` shown as `/`, at most 300 bytes.
std::string printable_key(std::string_view key) {
  std::string out(key.substr(0, 300));
  for (char& c : out) {
    if (c == '\0') c = '/';
  }
  if (key.size() > 300) out += "...";
  return out;
}

std::string encode_counts(const EventStore::TwinCounts& counts) {
  const MetaValue records = encode_i64(counts.records);
  const MetaValue tombstones = encode_i64(counts.tombstones);
  std::string out(records.data(), records.size());
  out.append(tombstones.data(), tombstones.size());
  return out;
}

/// Adds the meta writes of the count groups `touched` to `batch` (defined with the twin below).
rocksdb::Status put_counts(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* meta,
                           const std::map<std::string, EventStore::TwinCounts>& counts,
                           const std::unordered_set<std::string>& touched);

/// Reads an i64 from the meta family (optionally at a snapshot). nullopt-like: returns false with
/// `error` set on a RocksDB failure or a malformed value; `found` false when the key is absent.
bool read_meta(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* meta, const rocksdb::ReadOptions& read,
               std::string_view key, std::int64_t& value, bool& found, std::string& error) {
  std::string bytes;
  if (!read_meta_bytes(db, meta, read, key, bytes, found, error)) return false;
  if (found && !decode_i64(bytes, value)) {
    error = "meta '" + std::string(key) + "' is not an 8-byte integer";
    return false;
  }
  return true;
}

}  // namespace

EventStore::EventStore(Options options, std::unique_ptr<Db> db)
    : options_(std::move(options)), db_(std::move(db)) {}

namespace {
/// The RocksDB instance abandon_at_close left open (one per process: decode's).
std::atomic<void*> abandoned_store{nullptr};
}  // namespace

EventStore::~EventStore() {
  if (abandon_at_close_.load() && db_ && writable()) {
    // Deliberately not closed (see abandon_at_close): the process is exiting. Kept reachable
    // from a global, so leak checkers see it held, which it is until the exit.
    abandoned_store.store(db_.release());
  }
}

/// What open_db read: the RocksDB handles (or none) and the metadata, checked.
struct EventStore::Opened {
  std::unique_ptr<Db> db;
  std::int64_t cursor = -1, last = 0, oldest = 0, deleted_through = 0, floor = 0, horizon = 0;
};

bool EventStore::open_db(const Options& options, Opened& out, std::string& error) {
  if (!options.read_only) {
    std::error_code ec;
    std::filesystem::create_directories(options.path, ec);
    if (ec) {
      error = "cannot create event store directory " + options.path + ": " + ec.message();
      return false;
    }
  } else if (!std::filesystem::exists(std::filesystem::path(options.path) / "CURRENT")) {
    out = Opened{};  // nothing stored yet: an empty log until it can be created
    return true;
  }

  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  // The meta family is written with every batch, so its memtable pins old WAL files: cap the WAL
  // so RocksDB flushes it instead of letting the WAL grow to gigabytes.
  db_options.max_total_wal_size = std::uint64_t{256} << 20;
  db_options.bytes_per_sync = std::uint64_t{1} << 20;
  db_options.wal_bytes_per_sync = std::uint64_t{1} << 20;
  // A day of events is thousands of 64 MB files: do not hold them all open (ulimit -n).
  db_options.max_open_files = 512;
  db_options.keep_log_file_num = 5;
  db_options.max_log_file_size = std::size_t{16} << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> families{
      {rocksdb::kDefaultColumnFamilyName, small_family_options(cache)},
      {kEventsFamily, events_family_options(options, cache)},
      {kMetaFamily, small_family_options(cache)},
      {kTwinKeysFamily, twin_keys_family_options(cache)},
      {kTwinEventsFamily, events_family_options(options, cache)},
      {kTwinTombstonesFamily, small_family_options(cache)},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status status =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, families, &handles, &raw)
          : rocksdb::DB::Open(db_options, options.path, families, &handles, &raw);
  if (!status.ok()) {
    const std::string message = describe(status);
    if (status.IsIOError() && (message.find("/LOCK") != std::string::npos ||
                               message.find("lock hold") != std::string::npos)) {
      error = "event store " + options.path +
              " is locked: another process (or another EventStore in this one) has it open (" +
              message + ")";
    } else {
      error = "cannot open event store " + options.path + ": " + message;
    }
    return false;
  }

  auto db = std::make_unique<Db>();
  db->db.reset(raw);
  db->default_family = handles.at(0);
  db->events = handles.at(1);
  db->meta = handles.at(2);
  db->twin_keys = handles.at(3);
  db->twin_events = handles.at(4);
  db->twin_tombstones = handles.at(5);
  db->write_options.sync = options.sync_writes;
  db->write_options.disableWAL = false;

  // Load (or initialise) the metadata, then check it against the events it describes.
  const rocksdb::ReadOptions read;
  std::int64_t version = 0, cursor = -1, last = 0, oldest = 0, deleted_through = 0, floor = 0;
  bool found = false;
  const auto load = [&](std::string_view key, std::int64_t& value) {
    bool present = false;
    if (!read_meta(*db->db, db->meta, read, key, value, present, error)) return false;
    found = found || present;
    return true;
  };
  if (!load(kMetaFormatVersion, version)) return false;
  const bool fresh = !found;
  if (!load(kMetaUpstreamCursor, cursor) || !load(kMetaLastTimeUs, last) ||
      !load(kMetaOldestTimeUs, oldest) || !load(kMetaDeletedThrough, deleted_through) ||
      !load(kMetaRetentionFloor, floor) || !load(kMetaTombstoneHorizon, out.horizon)) {
    error = "event store " + options.path + ": " + error;
    return false;
  }

  std::int64_t first_key = 0, last_key = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->db->NewIterator(read, db->events));
    it->SeekToFirst();
    if (it->Valid() && !decode_key(it->key(), first_key)) first_key = -1;
    it->SeekToLast();
    if (it->Valid() && !decode_key(it->key(), last_key)) last_key = -1;
    if (!it->status().ok()) {
      error = "event store " + options.path + ": reading events: " + describe(it->status());
      return false;
    }
  }

  if (fresh) {
    if (first_key != 0 || last_key != 0) {
      error = "event store " + options.path + ": events present but no metadata";
      return false;
    }
    if (!options.read_only) {
      const MetaValue bytes = encode_i64(kFormatVersion);
      rocksdb::WriteOptions sync_write;
      sync_write.sync = true;
      const rocksdb::Status put = db->db->Put(sync_write, db->meta, slice(kMetaFormatVersion),
                                              rocksdb::Slice(bytes.data(), bytes.size()));
      if (!put.ok()) {
        error = "event store " + options.path + ": writing format version: " + describe(put);
        return false;
      }
    }
  } else if (version != kFormatVersion) {
    error = "event store " + options.path + ": unsupported format version " +
            std::to_string(version) + " (this build reads " + std::to_string(kFormatVersion) + ")";
    return false;
  } else if (first_key != oldest || last_key != last || cursor < -1 ||
             (last != 0 && deleted_through >= oldest)) {
    error = "event store " + options.path + ": metadata does not match the stored events (oldest " +
            std::to_string(oldest) + " vs first key " + std::to_string(first_key) + ", last " +
            std::to_string(last) + " vs last key " + std::to_string(last_key) + ")";
    return false;
  }
  out.db = std::move(db);
  out.cursor = cursor;
  out.last = last;
  out.oldest = oldest;
  out.deleted_through = deleted_through;
  out.floor = floor;
  return true;
}

void EventStore::adopt(Opened& opened) {
  db_ = std::move(opened.db);
  upstream_cursor_.store(opened.cursor);
  last_time_us_.store(opened.last);
  oldest_time_us_.store(opened.oldest);
  deleted_through_.store(opened.deleted_through);
  retention_floor_.store(opened.floor);
  tombstone_horizon_.store(opened.horizon);
}

std::unique_ptr<EventStore> EventStore::open(const Options& options, std::string& error) {
  if (options.path.empty()) {
    error = "event store: empty path";
    return nullptr;
  }
  Opened opened;
  if (!open_db(options, opened, error)) return nullptr;
  std::unique_ptr<EventStore> store(new EventStore(options, nullptr));
  store->adopt(opened);
  store->writable_.store(!options.read_only);
  {
    std::lock_guard lock(store->write_mutex_);
    if (store->db_ && !store->reconcile_twin(error)) {
      error = "event store " + options.path + ": " + error;
      return nullptr;
    }
  }
  return store;
}

bool EventStore::reopen_writable(std::string& error) {
  std::lock_guard write_lock(write_mutex_);
  if (writable()) return true;
  Options writable_options = options_;
  writable_options.read_only = false;
  std::unique_lock swap_lock(db_guard_);  // readers finish their pages, then wait
  db_.reset();                            // RocksDB: the read-only instance goes first
  Opened opened;
  if (!open_db(writable_options, opened, error)) {
    // Back to serving what we have, read-only; the caller tries again later.
    std::string ignored;
    Opened again;
    if (open_db(options_, again, ignored)) adopt(again);
    return false;
  }
  adopt(opened);
  options_.read_only = false;
  writable_.store(true, std::memory_order_release);
  return reconcile_twin(error);
}

bool EventStore::append(std::span<const proto::EventView> events,
                        std::span<const RecordChange> changes, std::int64_t upstream_cursor,
                        std::string& error) {
  static const VerificationWrites kNoVerificationWrites;
  return append(events, changes, upstream_cursor, kNoVerificationWrites, error);
}

namespace {

std::string held_key(std::uint64_t id) {
  std::string key(kMetaHeldPrefix);
  const Key big_endian = encode_key(static_cast<std::int64_t>(id));
  key.append(big_endian.data(), big_endian.size());
  return key;
}

}  // namespace

std::vector<std::pair<std::uint64_t, std::string>> EventStore::held_frames() const {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  std::shared_lock guard(db_guard_);
  if (!db_) return out;
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(rocksdb::ReadOptions(), db_->meta));
  for (it->Seek(slice(kMetaHeldPrefix)); it->Valid() && it->key().compare(slice(kMetaHeldEnd)) < 0;
       it->Next()) {
    std::int64_t id = 0;
    const rocksdb::Slice key = it->key();
    if (!decode_key(rocksdb::Slice(key.data() + kMetaHeldPrefix.size(),
                                   key.size() - kMetaHeldPrefix.size()),
                    id)) {
      continue;
    }
    out.emplace_back(static_cast<std::uint64_t>(id), it->value().ToString());
  }
  return out;
}

std::optional<std::string> EventStore::repo_rev(std::string_view did) const {
  std::shared_lock guard(db_guard_);
  if (!db_) return std::nullopt;
  std::string key(kMetaRepoRevPrefix);
  key.append(did);
  std::string value;
  if (!db_->db->Get(rocksdb::ReadOptions(), db_->meta, slice(key), &value).ok()) {
    return std::nullopt;
  }
  return value;
}

std::vector<std::pair<std::string, std::uint8_t>> EventStore::pending_resyncs(
    std::size_t max) const {
  std::vector<std::pair<std::string, std::uint8_t>> rows;
  std::shared_lock guard(db_guard_);
  if (db_ == nullptr) return rows;
  rocksdb::ReadOptions read;
  const rocksdb::Slice upper = slice(kMetaResyncEnd);
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(read, db_->meta));
  for (it->Seek(slice(kMetaResyncPrefix)); it->Valid() && rows.size() < max; it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (it->value().size() != 1) continue;
    rows.emplace_back(key.substr(kMetaResyncPrefix.size()),
                      static_cast<std::uint8_t>(it->value().data()[0]));
  }
  return rows;
}

bool EventStore::clear_resyncs(const std::vector<std::string>& dids, std::string& error) {
  std::lock_guard lock(write_mutex_);
  std::shared_lock guard(db_guard_);
  if (!writable() || dids.empty()) return writable();
  rocksdb::WriteBatch batch;
  std::string key;
  for (const auto& did : dids) {
    key.assign(kMetaResyncPrefix).append(did);
    batch.Delete(db_->meta, slice(key));
  }
  const rocksdb::Status status = db_->db->Write(db_->write_options, &batch);
  if (!status.ok()) {
    error = "clearing resync rows: " + describe(status);
    return false;
  }
  return true;
}

bool EventStore::append(std::span<const proto::EventView> events,
                        std::span<const RecordChange> changes, std::int64_t upstream_cursor,
                        const VerificationWrites& verification, std::string& error) {
  std::lock_guard lock(write_mutex_);
  std::shared_lock guard(db_guard_);
  if (!writable()) {
    error =
        "event store append: the event log is open read-only (not enough disk space to open "
        "it for writing)";
    return false;
  }
  const std::int64_t stored_last = last_time_us_.load(std::memory_order_relaxed);
  std::int64_t last = stored_last;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const proto::EventView& event = events[i];
    if (event.time_us <= last) {
      sequencer_bug("event %zu of %zu has time_us %lld, not above the previous time_us %lld", i,
                    events.size(), static_cast<long long>(event.time_us),
                    static_cast<long long>(last));
    }
    if (event.prev_time_us != last) {
      sequencer_bug("event %zu of %zu (time_us %lld) has prev_time_us %lld, expected %lld", i,
                    events.size(), static_cast<long long>(event.time_us),
                    static_cast<long long>(event.prev_time_us), static_cast<long long>(last));
    }
    if (const auto invalid = proto::validate(event)) {
      sequencer_bug("event %zu of %zu (time_us %lld) is invalid: %s", i, events.size(),
                    static_cast<long long>(event.time_us),
                    std::string(proto::to_string(*invalid)).c_str());
    }
    last = event.time_us;
  }
  if (upstream_cursor < -1) {
    sequencer_bug("upstream cursor %lld is below -1", static_cast<long long>(upstream_cursor));
  }
  const bool twin = !options_.compact.empty();
  if (twin && changes.size() != events.size()) {
    sequencer_bug("%zu record changes for %zu events with a compacted twin", changes.size(),
                  events.size());
  }

  rocksdb::WriteBatch& batch = db_->batch;
  batch.Clear();
  std::map<std::string, TwinCounts> counts_before;
  if (twin) {
    batch_entries_.clear();
    touched_groups_.clear();
    std::lock_guard counts_lock(counts_mutex_);
    counts_before = counts_;
  }
  const auto restore_counts = [&] {
    if (!twin) return;
    std::lock_guard counts_lock(counts_mutex_);
    counts_ = std::move(counts_before);
  };
  if (twin) {
    batch_keys_.resize(events.size());
    std::vector<std::string> lookups;
    for (std::size_t i = 0; i < events.size(); ++i) {
      batch_keys_[i].clear();
      if (is_compacted(options_.compact, events[i])) {
        batch_keys_[i] = twin_key_of(events[i], changes[i]);
        if (!batch_keys_[i].empty()) lookups.push_back(batch_keys_[i]);
      }
    }
    if (!read_twin_entries(lookups, error)) {
      restore_counts();
      return false;
    }
  }
  std::array<char, kValueHeaderSize> header{};
  for (std::size_t i = 0; i < events.size(); ++i) {
    const proto::EventView& event = events[i];
    const Key key = encode_key(event.time_us);
    encode_header(event, header);
    const rocksdb::Slice key_part = slice(key);
    const std::array<rocksdb::Slice, 5> value_parts{
        rocksdb::Slice(header.data(), header.size()),
        slice(event.did),
        slice(event.collection),
        slice(event.json),
        rocksdb::Slice(reinterpret_cast<const char*>(event.zstd.data()), event.zstd.size()),
    };
    const rocksdb::Status put =
        batch.Put(db_->events, rocksdb::SliceParts(&key_part, 1),
                  rocksdb::SliceParts(value_parts.data(), static_cast<int>(value_parts.size())));
    if (!put.ok()) {
      error = "event store append: " + describe(put);
      restore_counts();
      return false;
    }
    if (twin && !batch_keys_[i].empty()) {
      const std::array<std::string_view, 5> parts{
          std::string_view(header.data(), header.size()), event.did, event.collection, event.json,
          std::string_view(reinterpret_cast<const char*>(event.zstd.data()), event.zstd.size())};
      if (!twin_put(batch, event, changes[i], batch_keys_[i], parts, error)) {
        restore_counts();
        return false;
      }
    }
  }
  if (twin) {
    std::lock_guard counts_lock(counts_mutex_);
    const rocksdb::Status status = put_counts(batch, db_->meta, counts_, touched_groups_);
    if (!status.ok()) {
      error = "event store append: " + describe(status);
      counts_ = std::move(counts_before);
      return false;
    }
  }
  const MetaValue cursor_bytes = encode_i64(upstream_cursor);
  const MetaValue last_bytes = encode_i64(last);
  const bool first_events = stored_last == 0 && !events.empty();
  const MetaValue oldest_bytes = encode_i64(first_events ? events.front().time_us : 0);
  rocksdb::Status put = batch.Put(db_->meta, slice(kMetaUpstreamCursor),
                                  rocksdb::Slice(cursor_bytes.data(), cursor_bytes.size()));
  if (put.ok() && !events.empty()) {
    put = batch.Put(db_->meta, slice(kMetaLastTimeUs),
                    rocksdb::Slice(last_bytes.data(), last_bytes.size()));
  }
  if (put.ok() && first_events) {
    put = batch.Put(db_->meta, slice(kMetaOldestTimeUs),
                    rocksdb::Slice(oldest_bytes.data(), oldest_bytes.size()));
  }
  for (std::size_t i = 0; put.ok() && i < verification.held_puts.size(); ++i) {
    const auto& [id, bytes] = verification.held_puts[i];
    put = batch.Put(db_->meta, slice(held_key(id)), slice(bytes));
  }
  for (std::size_t i = 0; put.ok() && i < verification.held_deletes.size(); ++i) {
    put = batch.Delete(db_->meta, slice(held_key(verification.held_deletes[i])));
  }
  std::string rev_key;
  for (std::size_t i = 0; put.ok() && i < verification.repo_revs.size(); ++i) {
    const auto& [did, rev] = verification.repo_revs[i];
    rev_key.assign(kMetaRepoRevPrefix).append(did);
    put = batch.Put(db_->meta, slice(rev_key), slice(rev));
  }
  std::string resync_key;
  for (std::size_t i = 0; put.ok() && twin && i < verification.resyncs.size(); ++i) {
    const auto& [did, reason] = verification.resyncs[i];
    resync_key.assign(kMetaResyncPrefix).append(did);
    const char reason_byte = static_cast<char>(reason);
    put = batch.Put(db_->meta, slice(resync_key), rocksdb::Slice(&reason_byte, 1));
  }
  if (put.ok()) put = db_->db->Write(db_->write_options, &batch);
  // A batch grown by one huge append should not stay pinned for the life of the process.
  if (batch.GetDataSize() > (std::size_t{64} << 20)) batch = rocksdb::WriteBatch();
  if (!put.ok()) {
    error = "event store append: " + describe(put);
    restore_counts();
    return false;
  }

  upstream_cursor_.store(upstream_cursor, std::memory_order_release);
  if (!events.empty()) {
    if (first_events) oldest_time_us_.store(events.front().time_us, std::memory_order_release);
    last_time_us_.store(last, std::memory_order_release);
  }
  return true;
}

bool EventStore::delete_before(std::int64_t cutoff_time_us, std::string& error) {
  std::int64_t deleted_through = 0;
  std::int64_t cutoff = 0;
  std::shared_lock guard(db_guard_, std::defer_lock);
  {
    std::lock_guard lock(write_mutex_);
    if (!writable()) return true;  // read-only: retention waits until the log can be written
    guard.lock();
    const std::int64_t newest = last_time_us_.load(std::memory_order_relaxed);
    const std::int64_t oldest = oldest_time_us_.load(std::memory_order_relaxed);
    // The newest event is never deleted: it is the chain head (its time_us is the next event's
    // prev_time_us and the answer to "how far does the log go").
    cutoff = std::min(cutoff_time_us, newest);
    if (newest == 0 || cutoff <= oldest) return true;

    // The newest event below the cutoff becomes deleted_through (the prev_time_us of the new
    // oldest event); the first at or above it becomes the oldest. Both exist: oldest < cutoff
    // <= newest, and only this (locked) writer changes either end of the log.
    std::int64_t new_oldest = 0;
    {
      std::unique_ptr<rocksdb::Iterator> it(
          db_->db->NewIterator(rocksdb::ReadOptions(), db_->events));
      it->SeekForPrev(slice(encode_key(cutoff - 1)));
      if (!it->Valid() || !decode_key(it->key(), deleted_through)) deleted_through = -1;
      it->Seek(slice(encode_key(cutoff)));
      if (!it->Valid() || !decode_key(it->key(), new_oldest)) new_oldest = -1;
      if (!it->status().ok()) {
        error = "event store delete_before: " + describe(it->status());
        return false;
      }
    }
    if (deleted_through <= 0 || new_oldest <= 0) {
      error =
          "event store delete_before: log ends not found around cutoff " + std::to_string(cutoff);
      return false;
    }

    rocksdb::WriteBatch batch;
    const Key begin = encode_key(0);
    const Key end = encode_key(cutoff);
    const MetaValue deleted_bytes = encode_i64(deleted_through);
    const MetaValue oldest_bytes = encode_i64(new_oldest);
    const MetaValue floor_bytes = encode_i64(cutoff);
    rocksdb::Status status = batch.DeleteRange(db_->events, slice(begin), slice(end));
    if (status.ok()) {
      status = batch.Put(db_->meta, slice(kMetaDeletedThrough),
                         rocksdb::Slice(deleted_bytes.data(), deleted_bytes.size()));
    }
    if (status.ok()) {
      status = batch.Put(db_->meta, slice(kMetaOldestTimeUs),
                         rocksdb::Slice(oldest_bytes.data(), oldest_bytes.size()));
    }
    if (status.ok()) {
      status = batch.Put(db_->meta, slice(kMetaRetentionFloor),
                         rocksdb::Slice(floor_bytes.data(), floor_bytes.size()));
    }
    if (status.ok()) status = db_->db->Write(db_->write_options, &batch);
    if (!status.ok()) {
      error = "event store delete_before: " + describe(status);
      return false;
    }
    deleted_through_.store(deleted_through, std::memory_order_release);
    oldest_time_us_.store(new_oldest, std::memory_order_release);
    retention_floor_.store(cutoff, std::memory_order_release);
  }

  // Reclaim the space now rather than whenever compaction reaches the range. Outside the lock:
  // appends continue meanwhile.
  rocksdb::CompactRangeOptions compact;
  compact.exclusive_manual_compaction = false;
  const Key begin = encode_key(0);
  const Key end = encode_key(cutoff);
  const rocksdb::Slice begin_slice = slice(begin);
  const rocksdb::Slice end_slice = slice(end);
  const rocksdb::Status status =
      db_->db->CompactRange(compact, db_->events, &begin_slice, &end_slice);
  if (!status.ok()) {
    error = "event store delete_before: compacting the deleted range: " + describe(status);
    return false;
  }
  return true;
}

proto::ReplayStatus EventStore::read_page(const proto::ReplayRequest& request,
                                          ReplayPageBuffer& out) const {
  out.reset(request.request_id);
  proto::ReplayPageView& page = out.page_;
  const auto fail = [&](proto::ReplayStatus status, std::string message) {
    out.slots_.clear();
    out.bytes_.clear();
    page.events.clear();
    page.status = status;
    page.done = false;
    out.error_ = std::move(message);
    return status;
  };
  if (const auto invalid = proto::validate(request)) {
    return fail(proto::ReplayStatus::bad_request,
                "invalid request: " + std::string(proto::to_string(*invalid)));
  }

  std::shared_lock guard(db_guard_);
  if (!db_) {  // read-only, and nothing was ever stored: an empty log
    page.next_time_us = request.start_time_us;
    page.done = true;
    return proto::ReplayStatus::ok;
  }
  // One snapshot for the metadata and the scan, so too_old, prev_time_us and the bounds agree
  // with the events read even while the writer appends or retention deletes.
  rocksdb::DB& db = *db_->db;
  const ReadSnapshot snapshot(db);
  rocksdb::ReadOptions read = snapshot.read_options();

  std::int64_t newest = 0, oldest = 0, deleted_through = 0;
  bool found = false;
  std::string error;
  if (!read_meta(db, db_->meta, read, kMetaLastTimeUs, newest, found, error) ||
      !read_meta(db, db_->meta, read, kMetaOldestTimeUs, oldest, found, error) ||
      !read_meta(db, db_->meta, read, kMetaDeletedThrough, deleted_through, found, error)) {
    return fail(proto::ReplayStatus::internal_error, std::move(error));
  }
  page.oldest_time_us = oldest;
  page.newest_time_us = newest;

  // Where the scan starts, and in which family: the log, or (snapshot) the compacted twin.
  rocksdb::ColumnFamilyHandle* family = db_->events;
  std::int64_t start = request.start_time_us;
  std::int64_t end = 0;
  if (request.snapshot) {
    family = db_->twin_events;
    std::int64_t horizon = 0;
    if (!read_meta(db, db_->meta, read, kMetaTombstoneHorizon, horizon, found, error)) {
      return fail(proto::ReplayStatus::internal_error, std::move(error));
    }
    if (start <= 0) start = 1;
    // Checked where a snapshot starts or resumes (clamp_to_oldest marks a continuing one: a
    // tombstone that expires ahead of a reading snapshot is missed, as in Kafka's compaction).
    if (!request.clamp_to_oldest && horizon > 0 && start > 1 && start <= horizon) {
      page.next_time_us = request.start_time_us;
      return fail(proto::ReplayStatus::too_old, "snapshot start_time_us " + std::to_string(start) +
                                                    " is at or below the tombstone horizon " +
                                                    std::to_string(horizon));
    }
    // No look at the twin's last key: behind it may lie thousands of deleted entries (expired
    // tombstones) that every page would step over again. The scan ends where the family does.
    page.next_time_us = start;
    end = request.end_time_us > 0 ? request.end_time_us : std::numeric_limits<std::int64_t>::max();
    if (start >= end) {
      page.done = true;
      return proto::ReplayStatus::ok;
    }
  } else {
    // Retention deleted exactly the events up to deleted_through.
    if (deleted_through > 0 && start <= deleted_through) {
      if (!request.clamp_to_oldest) {
        page.next_time_us = request.start_time_us;
        return fail(proto::ReplayStatus::too_old,
                    "start_time_us " + std::to_string(start) + " is at or below " +
                        std::to_string(deleted_through) + ", deleted by retention");
      }
      start = deleted_through + 1;
    }
    if (start <= 0) start = request.clamp_to_oldest && oldest > 0 ? oldest : 1;
    page.next_time_us = start;

    // [start, end): end is the request's, else one past the newest event in the snapshot.
    end = request.end_time_us > 0                             ? request.end_time_us
          : newest < std::numeric_limits<std::int64_t>::max() ? newest + 1
                                                              : newest;
    if (newest == 0 || start >= end || start > newest) {
      page.done = true;
      return proto::ReplayStatus::ok;
    }
  }

  // Filters. Views into the request, which outlives this call.
  auto& dids = out.dids_;
  auto& collections = out.collections_;
  dids.clear();
  collections.clear();
  for (const auto& did : request.dids) dids.insert(did);
  for (const auto& collection : request.collections) collections.insert(collection);
  const bool filter_dids = !request.dids.empty();
  const bool filter_collections =
      !request.collections.empty() || !request.collection_prefixes.empty();
  const auto matches = [&](const ValueHeader& header, std::string_view did,
                           std::string_view collection) {
    if (header.backfill && !request.include_backfill && !request.snapshot) return false;
    if (filter_dids && !dids.contains(did)) return false;
    if (!filter_collections || header.kind != proto::EventKind::commit) return true;
    if (collections.contains(collection)) return true;
    for (const auto& prefix : request.collection_prefixes) {
      if (collection.starts_with(prefix)) return true;
    }
    return false;
  };

  const Key upper = encode_key(end);
  const rocksdb::Slice upper_slice = slice(upper);
  read.iterate_upper_bound = &upper_slice;
  read.readahead_size = kReplayReadaheadBytes;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, family));

  // prev_time_us of the first event scanned: the event before it in the log, or, when it is the
  // oldest retained one, the last one retention deleted. In the twin: the twin event before it.
  std::int64_t prev = request.snapshot ? 0 : deleted_through;
  if (start > 1 && (request.snapshot || start > oldest)) {
    it->SeekForPrev(slice(encode_key(start - 1)));
    if (it->Valid() && !decode_key(it->key(), prev)) {
      return fail(proto::ReplayStatus::internal_error, "malformed key in the events family");
    }
  }

  const std::size_t max_events = request.max_events;
  const std::size_t max_bytes = request.max_bytes;
  const std::size_t max_scan = std::max<std::size_t>(options_.max_scan_keys, 1);
  std::string& bytes = out.bytes_;
  std::size_t scanned = 0;
  std::size_t payload = 0;
  std::int64_t last_consumed = 0;
  bool consumed_any = false;
  for (it->Seek(slice(encode_key(start))); it->Valid();) {
    std::int64_t time_us = 0;
    ValueHeader header{};
    const rocksdb::Slice value = it->value();
    if (!decode_key(it->key(), time_us) || !decode_header(value, header)) {
      return fail(proto::ReplayStatus::internal_error,
                  "malformed stored event after time_us " + std::to_string(prev));
    }
    const char* data = value.data() + kValueHeaderSize;
    const std::string_view did(data, header.did_size);
    const std::string_view collection(data + header.did_size, header.collection_size);
    if (matches(header, did, collection)) {
      const std::size_t size = header.json_size + (request.want_zstd ? header.zstd_size : 0);
      if (!out.slots_.empty() && payload + size > max_bytes) break;  // not consumed
      ReplayPageBuffer::Slot slot{};
      slot.time_us = time_us;
      slot.prev_time_us = prev;
      slot.kind = header.kind;
      slot.backfill = header.backfill;
      slot.did_offset = bytes.size();
      slot.did_size = header.did_size;
      slot.collection_offset = slot.did_offset + header.did_size;
      slot.collection_size = header.collection_size;
      slot.json_offset = slot.collection_offset + header.collection_size;
      slot.json_size = header.json_size;
      slot.zstd_offset = slot.json_offset + header.json_size;
      slot.zstd_size = request.want_zstd ? header.zstd_size : 0;
      // did, collection, json and zstd are contiguous in the value: one copy (zstd when wanted).
      bytes.append(data,
                   header.did_size + header.collection_size + header.json_size + slot.zstd_size);
      out.slots_.push_back(slot);
      payload += size;
    }
    prev = time_us;
    last_consumed = time_us;
    consumed_any = true;
    ++scanned;
    it->Next();
    if (out.slots_.size() >= max_events || scanned >= max_scan) break;
  }
  if (!it->status().ok()) {
    return fail(proto::ReplayStatus::internal_error, "scanning events: " + describe(it->status()));
  }

  page.done = !it->Valid();
  if (consumed_any) page.next_time_us = last_consumed + 1;
  // The writer updates meta in the same batch as the events, so newest >= every scanned key.
  out.scanned_ = scanned;
  out.payload_bytes_ = payload;
  out.rebuild_views();
  return proto::ReplayStatus::ok;
}

// ---- The compacted twin

namespace {

/// The stored value of an event taken apart (the log's and the twin's format).
struct StoredEvent {
  proto::EventView view;
  ValueHeader header{};
};

bool parse_stored(std::int64_t time_us, const rocksdb::Slice& value, StoredEvent& out) {
  if (!decode_header(value, out.header)) return false;
  const char* data = value.data() + kValueHeaderSize;
  out.view.time_us = time_us;
  out.view.kind = out.header.kind;
  out.view.backfill = out.header.backfill;
  out.view.did = {data, out.header.did_size};
  out.view.collection = {data + out.header.did_size, out.header.collection_size};
  out.view.json = {data + out.header.did_size + out.header.collection_size, out.header.json_size};
  return true;
}

std::int64_t to_i64(const rocksdb::Slice& bytes) {
  std::int64_t value = 0;
  return decode_i64(bytes, value) ? value : 0;
}

}  // namespace

std::string EventStore::group_of(const proto::EventView& event) const {
  if (event.kind == proto::EventKind::identity) return "#identity";
  if (event.kind == proto::EventKind::account) return "#account";
  for (const auto& pattern : options_.compact.patterns()) {
    if (pattern.matches(event.collection)) return syntax::pattern_text(pattern);
  }
  return "#other";  // not compacted: never reached for what twin_put is given
}

void EventStore::count(const std::string& group, int records, int tombstones) {
  std::lock_guard lock(counts_mutex_);
  TwinCounts& counts = counts_[group];
  counts.records += records;
  counts.tombstones += tombstones;
  touched_groups_.insert(group);
}

bool EventStore::read_twin_entries(std::vector<std::string>& keys, std::string& error) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::erase_if(keys, [&](const std::string& key) { return batch_entries_.count(key) != 0; });
  if (keys.empty()) return true;
  std::vector<rocksdb::Slice> slices;
  slices.reserve(keys.size());
  for (const auto& key : keys) slices.push_back(slice(key));
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->db->MultiGet(rocksdb::ReadOptions(), db_->twin_keys, keys.size(), slices.data(),
                    values.data(), statuses.data(), /*sorted_input=*/true);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::optional<TwinEntry> entry;
    if (statuses[i].ok()) {
      entry = parse_twin_entry(std::string_view(values[i].data(), values[i].size()));
      if (!entry) {
        error = "compacted twin: the entry of key '" + printable_key(keys[i]) + "' does not parse";
        return false;
      }
    } else if (!statuses[i].IsNotFound()) {
      error =
          "compacted twin: reading key '" + printable_key(keys[i]) + "': " + describe(statuses[i]);
      return false;
    }
    batch_entries_.emplace(std::move(keys[i]), std::move(entry));
  }
  return true;
}

bool EventStore::twin_put(rocksdb::WriteBatch& batch, const proto::EventView& event,
                          const RecordChange& change, const std::string& key,
                          std::span<const std::string_view> value, std::string& error) {
  const bool commit = event.kind == proto::EventKind::commit;
  auto it = batch_entries_.find(key);
  if (it == batch_entries_.end()) {
    // Not read ahead (the build reads the log one event at a time): read it now.
    std::vector<std::string> one{key};
    if (!read_twin_entries(one, error)) return false;
    it = batch_entries_.find(key);
  }
  const std::optional<TwinEntry> existing = it->second;
  if (!twin_replaces(existing, event, change)) return true;

  TwinEntry entry;
  entry.time_us = event.time_us;
  entry.tombstone = commit && change.is_delete;
  if (commit) entry.rev.assign(change.rev);
  const Key time_key = encode_key(event.time_us);
  rocksdb::Status status;
  if (existing) {
    const Key old_key = encode_key(existing->time_us);
    status = batch.Delete(db_->twin_events, slice(old_key));
    if (status.ok() && existing->tombstone) {
      status = batch.Delete(db_->twin_tombstones, slice(old_key));
    }
  }
  const std::string entry_bytes = encode_twin_entry(entry);
  if (status.ok()) status = batch.Put(db_->twin_keys, slice(key), slice(entry_bytes));
  if (status.ok()) {
    std::array<rocksdb::Slice, 5> parts;
    for (std::size_t i = 0; i < value.size() && i < parts.size(); ++i) parts[i] = slice(value[i]);
    const rocksdb::Slice key_part = slice(time_key);
    status = batch.Put(db_->twin_events, rocksdb::SliceParts(&key_part, 1),
                       rocksdb::SliceParts(parts.data(), static_cast<int>(value.size())));
  }
  if (status.ok() && entry.tombstone) {
    status = batch.Put(db_->twin_tombstones, slice(time_key), slice(key));
  }
  if (!status.ok()) {
    error = "compacted twin: " + describe(status);
    return false;
  }
  const std::string group = group_of(event);
  const int was_record = existing && !existing->tombstone ? 1 : 0;
  const int was_tombstone = existing && existing->tombstone ? 1 : 0;
  count(group, (entry.tombstone ? 0 : 1) - was_record, (entry.tombstone ? 1 : 0) - was_tombstone);
  it->second = std::move(entry);
  return true;
}

namespace {

rocksdb::Status put_counts(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* meta,
                           const std::map<std::string, EventStore::TwinCounts>& counts,
                           const std::unordered_set<std::string>& touched) {
  for (const auto& group : touched) {
    const auto it = counts.find(group);
    const std::string key = std::string(kMetaTwinCountPrefix) + group;
    const rocksdb::Status status =
        it == counts.end() ? batch.Delete(meta, slice(key))
                           : batch.Put(meta, slice(key), slice(encode_counts(it->second)));
    if (!status.ok()) return status;
  }
  return rocksdb::Status::OK();
}

}  // namespace

bool EventStore::reconcile_twin(std::string& error) {
  rocksdb::DB& db = *db_->db;
  const rocksdb::ReadOptions read;
  std::string stored_text, build_text;
  bool has_set = false, has_build = false, found = false;
  std::int64_t position = 0;
  if (!read_meta_bytes(db, db_->meta, read, kMetaTwinCollections, stored_text, has_set, error) ||
      !read_meta_bytes(db, db_->meta, read, kMetaTwinBuild, build_text, has_build, error) ||
      !read_meta(db, db_->meta, read, kMetaTwinBuildPosition, position, found, error)) {
    return false;
  }
  const auto stored = CollectionSet::parse(stored_text, error);
  if (!stored) {
    error = "compacted twin: meta 'twin_collections' does not parse: " + error;
    return false;
  }
  CollectionSet build_set;
  bool build_dids = false;
  if (has_build) {
    if (build_text.size() < 2 || (build_text[0] != '0' && build_text[0] != '1') ||
        build_text[1] != '|') {
      error = "compacted twin: meta 'twin_build' does not parse";
      return false;
    }
    auto parsed = CollectionSet::parse(std::string_view(build_text).substr(2), error);
    if (!parsed) {
      error = "compacted twin: meta 'twin_build' does not parse: " + error;
      return false;
    }
    build_set = std::move(*parsed);
    build_dids = build_text[0] == '1';
  }

  // The counts as stored.
  std::map<std::string, TwinCounts> counts;
  {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->meta));
    for (it->Seek(slice(kMetaTwinCountPrefix)); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      if (!key.starts_with(kMetaTwinCountPrefix)) break;
      if (it->value().size() != 16) {
        error = "compacted twin: meta '" + std::string(key) + "' is not two 8-byte integers";
        return false;
      }
      counts[std::string(key.substr(kMetaTwinCountPrefix.size()))] =
          TwinCounts{to_i64(rocksdb::Slice(it->value().data(), 8)),
                     to_i64(rocksdb::Slice(it->value().data() + 8, 8))};
    }
    if (!it->status().ok()) {
      error = "compacted twin: reading counts: " + describe(it->status());
      return false;
    }
  }

  const CollectionSet& wanted = options_.compact;
  const bool changed = !has_set ? !wanted.empty() : !(*stored == wanted);
  if (!changed || !writable()) {
    std::lock_guard lock(counts_mutex_);
    counts_ = std::move(counts);
    build_set_ = std::move(build_set);
    build_dids_ = build_dids;
    build_position_.store(position);
    build_pending_.store(has_build);
    return true;
  }

  // The set changed: drop what the new set does not cover, count what stays.
  counts.clear();
  std::uint64_t kept = 0, dropped = 0;
  {
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->twin_keys));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view key_bytes(it->key().data(), it->key().size());
      const auto key = parse_twin_key(key_bytes);
      const auto entry = parse_twin_entry(std::string_view(it->value().data(), it->value().size()));
      if (!key || !entry) {
        error = "compacted twin: the key '" + printable_key(key_bytes) +
                "' or its entry does not parse";
        return false;
      }
      const bool keep =
          key->kind == proto::EventKind::commit ? wanted.matches(key->collection) : !wanted.empty();
      if (keep) {
        proto::EventView view;
        view.kind = key->kind;
        view.collection = key->collection;
        TwinCounts& group = counts[group_of(view)];
        (entry->tombstone ? group.tombstones : group.records) += 1;
        ++kept;
        continue;
      }
      const Key time_key = encode_key(entry->time_us);
      rocksdb::Status status = batch.Delete(db_->twin_keys, it->key());
      if (status.ok()) status = batch.Delete(db_->twin_events, slice(time_key));
      if (status.ok() && entry->tombstone) {
        status = batch.Delete(db_->twin_tombstones, slice(time_key));
      }
      if (status.ok() && batch.Count() >= kTwinRowsPerWrite) {
        status = db.Write(db_->write_options, &batch);
        batch.Clear();
      }
      if (!status.ok()) {
        error = "compacted twin: dropping uncompacted collections: " + describe(status);
        return false;
      }
      ++dropped;
    }
    if (!it->status().ok()) {
      error = "compacted twin: reading keys: " + describe(it->status());
      return false;
    }
    const rocksdb::Status status = db.Write(db_->write_options, &batch);
    if (!status.ok()) {
      error = "compacted twin: dropping uncompacted collections: " + describe(status);
      return false;
    }
  }

  // What the new set adds is built from the log; a build under way restarts with the new set.
  CollectionSet added = wanted.minus(*stored);
  CollectionSet next_build;
  {
    std::string ignored;
    std::string text = added.canonical();
    for (const auto& pattern : build_set.patterns()) {
      if (wanted.covers(pattern)) {
        text += "," + (pattern.kind == syntax::CollectionPatternKind::kPrefix ? pattern.value + "*"
                                                                              : pattern.value);
      }
    }
    next_build = CollectionSet::parse(text, ignored).value_or(CollectionSet{});
  }
  const bool next_dids = !wanted.empty() && (build_dids || stored->empty());
  // Nothing to build from an empty log (a new store).
  const bool building = (!next_build.empty() || next_dids) && last_time_us_.load() != 0;

  rocksdb::WriteBatch batch;
  rocksdb::Status status =
      batch.DeleteRange(db_->meta, slice(kMetaTwinCountPrefix), slice(kMetaTwinCountEnd));
  std::unordered_set<std::string> groups;
  for (const auto& [group, value] : counts) groups.insert(group);
  if (status.ok()) status = put_counts(batch, db_->meta, counts, groups);
  const std::string wanted_text = wanted.canonical();
  if (status.ok()) status = batch.Put(db_->meta, slice(kMetaTwinCollections), slice(wanted_text));
  const std::string build_value = std::string(next_dids ? "1|" : "0|") + next_build.canonical();
  const MetaValue position_bytes = encode_i64(oldest_time_us_.load());
  if (status.ok()) {
    status = building ? batch.Put(db_->meta, slice(kMetaTwinBuild), slice(build_value))
                      : batch.Delete(db_->meta, slice(kMetaTwinBuild));
  }
  if (status.ok()) {
    status = batch.Put(db_->meta, slice(kMetaTwinBuildPosition),
                       rocksdb::Slice(position_bytes.data(), position_bytes.size()));
  }
  if (status.ok()) status = db.Write(db_->write_options, &batch);
  if (!status.ok()) {
    error = "compacted twin: writing its metadata: " + describe(status);
    return false;
  }
  twin_open_report_ = "compacted collections changed from '" + stored->canonical() + "' to '" +
                      wanted_text + "': " + std::to_string(kept) + " entries kept, " +
                      std::to_string(dropped) + " dropped; " +
                      (building ? "building '" + build_value.substr(2) + "' from the log"
                                : std::string("nothing to build"));
  std::lock_guard lock(counts_mutex_);
  counts_ = std::move(counts);
  build_set_ = std::move(next_build);
  build_dids_ = next_dids;
  build_position_.store(oldest_time_us_.load());
  build_pending_.store(building);
  return true;
}

bool EventStore::build_twin_step(std::size_t max_events, std::string& error) {
  std::lock_guard lock(write_mutex_);
  std::shared_lock guard(db_guard_);
  if (!build_pending_.load() || !writable() || !db_) return true;
  rocksdb::DB& db = *db_->db;
  const std::int64_t start =
      std::max(build_position_.load(), oldest_time_us_.load(std::memory_order_relaxed));
  const std::int64_t newest = last_time_us_.load(std::memory_order_relaxed);
  batch_entries_.clear();
  touched_groups_.clear();
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), db_->events));
  std::int64_t next = start;
  std::size_t read = 0;
  for (it->Seek(slice(encode_key(start))); it->Valid() && read < max_events; it->Next(), ++read) {
    std::int64_t time_us = 0;
    StoredEvent stored;
    if (!decode_key(it->key(), time_us) || !parse_stored(time_us, it->value(), stored)) {
      error = "compacted twin build: malformed stored event after time_us " + std::to_string(next);
      return false;
    }
    next = time_us + 1;
    const proto::EventView& view = stored.view;
    const bool commit = view.kind == proto::EventKind::commit;
    if (commit ? !build_set_.matches(view.collection) : !build_dids_) continue;
    OwnedRecordChange change;
    if (commit) {
      auto parsed = change_from_json(view.json);
      if (!parsed) continue;  // not a record operation a client could fold either
      change = std::move(*parsed);
    }
    const std::string_view value(it->value().data(), it->value().size());
    std::string key = twin_key_of(view, change.view());
    if (key.empty()) continue;
    if (!twin_put(batch, view, change.view(), key, std::span<const std::string_view>(&value, 1),
                  error)) {
      return false;
    }
  }
  if (!it->status().ok()) {
    error = "compacted twin build: reading the log: " + describe(it->status());
    return false;
  }
  const bool done = !it->Valid() || next > newest;
  const MetaValue position_bytes = encode_i64(next);
  rocksdb::Status status = put_counts(batch, db_->meta, counts_, touched_groups_);
  if (status.ok()) {
    status = batch.Put(db_->meta, slice(kMetaTwinBuildPosition),
                       rocksdb::Slice(position_bytes.data(), position_bytes.size()));
  }
  if (status.ok() && done) status = batch.Delete(db_->meta, slice(kMetaTwinBuild));
  if (status.ok()) status = db.Write(db_->write_options, &batch);
  if (!status.ok()) {
    error = "compacted twin build: " + describe(status);
    return false;
  }
  build_position_.store(next);
  build_events_read_.fetch_add(read);
  if (done) build_pending_.store(false);
  return true;
}

std::int64_t EventStore::expire_tombstones(std::int64_t cutoff_time_us, std::string& error) {
  std::lock_guard lock(write_mutex_);
  std::shared_lock guard(db_guard_);
  if (!writable() || !db_) return 0;
  rocksdb::DB& db = *db_->db;
  const Key upper = encode_key(cutoff_time_us);
  const rocksdb::Slice upper_slice = slice(upper);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper_slice;
  std::int64_t expired = 0;
  // The horizon is the newest expired tombstone's time_us: a snapshot cursor at or below it
  // may miss a delete; one above it missed none.
  std::int64_t newest_expired = tombstone_horizon_.load();
  for (bool more = true; more;) {
    touched_groups_.clear();
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->twin_tombstones));
    std::size_t rows = 0;
    for (it->SeekToFirst(); it->Valid() && rows < kTwinRowsPerWrite; it->Next(), ++rows) {
      const std::string key(it->key().data(), it->key().size());
      const std::string twin(it->value().data(), it->value().size());
      rocksdb::Status status = batch.Delete(db_->twin_tombstones, slice(key));
      std::string bytes;
      const rocksdb::Status get =
          db.Get(rocksdb::ReadOptions(), db_->twin_keys, slice(twin), &bytes);
      std::int64_t time_us = 0;
      if (get.ok() && decode_key(it->key(), time_us)) {
        const auto entry = parse_twin_entry(bytes);
        const auto parsed = parse_twin_key(twin);
        if (!entry || !parsed) {
          error =
              "compacted twin: the key '" + printable_key(twin) + "' or its entry does not parse";
          return -1;
        }
        if (entry->tombstone && entry->time_us == time_us) {
          if (status.ok()) status = batch.Delete(db_->twin_keys, slice(twin));
          if (status.ok()) status = batch.Delete(db_->twin_events, slice(key));
          proto::EventView view;
          view.kind = parsed->kind;
          view.collection = parsed->collection;
          count(group_of(view), 0, -1);
          ++expired;
          newest_expired = std::max(newest_expired, time_us);
        }
      } else if (!get.ok() && !get.IsNotFound()) {
        status = get;
      }
      if (!status.ok()) {
        error = "compacted twin: expiring tombstones: " + describe(status);
        return -1;
      }
    }
    if (!it->status().ok()) {
      error = "compacted twin: expiring tombstones: " + describe(it->status());
      return -1;
    }
    more = it->Valid();
    rocksdb::Status status = put_counts(batch, db_->meta, counts_, touched_groups_);
    const MetaValue horizon_bytes = encode_i64(newest_expired);
    if (status.ok()) {
      status = batch.Put(db_->meta, slice(kMetaTombstoneHorizon),
                         rocksdb::Slice(horizon_bytes.data(), horizon_bytes.size()));
    }
    if (status.ok()) status = db.Write(db_->write_options, &batch);
    if (!status.ok()) {
      error = "compacted twin: expiring tombstones: " + describe(status);
      return -1;
    }
  }
  tombstone_horizon_.store(newest_expired, std::memory_order_release);
  return expired;
}

std::vector<std::optional<TwinEntry>> EventStore::twin_entries(const std::vector<std::string>& keys,
                                                               std::string& error) const {
  std::vector<std::optional<TwinEntry>> entries(keys.size());
  std::shared_lock guard(db_guard_);
  if (db_ == nullptr || keys.empty()) return entries;
  std::vector<std::size_t> order(keys.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
  std::vector<rocksdb::Slice> slices;
  slices.reserve(keys.size());
  for (const std::size_t i : order) slices.push_back(slice(keys[i]));
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->db->MultiGet(rocksdb::ReadOptions(), db_->twin_keys, keys.size(), slices.data(),
                    values.data(), statuses.data(), /*sorted_input=*/true);
  for (std::size_t j = 0; j < order.size(); ++j) {
    const std::size_t i = order[j];
    if (statuses[j].ok()) {
      entries[i] = parse_twin_entry(std::string_view(values[j].data(), values[j].size()));
      if (!entries[i]) {
        error = "compacted twin: the entry of key '" + printable_key(keys[i]) + "' does not parse";
        return {};
      }
    } else if (!statuses[j].IsNotFound()) {
      error =
          "compacted twin: reading key '" + printable_key(keys[i]) + "': " + describe(statuses[j]);
      return {};
    }
  }
  return entries;
}

bool EventStore::stale_records(std::string_view did, std::string_view rev,
                               const CollectionSet& wanted, std::vector<std::string>& keys,
                               std::string& error) const {
  keys.clear();
  std::shared_lock guard(db_guard_);
  if (db_ == nullptr) return true;
  std::string lower(did);
  lower.push_back('\0');
  std::string upper(did);
  upper.push_back('\1');
  rocksdb::ReadOptions read;
  const rocksdb::Slice upper_slice = slice(upper);
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(read, db_->twin_keys));
  for (it->Seek(slice(lower)); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    const auto parsed = parse_twin_key(key);
    if (!parsed || parsed->kind != proto::EventKind::commit || parsed->did != did) continue;
    if (!wanted.matches(parsed->collection) || !options_.compact.matches(parsed->collection)) {
      continue;
    }
    const auto entry = parse_twin_entry(std::string_view(it->value().data(), it->value().size()));
    if (!entry) {
      error = "compacted twin: the entry of key '" + printable_key(key) + "' does not parse";
      return false;
    }
    if (!entry->tombstone && entry->rev < rev) keys.emplace_back(key);
  }
  if (!it->status().ok()) {
    error = "compacted twin: scanning the records of " + std::string(did) + ": " +
            describe(it->status());
    return false;
  }
  return true;
}

EventStore::TwinBuild EventStore::twin_build() const {
  TwinBuild build;
  build.pending = build_pending_.load();
  build.position = build_position_.load();
  build.newest = last_time_us_.load();
  build.events_read = build_events_read_.load();
  if (build.pending) {
    std::lock_guard lock(counts_mutex_);
    build.collections = (build_dids_ ? std::string("#identity,#account") : std::string()) +
                        (build_dids_ && !build_set_.empty() ? "," : "") + build_set_.canonical();
  }
  return build;
}

std::string EventStore::building_collections() const {
  if (!build_pending_.load()) return {};
  std::lock_guard lock(counts_mutex_);
  return build_set_.canonical();
}

std::map<std::string, EventStore::TwinCounts> EventStore::twin_counts() const {
  std::lock_guard lock(counts_mutex_);
  return counts_;
}

std::uint64_t EventStore::twin_disk_bytes() const {
  std::shared_lock guard(db_guard_);
  if (!db_) return 0;
  std::uint64_t total = 0;
  for (auto* family : {db_->twin_keys, db_->twin_events, db_->twin_tombstones}) {
    std::uint64_t bytes = 0;
    (void)db_->db->GetIntProperty(family, rocksdb::DB::Properties::kTotalSstFilesSize, &bytes);
    total += bytes;
    (void)db_->db->GetIntProperty(family, rocksdb::DB::Properties::kCurSizeAllMemTables, &bytes);
    total += bytes;
  }
  return total;
}

bool EventStore::flush_and_compact(std::string& error) {
  std::lock_guard lock(write_mutex_);
  std::shared_lock guard(db_guard_);
  if (!db_ || !writable()) return true;
  for (auto* family :
       {db_->events, db_->meta, db_->twin_keys, db_->twin_events, db_->twin_tombstones}) {
    rocksdb::Status status = db_->db->Flush(rocksdb::FlushOptions(), family);
    if (status.ok() && family != db_->events && family != db_->meta) {
      status = db_->db->CompactRange(rocksdb::CompactRangeOptions(), family, nullptr, nullptr);
    }
    if (!status.ok()) {
      error = "event store flush: " + describe(status);
      return false;
    }
  }
  return true;
}

EventStore::TwinCheck EventStore::check_twin() const {
  TwinCheck check;
  const auto problem = [&check](std::string text) {
    if (check.problems.size() < 50) check.problems.push_back(std::move(text));
    ++check.problem_count;
  };
  std::shared_lock guard(db_guard_);
  if (!db_) return check;
  rocksdb::DB& db = *db_->db;
  const ReadSnapshot snapshot(db);
  rocksdb::ReadOptions read = snapshot.read_options();

  std::int64_t horizon = 0, oldest = 0;
  bool found = false;
  std::string error;
  if (!read_meta(db, db_->meta, read, kMetaTombstoneHorizon, horizon, found, error) ||
      !read_meta(db, db_->meta, read, kMetaOldestTimeUs, oldest, found, error)) {
    problem(error);
    return check;
  }
  std::string build_text, stored_set;
  bool building = false, has_set = false;
  if (!read_meta_bytes(db, db_->meta, read, kMetaTwinBuild, build_text, building, error) ||
      !read_meta_bytes(db, db_->meta, read, kMetaTwinCollections, stored_set, has_set, error)) {
    problem(error);
    return check;
  }
  if (stored_set != options_.compact.canonical()) {
    problem("the stored twin is of '" + stored_set + "', not of '" + options_.compact.canonical() +
            "' (start decode with this set first)");
    return check;
  }

  // The twin the log implies.
  TwinFold fold(options_.compact);
  {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->events));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::int64_t time_us = 0;
      StoredEvent stored;
      if (!decode_key(it->key(), time_us) || !parse_stored(time_us, it->value(), stored)) {
        problem("log: a stored event does not parse (after time_us " + std::to_string(time_us) +
                ")");
        return check;
      }
      ++check.log_events_folded;
      if (!is_compacted(options_.compact, stored.view)) continue;
      OwnedRecordChange change;
      if (stored.view.kind == proto::EventKind::commit) {
        auto parsed = change_from_json(stored.view.json);
        if (!parsed) continue;
        change = std::move(*parsed);
      }
      fold.apply(stored.view, change.view());
    }
  }
  if (horizon > 0) fold.expire_tombstones(horizon + 1);

  // Every stored entry against it.
  std::map<std::string, TwinCounts> counts;
  std::uint64_t tombstones = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->twin_keys));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ++check.entries_checked;
      const std::string key(it->key().data(), it->key().size());
      const auto parsed = parse_twin_key(key);
      const auto entry = parse_twin_entry(std::string_view(it->value().data(), it->value().size()));
      if (!parsed || !entry) {
        problem("twin key '" + printable_key(key) + "': the key or its entry does not parse");
        continue;
      }
      proto::EventView group_view;
      group_view.kind = parsed->kind;
      group_view.collection = parsed->collection;
      const bool compacted = parsed->kind == proto::EventKind::commit
                                 ? options_.compact.matches(parsed->collection)
                                 : !options_.compact.empty();
      if (!compacted) {
        problem("twin key '" + printable_key(key) + "': its collection is not compacted");
        continue;
      }
      TwinCounts& group = counts[group_of(group_view)];
      (entry->tombstone ? group.tombstones : group.records) += 1;
      tombstones += entry->tombstone ? 1u : 0u;
      const auto expected = fold.entries().find(key);
      const std::string at = " (time_us " + std::to_string(entry->time_us) + ")";
      if (entry->time_us >= oldest) {
        if (expected == fold.entries().end()) {
          problem("twin key '" + printable_key(key) + "'" + at + ": the log has no such event");
        } else if (!(expected->second == *entry)) {
          problem("twin key '" + printable_key(key) + "'" + at + ": the log's latest is time_us " +
                  std::to_string(expected->second.time_us) +
                  (expected->second.tombstone ? " (a delete)" : ""));
        }
      } else if (expected != fold.entries().end()) {
        problem("twin key '" + printable_key(key) + "'" + at + ": older than a log event for it");
      }
      const Key time_key = encode_key(entry->time_us);
      std::string twin_value, log_value, index_value;
      const rocksdb::Status twin = db.Get(read, db_->twin_events, slice(time_key), &twin_value);
      StoredEvent stored;
      if (!twin.ok() || !parse_stored(entry->time_us, twin_value, stored)) {
        problem("twin key '" + printable_key(key) + "'" + at + ": its event is missing or broken");
      } else if (stored.view.did != parsed->did ||
                 (parsed->kind == proto::EventKind::commit &&
                  stored.view.collection != parsed->collection) ||
                 stored.view.kind != parsed->kind) {
        problem("twin key '" + printable_key(key) + "'" + at + ": its event is another record's");
      } else if (entry->time_us >= oldest &&
                 (!db.Get(read, db_->events, slice(time_key), &log_value).ok() ||
                  log_value != twin_value)) {
        problem("twin key '" + printable_key(key) + "'" + at +
                ": its event differs from the log's");
      }
      if (entry->tombstone &&
          (!db.Get(read, db_->twin_tombstones, slice(time_key), &index_value).ok() ||
           index_value != key)) {
        problem("twin key '" + printable_key(key) + "'" + at + ": not in the tombstone index");
      }
    }
  }
  // Every entry the log implies must be stored, unless it is still being built.
  const bool build_pending = building;
  if (!build_pending) {
    for (const auto& [key, entry] : fold.entries()) {
      std::string bytes;
      if (db.Get(read, db_->twin_keys, slice(key), &bytes).IsNotFound()) {
        problem("twin key '" + printable_key(key) + "' (time_us " + std::to_string(entry.time_us) +
                "): in the log, missing from the twin");
      }
    }
  }
  // Rows of the other families that no entry points at.
  std::uint64_t events = 0, indexed = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->twin_events));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++events;
    std::unique_ptr<rocksdb::Iterator> tomb(db.NewIterator(read, db_->twin_tombstones));
    for (tomb->SeekToFirst(); tomb->Valid(); tomb->Next()) ++indexed;
  }
  if (events != check.entries_checked) {
    problem("twin_events holds " + std::to_string(events) + " events for " +
            std::to_string(check.entries_checked) + " entries");
  }
  if (indexed != tombstones) {
    problem("the tombstone index holds " + std::to_string(indexed) + " rows for " +
            std::to_string(tombstones) + " tombstones");
  }
  std::map<std::string, TwinCounts> stored_counts;
  {
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->meta));
    for (it->Seek(slice(kMetaTwinCountPrefix)); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      if (!key.starts_with(kMetaTwinCountPrefix) || it->value().size() != 16) break;
      const TwinCounts value{to_i64(rocksdb::Slice(it->value().data(), 8)),
                             to_i64(rocksdb::Slice(it->value().data() + 8, 8))};
      if (value.records != 0 || value.tombstones != 0) {
        stored_counts[std::string(key.substr(kMetaTwinCountPrefix.size()))] = value;
      }
    }
  }
  for (auto it = counts.begin(); it != counts.end();) {
    it = it->second.records == 0 && it->second.tombstones == 0 ? counts.erase(it) : std::next(it);
  }
  if (stored_counts != counts) problem("the stored counts per group differ from the entries");
  return check;
}

std::int64_t EventStore::upstream_cursor() const noexcept {
  return upstream_cursor_.load(std::memory_order_acquire);
}
std::int64_t EventStore::last_time_us() const noexcept {
  return last_time_us_.load(std::memory_order_acquire);
}
std::int64_t EventStore::oldest_time_us() const noexcept {
  return oldest_time_us_.load(std::memory_order_acquire);
}
std::int64_t EventStore::newest_time_us() const noexcept {
  // Retention never deletes the newest event, so the log's head is the last appended event.
  return last_time_us_.load(std::memory_order_acquire);
}
std::int64_t EventStore::deleted_through_time_us() const noexcept {
  return deleted_through_.load(std::memory_order_acquire);
}
std::int64_t EventStore::retention_floor_time_us() const noexcept {
  return retention_floor_.load(std::memory_order_acquire);
}

std::uint64_t EventStore::disk_usage_bytes() const {
  std::shared_lock guard(db_guard_);
  if (!db_) return 0;
  std::uint64_t sst = 0, memtables = 0;
  (void)db_->db->GetAggregatedIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &sst);
  (void)db_->db->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables,
                                          &memtables);
  return sst + memtables;
}

std::uint64_t EventStore::approximate_event_count() const {
  std::shared_lock guard(db_guard_);
  if (!db_) return 0;
  std::uint64_t keys = 0;
  (void)db_->db->GetIntProperty(db_->events, rocksdb::DB::Properties::kEstimateNumKeys, &keys);
  return keys;
}

}  // namespace jetstream::decode
