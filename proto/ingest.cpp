#include "proto/ingest.hpp"

#include "proto/detail/codec.hpp"

namespace jetstream::proto {

std::optional<DecodeError> validate(const FrameHeader& header) noexcept {
  if (header.epoch == 0 || header.ingest_seq == 0 || header.resume_id == 0) {
    return DecodeError::invalid_value;
  }
  if (header.upstream_seq < 0) return DecodeError::invalid_value;
  if (header.frame_size > kMaxUpstreamFrameBytes) return DecodeError::limit_exceeded;
  return std::nullopt;
}

std::optional<DecodeError> validate(const Status& status) noexcept {
  if (status.epoch == 0 || status.last_upstream_seq < 0) return DecodeError::invalid_value;
  return std::nullopt;
}

std::optional<DecodeError> validate(const Resume& resume) noexcept {
  if (resume.resume_id == 0 || resume.cursor < kLiveCursor) return DecodeError::invalid_value;
  return std::nullopt;
}

std::array<std::uint8_t, kFrameHeaderSize> encode_frame_header(const FrameHeader& header) noexcept {
  detail::require_valid(validate(header), "encode_frame_header: invalid header");
  std::array<std::uint8_t, kFrameHeaderSize> out{};
  detail::Writer writer(out);
  writer.header(MessageType::frame);
  writer.u8(header.stream_start ? kFrameFlagStreamStart : 0);
  writer.u64(header.epoch);
  writer.u64(header.ingest_seq);
  writer.u64(header.resume_id);
  writer.i64(header.upstream_seq);
  writer.i64(header.receive_time_us);
  writer.u32(header.frame_size);
  writer.finish();
  return out;
}

std::array<std::uint8_t, kStatusSize> encode_status(const Status& status) noexcept {
  detail::require_valid(validate(status), "encode_status: invalid status");
  std::array<std::uint8_t, kStatusSize> out{};
  detail::Writer writer(out);
  writer.header(MessageType::status);
  writer.boolean(status.connected);
  writer.u64(status.epoch);
  writer.u64(status.last_ingest_seq);
  writer.u64(status.resume_id);
  writer.i64(status.last_upstream_seq);
  writer.i64(status.sent_time_us);
  writer.finish();
  return out;
}

std::array<std::uint8_t, kResumeSize> encode_resume(const Resume& resume) noexcept {
  detail::require_valid(validate(resume), "encode_resume: invalid resume");
  std::array<std::uint8_t, kResumeSize> out{};
  detail::Writer writer(out);
  writer.header(MessageType::resume);
  writer.u64(resume.resume_id);
  writer.u64(resume.seen_epoch);
  writer.i64(resume.cursor);
  writer.finish();
  return out;
}

DecodeResult<FrameHeader> decode_frame_header(std::span<const std::uint8_t> header_part) noexcept {
  detail::Reader reader(header_part);
  reader.header(MessageType::frame);
  FrameHeader header;
  const std::uint8_t flags = reader.u8();
  header.stream_start = (flags & kFrameFlagStreamStart) != 0;
  header.epoch = reader.u64();
  header.ingest_seq = reader.u64();
  header.resume_id = reader.u64();
  header.upstream_seq = reader.i64();
  header.receive_time_us = reader.i64();
  header.frame_size = reader.u32();
  if (!reader.finish()) return reader.error();
  if ((flags & ~kFrameFlagStreamStart) != 0) return DecodeError::invalid_value;
  if (const auto error = validate(header)) return *error;
  return header;
}

DecodeResult<FrameView> decode_frame(std::span<const std::uint8_t> header_part,
                                     std::span<const std::uint8_t> frame_part) noexcept {
  auto header = decode_frame_header(header_part);
  if (!header) return header.error();
  if (frame_part.size() < header->frame_size) return DecodeError::truncated;
  if (frame_part.size() > header->frame_size) return DecodeError::trailing_bytes;
  return FrameView{*header, frame_part};
}

DecodeResult<Status> decode_status(std::span<const std::uint8_t> body) noexcept {
  detail::Reader reader(body);
  reader.header(MessageType::status);
  Status status;
  status.connected = reader.boolean();
  status.epoch = reader.u64();
  status.last_ingest_seq = reader.u64();
  status.resume_id = reader.u64();
  status.last_upstream_seq = reader.i64();
  status.sent_time_us = reader.i64();
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(status)) return *error;
  return status;
}

DecodeResult<Resume> decode_resume(std::span<const std::uint8_t> body) noexcept {
  detail::Reader reader(body);
  reader.header(MessageType::resume);
  Resume resume;
  resume.resume_id = reader.u64();
  resume.seen_epoch = reader.u64();
  resume.cursor = reader.i64();
  if (!reader.finish()) return reader.error();
  if (const auto error = validate(resume)) return *error;
  return resume;
}

}  // namespace jetstream::proto
