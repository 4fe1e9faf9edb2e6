// decode's side of the ingest ⇄ decode reliability rules (proto/README.md §5.1): which frames to
// process, which to drop, and when to ask ingest to resume from the durable cursor.
//
// Pure state machine: no sockets, no clock. The receiver thread owns one instance.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "proto/ingest.hpp"

namespace jetstream::decode {

enum class FrameVerdict : std::uint8_t {
  process,     ///< in order and new: decode it
  duplicate,   ///< in order, but its upstream seq was already accepted (after a resume)
  old_stream,  ///< belongs to a stream decode no longer follows
  gap,         ///< frames were lost; a resume was requested
};
std::string_view to_string(FrameVerdict verdict);

class IngestTracker {
 public:
  /// `durable_cursor`: upstream seq of the last stored frame, -1 when nothing is stored.
  /// `first_resume_id`: random nonzero, so a restarted decode never reuses ingest's last id.
  IngestTracker(std::int64_t durable_cursor, std::uint64_t first_resume_id);

  /// Classifies a frame. When it returns `gap` (or finds a lost stream start), `resume` is set to
  /// the message to send to ingest.
  FrameVerdict on_frame(const proto::FrameHeader& header, std::optional<proto::Resume>& resume);

  /// Applies a status; sets `resume` when ingest must be (re)told where to start.
  void on_status(const proto::Status& status, std::optional<proto::Resume>& resume);

  /// The durable cursor moved (events up to this upstream seq are stored).
  void set_durable_cursor(std::int64_t cursor) { durable_cursor_ = cursor; }

  bool streaming() const { return state_ == State::streaming; }
  /// Ingest follows decode's cursor: streaming, or the resume was accepted and no frame came yet
  /// (a quiet upstream). What /readyz reports.
  bool synced() const {
    return streaming() || (state_ == State::syncing && accepted_at_.has_value());
  }
  std::uint64_t resumes_requested() const { return resumes_requested_; }
  std::int64_t highest_accepted_seq() const { return highest_accepted_seq_; }

 private:
  enum class State : std::uint8_t { waiting_for_status, syncing, streaming };

  proto::Resume start_sync(std::uint64_t epoch);

  State state_ = State::waiting_for_status;
  std::int64_t durable_cursor_;
  std::int64_t highest_accepted_seq_;
  std::uint64_t next_resume_id_;
  proto::Resume pending_resume_{};  ///< the resume of the current sync
  std::uint64_t epoch_ = 0;         ///< streaming: the epoch followed
  std::uint64_t next_ingest_seq_ = 0;
  struct Position {
    std::uint64_t epoch;
    std::uint64_t ingest_seq;
  };
  std::optional<Position> accepted_at_;  ///< syncing: ingest's position when it accepted
  std::uint64_t resumes_requested_ = 0;
};

}  // namespace jetstream::decode
