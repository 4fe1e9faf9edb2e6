#include "services/decode/zmq_event_publisher.hpp"

namespace jetstream::decode {

ZmqEventPublisher::ZmqEventPublisher(zmq::context_t& context, const std::string& endpoint,
                                     int send_high_water_mark)
    : socket_(context, zmq::socket_type::pub) {
  socket_.set(zmq::sockopt::sndhwm, send_high_water_mark);
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind(endpoint);
}

void ZmqEventPublisher::publish_events(std::span<const proto::EventView> events) {
  zmq::message_t body(proto::event_batch_size(events));
  proto::encode_event_batch_into(events, {static_cast<std::uint8_t*>(body.data()), body.size()});
  const auto topic = proto::topic(proto::MessageType::event_batch);
  // PUB never blocks: a slow subscriber loses messages and repairs them from replay.
  socket_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  socket_.send(body, zmq::send_flags::none);
}

void ZmqEventPublisher::publish_heartbeat(const proto::Heartbeat& heartbeat) {
  const auto body = proto::encode_heartbeat(heartbeat);
  const auto topic = proto::topic(proto::MessageType::heartbeat);
  socket_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(body), zmq::send_flags::none);
}

void ZmqEventPublisher::publish_state_info(const proto::StateInfo& info) {
  const auto body = proto::encode_state_info(info);
  const auto topic = proto::topic(proto::MessageType::state_info);
  socket_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(body), zmq::send_flags::none);
}

void ZmqEventPublisher::publish_status(const proto::PipelineStatus& status) {
  const auto body = proto::encode_pipeline_status(status);
  const auto topic = proto::topic(proto::MessageType::pipeline_status);
  socket_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(body), zmq::send_flags::none);
}

std::string ZmqEventPublisher::endpoint() const { return socket_.get(zmq::sockopt::last_endpoint); }

}  // namespace jetstream::decode
