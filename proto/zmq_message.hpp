// The thin ZeroMQ layer over the wire contracts: every service receives inter-service messages
// through `receive_message`, which checks what README.md §2 says a receiver checks before any
// body is decoded — the topic part is exactly one known letter, and the message has
// `part_count(type)` parts (not counting the routing id a ROUTER prepends). So a message with a
// wrong number of parts is `wrong_part_count` everywhere, never mistaken for another error.
//
// This is the only part of proto that links ZeroMQ (target `jetstream_proto_zmq`); the codecs
// themselves stay byte-buffer only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "proto/wire.hpp"

namespace jetstream::proto {

/// The bytes of one ZeroMQ part (a view; the part must outlive it).
inline std::span<const std::uint8_t> bytes_of(const zmq::message_t& part) noexcept {
  return {static_cast<const std::uint8_t*>(part.data()), part.size()};
}

/// Whether a socket's messages start with a routing id (a ROUTER receives `[id][topic][body…]`).
enum class Routing : std::uint8_t { none, routed };

/// One received multipart message, checked against the spec. Reused from message to message
/// (its part vector keeps its capacity).
class ReceivedMessage {
 public:
  /// The message's type, or why it cannot be used: `unknown_topic` (no topic part, or not
  /// exactly one known letter) or `wrong_part_count`.
  const DecodeResult<MessageType>& type() const noexcept { return type_; }
  /// The `message` label of `jetstream_proto_rejected_total`: the type's name when the topic was
  /// known, otherwise `channel` (the socket's name, e.g. `events`).
  std::string_view label(std::string_view channel) const noexcept;
  /// Body part `i` (0 = the first part after the topic). Only when `type()` holds a type.
  std::span<const std::uint8_t> body(std::size_t i = 0) const noexcept {
    return bytes_of(parts_[first_body_ + i]);
  }
  /// Body part `i` itself, to take its buffer without a copy.
  zmq::message_t& body_part(std::size_t i = 0) noexcept { return parts_[first_body_ + i]; }
  /// The routing id of a `Routing::routed` message.
  zmq::message_t& routing_id() noexcept { return parts_.front(); }

 private:
  friend bool receive_message(zmq::socket_t& socket, ReceivedMessage& message, Routing routing);

  std::vector<zmq::message_t> parts_;
  std::size_t first_body_ = 0;
  DecodeResult<MessageType> type_{DecodeError::unknown_topic};
  std::optional<MessageType> topic_;  ///< the topic's type when it was readable
};

/// Receives one whole multipart message without blocking and checks its topic and part count.
/// False when no message was waiting (or the receive was interrupted); true otherwise, whether
/// the message passed the checks or not (see `message.type()`).
bool receive_message(zmq::socket_t& socket, ReceivedMessage& message,
                     Routing routing = Routing::none);

}  // namespace jetstream::proto
