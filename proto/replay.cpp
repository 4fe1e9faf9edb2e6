#include "proto/replay.hpp"

#include "proto/detail/codec.hpp"
#include "proto/detail/event_codec.hpp"

namespace jetstream::proto {
namespace {

std::optional<DecodeError> validate_strings(const std::vector<std::string>& values) noexcept {
  for (const auto& value : values) {
    if (value.empty()) return DecodeError::invalid_value;
    if (value.size() > kMaxStringBytes) return DecodeError::limit_exceeded;
  }
  return std::nullopt;
}

std::size_t strings_size(const std::vector<std::string>& values) noexcept {
  std::size_t size = 4;
  for (const auto& value : values) size += detail::sized_bytes(value.size());
  return size;
}

void write_strings(detail::Writer& writer, const std::vector<std::string>& values) noexcept {
  writer.u32(static_cast<std::uint32_t>(values.size()));
  for (const auto& value : values) writer.sized_text(value);
}

/// A u32 count of at most `max_count` strings, then the strings (each at most kMaxStringBytes).
std::vector<std::string> read_strings(detail::Reader& reader, std::uint32_t max_count) {
  const std::uint32_t count = reader.count(max_count, detail::sized_bytes(0));
  std::vector<std::string> values;
  if (reader.ok()) values.reserve(count);
  for (std::uint32_t i = 0; i < count && reader.ok(); ++i) {
    values.emplace_back(reader.sized_text(kMaxStringBytes));
  }
  return values;
}

}  // namespace

std::string_view to_string(ReplayStatus status) noexcept {
  switch (status) {
    case ReplayStatus::ok: return "ok";
    case ReplayStatus::bad_request: return "bad_request";
    case ReplayStatus::too_old: return "too_old";
    case ReplayStatus::internal_error: return "internal_error";
    case ReplayStatus::unsupported_version: return "unsupported_version";
  }
  return "unknown";
}

std::optional<DecodeError> validate(const ReplayRequest& request) noexcept {
  if (request.request_id == 0) return DecodeError::invalid_value;
  if (request.end_time_us != 0 && request.end_time_us <= request.start_time_us) {
    return DecodeError::invalid_value;
  }
  if (request.max_events == 0 || request.max_bytes == 0) return DecodeError::invalid_value;
  if (request.max_events > kMaxEventsPerMessage || request.max_bytes > kMaxPageBytes) {
    return DecodeError::limit_exceeded;
  }
  if (request.collections.size() > kMaxCollectionPatterns ||
      request.collection_prefixes.size() > kMaxCollectionPatterns - request.collections.size() ||
      request.dids.size() > kMaxWantedDids) {
    return DecodeError::limit_exceeded;
  }
  if (const auto error = validate_strings(request.collections)) return error;
  if (const auto error = validate_strings(request.collection_prefixes)) return error;
  if (const auto error = validate_strings(request.dids)) return error;
  return std::nullopt;
}

std::optional<DecodeError> validate(const ReplayPageView& page) noexcept {
  if (static_cast<std::uint8_t>(page.status) >
      static_cast<std::uint8_t>(ReplayStatus::unsupported_version)) {
    return DecodeError::invalid_value;
  }
  if (page.events.size() > kMaxEventsPerMessage) return DecodeError::limit_exceeded;
  if (page.status == ReplayStatus::ok && page.request_id == 0) return DecodeError::invalid_value;
  if (page.status != ReplayStatus::ok && !page.events.empty()) return DecodeError::invalid_value;
  if (page.oldest_time_us < 0 || page.newest_time_us < 0) return DecodeError::invalid_value;
  for (std::size_t i = 0; i < page.events.size(); ++i) {
    if (const auto error = validate(page.events[i])) return error;
    if (i > 0 && page.events[i].time_us <= page.events[i - 1].time_us) {
      return DecodeError::invalid_value;
    }
  }
  if (!page.events.empty() && page.next_time_us <= page.events.back().time_us) {
    return DecodeError::invalid_value;
  }
  return std::nullopt;
}

std::vector<std::uint8_t> encode_replay_request(const ReplayRequest& request) {
  detail::require_valid(validate(request), "encode_replay_request: invalid request");
  std::vector<std::uint8_t> out(kReplayRequestFixedSize + strings_size(request.collections) +
                                strings_size(request.collection_prefixes) +
                                strings_size(request.dids));
  detail::Writer writer(out);
  writer.header(MessageType::replay_request);
  writer.u64(request.request_id);
  writer.i64(request.start_time_us);
  writer.i64(request.end_time_us);
  writer.u32(request.max_events);
  writer.u32(request.max_bytes);
  writer.u8(static_cast<std::uint8_t>((request.want_zstd ? kReplayFlagWantZstd : 0) |
                                      (request.clamp_to_oldest ? kReplayFlagClampToOldest : 0) |
                                      (request.snapshot ? kReplayFlagSnapshot : 0) |
                                      (request.include_backfill ? kReplayFlagBackfill : 0)));
  write_strings(writer, request.collections);
  write_strings(writer, request.collection_prefixes);
  write_strings(writer, request.dids);
  writer.finish();
  return out;
}

std::size_t replay_page_size(const ReplayPageView& page) noexcept {
  std::size_t size = kReplayPageFixedSize;
  for (const auto& event : page.events) size += detail::event_size(event);
  return size;
}

void encode_replay_page_into(const ReplayPageView& page, std::span<std::uint8_t> out) noexcept {
  detail::require_valid(validate(page), "encode_replay_page: invalid page");
  detail::Writer writer(out);
  writer.header(MessageType::replay_page);
  writer.u64(page.request_id);
  writer.u8(static_cast<std::uint8_t>(page.status));
  writer.boolean(page.done);
  writer.i64(page.next_time_us);
  writer.i64(page.oldest_time_us);
  writer.i64(page.newest_time_us);
  writer.u32(static_cast<std::uint32_t>(page.events.size()));
  for (const auto& event : page.events) detail::write_event(writer, event);
  writer.finish();
}

std::vector<std::uint8_t> encode_replay_page(const ReplayPageView& page) {
  std::vector<std::uint8_t> out(replay_page_size(page));
  encode_replay_page_into(page, out);
  return out;
}

DecodeResult<ReplayRequest> decode_replay_request(std::span<const std::uint8_t> body) {
  detail::Reader reader(body);
  reader.header(MessageType::replay_request);
  ReplayRequest request;
  request.request_id = reader.u64();
  request.start_time_us = reader.i64();
  request.end_time_us = reader.i64();
  request.max_events = reader.u32();
  request.max_bytes = reader.u32();
  const std::uint8_t flags = reader.u8();
  request.want_zstd = (flags & kReplayFlagWantZstd) != 0;
  request.clamp_to_oldest = (flags & kReplayFlagClampToOldest) != 0;
  request.snapshot = (flags & kReplayFlagSnapshot) != 0;
  request.include_backfill = (flags & kReplayFlagBackfill) != 0;
  request.collections = read_strings(reader, kMaxCollectionPatterns);
  request.collection_prefixes = read_strings(
      reader, kMaxCollectionPatterns - static_cast<std::uint32_t>(request.collections.size()));
  request.dids = read_strings(reader, kMaxWantedDids);
  if (!reader.finish()) return reader.error();
  if ((flags & ~(kReplayFlagWantZstd | kReplayFlagClampToOldest | kReplayFlagSnapshot |
                 kReplayFlagBackfill)) != 0) {
    return DecodeError::invalid_value;
  }
  if (const auto error = validate(request)) return *error;
  return request;
}

DecodeResult<ReplayPageView> decode_replay_page(std::span<const std::uint8_t> body) {
  detail::Reader reader(body);
  reader.header(MessageType::replay_page);
  ReplayPageView page;
  page.request_id = reader.u64();
  page.status = static_cast<ReplayStatus>(reader.u8());
  page.done = reader.boolean();
  page.next_time_us = reader.i64();
  page.oldest_time_us = reader.i64();
  page.newest_time_us = reader.i64();
  const std::uint32_t count = reader.count(kMaxEventsPerMessage, kEventFixedSize);
  if (reader.ok()) page.events.reserve(count);
  for (std::uint32_t i = 0; i < count && reader.ok(); ++i) {
    page.events.push_back(detail::read_event(reader));
  }
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(page)) return *error;
  return page;
}

std::optional<std::uint64_t> peek_request_id(std::span<const std::uint8_t> body) noexcept {
  if (body.size() < 10) return std::nullopt;
  if (body[1] != static_cast<std::uint8_t>(MessageType::replay_request) &&
      body[1] != static_cast<std::uint8_t>(MessageType::replay_page)) {
    return std::nullopt;
  }
  std::uint64_t id = 0;
  for (std::size_t i = 10; i > 2; --i) id = (id << 8) | body[i - 1];
  return id;
}

}  // namespace jetstream::proto
