#include "services/decode/backfill_receiver.hpp"

#include <chrono>

#include "common/clock/clock.hpp"
#include "common/log/log.hpp"
#include "proto/zmq_message.hpp"

namespace jetstream::decode {

BackfillReceiver::BackfillReceiver(zmq::context_t& context, std::string endpoint, EventStore& store,
                                   DecodeProbe& probe, PipelineCounters& counters,
                                   std::size_t max_in_flight)
    : context_(context),
      acks_endpoint_([] {
        // Unique for the process's life: ZeroMQ releases a closed socket's inproc name later.
        static std::atomic<std::uint64_t> next{0};
        return "inproc://backfill-acks-" + std::to_string(++next);
      }()),
      store_(store),
      probe_(probe),
      counters_(counters),
      max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight),
      router_(context, zmq::socket_type::router),
      acks_in_(context, zmq::socket_type::pull),
      acks_out_(context, zmq::socket_type::push) {
  router_.set(zmq::sockopt::linger, 0);
  router_.set(zmq::sockopt::router_mandatory, 0);  // an ack to a vanished backfill is dropped
  router_.bind(endpoint);
  bound_endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  acks_in_.set(zmq::sockopt::linger, 0);
  acks_in_.bind(acks_endpoint_);
  acks_out_.set(zmq::sockopt::linger, 0);
  acks_out_.connect(acks_endpoint_);
}

BackfillReceiver::~BackfillReceiver() { stop(); }

void BackfillReceiver::start(sequencer_actor sequencer) {
  thread_ = std::thread([this, sequencer = std::move(sequencer)] { run(sequencer); });
}

void BackfillReceiver::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void BackfillReceiver::acknowledge(const BackfillBatch& batch, const proto::BatchAck& ack) {
  const auto bytes = proto::encode_batch_ack(ack);
  std::lock_guard lock(acks_out_mutex_);
  zmq::message_t routing(batch.routing_id.data(), batch.routing_id.size());
  acks_out_.send(routing, zmq::send_flags::sndmore);
  acks_out_.send(zmq::buffer(bytes), zmq::send_flags::none);
}

void BackfillReceiver::answer_poll(zmq::message_t& routing, std::span<const std::uint8_t> body) {
  const auto poll = proto::decode_resync_poll(body);
  if (!poll) {
    probe_.record_proto_rejected("resync_poll", proto::to_string(poll.error()));
    return;
  }
  std::string error;
  if (!store_.clear_resyncs(poll->acked, error)) {
    // Kept: backfill gets them again, and fetching a repository twice applies nothing twice.
    log::warn_every(std::chrono::seconds(10), "resync_clear_failed",
                    "clearing acknowledged resync rows failed", {{"error", error}});
  }
  proto::ResyncList list;
  for (auto& [did, reason] : store_.pending_resyncs(poll->max)) {
    if (did.empty() || did.size() > proto::kMaxStringBytes || reason < 1 || reason > 3) continue;
    list.dids.emplace_back(std::move(did), static_cast<proto::ResyncReason>(reason));
  }
  const auto bytes = proto::encode_resync_list(list);
  const auto topic = proto::topic(proto::MessageType::resync_list);
  router_.send(routing, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  router_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  router_.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
}

void BackfillReceiver::run(sequencer_actor sequencer) {
  proto::ReceivedMessage message;
  while (!stopping_.load(std::memory_order_relaxed)) {
    // Acks first: each frees a slot for the next batch.
    std::array<zmq::pollitem_t, 2> items{
        zmq::pollitem_t{acks_in_.handle(), 0, ZMQ_POLLIN, 0},
        zmq::pollitem_t{router_.handle(), 0,
                        static_cast<short>(in_flight_.load() < max_in_flight_ ? ZMQ_POLLIN : 0),
                        0}};
    if (zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100)) <= 0) continue;
    if ((items[0].revents & ZMQ_POLLIN) != 0) {
      zmq::message_t routing;
      zmq::message_t ack;
      if (acks_in_.recv(routing, zmq::recv_flags::dontwait) &&
          acks_in_.recv(ack, zmq::recv_flags::dontwait)) {
        in_flight_.fetch_sub(1);
        const auto topic = proto::topic(proto::MessageType::batch_ack);
        router_.send(routing, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        router_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        router_.send(ack, zmq::send_flags::dontwait);
      }
    }
    if ((items[1].revents & ZMQ_POLLIN) == 0) continue;
    if (!proto::receive_message(router_, message, proto::Routing::routed)) continue;
    if (!message.type()) {
      probe_.record_proto_rejected(message.label("backfill"),
                                   proto::to_string(message.type().error()));
      continue;
    }
    if (message.type().value() == proto::MessageType::resync_poll) {
      answer_poll(message.routing_id(), message.body());
      continue;
    }
    if (message.type().value() == proto::MessageType::backfill_progress) {
      const auto progress = proto::decode_backfill_progress(message.body());
      if (!progress) {
        probe_.record_proto_rejected("backfill_progress", proto::to_string(progress.error()));
        continue;
      }
      const auto relaxed = std::memory_order_relaxed;
      counters_.backfill_repos_done.store(progress.value().repos_done, relaxed);
      counters_.backfill_repos_total.store(progress.value().repos_total, relaxed);
      counters_.backfill_repos_failed.store(progress.value().repos_failed, relaxed);
      counters_.backfill_progress_at_us.store(clock::wall_clock_us(), relaxed);
      continue;
    }
    auto batch = std::make_shared<BackfillBatch>();
    batch->routing_id.copy(message.routing_id());
    batch->body.move(message.body_part());
    const auto decoded =
        message.type().value() == proto::MessageType::repo_batch
            ? proto::decode_repo_batch(proto::bytes_of(batch->body))
            : proto::DecodeResult<proto::RepoBatchView>(proto::DecodeError::wrong_type);
    if (!decoded) {
      // Nothing to acknowledge: a batch that does not decode has no id to answer to.
      probe_.record_proto_rejected("repo_batch", proto::to_string(decoded.error()));
      log::warn_every(std::chrono::seconds(10), "backfill_batch_rejected",
                      "a repository batch from backfill does not decode; dropped",
                      {{"reason", proto::to_string(decoded.error())}});
      continue;
    }
    batch->view = decoded.value();
    in_flight_.fetch_add(1);
    caf::anon_send(sequencer, backfill_atom::value, std::move(batch));
  }
}

}  // namespace jetstream::decode
