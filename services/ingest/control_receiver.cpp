#include "services/ingest/control_receiver.hpp"

#include <chrono>
#include <span>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/log/log.hpp"
#include "services/ingest/ingest_probe.hpp"
#include "services/ingest/upstream_link.hpp"

namespace jetstream::ingest {

namespace {

constexpr std::chrono::milliseconds kPollInterval{100};
constexpr std::chrono::seconds kRejectLogInterval{10};

std::span<const std::uint8_t> bytes_of(const zmq::message_t& message) {
  return {static_cast<const std::uint8_t*>(message.data()), message.size()};
}

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
  std::vector<zmq::message_t> parts;
  while (!stopping_.load()) {
    zmq::poll(&item, 1, kPollInterval);
    if ((item.revents & ZMQ_POLLIN) == 0) continue;
    parts.clear();
    if (!zmq::recv_multipart(*socket_, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
      continue;
    }
    const auto reject = [&](std::string_view message, proto::DecodeError reason) {
      probe_.record_rejected(message, reason);
      log::warn_every(kRejectLogInterval, "control-rejected", "rejected control message",
                      {{"message", message}, {"reason", proto::to_string(reason)}});
    };
    const auto type = proto::decode_topic(bytes_of(parts.front()));
    if (!type) {
      reject("unknown", type.error());
      continue;
    }
    if (*type != proto::MessageType::resume) {
      reject(proto::to_string(*type), proto::DecodeError::unknown_topic);
      continue;
    }
    if (parts.size() != proto::part_count(*type)) {
      reject(proto::to_string(*type), proto::DecodeError::wrong_part_count);
      continue;
    }
    const auto resume = proto::decode_resume(bytes_of(parts[1]));
    if (!resume) {
      reject(proto::to_string(*type), resume.error());
      continue;
    }
    on_resume_(*resume);
  }
}

}  // namespace jetstream::ingest
