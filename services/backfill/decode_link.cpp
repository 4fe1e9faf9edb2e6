#include "services/backfill/decode_link.hpp"

#include "common/log/log.hpp"
#include "proto/events.hpp"
#include "proto/zmq_message.hpp"

namespace jetstream::backfill {

namespace {
/// inproc names must be unique in the process for as long as ZeroMQ holds them (a closed
/// socket's endpoint is released asynchronously, so an address reused at once can be "in use").
std::string unique_doorbell() {
  static std::atomic<std::uint64_t> next{0};
  return "inproc://backfill-doorbell-" + std::to_string(++next);
}
}  // namespace

DecodeLink::DecodeLink(zmq::context_t& context, Options options, FetchDone done, Resyncs resyncs)
    : context_(context),
      options_(std::move(options)),
      done_(std::move(done)),
      resyncs_(std::move(resyncs)),
      doorbell_endpoint_(unique_doorbell()),
      doorbell_in_(context, zmq::socket_type::pull),
      doorbell_out_(context, zmq::socket_type::push) {
  if (options_.max_unacked == 0) options_.max_unacked = 1;
  doorbell_in_.set(zmq::sockopt::linger, 0);
  doorbell_in_.bind(doorbell_endpoint_);
  doorbell_out_.set(zmq::sockopt::linger, 0);
  doorbell_out_.set(zmq::sockopt::sndhwm, 4);
  doorbell_out_.connect(doorbell_endpoint_);
  thread_ = std::thread([this] { run(); });
}

DecodeLink::~DecodeLink() { stop(); }

void DecodeLink::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true);
  }
  room_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool DecodeLink::submit(std::uint64_t fetch_id, OutgoingBatch batch) {
  std::unique_lock lock(mutex_);
  room_.wait(lock, [&] { return stopping_.load() || held_.size() < options_.max_unacked; });
  if (stopping_.load()) return false;
  Fetch& fetch = fetches_[fetch_id];
  if (batch.last) {
    fetch.last = std::move(batch);
  } else {
    ++fetch.outstanding;
    const std::uint64_t id = batch.id;
    held_.emplace(id, Held{fetch_id, std::move(batch), std::chrono::steady_clock::now(), false});
  }
  counters_.unacked.store(held_.size());
  // A batch already waiting to be rung for makes the bell's queue full: dropping is fine.
  doorbell_out_.send(zmq::str_buffer("!"), zmq::send_flags::dontwait);
  return true;
}

void DecodeLink::abandon(std::uint64_t fetch_id) {
  std::lock_guard lock(mutex_);
  const auto it = fetches_.find(fetch_id);
  if (it == fetches_.end()) return;
  it->second.abandoned = true;
  it->second.last.reset();
  if (it->second.outstanding == 0) fetches_.erase(it);
}

std::optional<std::string> DecodeLink::compacted() const {
  std::lock_guard lock(mutex_);
  return compacted_;
}

std::string DecodeLink::building() const {
  std::lock_guard lock(mutex_);
  return building_;
}

void DecodeLink::send_due(zmq::socket_t& dealer) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  // Last batches whose fetch has nothing else outstanding join the batches to send.
  for (auto& [fetch_id, fetch] : fetches_) {
    if (fetch.last && fetch.outstanding == 0) {
      const std::uint64_t id = fetch.last->id;
      held_.emplace(id, Held{fetch_id, std::move(*fetch.last), now, false});
      fetch.last.reset();
    }
  }
  const auto topic = proto::topic(proto::MessageType::repo_batch);
  for (auto& [id, held] : held_) {
    if (held.due > now) continue;
    zmq::message_t body(held.batch.bytes.data(), held.batch.bytes.size());
    if (!dealer.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      break;  // decode is not there (or its queue is full): the next round tries again
    }
    dealer.send(body, zmq::send_flags::dontwait);
    (held.sent ? counters_.batches_resent : counters_.batches_sent).fetch_add(1);
    held.sent = true;
    held.due = now + options_.ack_timeout;
  }
  counters_.unacked.store(held_.size());
}

void DecodeLink::poll_resyncs(zmq::socket_t& dealer) {
  const auto now = std::chrono::steady_clock::now();
  if (!resyncs_ || now < next_poll_ || !compacted()) return;
  next_poll_ = now + std::chrono::seconds(1);  // an answer with DIDs polls again at once
  proto::ResyncPoll poll;
  poll.max = 1000;
  poll.acked = resyncs_to_ack_;
  const auto bytes = proto::encode_resync_poll(poll);
  const auto topic = proto::topic(proto::MessageType::resync_poll);
  if (dealer.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
    dealer.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
  }
  // Acks that are lost (decode away) leave the rows in decode: they come again, and fetching a
  // repository twice applies nothing twice.
  resyncs_to_ack_.clear();
}

void DecodeLink::set_progress(const proto::BackfillProgress& progress) {
  std::lock_guard lock(mutex_);
  progress_ = progress;
}

void DecodeLink::send_progress(zmq::socket_t& dealer) {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_progress_) return;
  next_progress_ = now + std::chrono::seconds(1);
  std::optional<proto::BackfillProgress> progress;
  {
    std::lock_guard lock(mutex_);
    progress = progress_;
  }
  if (!progress || proto::validate(*progress)) return;
  const auto bytes = proto::encode_backfill_progress(*progress);
  const auto topic = proto::topic(proto::MessageType::backfill_progress);
  // Best effort: a report lost while decode is away is replaced by the next one.
  if (dealer.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
    dealer.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
  }
}

void DecodeLink::on_ack(const proto::BatchAck& ack) {
  std::optional<std::pair<std::uint64_t, FetchTotals>> finished;
  {
    std::lock_guard lock(mutex_);
    const auto it = held_.find(ack.batch_id);
    if (it == held_.end()) {
      counters_.acks_unknown.fetch_add(1);
      return;
    }
    if (ack.outcome == proto::BatchOutcome::busy) {
      counters_.batches_busy.fetch_add(1);
      it->second.due = std::chrono::steady_clock::now() + options_.busy_retry;
      return;
    }
    const std::uint64_t fetch_id = it->second.fetch_id;
    const bool last = it->second.batch.last;
    held_.erase(it);
    counters_.unacked.store(held_.size());
    if (ack.outcome == proto::BatchOutcome::rejected) {
      counters_.batches_rejected.fetch_add(1);
    } else {
      counters_.batches_stored.fetch_add(1);
    }
    counters_.records_applied.fetch_add(ack.applied);
    counters_.records_unchanged.fetch_add(ack.unchanged);
    counters_.records_tombstoned.fetch_add(ack.tombstoned);
    counters_.records_invalid.fetch_add(ack.invalid);
    const auto found = fetches_.find(fetch_id);
    if (found != fetches_.end()) {
      Fetch& fetch = found->second;
      if (!last && fetch.outstanding > 0) --fetch.outstanding;
      fetch.totals.applied += ack.applied;
      fetch.totals.unchanged += ack.unchanged;
      fetch.totals.tombstoned += ack.tombstoned;
      fetch.totals.invalid += ack.invalid;
      if (ack.outcome == proto::BatchOutcome::rejected) fetch.totals.rejected = true;
      if (!fetch.abandoned && (last || fetch.totals.rejected)) {
        // Done (or refused for good: what remains of it reports nothing more).
        finished.emplace(fetch_id, fetch.totals);
        fetch.abandoned = true;
        fetch.last.reset();
      }
      if (fetch.abandoned && fetch.outstanding == 0) fetches_.erase(found);
    }
  }
  room_.notify_all();
  if (finished) done_(finished->first, finished->second);
}

void DecodeLink::run() {
  zmq::socket_t dealer(context_, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::immediate, 1);  // nothing queues for a decode not connected
  dealer.connect(options_.backfill_endpoint);
  zmq::socket_t state(context_, zmq::socket_type::sub);
  state.set(zmq::sockopt::linger, 0);
  state.set(zmq::sockopt::subscribe, proto::topic(proto::MessageType::state_info));
  state.connect(options_.events_endpoint);
  proto::ReceivedMessage message;
  while (!stopping_.load()) {
    send_due(dealer);
    poll_resyncs(dealer);
    send_progress(dealer);
    std::array<zmq::pollitem_t, 3> items{zmq::pollitem_t{dealer.handle(), 0, ZMQ_POLLIN, 0},
                                         zmq::pollitem_t{state.handle(), 0, ZMQ_POLLIN, 0},
                                         zmq::pollitem_t{doorbell_in_.handle(), 0, ZMQ_POLLIN, 0}};
    if (zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100)) <= 0) continue;
    if ((items[2].revents & ZMQ_POLLIN) != 0) {
      zmq::message_t ring;
      while (doorbell_in_.recv(ring, zmq::recv_flags::dontwait)) {
      }
    }
    while ((items[0].revents & ZMQ_POLLIN) != 0 && proto::receive_message(dealer, message)) {
      if (message.type() && message.type().value() == proto::MessageType::resync_list) {
        const auto list = proto::decode_resync_list(message.body());
        if (!list) {
          counters_.proto_rejected.fetch_add(1);
          continue;
        }
        counters_.resync_answers.fetch_add(1);
        if (!list->dids.empty()) {
          resyncs_(list->dids);
          counters_.resyncs.fetch_add(list->dids.size());
          for (const auto& [did, reason] : list->dids) resyncs_to_ack_.push_back(did);
          next_poll_ = {};  // more may wait
        }
        continue;
      }
      const auto ack = message.type() && message.type().value() == proto::MessageType::batch_ack
                           ? proto::decode_batch_ack(message.body())
                           : proto::DecodeResult<proto::BatchAck>(proto::DecodeError::wrong_type);
      if (!ack) {
        counters_.proto_rejected.fetch_add(1);
        continue;
      }
      on_ack(ack.value());
    }
    while ((items[1].revents & ZMQ_POLLIN) != 0 && proto::receive_message(state, message)) {
      if (!message.type() || message.type().value() != proto::MessageType::state_info) continue;
      const auto info = proto::decode_state_info(message.body());
      if (!info) {
        counters_.proto_rejected.fetch_add(1);
        continue;
      }
      std::lock_guard lock(mutex_);
      compacted_ = std::string(info->compacted);
      building_ = std::string(info->building);
    }
  }
}

}  // namespace jetstream::backfill
