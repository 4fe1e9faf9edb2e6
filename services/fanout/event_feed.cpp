#include "services/fanout/event_feed.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <zmq_addon.hpp>

#include "common/log/log.hpp"
#include "proto/wire.hpp"
#include "proto/zmq_message.hpp"

namespace jetstream::fanout {

EventFeed::EventFeed(zmq::context_t& context, EventFeedOptions options, EventWindow& window,
                     BlockCallback on_block, FeedObserver& observer)
    : context_(context),
      options_(std::move(options)),
      window_(window),
      on_block_(std::move(on_block)),
      observer_(observer) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

EventFeed::~EventFeed() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void EventFeed::start() {
  thread_ = std::thread([this] { run(); });
}

void EventFeed::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void EventFeed::request_replay(proto::ReplayRequest request, ReplayCallback done) {
  {
    std::lock_guard lock(submissions_mutex_);
    submissions_.push_back(Pending{std::move(request), std::move(done), {}, 0, false});
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof one);
}

FeedStatus EventFeed::status() const {
  std::lock_guard lock(status_mutex_);
  return status_;
}

void EventFeed::run() {
  zmq::socket_t events(context_, zmq::socket_type::sub);
  events.set(zmq::sockopt::rcvhwm, options_.receive_high_water_mark);
  if (options_.receive_buffer_bytes > 0)
    events.set(zmq::sockopt::rcvbuf, options_.receive_buffer_bytes);
  events.set(zmq::sockopt::subscribe, proto::topic(proto::MessageType::event_batch));
  events.set(zmq::sockopt::subscribe, proto::topic(proto::MessageType::heartbeat));
  events.set(zmq::sockopt::linger, 0);
  events.connect(options_.events_endpoint);
  replay_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  replay_->set(zmq::sockopt::linger, 0);
  replay_->connect(options_.replay_endpoint);

  proto::ReceivedMessage message;
  while (!stopping_.load(std::memory_order_relaxed)) {
    zmq::pollitem_t items[] = {{events.handle(), 0, ZMQ_POLLIN, 0},
                               {replay_->handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    zmq::poll(items, 3, std::chrono::milliseconds(100));
    if ((items[2].revents & ZMQ_POLLIN) != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] const auto got = ::read(wake_fd_, &count, sizeof count);
    }
    drain_submissions();
    bool received = false;
    for (int i = 0; i < 1000; ++i) {
      if (!proto::receive_message(events, message)) break;
      received = true;
      if (!message.type()) {
        observer_.on_proto_rejected(message.label("events"),
                                    proto::to_string(message.type().error()));
        continue;
      }
      switch (message.type().value()) {
        case proto::MessageType::event_batch: on_events(message.body(), /*fresh=*/true); break;
        case proto::MessageType::heartbeat: on_heartbeat(message.body()); break;
        default:
          observer_.on_proto_rejected(message.label("events"),
                                      proto::to_string(proto::DecodeError::wrong_type));
      }
    }
    for (int i = 0; i < 1000; ++i) {
      if (!proto::receive_message(*replay_, message)) break;
      if (!message.type() || message.type().value() != proto::MessageType::replay_page) {
        observer_.on_proto_rejected(message.label("replay"),
                                    proto::to_string(message.type() ? proto::DecodeError::wrong_type
                                                                    : message.type().error()));
        continue;
      }
      on_page(message.body());
    }
    check_timeouts();
    std::lock_guard lock(status_mutex_);
    status_.joined = joined_;
    status_.repairing = repairing_;
    status_.head = head_;
    if (received) status_.last_message = std::chrono::steady_clock::now();
  }
  replay_.reset();
}

void EventFeed::drain_submissions() {
  std::vector<Pending> submitted;
  {
    std::lock_guard lock(submissions_mutex_);
    submitted.swap(submissions_);
  }
  for (auto& pending : submitted) send_request(pending);
}

void EventFeed::send_request(Pending& pending) {
  pending.request.request_id = next_request_id_++;
  pending.sent_at = std::chrono::steady_clock::now();
  ++pending.attempts;
  const auto body = proto::encode_replay_request(pending.request);
  const auto topic = proto::topic(proto::MessageType::replay_request);
  replay_->send(zmq::buffer(topic), zmq::send_flags::sndmore);
  replay_->send(zmq::buffer(body), zmq::send_flags::none);
  const auto id = pending.request.request_id;
  in_flight_.emplace(id, std::move(pending));
}

void EventFeed::check_timeouts() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> expired;
  for (const auto& [id, pending] : in_flight_) {
    if (now - pending.sent_at > options_.replay_timeout) expired.push_back(id);
  }
  for (const auto id : expired) {
    Pending pending = std::move(in_flight_.at(id));
    in_flight_.erase(id);
    if (pending.attempts < options_.replay_attempts) {
      log::warn_every(std::chrono::seconds(10), "replay_timeout",
                      "decode did not answer a replay request in time; retrying",
                      {{"attempt", pending.attempts}});
      send_request(pending);  // pages are idempotent: a late answer to the old id is ignored
      continue;
    }
    if (pending.repair) {
      // decode is unreachable: give up on the repair; the chain restarts at the next message.
      observer_.on_chain_reset("replay unreachable during gap repair");
      joined_ = false;
      repairing_ = false;
      held_.clear();
      held_events_ = 0;
    } else {
      ReplayResult result;
      result.timed_out = true;
      result.status = proto::ReplayStatus::internal_error;
      pending.done(std::move(result));
    }
  }
}

void EventFeed::append(std::span<const proto::EventView> events) {
  if (events.empty()) return;
  auto block = EventBlock::build(events);
  window_.append(block);
  head_ = block->last_time_us();
  on_block_(block);
}

void EventFeed::on_events(std::span<const std::uint8_t> body, bool fresh) {
  auto batch = proto::decode_event_batch(body);
  if (!batch) {
    observer_.on_proto_rejected("event_batch", proto::to_string(batch.error()));
    return;  // treated as lost: the next batch or heartbeat reveals the gap
  }
  if (fresh) observer_.on_batch_received(batch.value().size(), body.size());  // counted once
  if (repairing_) {
    held_.emplace_back(body.begin(), body.end());
    held_events_ += batch.value().size();
    if (held_events_ > options_.max_held_events) {
      // The repair cannot keep up: re-join at the live stream; clients behind read the log.
      observer_.on_chain_reset("repair fell behind the live stream");
      in_flight_.clear();
      repairing_ = false;
      joined_ = false;
      std::deque<std::vector<std::uint8_t>> held;
      held.swap(held_);
      held_events_ = 0;
      for (const auto& bytes : held) on_events(bytes, /*fresh=*/false);
    }
    return;
  }
  apply_live(batch.value());
  if (repairing_) {
    // This batch revealed the gap: keep it for after the repair.
    held_.emplace_back(body.begin(), body.end());
    held_events_ += batch.value().size();
  }
}

void EventFeed::apply_live(std::vector<proto::EventView>& events) {
  if (events.empty()) return;
  if (!joined_) {
    joined_ = true;
    head_ = events.front().prev_time_us;
    window_.reset(head_);
  }
  std::size_t first = 0;
  while (first < events.size() && events[first].time_us <= head_) ++first;  // duplicates
  if (first == events.size()) return;
  const std::span<const proto::EventView> fresh(events.data() + first, events.size() - first);
  if (fresh.front().prev_time_us == head_) {
    append(fresh);
  } else if (fresh.front().prev_time_us > head_) {
    start_repair(fresh.front().time_us);
  } else {
    // Overlaps the head without chaining to it: decode's log was rebuilt. Start a new chain.
    observer_.on_chain_reset("event chain does not continue the window");
    head_ = fresh.front().prev_time_us;
    window_.reset(head_);
    append(fresh);
  }
}

void EventFeed::on_heartbeat(std::span<const std::uint8_t> body) {
  const auto heartbeat = proto::decode_heartbeat(body);
  if (!heartbeat) {
    observer_.on_proto_rejected("heartbeat", proto::to_string(heartbeat.error()));
    return;
  }
  if (!joined_) {
    joined_ = true;
    head_ = heartbeat.value().newest_time_us;
    window_.reset(head_);
    return;
  }
  if (!repairing_ && heartbeat.value().newest_time_us > head_) {
    start_repair(heartbeat.value().newest_time_us + 1);  // the tail was lost
  }
}

void EventFeed::start_repair(std::int64_t end_time_us) {
  repairing_ = true;
  repair_end_ = end_time_us;
  repaired_events_ = 0;
  Pending pending;
  pending.repair = true;
  pending.request.start_time_us = head_ + 1;
  pending.request.end_time_us = end_time_us;
  pending.request.max_events = options_.repair_page_events;
  pending.request.max_bytes = proto::kMaxPageBytes / 2;
  pending.request.want_zstd = true;
  pending.request.clamp_to_oldest = false;
  send_request(pending);
}

void EventFeed::on_page(std::span<const std::uint8_t> body) {
  auto page = proto::decode_replay_page(body);
  if (!page) {
    observer_.on_proto_rejected("replay_page", proto::to_string(page.error()));
    return;  // the request times out and is sent again
  }
  const auto it = in_flight_.find(page.value().request_id);
  if (it == in_flight_.end()) return;  // an answer to a request already retried or abandoned
  Pending pending = std::move(it->second);
  in_flight_.erase(it);
  const auto& view = page.value();

  if (!pending.repair) {
    ReplayResult result;
    result.status = view.status;
    result.done = view.done;
    result.next_time_us = view.next_time_us;
    result.oldest_time_us = view.oldest_time_us;
    result.newest_time_us = view.newest_time_us;
    if (!view.events.empty()) result.block = EventBlock::build(view.events);
    pending.done(std::move(result));
    return;
  }

  if (view.status == proto::ReplayStatus::internal_error) {
    send_request(pending);
    return;
  }
  if (view.status != proto::ReplayStatus::ok) {
    // Events in the gap were deleted by retention (or decode refused): they cannot be repaired.
    observer_.on_chain_reset("gap cannot be repaired from the log");
    repairing_ = false;
    joined_ = false;
  } else {
    std::size_t first = 0;
    while (first < view.events.size() && view.events[first].time_us <= head_) ++first;
    const std::span<const proto::EventView> fresh(view.events.data() + first,
                                                  view.events.size() - first);
    if (!fresh.empty() && fresh.front().prev_time_us != head_) {
      observer_.on_chain_reset("replayed events do not continue the window");
      repairing_ = false;
      joined_ = false;
    } else {
      append(fresh);
      repaired_events_ += fresh.size();
      if (!view.done && view.next_time_us < repair_end_) {
        pending.request.start_time_us = view.next_time_us;
        pending.attempts = 0;
        send_request(pending);
        return;
      }
      observer_.on_gap_repaired(repaired_events_);
      repairing_ = false;
    }
  }
  // Continue with the live batches that arrived meanwhile.
  std::deque<std::vector<std::uint8_t>> held;
  held.swap(held_);
  held_events_ = 0;
  for (std::size_t i = 0; i < held.size(); ++i) {
    on_events(held[i], /*fresh=*/false);
    if (repairing_) {
      // Another gap: keep the rest for after that repair.
      for (std::size_t j = i + 1; j < held.size(); ++j) held_.push_back(std::move(held[j]));
      break;
    }
  }
}

}  // namespace jetstream::fanout
