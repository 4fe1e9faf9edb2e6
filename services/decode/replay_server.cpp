#include "services/decode/replay_server.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <zmq_addon.hpp>

#include "common/log/log.hpp"
#include "proto/zmq_message.hpp"

namespace jetstream::decode {
namespace {

std::string unique_inproc(const char* what, const void* owner) {
  return "inproc://replay-" + std::string(what) + "-" +
         std::to_string(reinterpret_cast<std::uintptr_t>(owner));
}

}  // namespace

ReplayServer::ReplayServer(zmq::context_t& context, std::string endpoint, const EventStore& store,
                           DecodeProbe& probe, std::size_t readers)
    : context_(context),
      endpoint_(std::move(endpoint)),
      backend_endpoint_(unique_inproc("readers", this)),
      control_endpoint_(unique_inproc("control", this)),
      store_(store),
      probe_(probe),
      reader_count_(readers == 0 ? 1 : readers),
      frontend_(context, zmq::socket_type::router) {
  frontend_.set(zmq::sockopt::linger, 0);
  frontend_.set(zmq::sockopt::router_mandatory, 0);  // a vanished fanout's page is dropped
  frontend_.bind(endpoint_);
  bound_endpoint_ = frontend_.get(zmq::sockopt::last_endpoint);
}

ReplayServer::~ReplayServer() { stop(); }

void ReplayServer::start() {
  // The backend must be bound before readers connect to an inproc endpoint... and both before
  // the proxy runs; the proxy thread owns the frontend from here on.
  zmq::socket_t backend(context_, zmq::socket_type::dealer);
  backend.set(zmq::sockopt::linger, 0);
  backend.bind(backend_endpoint_);
  zmq::socket_t control(context_, zmq::socket_type::pair);
  control.bind(control_endpoint_);
  for (std::size_t i = 0; i < reader_count_; ++i) {
    readers_.emplace_back([this, i] { run_reader(i); });
  }
  proxy_ =
      std::thread([this, backend = std::move(backend), control = std::move(control)]() mutable {
        zmq::proxy_steerable(frontend_, backend, zmq::socket_ref(), control);
      });
}

void ReplayServer::stop() {
  if (stopping_.exchange(true)) return;
  if (proxy_.joinable()) {
    // PAIR over inproc delivers reliably once connected: one TERMINATE ends the proxy.
    zmq::socket_t control(context_, zmq::socket_type::pair);
    control.connect(control_endpoint_);
    control.send(zmq::str_buffer("TERMINATE"), zmq::send_flags::none);
    proxy_.join();
  }
  for (auto& reader : readers_) {
    if (reader.joinable()) reader.join();
  }
}

void ReplayServer::run_reader(std::size_t index) {
  // Replay and snapshot pages are catch-up: on a busy machine they get the CPU that decoding,
  // storing and publishing the live stream leave (Linux niceness is per thread). Measured by
  // state_bench section 4 (docs/decisions.md "Live first").
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10) != 0) {
    log::warn("replay reader keeps normal CPU priority", {{"errno", errno}});
  }
  zmq::socket_t socket(context_, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(backend_endpoint_);
  ReplayPageBuffer buffer;
  proto::ReceivedMessage message;
  while (!stopping_.load(std::memory_order_relaxed)) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
    // [routing id][topic Q][request]: the ROUTER prepends the fanout's identity.
    if (!proto::receive_message(socket, message, proto::Routing::routed)) continue;
    if (!message.type()) {
      // Not a message at all (no topic, wrong part count): nothing to answer to.
      probe_.record_proto_rejected(message.label("replay"),
                                   proto::to_string(message.type().error()));
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    const auto body = message.body();
    const auto request =
        message.type().value() == proto::MessageType::replay_request
            ? proto::decode_replay_request(body)
            : proto::DecodeResult<proto::ReplayRequest>(proto::DecodeError::wrong_type);
    std::vector<std::uint8_t> error_page;
    zmq::message_t page_message;
    std::size_t events = 0;
    proto::ReplayStatus status;
    if (!request) {
      probe_.record_proto_rejected("replay_request", proto::to_string(request.error()));
      proto::ReplayPageView page;
      page.request_id = proto::peek_request_id(body).value_or(0);
      page.status = request.error() == proto::DecodeError::unknown_version
                        ? proto::ReplayStatus::unsupported_version
                        : proto::ReplayStatus::bad_request;
      page.done = true;
      status = page.status;
      page_message = zmq::message_t(proto::replay_page_size(page));
      proto::encode_replay_page_into(
          page, {static_cast<std::uint8_t*>(page_message.data()), page_message.size()});
    } else {
      status = store_.read_page(request.value(), buffer);
      const proto::ReplayPageView& page = buffer.page();
      events = page.events.size();
      page_message = zmq::message_t(proto::replay_page_size(page));
      proto::encode_replay_page_into(
          page, {static_cast<std::uint8_t*>(page_message.data()), page_message.size()});
    }
    const auto topic_out = proto::topic(proto::MessageType::replay_page);
    socket.send(message.routing_id(), zmq::send_flags::sndmore);
    socket.send(zmq::buffer(topic_out), zmq::send_flags::sndmore);
    socket.send(page_message, zmq::send_flags::none);
    probe_.record_replay_page(
        proto::to_string(status), events,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  (void)index;
}

}  // namespace jetstream::decode
