#include "services/decode/event_store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
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

/// kind u8, did_len u16 LE, collection_len u16 LE, json_len u32 LE; then did, collection, json,
/// and the zstd frame (the remainder of the value).
constexpr std::size_t kValueHeaderSize = 1 + 2 + 2 + 4;

constexpr std::int64_t kFormatVersion = 1;
constexpr std::string_view kMetaFormatVersion = "format_version";
constexpr std::string_view kMetaUpstreamCursor = "upstream_cursor";
constexpr std::string_view kMetaLastTimeUs = "last_time_us";
constexpr std::string_view kMetaOldestTimeUs = "oldest_time_us";
constexpr std::string_view kMetaDeletedThrough = "deleted_through_time_us";
constexpr std::string_view kMetaRetentionFloor = "retention_floor_time_us";

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
  put(0, static_cast<std::uint8_t>(event.kind), 1);
  put(1, event.did.size(), 2);
  put(3, event.collection.size(), 2);
  put(5, event.json.size(), 4);
}

/// The header of a stored value, checked against the value's size; false when the value is not
/// one this store wrote (corruption).
bool decode_header(const rocksdb::Slice& value, ValueHeader& header) noexcept {
  if (value.size() < kValueHeaderSize) return false;
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(value.data());
  const std::uint8_t kind = bytes[0];
  if (kind < static_cast<std::uint8_t>(proto::EventKind::commit) ||
      kind > static_cast<std::uint8_t>(proto::EventKind::account)) {
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
  rocksdb::WriteOptions write_options;
  /// Reused by append so a steady writer does not reallocate the batch's buffer.
  rocksdb::WriteBatch batch;

  ~Db() {
    if (!db) return;
    for (auto* handle : {events, meta, default_family}) {
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

/// Reads an i64 from the meta family (optionally at a snapshot). nullopt-like: returns false with
/// `error` set on a RocksDB failure or a malformed value; `found` false when the key is absent.
bool read_meta(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* meta, const rocksdb::ReadOptions& read,
               std::string_view key, std::int64_t& value, bool& found, std::string& error) {
  rocksdb::PinnableSlice bytes;
  const rocksdb::Status status = db.Get(read, meta, slice(key), &bytes);
  if (status.IsNotFound()) {
    found = false;
    return true;
  }
  if (!status.ok()) {
    error = "reading meta '" + std::string(key) + "': " + describe(status);
    return false;
  }
  if (!decode_i64(bytes, value)) {
    error = "meta '" + std::string(key) + "' is not an 8-byte integer";
    return false;
  }
  found = true;
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
  std::int64_t cursor = -1, last = 0, oldest = 0, deleted_through = 0, floor = 0;
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
      !load(kMetaRetentionFloor, floor)) {
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
  return true;
}

bool EventStore::append(std::span<const proto::EventView> events, std::int64_t upstream_cursor,
                        std::string& error) {
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

  rocksdb::WriteBatch& batch = db_->batch;
  batch.Clear();
  std::array<char, kValueHeaderSize> header{};
  for (const proto::EventView& event : events) {
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
  if (put.ok()) put = db_->db->Write(db_->write_options, &batch);
  // A batch grown by one huge append should not stay pinned for the life of the process.
  if (batch.GetDataSize() > (std::size_t{64} << 20)) batch = rocksdb::WriteBatch();
  if (!put.ok()) {
    error = "event store append: " + describe(put);
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
  const rocksdb::Snapshot* snapshot = db.GetSnapshot();
  struct Release {
    rocksdb::DB& db;
    const rocksdb::Snapshot* snapshot;
    ~Release() { db.ReleaseSnapshot(snapshot); }
  } release{db, snapshot};
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;

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

  // Where the scan starts. Retention deleted exactly the events up to deleted_through.
  std::int64_t start = request.start_time_us;
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
  const std::int64_t end = request.end_time_us > 0                             ? request.end_time_us
                           : newest < std::numeric_limits<std::int64_t>::max() ? newest + 1
                                                                               : newest;
  if (newest == 0 || start >= end || start > newest) {
    page.done = true;
    return proto::ReplayStatus::ok;
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
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read, db_->events));

  // prev_time_us of the first event scanned: the event before it in the log, or, when it is the
  // oldest retained one, the last one retention deleted.
  std::int64_t prev = deleted_through;
  if (start > 1 && start > oldest) {
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
