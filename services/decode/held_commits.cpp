#include "services/decode/held_commits.hpp"

#include <optional>

namespace jetstream::decode {
namespace {

void put_be64(std::string& out, std::uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(value >> shift)));
  }
}

std::uint64_t get_be64(std::string_view in) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<std::uint8_t>(in[i]);
  return value;
}

}  // namespace

std::string HeldFrame::encode() const {
  std::string out;
  out.reserve(16 + bytes.size());
  put_be64(out, static_cast<std::uint64_t>(upstream_seq));
  put_be64(out, static_cast<std::uint64_t>(receive_time_us));
  out.push_back(static_cast<char>(static_cast<std::uint8_t>(did.size() >> 8)));
  out.push_back(static_cast<char>(static_cast<std::uint8_t>(did.size())));
  out.append(did);
  out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return out;
}

std::optional<HeldFrame> HeldFrame::decode(std::uint64_t id, std::string_view stored) {
  if (stored.size() < 18) return std::nullopt;
  const std::size_t did_size = (std::size_t{static_cast<std::uint8_t>(stored[16])} << 8) |
                               static_cast<std::uint8_t>(stored[17]);
  if (did_size == 0 || stored.size() < 18 + did_size) return std::nullopt;
  HeldFrame frame;
  frame.id = id;
  frame.upstream_seq = static_cast<std::int64_t>(get_be64(stored.substr(0, 8)));
  frame.receive_time_us = static_cast<std::int64_t>(get_be64(stored.substr(8, 8)));
  frame.did.assign(stored.substr(18, did_size));
  const std::string_view body = stored.substr(18 + did_size);
  frame.bytes.assign(body.begin(), body.end());
  return frame;
}

HeldCommits::Ask HeldCommits::add(HeldFrame frame, bool refresh) {
  auto [entry, first] = by_did_.try_emplace(frame.did);
  entry->second.frames.push_back(std::move(frame));
  ++frames_;
  if (refresh && !entry->second.refresh) {
    entry->second.refresh = true;
    return Ask::refresh;
  }
  return first ? Ask::resolution : Ask::nothing;
}

HeldCommits::Released HeldCommits::release(const std::string& did) {
  const auto entry = by_did_.find(did);
  if (entry == by_did_.end()) return {};
  Released released{std::move(entry->second.frames), entry->second.refresh};
  by_did_.erase(entry);
  frames_ -= released.frames.size();
  return released;
}

}  // namespace jetstream::decode
