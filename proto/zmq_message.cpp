#include "proto/zmq_message.hpp"

#include <iterator>
#include <zmq_addon.hpp>

namespace jetstream::proto {

std::string_view ReceivedMessage::label(std::string_view channel) const noexcept {
  return topic_ ? to_string(*topic_) : channel;
}

bool receive_message(zmq::socket_t& socket, ReceivedMessage& message, Routing routing) {
  message.parts_.clear();
  if (!zmq::recv_multipart(socket, std::back_inserter(message.parts_), zmq::recv_flags::dontwait)) {
    return false;
  }
  const std::size_t topic_at = routing == Routing::routed ? 1 : 0;
  message.first_body_ = topic_at + 1;
  message.topic_.reset();
  if (message.parts_.size() <= topic_at) {
    message.type_ = DecodeError::unknown_topic;
    return true;
  }
  const auto type = decode_topic(bytes_of(message.parts_[topic_at]));
  if (!type) {
    message.type_ = type.error();
    return true;
  }
  message.topic_ = type.value();
  message.type_ = message.parts_.size() - topic_at == part_count(type.value())
                      ? type
                      : DecodeResult<MessageType>(DecodeError::wrong_part_count);
  return true;
}

}  // namespace jetstream::proto
