// fanout's link to decode: one thread owning the SUB socket on decode's events and the replay
// client (replay_client.hpp) on decode's replay endpoint.
//
// Live stream (proto §5.2): joins at the first batch or heartbeat, then checks every batch's
// prev_time_us against the window's head; a gap (or a heartbeat ahead of the head) is filled
// from replay, page by page, while later live batches wait; only then does the chain continue.
// Every block appended to the window is handed to `on_block` (the broadcaster).
//
// Client replay: sessions submit filtered replay requests from any thread; pages come back as
// blocks through the request's callback (called on the feed thread: it must only post). The
// feed's repair and the sessions share the replay client, its timeouts and retries.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/syntax/collection_set.hpp"
#include "proto/replay.hpp"
#include "services/fanout/event_window.hpp"
#include "services/fanout/replay_client.hpp"

namespace jetstream::fanout {

struct ReplayResult {
  proto::ReplayStatus status = proto::ReplayStatus::ok;
  bool done = false;
  bool timed_out = false;  ///< decode did not answer in time (after retries)
  std::int64_t next_time_us = 0;
  std::int64_t oldest_time_us = 0;
  std::int64_t newest_time_us = 0;
  BlockPtr block;  ///< null when the page held no event
};

/// What the feed reports for metrics and readiness.
struct FeedStatus {
  bool joined = false;
  bool repairing = false;
  std::int64_t head = 0;
  std::chrono::steady_clock::time_point last_message{};
};

/// decode's compacted twin as its last state info said (proto §3.6b).
struct CompactedState {
  syntax::CollectionSet compacted;
  std::int64_t tombstone_horizon_us = 0;
  syntax::CollectionSet building;  ///< patterns of `compacted` whose twin decode still builds
};

class FeedObserver {
 public:
  virtual ~FeedObserver() = default;
  virtual void on_batch_received(std::size_t events, std::size_t bytes) = 0;
  virtual void on_gap_repaired(std::size_t events) = 0;
  virtual void on_chain_reset(std::string_view why) = 0;
  virtual void on_proto_rejected(std::string_view message, std::string_view reason) = 0;
};

struct EventFeedOptions {
  std::string events_endpoint = "tcp://127.0.0.1:6012";
  std::string replay_endpoint = "tcp://127.0.0.1:6013";
  std::chrono::milliseconds replay_timeout{5000};
  int replay_attempts = 5;
  std::uint32_t repair_page_events = 10000;
  std::size_t max_held_events = 200000;  ///< live events held during a repair before re-joining
  int receive_high_water_mark = 100000;
  int receive_buffer_bytes = 0;  ///< SO_RCVBUF of the events subscription; 0 = OS default
  /// The replica's permessage-deflate figures (null: never compress in the feed): while deflate
  /// clients are connected, each live block is compressed here before it reaches the window.
  DeflateStats* deflate = nullptr;
};

class EventFeed {
 public:
  using BlockCallback = std::function<void(const BlockPtr&)>;
  using ReplayCallback = std::function<void(ReplayResult)>;

  EventFeed(zmq::context_t& context, EventFeedOptions options, EventWindow& window,
            BlockCallback on_block, FeedObserver& observer);
  ~EventFeed();
  EventFeed(const EventFeed&) = delete;
  EventFeed& operator=(const EventFeed&) = delete;

  void start();
  void stop();

  /// Queues a replay request for a client session; thread-safe. `done` runs on the feed thread.
  void request_replay(proto::ReplayRequest request, ReplayCallback done);

  FeedStatus status() const;
  /// What decode's last state info said; null before the first one arrived.
  std::shared_ptr<const CompactedState> compacted_state() const;
  /// decode's last pipeline status (proto §3.6c) and when it arrived; nullopt before the first.
  struct PipelineSample {
    proto::PipelineStatus status;
    std::chrono::steady_clock::time_point received;
  };
  std::optional<PipelineSample> pipeline_status() const;

 private:
  void run();
  /// `fresh`: just received (not a batch held during a repair and processed again).
  void on_events(std::span<const std::uint8_t> body, bool fresh);
  void on_heartbeat(std::span<const std::uint8_t> body);
  void on_state_info(std::span<const std::uint8_t> body);
  void on_pipeline_status(std::span<const std::uint8_t> body);
  void apply_live(std::vector<proto::EventView>& events);
  void start_repair(std::int64_t end_time_us);
  void request_repair_page(proto::ReplayRequest request);
  void on_repair_page(const proto::ReplayPageView& page, proto::ReplayRequest request);
  /// Gives up the repair in progress: the chain re-joins at the next live message.
  void abandon_repair(std::string_view why);
  void append(std::span<const proto::EventView> events);

  zmq::context_t& context_;
  EventFeedOptions options_;
  EventWindow& window_;
  BlockCallback on_block_;
  FeedObserver& observer_;
  ReplayClient replay_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  // Feed thread only.
  bool joined_ = false;
  std::int64_t head_ = 0;
  bool repairing_ = false;
  /// Bumped when a repair ends or is abandoned: a page of an older repair is ignored.
  std::uint64_t repair_generation_ = 0;
  std::int64_t repair_end_ = 0;                 ///< exclusive; 0 = up to the newest stored
  std::deque<std::vector<std::uint8_t>> held_;  ///< live batch bodies waiting for the repair
  std::size_t held_events_ = 0;
  std::size_t repaired_events_ = 0;

  mutable std::mutex status_mutex_;
  FeedStatus status_;
  std::shared_ptr<const CompactedState> compacted_state_;  ///< under status_mutex_
  std::optional<PipelineSample> pipeline_status_;          ///< under status_mutex_
};

}  // namespace jetstream::fanout
