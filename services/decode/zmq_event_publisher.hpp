// The PUB socket on which decode publishes event batches (topic E) and heartbeats (topic H).
// Owned by the event writer's thread.
#pragma once

#include <string>
#include <zmq.hpp>

#include "services/decode/event_sequencer.hpp"

namespace jetstream::decode {

class ZmqEventPublisher final : public EventPublisher {
 public:
  ZmqEventPublisher(zmq::context_t& context, const std::string& endpoint, int send_high_water_mark);
  void publish_events(std::span<const proto::EventView> events) override;
  void publish_heartbeat(const proto::Heartbeat& heartbeat) override;
  void publish_state_info(const proto::StateInfo& info) override;
  void publish_status(const proto::PipelineStatus& status) override;
  /// The bound endpoint with its real port (after binding to port 0).
  std::string endpoint() const;

 private:
  zmq::socket_t socket_;
};

}  // namespace jetstream::decode
