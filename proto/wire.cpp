#include "proto/wire.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace jetstream::proto {

std::string_view to_string(DecodeError error) noexcept {
  switch (error) {
    case DecodeError::truncated: return "truncated";
    case DecodeError::unknown_version: return "unknown_version";
    case DecodeError::wrong_type: return "wrong_type";
    case DecodeError::trailing_bytes: return "trailing_bytes";
    case DecodeError::limit_exceeded: return "limit_exceeded";
    case DecodeError::invalid_value: return "invalid_value";
    case DecodeError::unknown_topic: return "unknown_topic";
    case DecodeError::wrong_part_count: return "wrong_part_count";
  }
  return "unknown";
}

std::string_view to_string(MessageType type) noexcept {
  switch (type) {
    case MessageType::frame: return "frame";
    case MessageType::status: return "status";
    case MessageType::resume: return "resume";
    case MessageType::event_batch: return "event_batch";
    case MessageType::heartbeat: return "heartbeat";
    case MessageType::state_info: return "state_info";
    case MessageType::replay_request: return "replay_request";
    case MessageType::replay_page: return "replay_page";
    case MessageType::repo_batch: return "repo_batch";
    case MessageType::batch_ack: return "batch_ack";
    case MessageType::resync_poll: return "resync_poll";
    case MessageType::resync_list: return "resync_list";
    case MessageType::pipeline_status: return "pipeline_status";
    case MessageType::backfill_progress: return "backfill_progress";
  }
  return "unknown";
}

std::string_view topic(MessageType type) noexcept {
  switch (type) {
    case MessageType::frame: return "F";
    case MessageType::status: return "S";
    case MessageType::resume: return "R";
    case MessageType::event_batch: return "E";
    case MessageType::heartbeat: return "H";
    case MessageType::state_info: return "C";
    case MessageType::replay_request: return "Q";
    case MessageType::replay_page: return "P";
    case MessageType::repo_batch: return "B";
    case MessageType::batch_ack: return "A";
    case MessageType::resync_poll: return "N";
    case MessageType::resync_list: return "K";
    case MessageType::pipeline_status: return "T";
    case MessageType::backfill_progress: return "G";
  }
  return {};
}

std::size_t part_count(MessageType type) noexcept { return type == MessageType::frame ? 3 : 2; }

DecodeResult<MessageType> decode_topic(std::span<const std::uint8_t> topic_frame) noexcept {
  if (topic_frame.size() != 1) return DecodeError::unknown_topic;
  const auto type = static_cast<MessageType>(topic_frame[0]);
  switch (type) {
    case MessageType::frame:
    case MessageType::status:
    case MessageType::resume:
    case MessageType::event_batch:
    case MessageType::heartbeat:
    case MessageType::state_info:
    case MessageType::replay_request:
    case MessageType::replay_page:
    case MessageType::repo_batch:
    case MessageType::batch_ack:
    case MessageType::resync_poll:
    case MessageType::resync_list:
    case MessageType::pipeline_status:
    case MessageType::backfill_progress: return type;
  }
  return DecodeError::unknown_topic;
}

namespace {

class ProtoCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "jetstream.proto"; }
  std::string message(int value) const override {
    return std::string(to_string(static_cast<DecodeError>(value)));
  }
};

}  // namespace

const std::error_category& proto_category() noexcept {
  static const ProtoCategory category;
  return category;
}

std::error_code make_error_code(DecodeError error) noexcept {
  return {static_cast<int>(error), proto_category()};
}

namespace detail {

void contract_violation(const char* what) noexcept {
  std::fprintf(stderr, "jetstream::proto: %s\n", what);
  std::abort();
}

}  // namespace detail
}  // namespace jetstream::proto
