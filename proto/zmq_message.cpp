#include "proto/zmq_message.hpp"

#include <iterator>
#include <zmq_addon.hpp>

namespace jetstream::proto {

std::string_view ReceivedMessage::label(std::string_view channel) const noexcept {
  if (type_) return to_string(type_.value());
  return topic_known_ ? to_string(static_cast<MessageType>(bytes_of(parts_[first_body_ - 1])[0]))
                      : channel;
}

bool receive_message(zmq::socket_t& socket, ReceivedMessage& message, Routing routing) {
  message.parts_.clear();
  if (!zmq::recv_multipart(socket, std::back_inserter(message.parts_), zmq::recv_flags::dontwait)) {
    return false;
  }
  const std::size_t topic_at = routing == Routing::routed ? 1 : 0;
  message.first_body_ = topic_at + 1;
  message.topic_known_ = false;
  if (message.parts_.size() <= topic_at) {
    message.type_ = DecodeError::unknown_topic;
    return true;
  }
  const auto type = decode_topic(bytes_of(message.parts_[topic_at]));
  if (!type) {
    message.type_ = type.error();
    return true;
  }
  message.topic_known_ = true;
  message.type_ = message.parts_.size() - topic_at == part_count(type.value())
                      ? type
                      : DecodeResult<MessageType>(DecodeError::wrong_part_count);
  return true;
}

}  // namespace jetstream::proto
