#include "services/fanout/replay_client.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <utility>

#include "common/log/log.hpp"
#include "proto/wire.hpp"
#include "proto/zmq_message.hpp"

namespace jetstream::fanout {

ReplayClient::ReplayClient(zmq::context_t& context, ReplayClientOptions options,
                           RejectHandler on_rejected)
    : context_(context),
      options_(std::move(options)),
      on_rejected_(std::move(on_rejected)),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

ReplayClient::~ReplayClient() {
  close();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ReplayClient::submit(proto::ReplayRequest request, PageHandler on_page) {
  {
    std::lock_guard lock(submissions_mutex_);
    submissions_.push_back(Pending{std::move(request), std::move(on_page), {}, 0});
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof one);
}

void ReplayClient::open() {
  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->connect(options_.endpoint);
}

void ReplayClient::close() {
  in_flight_.clear();
  socket_.reset();
}

void* ReplayClient::socket_handle() const { return socket_->handle(); }

void ReplayClient::send(proto::ReplayRequest request, PageHandler on_page) {
  send_pending(Pending{std::move(request), std::move(on_page), {}, 0});
}

void ReplayClient::send_submitted() {
  std::uint64_t count = 0;
  [[maybe_unused]] const auto got = ::read(wake_fd_, &count, sizeof count);
  std::vector<Pending> submitted;
  {
    std::lock_guard lock(submissions_mutex_);
    submitted.swap(submissions_);
  }
  for (auto& pending : submitted) send_pending(std::move(pending));
}

void ReplayClient::send_pending(Pending pending) {
  pending.request.request_id = next_request_id_++;
  pending.sent_at = std::chrono::steady_clock::now();
  ++pending.attempts;
  const auto body = proto::encode_replay_request(pending.request);
  const auto topic = proto::topic(proto::MessageType::replay_request);
  socket_->send(zmq::buffer(topic), zmq::send_flags::sndmore);
  socket_->send(zmq::buffer(body), zmq::send_flags::none);
  const auto id = pending.request.request_id;
  in_flight_.emplace(id, std::move(pending));
}

void ReplayClient::receive(int max_messages) {
  proto::ReceivedMessage message;
  for (int i = 0; i < max_messages; ++i) {
    if (!proto::receive_message(*socket_, message)) break;
    if (!message.type() || message.type().value() != proto::MessageType::replay_page) {
      on_rejected_(message.label("replay"),
                   proto::to_string(message.type() ? proto::DecodeError::wrong_type
                                                   : message.type().error()));
      continue;
    }
    const auto page = proto::decode_replay_page(message.body());
    if (!page) {
      on_rejected_("replay_page", proto::to_string(page.error()));
      continue;  // the request times out and is sent again
    }
    const auto it = in_flight_.find(page.value().request_id);
    if (it == in_flight_.end()) continue;  // an answer to a request already retried or abandoned
    const Pending pending = std::move(it->second);
    in_flight_.erase(it);
    pending.on_page(&page.value());
  }
}

void ReplayClient::expire(std::chrono::steady_clock::time_point now) {
  std::vector<std::uint64_t> expired;
  for (const auto& [id, pending] : in_flight_) {
    if (now - pending.sent_at > options_.timeout) expired.push_back(id);
  }
  for (const auto id : expired) {
    Pending pending = std::move(in_flight_.at(id));
    in_flight_.erase(id);
    if (pending.attempts < options_.attempts) {
      log::warn_every(std::chrono::seconds(10), "replay_timeout",
                      "decode did not answer a replay request in time; retrying",
                      {{"attempt", pending.attempts}});
      send_pending(std::move(pending));  // a late answer to the old id is ignored
      continue;
    }
    pending.on_page(nullptr);
  }
}

}  // namespace jetstream::fanout
