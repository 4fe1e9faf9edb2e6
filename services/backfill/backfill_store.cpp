#include "services/backfill/backfill_store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <filesystem>

namespace jetstream::backfill {
namespace {

constexpr std::string_view kRepoPrefix = "r:";     // + DID → RepoRow
constexpr std::string_view kRepoEnd = "r;";        // ';' follows ':'
constexpr std::string_view kListingPrefix = "l:";  // + source URL → complete flag, cursor
constexpr std::string_view kResyncPrefix = "s:";   // + DID: decode asked to fetch it again
constexpr std::string_view kResyncEnd = "s;";

std::string encode_row(const RepoRow& row) {
  std::string out;
  out.push_back(static_cast<char>(row.status));
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<char>((row.attempts >> shift) & 0xffu));
  }
  out.append(row.rev);
  out.push_back('\0');
  out.append(row.reason);
  return out;
}

std::optional<RepoRow> decode_row(std::string_view bytes) {
  if (bytes.size() < 6 || static_cast<std::uint8_t>(bytes[0]) > 2) return std::nullopt;
  RepoRow row;
  row.status = static_cast<RepoStatus>(bytes[0]);
  for (std::size_t i = 0; i < 4; ++i) {
    row.attempts |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[1 + i])) << (8 * i);
  }
  const std::string_view rest = bytes.substr(5);
  const auto zero = rest.find('\0');
  if (zero == std::string_view::npos) return std::nullopt;
  row.rev.assign(rest.substr(0, zero));
  row.reason.assign(rest.substr(zero + 1));
  return row;
}

rocksdb::Slice slice(std::string_view text) { return {text.data(), text.size()}; }

}  // namespace

BackfillStore::BackfillStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
BackfillStore::~BackfillStore() = default;

std::unique_ptr<BackfillStore> BackfillStore::open(const std::string& path, std::string& error) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    error = "cannot create " + path + ": " + ec.message();
    return nullptr;
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_open_files = 64;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status status = rocksdb::DB::Open(options, path, &raw);
  if (!status.ok()) {
    error = "backfill store " + path + ": " + status.ToString();
    return nullptr;
  }
  return std::unique_ptr<BackfillStore>(new BackfillStore(std::unique_ptr<rocksdb::DB>(raw)));
}

std::optional<RepoRow> BackfillStore::repo(std::string_view did) const {
  std::string key(kRepoPrefix);
  key.append(did);
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), key, &value).ok()) return std::nullopt;
  return decode_row(value);
}

bool BackfillStore::put(const std::vector<std::pair<std::string, RepoRow>>& rows,
                        const std::optional<std::pair<std::string, std::string>>& cursor,
                        std::string& error) {
  rocksdb::WriteBatch batch;
  std::string key;
  for (const auto& [did, row] : rows) {
    key.assign(kRepoPrefix).append(did);
    batch.Put(key, encode_row(row));
  }
  if (cursor) {
    key.assign(kListingPrefix).append(cursor->first);
    batch.Put(key, "0" + cursor->second);
  }
  const rocksdb::Status status = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!status.ok()) {
    error = "backfill store write: " + status.ToString();
    return false;
  }
  return true;
}

void BackfillStore::for_each_repo(
    const std::function<void(std::string_view did, const RepoRow&)>& visit) const {
  rocksdb::ReadOptions read;
  const rocksdb::Slice upper = slice(kRepoEnd);
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (it->Seek(slice(kRepoPrefix)); it->Valid(); it->Next()) {
    const auto row = decode_row({it->value().data(), it->value().size()});
    if (!row) continue;  // a row this code did not write: fetched again if listed again
    visit(std::string_view(it->key().data(), it->key().size()).substr(kRepoPrefix.size()), *row);
  }
}

BackfillStore::Listing BackfillStore::listing(std::string_view source) const {
  std::string key(kListingPrefix);
  key.append(source);
  std::string value;
  Listing listing;
  if (db_->Get(rocksdb::ReadOptions(), key, &value).ok() && !value.empty()) {
    listing.complete = value[0] == '1';
    listing.cursor = value.substr(1);
  }
  return listing;
}

bool BackfillStore::put_listing(std::string_view source, const Listing& listing,
                                std::string& error) {
  std::string key(kListingPrefix);
  key.append(source);
  const rocksdb::Status status =
      db_->Put(rocksdb::WriteOptions(), key, (listing.complete ? "1" : "0") + listing.cursor);
  if (!status.ok()) {
    error = "backfill store write: " + status.ToString();
    return false;
  }
  return true;
}

bool BackfillStore::put_resyncs(const std::vector<std::string>& dids, std::string& error) {
  rocksdb::WriteBatch batch;
  std::string key;
  for (const auto& did : dids) {
    key.assign(kResyncPrefix).append(did);
    batch.Put(key, "");
  }
  const rocksdb::Status status = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!status.ok()) {
    error = "backfill store write: " + status.ToString();
    return false;
  }
  return true;
}

std::vector<std::string> BackfillStore::resyncs() const {
  std::vector<std::string> dids;
  rocksdb::ReadOptions read;
  const rocksdb::Slice upper = slice(kResyncEnd);
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (it->Seek(slice(kResyncPrefix)); it->Valid(); it->Next()) {
    dids.emplace_back(
        std::string_view(it->key().data(), it->key().size()).substr(kResyncPrefix.size()));
  }
  return dids;
}

bool BackfillStore::clear_resync(std::string_view did, std::string& error) {
  std::string key(kResyncPrefix);
  key.append(did);
  const rocksdb::Status status = db_->Delete(rocksdb::WriteOptions(), key);
  if (!status.ok()) {
    error = "backfill store write: " + status.ToString();
    return false;
  }
  return true;
}

}  // namespace jetstream::backfill
