#include "services/decode/ingest_tracker.hpp"

namespace jetstream::decode {

std::string_view to_string(FrameVerdict verdict) {
  switch (verdict) {
    case FrameVerdict::process: return "process";
    case FrameVerdict::duplicate: return "duplicate";
    case FrameVerdict::old_stream: return "old_stream";
    case FrameVerdict::gap: return "gap";
  }
  return "unknown";
}

IngestTracker::IngestTracker(std::int64_t durable_cursor, std::uint64_t first_resume_id)
    : durable_cursor_(durable_cursor),
      highest_accepted_seq_(durable_cursor),
      next_resume_id_(first_resume_id == 0 ? 1 : first_resume_id) {}

proto::Resume IngestTracker::start_sync(std::uint64_t epoch) {
  state_ = State::syncing;
  pending_resume_ = proto::Resume{next_resume_id_++, epoch, durable_cursor_};
  if (next_resume_id_ == 0) next_resume_id_ = 1;  // ids are nonzero
  ++resumes_requested_;
  accepted_at_.reset();
  // highest_accepted_seq_ stays: frames accepted but not yet stored are still in the pipeline
  // and will be stored, so when the resumed stream repeats them they are duplicates.
  return pending_resume_;
}

FrameVerdict IngestTracker::on_frame(const proto::FrameHeader& header,
                                     std::optional<proto::Resume>& resume) {
  switch (state_) {
    case State::waiting_for_status: return FrameVerdict::old_stream;
    case State::syncing:
      if (header.resume_id != pending_resume_.resume_id) return FrameVerdict::old_stream;
      if (!header.stream_start) {
        resume = start_sync(header.epoch);  // the stream's first frame was lost
        return FrameVerdict::gap;
      }
      state_ = State::streaming;
      epoch_ = header.epoch;
      next_ingest_seq_ = header.ingest_seq;
      break;
    case State::streaming:
      if (header.epoch != epoch_ || header.ingest_seq > next_ingest_seq_) {
        resume = start_sync(header.epoch);
        return FrameVerdict::gap;
      }
      if (header.ingest_seq < next_ingest_seq_) return FrameVerdict::old_stream;
      break;
  }
  ++next_ingest_seq_;
  if (header.upstream_seq != 0) {
    if (header.upstream_seq <= highest_accepted_seq_) return FrameVerdict::duplicate;
    highest_accepted_seq_ = header.upstream_seq;
  }
  return FrameVerdict::process;
}

void IngestTracker::on_status(const proto::Status& status, std::optional<proto::Resume>& resume) {
  switch (state_) {
    case State::waiting_for_status: resume = start_sync(status.epoch); return;
    case State::syncing:
      if (status.resume_id != pending_resume_.resume_id) {
        resume = pending_resume_;  // not (yet) accepted: send the same resume again
        return;
      }
      // The first status naming our resume is published when ingest accepts it, before the
      // stream's first frame: it marks where the stream starts. A later status of the same epoch
      // that is further along, while the start has not arrived, means the start was lost.
      if (!accepted_at_) {
        accepted_at_ = Position{status.epoch, status.last_ingest_seq};
      } else if (status.epoch != accepted_at_->epoch ||
                 status.last_ingest_seq > accepted_at_->ingest_seq) {
        resume = start_sync(status.epoch);
      }
      return;
    case State::streaming:
      if (status.epoch != epoch_ || status.last_ingest_seq >= next_ingest_seq_) {
        resume = start_sync(status.epoch);  // ingest restarted, or the tail was lost
      }
      return;
  }
}

}  // namespace jetstream::decode
