#include "services/fanout/event_feed.hpp"

#include <utility>

#include "proto/wire.hpp"
#include "proto/zmq_message.hpp"

namespace jetstream::fanout {

EventFeed::EventFeed(zmq::context_t& context, EventFeedOptions options, EventWindow& window,
                     BlockCallback on_block, FeedObserver& observer)
    : context_(context),
      options_(std::move(options)),
      window_(window),
      on_block_(std::move(on_block)),
      observer_(observer),
      replay_(context,
              ReplayClientOptions{options_.replay_endpoint, options_.replay_timeout,
                                  options_.replay_attempts},
              [this](std::string_view message, std::string_view reason) {
                observer_.on_proto_rejected(message, reason);
              }) {}

EventFeed::~EventFeed() { stop(); }

void EventFeed::start() {
  thread_ = std::thread([this] { run(); });
}

void EventFeed::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void EventFeed::request_replay(proto::ReplayRequest request, ReplayCallback done) {
  replay_.submit(std::move(request), [done = std::move(done)](const proto::ReplayPageView* page) {
    ReplayResult result;
    if (page == nullptr) {
      result.timed_out = true;
      result.status = proto::ReplayStatus::internal_error;
    } else {
      result.status = page->status;
      result.done = page->done;
      result.next_time_us = page->next_time_us;
      result.oldest_time_us = page->oldest_time_us;
      result.newest_time_us = page->newest_time_us;
      if (!page->events.empty()) result.block = EventBlock::build(page->events);
    }
    done(std::move(result));
  });
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
  events.set(zmq::sockopt::subscribe, proto::topic(proto::MessageType::state_info));
  events.set(zmq::sockopt::subscribe, proto::topic(proto::MessageType::pipeline_status));
  events.set(zmq::sockopt::linger, 0);
  events.connect(options_.events_endpoint);
  replay_.open();

  proto::ReceivedMessage message;
  while (!stopping_.load(std::memory_order_relaxed)) {
    zmq::pollitem_t items[] = {{events.handle(), 0, ZMQ_POLLIN, 0},
                               {replay_.socket_handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, replay_.wake_fd(), ZMQ_POLLIN, 0}};
    zmq::poll(items, 3, std::chrono::milliseconds(100));
    replay_.send_submitted();
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
        case proto::MessageType::state_info: on_state_info(message.body()); break;
        case proto::MessageType::pipeline_status: on_pipeline_status(message.body()); break;
        default:
          observer_.on_proto_rejected(message.label("events"),
                                      proto::to_string(proto::DecodeError::wrong_type));
      }
    }
    replay_.receive(1000);
    replay_.expire(std::chrono::steady_clock::now());
    std::lock_guard lock(status_mutex_);
    status_.joined = joined_;
    status_.repairing = repairing_;
    status_.head = head_;
    if (received) status_.last_message = std::chrono::steady_clock::now();
  }
  replay_.close();
}

void EventFeed::append(std::span<const proto::EventView> events) {
  if (events.empty()) return;
  auto block = EventBlock::build(events);
  if (options_.deflate != nullptr && options_.deflate->clients.load(std::memory_order_relaxed) > 0)
    block->deflated(options_.deflate);  // once here, not in whichever session comes first
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
      std::deque<std::vector<std::uint8_t>> held;
      held.swap(held_);
      held_events_ = 0;
      abandon_repair("repair fell behind the live stream");
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

std::shared_ptr<const CompactedState> EventFeed::compacted_state() const {
  std::lock_guard lock(status_mutex_);
  return compacted_state_;
}

void EventFeed::on_state_info(std::span<const std::uint8_t> body) {
  const auto info = proto::decode_state_info(body);
  if (!info) {
    observer_.on_proto_rejected("state_info", proto::to_string(info.error()));
    return;
  }
  std::string error;
  auto set = syntax::CollectionSet::parse(info.value().compacted, error);
  auto building = syntax::CollectionSet::parse(info.value().building, error);
  if (!set || !building) {
    observer_.on_proto_rejected("state_info", proto::to_string(proto::DecodeError::invalid_value));
    return;
  }
  auto state = std::make_shared<CompactedState>();
  state->compacted = std::move(*set);
  state->tombstone_horizon_us = info.value().tombstone_horizon_us;
  state->building = std::move(*building);
  std::lock_guard lock(status_mutex_);
  compacted_state_ = std::move(state);
}

void EventFeed::on_pipeline_status(std::span<const std::uint8_t> body) {
  const auto status = proto::decode_pipeline_status(body);
  if (!status) {
    observer_.on_proto_rejected("pipeline_status", proto::to_string(status.error()));
    return;
  }
  std::lock_guard lock(status_mutex_);
  pipeline_status_ = PipelineSample{status.value(), std::chrono::steady_clock::now()};
}

std::optional<EventFeed::PipelineSample> EventFeed::pipeline_status() const {
  std::lock_guard lock(status_mutex_);
  return pipeline_status_;
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
  proto::ReplayRequest request;
  request.start_time_us = head_ + 1;
  request.end_time_us = end_time_us;
  request.max_events = options_.repair_page_events;
  request.max_bytes = proto::kMaxPageBytes / 2;
  request.want_zstd = true;
  request.clamp_to_oldest = false;
  request.include_backfill = true;  // the window holds every event; sessions filter
  request_repair_page(std::move(request));
}

void EventFeed::request_repair_page(proto::ReplayRequest request) {
  const std::uint64_t generation = repair_generation_;
  replay_.send(request, [this, generation, request](const proto::ReplayPageView* page) {
    if (generation != repair_generation_) return;  // a page of a repair already given up
    if (page == nullptr) {
      abandon_repair("replay unreachable during gap repair");
      return;
    }
    on_repair_page(*page, request);
  });
}

void EventFeed::abandon_repair(std::string_view why) {
  observer_.on_chain_reset(why);
  ++repair_generation_;
  repairing_ = false;
  joined_ = false;
  held_.clear();
  held_events_ = 0;
}

void EventFeed::on_repair_page(const proto::ReplayPageView& view, proto::ReplayRequest request) {
  if (view.status == proto::ReplayStatus::internal_error) {
    request_repair_page(std::move(request));
    return;
  }
  if (view.status != proto::ReplayStatus::ok) {
    // Events in the gap were deleted by retention (or decode refused): they cannot be repaired.
    observer_.on_chain_reset("gap cannot be repaired from the log");
    ++repair_generation_;
    repairing_ = false;
    joined_ = false;
  } else {
    std::size_t first = 0;
    while (first < view.events.size() && view.events[first].time_us <= head_) ++first;
    const std::span<const proto::EventView> fresh(view.events.data() + first,
                                                  view.events.size() - first);
    if (!fresh.empty() && fresh.front().prev_time_us != head_) {
      observer_.on_chain_reset("replayed events do not continue the window");
      ++repair_generation_;
      repairing_ = false;
      joined_ = false;
    } else {
      append(fresh);
      repaired_events_ += fresh.size();
      if (!view.done && view.next_time_us < repair_end_) {
        request.start_time_us = view.next_time_us;
        request_repair_page(std::move(request));
        return;
      }
      observer_.on_gap_repaired(repaired_events_);
      ++repair_generation_;
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
