#include "services/fanout/subscription.hpp"

#include "common/clock/clock.hpp"
#include "common/codec/json_writer.hpp"
#include "common/websocket/codec.hpp"
#include "services/fanout/options_update.hpp"

namespace jetstream::fanout {

Subscription::Subscription(SubscriptionParts parts, std::shared_ptr<ClientSink> sink,
                           SubscriberOptions options, std::string client_ip,
                           std::shared_ptr<SessionSignals> signals, SubscriptionDriver& driver)
    : parts_(parts),
      sink_(std::move(sink)),
      options_(std::move(options)),
      filter_(options_),
      ip_(std::move(client_ip)),
      signals_(std::move(signals)),
      driver_(driver) {
  holds_.hello = options_.require_hello;
  parts_.probe->subscriber_connected(options_.encoding());
  if (options_.deflate && parts_.deflate != nullptr) {
    parts_.deflate->clients.fetch_add(1, std::memory_order_relaxed);
  }
}

void Subscription::start(std::int64_t now_us, bool joined) {
  if (options_.snapshot) {
    // API.md "State": the compacted events with time_us > cursor, then the log, then live.
    in_snapshot_ = true;
    position_ = std::max<std::int64_t>(options_.cursor.value_or(0), 0);
    replay_.more_pages = true;
    parts_.probe->snapshot_started();
  } else if (!options_.cursor || *options_.cursor > now_us) {
    // Live: start after the newest event fanout holds; before fanout has joined decode's
    // stream, join at the first block that arrives.
    if (joined) {
      position_ = parts_.window->newest();
    } else {
      holds_.live_head = true;
    }
  } else {
    // API.md: the cursor is inclusive; 0 or negative means the oldest retained event.
    position_ = *options_.cursor <= 0 ? 0 : *options_.cursor - 1;
    replay_.clamp_next = true;
  }
  // Not marked as scheduled: a pump that runs before it (a wake) may schedule its own.
  driver_.schedule_pump(std::chrono::milliseconds(0));
}

void Subscription::on_wake(bool joined) {
  if (holds_.live_head && joined) {
    // Connected before fanout joined decode's stream: start where the window starts.
    holds_.live_head = false;
    position_ = parts_.window->oldest_position();
  }
  pump();
}

void Subscription::on_text(std::string_view text) {
  const UpdateResult result = parse_client_message(text);
  switch (result.action) {
    case UpdateAction::ignored: parts_.probe->options_update("ignored"); return;
    case UpdateAction::close:
      parts_.probe->options_update("invalid");
      finish(kClientErrorCloseCode, result.close_reason, CloseReason::invalid_message);
      return;
    case UpdateAction::update: {
      apply_update(options_, result.update);
      if (options_.snapshot) {
        // The same rule as the handshake: only compacted collections, all of them by default.
        const std::string error =
            apply_snapshot_collections(options_.filters, options_.snapshot_collections);
        if (!error.empty()) {
          parts_.probe->options_update("invalid");
          finish(kClientErrorCloseCode, websocket::fit_close_reason(error),
                 CloseReason::invalid_message);
          return;
        }
      }
      parts_.probe->options_update("applied");
      filter_ = EventFilter(options_);
      holds_.hello = false;
      pump();
      return;
    }
  }
}

void Subscription::on_pump() {
  pump_scheduled_ = false;
  pump();
}

void Subscription::on_tick(std::chrono::steady_clock::time_point now) {
  const auto queued = sink_->queued_bytes();
  // Progress is bytes leaving for the client, not the queue shrinking: a reader that keeps up
  // with a full queue (refilled as fast as it drains) is not slow.
  const auto written = sink_->written_bytes();
  if (queued == 0 || written != last_written_) last_progress_ = now;
  last_written_ = written;
  if (queued > 0 && now - last_progress_ > parts_.config.slow_client_timeout) {
    finish(1008, "client too slow: no progress reading events", CloseReason::too_slow);
    return;
  }
  pump();
}

void Subscription::on_shutdown() { finish(1001, "server shutting down", CloseReason::shutdown); }

void Subscription::on_connection_closed() { finish(0, {}, CloseReason::client_closed); }

void Subscription::finish(std::uint16_t code, const std::string& reason, CloseReason why) {
  if (closed_) return;
  closed_ = true;
  if (in_snapshot_) parts_.probe->snapshot_finished(false);
  if (replay_.counted) parts_.probe->replay_finished();
  parts_.probe->subscriber_disconnected(options_.encoding(), why);
  if (options_.deflate && parts_.deflate != nullptr) {
    parts_.deflate->clients.fetch_sub(1, std::memory_order_relaxed);
  }
  if (code != 0) sink_->close(code, reason);
  driver_.stop();
}

void Subscription::set_replaying(bool replaying) {
  if (replaying == replay_.counted) return;
  replay_.counted = replaying;
  if (replaying) {
    parts_.probe->replay_started();
  } else {
    parts_.probe->replay_finished();
  }
}

void Subscription::schedule_pump(std::chrono::milliseconds delay) {
  pump_scheduled_ = true;
  driver_.schedule_pump(delay);
}

void Subscription::request_replay() {
  std::uint32_t page_events = parts_.config.replay_page_events;
  if (parts_.catch_up != nullptr) {
    // A page is paid for before it is asked for: reading it in decode, carrying it and writing
    // it all cost what live needs, and 100 sessions asking at once must not land 100 pages on
    // live (catch_up_governor.hpp). Too few tokens for a useful page: look again shortly.
    constexpr std::uint64_t kLeastPage = 64;
    const std::uint64_t granted = parts_.catch_up->take(page_events);
    if (granted < std::min<std::uint64_t>(kLeastPage, page_events)) {
      parts_.catch_up->give_back(granted);
      if (!pump_scheduled_) schedule_pump(std::chrono::milliseconds(20));
      return;
    }
    page_events = static_cast<std::uint32_t>(granted);
    replay_.paid = granted;
  }
  proto::ReplayRequest request = to_replay_filters(options_.filters);
  request.start_time_us = position_ + 1;
  request.end_time_us = 0;
  request.max_events = page_events;
  request.max_bytes = parts_.config.replay_page_bytes;
  request.want_zstd = options_.compress;
  // Only the client's own cursor may start later than asked (older than retention → oldest);
  // a session already under way must never skip events silently.
  request.clamp_to_oldest = replay_.clamp_next;
  request.snapshot = in_snapshot_;
  request.include_backfill = options_.snapshot;
  replay_.clamp_next = false;
  // A snapshot's first page checks the tombstone horizon; its later pages continue (the bit
  // means "under way" for snapshots, proto §3.7).
  if (in_snapshot_) request.clamp_to_oldest = snapshot_under_way_;
  replay_.outstanding = true;
  set_replaying(true);
  driver_.request_replay(std::move(request));
}

Subscription::Delivery Subscription::deliver_queue() {
  auto& frames = frames_;
  frames.clear();
  std::uint64_t bytes = 0, filtered = 0, oversize = 0;
  std::int64_t first_time_us = 0;
  std::uint64_t budget = parts_.limiter->take(ip_, parts_.config.max_frames_per_send);
  // Only live sends (the window's, not the log's or the twin's pages) are measured: their lag
  // is what the catch-up governor protects.
  const bool catching_up = replay_.counted || in_snapshot_;
  const bool rate_limited = budget < parts_.config.max_frames_per_send;
  const std::uint64_t queued = sink_->queued_bytes();
  bool stopped = false;
  while (!queue_.empty()) {
    auto& [block, index] = queue_.front();
    const auto events = block->events();
    if (index == 0) index = block->first_after(position_);
    // Made once per block for every deflate client (usually already, by the feed).
    const DeflatedFrames* deflated =
        options_.deflate && index < events.size() ? &block->deflated(parts_.deflate) : nullptr;
    const std::size_t run_start = frames.size();
    for (; index < events.size(); ++index) {
      const BlockEvent& event = events[index];
      if (event.time_us <= position_) continue;
      // Backfilled records are state, not changes: a v1 connection never sees them (API.md).
      if ((event.backfill && !options_.snapshot) ||
          !filter_.matches(event.kind, event.did, event.collection)) {
        ++filtered;
        position_ = event.time_us;
        continue;
      }
      const bool binary = options_.compress && !event.binary_frame.empty();
      const auto frame = binary     ? event.binary_frame
                         : deflated ? deflated->frames[index]
                                    : event.text_frame;
      // permessage-deflate is the transport's: the limit counts the JSON (API.md "Browsers").
      const std::size_t payload = binary ? event.zstd_size : event.json_size;
      if (!filter_.accepts_size(payload)) {
        ++oversize;
        position_ = event.time_us;
        continue;
      }
      if (budget == 0 || queued + bytes >= parts_.config.high_water_bytes) {
        stopped = true;
        break;
      }
      if (frames.empty()) {
        first_time_us = event.time_us;
        frames.push_back(
            {nullptr, frame.data(), frame.size(),
             catching_up ? std::chrono::steady_clock::time_point{} : block->arrived_at()});
      } else {
        frames.push_back({nullptr, frame.data(), frame.size()});  // owned below
      }
      bytes += frame.size();
      --budget;
      position_ = event.time_us;
    }
    // The run's last frame holds the block for the frames before it (see SharedFrame).
    if (frames.size() > run_start) frames.back().owner = block;
    if (stopped) break;
    queue_.pop_front();
  }
  if (queue_.empty() && replay_.after_queue > position_) position_ = replay_.after_queue;
  if (!frames.empty()) {
    if (catching_up && parts_.catch_up != nullptr) {
      parts_.catch_up->observe_catch_up_delivery(frames.size());
    }
    parts_.probe->delivered(frames.size(), bytes);
    parts_.probe->delivery_lag(static_cast<double>(clock::wall_clock_us() - first_time_us) / 1e6);
    sink_->send(std::move(frames));
    frames = {};
  }
  if (filtered != 0) parts_.probe->skipped_filtered(filtered);
  if (oversize != 0) parts_.probe->skipped_oversize(oversize);
  parts_.limiter->give_back(ip_, budget);
  if (!stopped) return Delivery::kQueueEmpty;
  if (budget == 0 && rate_limited) {
    if (!pump_scheduled_) schedule_pump(std::chrono::milliseconds(20));  // try again shortly
    return Delivery::kRateLimited;
  }
  // Stopped at the byte bound. Ask the connection to report room, then look: a write that ended
  // before the request would otherwise wake nobody (see SessionHandle::room).
  signals_->waiting_for_room.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sink_->queued_bytes() < parts_.config.low_water_bytes()) {
    signals_->waiting_for_room.store(false, std::memory_order_relaxed);
    return Delivery::kRoomLeft;
  }
  return Delivery::kWaitForRoom;
}

void Subscription::pump() {
  for (int round = 0; round < 64 && !closed_; ++round) {
    if (holds_.any() || replay_.outstanding) return;
    if (!queue_.empty()) {
      const Delivery delivery = deliver_queue();
      if (delivery == Delivery::kWaitForRoom || delivery == Delivery::kRateLimited) return;
      continue;
    }
    if (replay_.more_pages) {
      request_replay();
      return;
    }
    if (in_snapshot_) {
      complete_snapshot();
      continue;
    }
    switch (parts_.window->after(position_, 8, scratch_)) {
      case EventWindow::Coverage::covered:
        set_replaying(false);
        replay_.empty_pages = 0;
        for (auto& block : scratch_) queue_.emplace_back(std::move(block), 0);
        scratch_.clear();
        break;
      case EventWindow::Coverage::caught_up:
        set_replaying(false);
        replay_.empty_pages = 0;
        return;
      case EventWindow::Coverage::too_old:
        if (replay_.empty_pages > 0 && !pump_scheduled_) {
          // The log had nothing newer a moment ago: give decode and the feed time to catch up.
          schedule_pump(std::chrono::milliseconds(std::min(50 * replay_.empty_pages, 1000)));
          return;
        }
        if (pump_scheduled_) return;
        request_replay();
        return;
    }
  }
  // Rounds used up with work left: yield to the other sessions and continue after them.
  if (!closed_ && !pump_scheduled_) schedule_pump(std::chrono::milliseconds(0));
}

void Subscription::send_info(std::string_view name, std::string_view message,
                             std::int64_t time_us) {
  std::string json = R"({"did":"","time_us":)";
  json += std::to_string(time_us);
  json += R"(,"kind":"info","info":{"name":)";
  codec::append_json_string(json, name);
  json += R"(,"message":)";
  codec::append_json_string(json, message);
  json += "}}";
  std::vector<OutboundFrame> frames;
  frames.push_back(OutboundFrame::copy_of(websocket::make_frame(websocket::Opcode::kText, json)));
  sink_->send(std::move(frames));
}

void Subscription::complete_snapshot() {
  // Everything compacted up to the position was delivered: the client holds the state as of it.
  send_info("SnapshotComplete",
            "the state of every matching record as of time_us was sent; changes follow", position_);
  in_snapshot_ = false;
  parts_.probe->snapshot_finished(true);
  // The log from the same position: no gap, no duplicate (API.md "State"). Clamped: a twin that
  // ended before the log's oldest event has nothing older to add.
  replay_.clamp_next = true;
  replay_.more_pages = true;
}

void Subscription::on_replay(ReplayResult& result) {
  replay_.outstanding = false;
  if (parts_.catch_up != nullptr) {
    // Tokens for events the page did not hold (the end of the log, or filtered out) go back.
    const std::uint64_t got = result.block ? result.block->events().size() : 0;
    if (replay_.paid > got) parts_.catch_up->give_back(replay_.paid - got);
    replay_.paid = 0;
  }
  if (closed_) return;
  if (result.timed_out || result.status == proto::ReplayStatus::internal_error) {
    finish(1011, "event log unavailable", CloseReason::log_unavailable);
    return;
  }
  if (result.status == proto::ReplayStatus::too_old && in_snapshot_) {
    // Deletes older than the cursor are gone: the client starts again from nothing.
    parts_.probe->snapshot_restarted();
    send_info("SnapshotRestarted",
              "the cursor is older than the tombstone horizon: the snapshot starts again from the "
              "beginning; drop what you hold for these filters",
              0);
    position_ = 0;
    replay_.after_queue = 0;
    replay_.more_pages = true;
    snapshot_under_way_ = false;
    pump();
    return;
  }
  if (result.status == proto::ReplayStatus::too_old) {
    finish(1008, "position fell out of the event log's retention", CloseReason::out_of_retention);
    return;
  }
  if (result.status != proto::ReplayStatus::ok) {
    finish(1011, "event log refused the request", CloseReason::log_unavailable);
    return;
  }
  if (in_snapshot_) snapshot_under_way_ = true;
  const std::int64_t newest = result.newest_time_us;
  if (result.block && in_snapshot_) parts_.probe->snapshot_events(result.block->events().size());
  if (result.block) {
    parts_.probe->replay_page(result.block->events().size(),
                              static_cast<double>(newest - result.block->last_time_us()) / 1e6);
    queue_.emplace_back(std::move(result.block), 0);
    replay_.empty_pages = 0;
  } else {
    ++replay_.empty_pages;
  }
  // Everything in [start, next_time_us) was considered: filtered-out events included.
  if (result.next_time_us - 1 > replay_.after_queue) replay_.after_queue = result.next_time_us - 1;
  if (queue_.empty() && replay_.after_queue > position_) position_ = replay_.after_queue;
  replay_.more_pages = !result.done;
  pump();
}

}  // namespace jetstream::fanout
