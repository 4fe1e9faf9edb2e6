#include "services/decode/compacted_twin.hpp"

#include <rapidjson/document.h>

#include <algorithm>

namespace jetstream::decode {
namespace {

constexpr std::string_view kIdentityMarker = "#identity";
constexpr std::string_view kAccountMarker = "#account";
constexpr std::uint8_t kTombstoneFlag = 0x01;

}  // namespace

// ---- Keys and entries

std::string twin_key(std::string_view did, std::string_view collection, std::string_view rkey) {
  std::string key;
  key.reserve(did.size() + collection.size() + rkey.size() + 2);
  key.append(did).push_back('\0');
  key.append(collection).push_back('\0');
  key.append(rkey);
  return key;
}

std::string twin_key(proto::EventKind kind, std::string_view did) {
  std::string key;
  const std::string_view marker =
      kind == proto::EventKind::identity ? kIdentityMarker : kAccountMarker;
  key.reserve(did.size() + 1 + marker.size());
  key.append(did).push_back('\0');
  key.append(marker);
  return key;
}

std::string twin_key_of(const proto::EventView& event, const RecordChange& change) {
  if (event.kind != proto::EventKind::commit) return twin_key(event.kind, event.did);
  if (change.rkey.empty()) return {};
  return twin_key(event.did, event.collection, change.rkey);
}

std::optional<TwinKey> parse_twin_key(std::string_view bytes) noexcept {
  const std::size_t first = bytes.find('\0');
  if (first == 0 || first == std::string_view::npos) return std::nullopt;
  TwinKey key;
  key.did = bytes.substr(0, first);
  const std::string_view rest = bytes.substr(first + 1);
  if (rest == kIdentityMarker || rest == kAccountMarker) {
    key.kind = rest == kIdentityMarker ? proto::EventKind::identity : proto::EventKind::account;
    return key;
  }
  const std::size_t second = rest.find('\0');
  if (second == 0 || second == std::string_view::npos ||
      rest.find('\0', second + 1) != std::string_view::npos || second + 1 == rest.size()) {
    return std::nullopt;
  }
  key.kind = proto::EventKind::commit;
  key.collection = rest.substr(0, second);
  key.rkey = rest.substr(second + 1);
  return key;
}

std::string encode_twin_entry(const TwinEntry& entry) {
  std::string bytes(9, '\0');
  auto value = static_cast<std::uint64_t>(entry.time_us);
  for (std::size_t i = 8; i-- > 0;) {
    bytes[i] = static_cast<char>(static_cast<std::uint8_t>(value & 0xffu));
    value >>= 8;
  }
  bytes[8] = static_cast<char>(entry.tombstone ? kTombstoneFlag : 0);
  bytes.append(entry.rev);
  return bytes;
}

std::optional<TwinEntry> parse_twin_entry(std::string_view bytes) {
  if (bytes.size() < 9) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<std::uint8_t>(bytes[i]);
  const auto flags = static_cast<std::uint8_t>(bytes[8]);
  if (value == 0 || value > static_cast<std::uint64_t>(INT64_MAX) || (flags & ~kTombstoneFlag)) {
    return std::nullopt;
  }
  TwinEntry entry;
  entry.time_us = static_cast<std::int64_t>(value);
  entry.tombstone = (flags & kTombstoneFlag) != 0;
  entry.rev.assign(bytes.substr(9));
  return entry;
}

// ---- The fold

bool is_compacted(const CollectionSet& set, const proto::EventView& event) noexcept {
  if (set.empty()) return false;
  return event.kind != proto::EventKind::commit || set.matches(event.collection);
}

bool twin_replaces(const std::optional<TwinEntry>& existing, const proto::EventView& event,
                   const RecordChange& change) noexcept {
  if (!existing) return true;
  if (existing->time_us >= event.time_us) return false;  // the newest event wins
  // A backfilled record is the repository as of its rev: what the twin holds from a later (or
  // the same) rev is newer, whatever arrived first.
  return !event.backfill || existing->rev < change.rev;
}

void TwinFold::apply(const proto::EventView& event, const RecordChange& change) {
  if (!is_compacted(set_, event)) return;
  const bool commit = event.kind == proto::EventKind::commit;
  std::string key = twin_key_of(event, change);
  if (key.empty()) return;
  const auto found = entries_.find(key);
  const std::optional<TwinEntry> existing =
      found == entries_.end() ? std::nullopt : std::optional<TwinEntry>(found->second);
  if (!twin_replaces(existing, event, change)) return;
  TwinEntry& entry = entries_[std::move(key)];
  entry.time_us = event.time_us;
  entry.tombstone = commit && change.is_delete;
  entry.rev.assign(commit ? change.rev : std::string_view{});
}

void TwinFold::expire_tombstones(std::int64_t cutoff_time_us) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.tombstone && it->second.time_us < cutoff_time_us) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<OwnedRecordChange> change_from_json(std::string_view json) {
  rapidjson::Document document;
  document.Parse(json.data(), json.size());
  if (document.HasParseError() || !document.IsObject()) return std::nullopt;
  const auto commit = document.FindMember("commit");
  if (commit == document.MemberEnd() || !commit->value.IsObject()) return std::nullopt;
  const auto& body = commit->value;
  const auto string_of = [&body](const char* name) -> std::optional<std::string> {
    const auto member = body.FindMember(name);
    if (member == body.MemberEnd()) return std::string();
    if (!member->value.IsString()) return std::nullopt;
    return std::string(member->value.GetString(), member->value.GetStringLength());
  };
  auto rkey = string_of("rkey");
  auto rev = string_of("rev");
  const auto operation = string_of("operation");
  if (!rkey || !rev || !operation || rkey->empty()) return std::nullopt;
  if (*operation != "create" && *operation != "update" && *operation != "delete") {
    return std::nullopt;
  }
  return OwnedRecordChange{std::move(*rkey), std::move(*rev), *operation == "delete"};
}

}  // namespace jetstream::decode
