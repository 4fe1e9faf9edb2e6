#include "proto/backfill.hpp"

#include <algorithm>

#include "proto/detail/codec.hpp"
#include "proto/events.hpp"

namespace jetstream::proto {

bool operator==(const BackfillRecordView& a, const BackfillRecordView& b) noexcept {
  return a.collection == b.collection && a.rkey == b.rkey && std::ranges::equal(a.cid, b.cid) &&
         std::ranges::equal(a.record, b.record);
}

std::string_view to_string(BatchOutcome outcome) noexcept {
  switch (outcome) {
    case BatchOutcome::stored: return "stored";
    case BatchOutcome::rejected: return "rejected";
    case BatchOutcome::busy: return "busy";
  }
  return "unknown";
}

namespace {

/// Bytes of a record with every field empty: four u32 lengths.
constexpr std::size_t kRecordFixedSize = 4 * 4;
constexpr std::uint8_t kLastFlag = 0x01;

}  // namespace

std::optional<DecodeError> validate(const RepoBatchView& batch) noexcept {
  if (batch.batch_id == 0 || batch.did.empty() || batch.rev.empty()) {
    return DecodeError::invalid_value;
  }
  if (batch.did.size() > kMaxStringBytes || batch.rev.size() > kMaxRevBytes ||
      batch.collections.size() > kMaxCompactedSetBytes ||
      batch.records.size() > kMaxRecordsPerBatch) {
    return DecodeError::limit_exceeded;
  }
  for (const auto& record : batch.records) {
    if (record.collection.empty() || record.rkey.empty() || record.cid.empty() ||
        record.record.empty()) {
      return DecodeError::invalid_value;
    }
    if (record.collection.size() > kMaxStringBytes || record.rkey.size() > kMaxStringBytes ||
        record.cid.size() > kMaxCidBytes || record.record.size() > kMaxPayloadBytes) {
      return DecodeError::limit_exceeded;
    }
  }
  return std::nullopt;
}

std::optional<DecodeError> validate(const BatchAck& ack) noexcept {
  if (ack.batch_id == 0) return DecodeError::invalid_value;
  if (static_cast<std::uint8_t>(ack.outcome) > static_cast<std::uint8_t>(BatchOutcome::busy)) {
    return DecodeError::invalid_value;
  }
  return std::nullopt;
}

std::size_t repo_batch_size(const RepoBatchView& batch) noexcept {
  std::size_t size = 2 + 8 + 1 + detail::sized_bytes(batch.did.size()) +
                     detail::sized_bytes(batch.rev.size()) +
                     detail::sized_bytes(batch.collections.size()) + 4;
  for (const auto& record : batch.records) {
    size += kRecordFixedSize + record.collection.size() + record.rkey.size() + record.cid.size() +
            record.record.size();
  }
  return size;
}

std::vector<std::uint8_t> encode_repo_batch(const RepoBatchView& batch) {
  detail::require_valid(validate(batch), "encode_repo_batch: invalid batch");
  std::vector<std::uint8_t> out(repo_batch_size(batch));
  detail::Writer writer(out);
  writer.header(MessageType::repo_batch);
  writer.u64(batch.batch_id);
  writer.u8(batch.last ? kLastFlag : 0);
  writer.sized_text(batch.did);
  writer.sized_text(batch.rev);
  writer.sized_text(batch.collections);
  writer.u32(static_cast<std::uint32_t>(batch.records.size()));
  for (const auto& record : batch.records) {
    writer.sized_text(record.collection);
    writer.sized_text(record.rkey);
    writer.sized(record.cid);
    writer.sized(record.record);
  }
  writer.finish();
  return out;
}

std::array<std::uint8_t, kBatchAckSize> encode_batch_ack(const BatchAck& ack) noexcept {
  detail::require_valid(validate(ack), "encode_batch_ack: invalid ack");
  std::array<std::uint8_t, kBatchAckSize> out{};
  detail::Writer writer(out);
  writer.header(MessageType::batch_ack);
  writer.u64(ack.batch_id);
  writer.u8(static_cast<std::uint8_t>(ack.outcome));
  writer.u32(ack.applied);
  writer.u32(ack.unchanged);
  writer.u32(ack.tombstoned);
  writer.u32(ack.invalid);
  writer.finish();
  return out;
}

DecodeResult<RepoBatchView> decode_repo_batch(std::span<const std::uint8_t> body) {
  detail::Reader reader(body);
  reader.header(MessageType::repo_batch);
  RepoBatchView batch;
  batch.batch_id = reader.u64();
  const std::uint8_t flags = reader.u8();
  if (reader.ok() && (flags & ~kLastFlag) != 0) return DecodeError::invalid_value;
  batch.last = (flags & kLastFlag) != 0;
  batch.did = reader.sized_text(kMaxStringBytes);
  batch.rev = reader.sized_text(kMaxRevBytes);
  batch.collections = reader.sized_text(kMaxCompactedSetBytes);
  const std::uint32_t count = reader.count(kMaxRecordsPerBatch, kRecordFixedSize);
  if (reader.ok()) batch.records.reserve(count);
  for (std::uint32_t i = 0; i < count && reader.ok(); ++i) {
    BackfillRecordView& record = batch.records.emplace_back();
    record.collection = reader.sized_text(kMaxStringBytes);
    record.rkey = reader.sized_text(kMaxStringBytes);
    record.cid = reader.sized(kMaxCidBytes);
    record.record = reader.sized(kMaxPayloadBytes);
  }
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(batch)) return *error;
  return batch;
}

DecodeResult<BatchAck> decode_batch_ack(std::span<const std::uint8_t> body) noexcept {
  detail::Reader reader(body);
  reader.header(MessageType::batch_ack);
  BatchAck ack;
  ack.batch_id = reader.u64();
  const std::uint8_t outcome = reader.u8();
  ack.outcome = static_cast<BatchOutcome>(outcome);
  ack.applied = reader.u32();
  ack.unchanged = reader.u32();
  ack.tombstoned = reader.u32();
  ack.invalid = reader.u32();
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(ack)) return *error;
  return ack;
}

std::string_view to_string(ResyncReason reason) noexcept {
  switch (reason) {
    case ResyncReason::sync: return "sync";
    case ResyncReason::account_active: return "account_active";
    case ResyncReason::identity: return "identity";
  }
  return "unknown";
}

namespace {

std::optional<DecodeError> validate_did(const std::string& did) noexcept {
  if (did.empty()) return DecodeError::invalid_value;
  if (did.size() > kMaxStringBytes) return DecodeError::limit_exceeded;
  return std::nullopt;
}

bool known_reason(std::uint8_t reason) noexcept { return reason >= 1 && reason <= 3; }

}  // namespace

std::optional<DecodeError> validate(const ResyncPoll& poll) noexcept {
  if (poll.max == 0) return DecodeError::invalid_value;
  if (poll.max > kMaxResyncs || poll.acked.size() > kMaxResyncs) return DecodeError::limit_exceeded;
  for (const auto& did : poll.acked) {
    if (const auto error = validate_did(did)) return error;
  }
  return std::nullopt;
}

std::optional<DecodeError> validate(const ResyncList& list) noexcept {
  if (list.dids.size() > kMaxResyncs) return DecodeError::limit_exceeded;
  for (const auto& [did, reason] : list.dids) {
    if (const auto error = validate_did(did)) return error;
    if (!known_reason(static_cast<std::uint8_t>(reason))) return DecodeError::invalid_value;
  }
  return std::nullopt;
}

std::vector<std::uint8_t> encode_resync_poll(const ResyncPoll& poll) {
  detail::require_valid(validate(poll), "encode_resync_poll: invalid poll");
  std::size_t size = 2 + 4 + 4;
  for (const auto& did : poll.acked) size += detail::sized_bytes(did.size());
  std::vector<std::uint8_t> out(size);
  detail::Writer writer(out);
  writer.header(MessageType::resync_poll);
  writer.u32(poll.max);
  writer.u32(static_cast<std::uint32_t>(poll.acked.size()));
  for (const auto& did : poll.acked) writer.sized_text(did);
  writer.finish();
  return out;
}

std::vector<std::uint8_t> encode_resync_list(const ResyncList& list) {
  detail::require_valid(validate(list), "encode_resync_list: invalid list");
  std::size_t size = 2 + 4;
  for (const auto& [did, reason] : list.dids) size += detail::sized_bytes(did.size()) + 1;
  std::vector<std::uint8_t> out(size);
  detail::Writer writer(out);
  writer.header(MessageType::resync_list);
  writer.u32(static_cast<std::uint32_t>(list.dids.size()));
  for (const auto& [did, reason] : list.dids) {
    writer.sized_text(did);
    writer.u8(static_cast<std::uint8_t>(reason));
  }
  writer.finish();
  return out;
}

DecodeResult<ResyncPoll> decode_resync_poll(std::span<const std::uint8_t> body) {
  detail::Reader reader(body);
  reader.header(MessageType::resync_poll);
  ResyncPoll poll;
  poll.max = reader.u32();
  const std::uint32_t count = reader.count(kMaxResyncs, detail::sized_bytes(0));
  if (reader.ok()) poll.acked.reserve(count);
  for (std::uint32_t i = 0; i < count && reader.ok(); ++i) {
    poll.acked.emplace_back(reader.sized_text(kMaxStringBytes));
  }
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(poll)) return *error;
  return poll;
}

DecodeResult<ResyncList> decode_resync_list(std::span<const std::uint8_t> body) {
  detail::Reader reader(body);
  reader.header(MessageType::resync_list);
  ResyncList list;
  const std::uint32_t count = reader.count(kMaxResyncs, detail::sized_bytes(0) + 1);
  if (reader.ok()) list.dids.reserve(count);
  for (std::uint32_t i = 0; i < count && reader.ok(); ++i) {
    std::string did(reader.sized_text(kMaxStringBytes));
    const std::uint8_t reason = reader.u8();
    list.dids.emplace_back(std::move(did), static_cast<ResyncReason>(reason));
  }
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(list)) return *error;
  return list;
}

std::optional<DecodeError> validate(const BackfillProgress& progress) noexcept {
  if (progress.repos_done > progress.repos_total ||
      progress.repos_failed > progress.repos_total - progress.repos_done) {
    return DecodeError::invalid_value;
  }
  return std::nullopt;
}

std::array<std::uint8_t, kBackfillProgressSize> encode_backfill_progress(
    const BackfillProgress& progress) noexcept {
  detail::require_valid(validate(progress), "encode_backfill_progress: invalid progress");
  std::array<std::uint8_t, kBackfillProgressSize> out{};
  detail::Writer writer(out);
  writer.header(MessageType::backfill_progress);
  writer.u64(progress.repos_done);
  writer.u64(progress.repos_total);
  writer.u64(progress.repos_failed);
  writer.u64(progress.records_sent);
  writer.finish();
  return out;
}

DecodeResult<BackfillProgress> decode_backfill_progress(
    std::span<const std::uint8_t> body) noexcept {
  detail::Reader reader(body);
  reader.header(MessageType::backfill_progress);
  BackfillProgress progress;
  progress.repos_done = reader.u64();
  progress.repos_total = reader.u64();
  progress.repos_failed = reader.u64();
  progress.records_sent = reader.u64();
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(progress)) return *error;
  return progress;
}

}  // namespace jetstream::proto
