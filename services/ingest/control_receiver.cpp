#include "services/ingest/control_receiver.hpp"

#include <chrono>
#include <zmq.hpp>

#include "common/log/log.hpp"
#include "proto/zmq_message.hpp"
#include "services/ingest/ingest_probe.hpp"
#include "services/ingest/upstream_link.hpp"

namespace jetstream::ingest {

namespace {

constexpr std::chrono::milliseconds kPollInterval{100};
constexpr std::chrono::seconds kRejectLogInterval{10};

}  // namespace

ControlReceiver::ControlReceiver(zmq::context_t& context, const std::string& endpoint,
                                 IngestProbe& probe,
                                 std::function<void(const proto::Resume&)> on_resume)
    : socket_(std::make_unique<zmq::socket_t>(context, zmq::socket_type::pull)),
      probe_(probe),
      on_resume_(std::move(on_resume)) {
  socket_->set(zmq::sockopt::linger, 0);
  if (endpoint_wants_ipv6(endpoint)) socket_->set(zmq::sockopt::ipv6, 1);
  socket_->bind(endpoint);
  endpoint_ = socket_->get(zmq::sockopt::last_endpoint);
}

ControlReceiver::~ControlReceiver() { stop(); }

void ControlReceiver::start() {
  thread_ = std::thread([this] { run(); });
}

void ControlReceiver::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
  if (socket_) {
    socket_->close();
    socket_.reset();
  }
}

void ControlReceiver::run() {
  zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
  proto::ReceivedMessage message;
  while (!stopping_.load()) {
    zmq::poll(&item, 1, kPollInterval);
    if ((item.revents & ZMQ_POLLIN) == 0) continue;
    if (!proto::receive_message(*socket_, message)) continue;
    const auto reject = [&](proto::DecodeError reason) {
      const std::string_view label = message.label("control");
      probe_.record_rejected(label, reason);
      log::warn_every(kRejectLogInterval, "control-rejected", "rejected control message",
                      {{"message", label}, {"reason", proto::to_string(reason)}});
    };
    if (!message.type()) {
      reject(message.type().error());
      continue;
    }
    if (message.type().value() != proto::MessageType::resume) {
      reject(proto::DecodeError::wrong_type);
      continue;
    }
    const auto resume = proto::decode_resume(message.body());
    if (!resume) {
      reject(resume.error());
      continue;
    }
    on_resume_(*resume);
  }
}

}  // namespace jetstream::ingest
