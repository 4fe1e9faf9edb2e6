// What a client session needs from its connection: queue shared frames, close, and tell how much
// is still queued. The websocket connection implements it; tests use a recorder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "services/fanout/client_connection.hpp"

namespace jetstream::fanout {

/// A reference to bytes of a complete websocket frame that many clients share; who keeps the bytes
/// alive is SharedFrame's rule (client_connection.hpp), stated there once.
using OutboundFrame = SharedFrame;

class ClientSink {
 public:
  virtual ~ClientSink() = default;
  /// Queues frames behind what is already queued. Thread-safe; never blocks.
  virtual void send(std::vector<OutboundFrame> frames) = 0;
  /// Sends a close frame after the queued data, then ends the connection. Thread-safe.
  virtual void close(std::uint16_t code, std::string reason) = 0;
  /// Bytes accepted by send() and not yet written to the socket.
  virtual std::uint64_t queued_bytes() const = 0;
  /// Bytes written to the socket so far (progress for the slow-client rule).
  virtual std::uint64_t written_bytes() const = 0;
};

}  // namespace jetstream::fanout
