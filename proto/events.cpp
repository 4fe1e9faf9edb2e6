#include "proto/events.hpp"

#include <algorithm>

#include "proto/detail/codec.hpp"
#include "proto/detail/event_codec.hpp"

namespace jetstream::proto {

bool operator==(const EventView& a, const EventView& b) noexcept {
  return a.time_us == b.time_us && a.prev_time_us == b.prev_time_us && a.kind == b.kind &&
         a.backfill == b.backfill && a.did == b.did && a.collection == b.collection &&
         a.json == b.json && std::ranges::equal(a.zstd, b.zstd);
}

std::optional<DecodeError> validate(const EventView& event) noexcept {
  if (event.did.size() > kMaxStringBytes || event.collection.size() > kMaxStringBytes ||
      event.json.size() > kMaxPayloadBytes || event.zstd.size() > kMaxPayloadBytes) {
    return DecodeError::limit_exceeded;
  }
  switch (event.kind) {
    case EventKind::commit:
      if (event.collection.empty()) return DecodeError::invalid_value;
      break;
    case EventKind::identity:
    case EventKind::account:
      if (!event.collection.empty() || event.backfill) return DecodeError::invalid_value;
      break;
    default: return DecodeError::invalid_value;
  }
  if (event.prev_time_us < 0 || event.time_us <= event.prev_time_us) {
    return DecodeError::invalid_value;
  }
  if (event.did.empty() || event.json.empty()) return DecodeError::invalid_value;
  return std::nullopt;
}

std::optional<DecodeError> validate_event_batch(std::span<const EventView> events) noexcept {
  if (events.empty()) return DecodeError::invalid_value;
  if (events.size() > kMaxEventsPerMessage) return DecodeError::limit_exceeded;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (const auto error = validate(events[i])) return error;
    if (i > 0 && events[i].prev_time_us != events[i - 1].time_us) {
      return DecodeError::invalid_value;
    }
  }
  return std::nullopt;
}

std::optional<DecodeError> validate(const StateInfo& info) noexcept {
  if (info.tombstone_horizon_us < 0) return DecodeError::invalid_value;
  if (info.compacted.size() > kMaxCompactedSetBytes ||
      info.building.size() > kMaxCompactedSetBytes) {
    return DecodeError::limit_exceeded;
  }
  return std::nullopt;
}

std::optional<DecodeError> validate(const Heartbeat& heartbeat) noexcept {
  if (heartbeat.newest_time_us < 0 || heartbeat.oldest_time_us < 0) {
    return DecodeError::invalid_value;
  }
  return std::nullopt;
}

namespace detail {

std::size_t event_size(const EventView& event) noexcept {
  return kEventFixedSize + event.did.size() + event.collection.size() + event.json.size() +
         event.zstd.size();
}

void write_event(Writer& writer, const EventView& event) noexcept {
  writer.i64(event.time_us);
  writer.i64(event.prev_time_us);
  writer.u8(kind_byte(event.kind, event.backfill));
  writer.sized_text(event.did);
  writer.sized_text(event.collection);
  writer.sized_text(event.json);
  writer.sized(event.zstd);
}

EventView read_event(Reader& reader) noexcept {
  EventView event;
  event.time_us = reader.i64();
  event.prev_time_us = reader.i64();
  const std::uint8_t kind = reader.u8();
  event.kind = static_cast<EventKind>(kind & ~kBackfillKindBit);
  event.backfill = (kind & kBackfillKindBit) != 0;
  event.did = reader.sized_text(kMaxStringBytes);
  event.collection = reader.sized_text(kMaxStringBytes);
  event.json = reader.sized_text(kMaxPayloadBytes);
  event.zstd = reader.sized(kMaxPayloadBytes);
  return event;
}

}  // namespace detail

std::size_t event_batch_size(std::span<const EventView> events) noexcept {
  std::size_t size = 2 + 4;
  for (const auto& event : events) size += detail::event_size(event);
  return size;
}

void encode_event_batch_into(std::span<const EventView> events,
                             std::span<std::uint8_t> out) noexcept {
  detail::require_valid(validate_event_batch(events), "encode_event_batch: invalid batch");
  detail::Writer writer(out);
  writer.header(MessageType::event_batch);
  writer.u32(static_cast<std::uint32_t>(events.size()));
  for (const auto& event : events) detail::write_event(writer, event);
  writer.finish();
}

std::vector<std::uint8_t> encode_event_batch(std::span<const EventView> events) {
  std::vector<std::uint8_t> out(event_batch_size(events));
  encode_event_batch_into(events, out);
  return out;
}

std::array<std::uint8_t, kHeartbeatSize> encode_heartbeat(const Heartbeat& heartbeat) noexcept {
  detail::require_valid(validate(heartbeat), "encode_heartbeat: invalid heartbeat");
  std::array<std::uint8_t, kHeartbeatSize> out{};
  detail::Writer writer(out);
  writer.header(MessageType::heartbeat);
  writer.i64(heartbeat.newest_time_us);
  writer.i64(heartbeat.oldest_time_us);
  writer.finish();
  return out;
}

namespace {
constexpr std::uint8_t kStatusUpstreamConnected = 0x01;
constexpr std::uint8_t kStatusTwin = 0x02;
constexpr std::uint8_t kStatusBackfill = 0x04;
}  // namespace

std::optional<DecodeError> validate(const PipelineStatus& status) noexcept {
  if (status.upstream_lag_us < -1 || status.sent_time_us <= 0 || status.log_oldest_time_us < 0 ||
      status.log_newest_time_us < 0) {
    return DecodeError::invalid_value;
  }
  if (status.backfill_repos_done > status.backfill_repos_total ||
      status.backfill_repos_failed > status.backfill_repos_total - status.backfill_repos_done) {
    return DecodeError::invalid_value;
  }
  return std::nullopt;
}

std::array<std::uint8_t, kPipelineStatusSize> encode_pipeline_status(
    const PipelineStatus& status) noexcept {
  detail::require_valid(validate(status), "encode_pipeline_status: invalid status");
  std::array<std::uint8_t, kPipelineStatusSize> out{};
  detail::Writer writer(out);
  writer.header(MessageType::pipeline_status);
  writer.u8(static_cast<std::uint8_t>((status.upstream_connected ? kStatusUpstreamConnected : 0) |
                                      (status.twin ? kStatusTwin : 0) |
                                      (status.backfill ? kStatusBackfill : 0)));
  writer.i64(status.upstream_lag_us);
  writer.u64(status.frames_received);
  writer.u64(status.events_stored);
  writer.i64(status.log_oldest_time_us);
  writer.i64(status.log_newest_time_us);
  writer.u64(status.compacted_records);
  writer.u64(status.backfill_repos_done);
  writer.u64(status.backfill_repos_total);
  writer.u64(status.backfill_repos_failed);
  writer.u64(status.backfill_records_applied);
  writer.i64(status.sent_time_us);
  writer.finish();
  return out;
}

DecodeResult<PipelineStatus> decode_pipeline_status(std::span<const std::uint8_t> body) noexcept {
  detail::Reader reader(body);
  reader.header(MessageType::pipeline_status);
  PipelineStatus status;
  const std::uint8_t flags = reader.u8();
  status.upstream_connected = (flags & kStatusUpstreamConnected) != 0;
  status.twin = (flags & kStatusTwin) != 0;
  status.backfill = (flags & kStatusBackfill) != 0;
  status.upstream_lag_us = reader.i64();
  status.frames_received = reader.u64();
  status.events_stored = reader.u64();
  status.log_oldest_time_us = reader.i64();
  status.log_newest_time_us = reader.i64();
  status.compacted_records = reader.u64();
  status.backfill_repos_done = reader.u64();
  status.backfill_repos_total = reader.u64();
  status.backfill_repos_failed = reader.u64();
  status.backfill_records_applied = reader.u64();
  status.sent_time_us = reader.i64();
  if (!reader.finish()) return reader.error();
  if ((flags & ~(kStatusUpstreamConnected | kStatusTwin | kStatusBackfill)) != 0) {
    return DecodeError::invalid_value;
  }
  if (const auto error = validate(status)) return *error;
  return status;
}

std::vector<std::uint8_t> encode_state_info(const StateInfo& info) {
  detail::require_valid(validate(info), "encode_state_info: invalid state info");
  std::vector<std::uint8_t> out(2 + 8 + 4 + info.compacted.size() + 4 + info.building.size());
  detail::Writer writer(out);
  writer.header(MessageType::state_info);
  writer.i64(info.tombstone_horizon_us);
  writer.sized_text(info.compacted);
  writer.sized_text(info.building);
  writer.finish();
  return out;
}

DecodeResult<std::vector<EventView>> decode_event_batch(std::span<const std::uint8_t> body) {
  detail::Reader reader(body);
  reader.header(MessageType::event_batch);
  const std::uint32_t count = reader.count(kMaxEventsPerMessage, kEventFixedSize);
  std::vector<EventView> events;
  if (reader.ok()) events.reserve(count);
  for (std::uint32_t i = 0; i < count && reader.ok(); ++i) {
    events.push_back(detail::read_event(reader));
  }
  if (!reader.finish()) return reader.error();
  if (const auto error = validate_event_batch(events)) return *error;
  return events;
}

DecodeResult<Heartbeat> decode_heartbeat(std::span<const std::uint8_t> body) noexcept {
  detail::Reader reader(body);
  reader.header(MessageType::heartbeat);
  Heartbeat heartbeat;
  heartbeat.newest_time_us = reader.i64();
  heartbeat.oldest_time_us = reader.i64();
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(heartbeat)) return *error;
  return heartbeat;
}

DecodeResult<StateInfo> decode_state_info(std::span<const std::uint8_t> body) noexcept {
  detail::Reader reader(body);
  reader.header(MessageType::state_info);
  StateInfo info;
  info.tombstone_horizon_us = reader.i64();
  info.compacted = reader.sized_text(kMaxCompactedSetBytes);
  info.building = reader.sized_text(kMaxCompactedSetBytes);
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(info)) return *error;
  return info;
}

}  // namespace jetstream::proto
