// A blocking replay client for tests: sends one request to decode's replay ROUTER and waits for
// its page. Production fanout has its own asynchronous client.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "proto/replay.hpp"

namespace jetstream::testing {

/// An owned copy of a page (views in ReplayPageView point into the received message).
struct OwnedEvent {
  std::int64_t time_us;
  std::int64_t prev_time_us;
  proto::EventKind kind;
  std::string did;
  std::string collection;
  std::string json;
  std::string zstd;
};

struct OwnedPage {
  proto::ReplayStatus status;
  bool done;
  std::int64_t next_time_us;
  std::int64_t oldest_time_us;
  std::int64_t newest_time_us;
  std::vector<OwnedEvent> events;
};

inline OwnedEvent own(const proto::EventView& view) {
  return {view.time_us,
          view.prev_time_us,
          view.kind,
          std::string(view.did),
          std::string(view.collection),
          std::string(view.json),
          std::string(reinterpret_cast<const char*>(view.zstd.data()), view.zstd.size())};
}

class ReplayClient {
 public:
  ReplayClient(zmq::context_t& context, const std::string& endpoint)
      : socket_(context, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  std::optional<OwnedPage> request(proto::ReplayRequest request,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    request.request_id = ++last_id_;
    const auto body = proto::encode_replay_request(request);
    const auto topic = proto::topic(proto::MessageType::replay_request);
    socket_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(body), zmq::send_flags::none);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) <= 0) continue;
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(socket_, std::back_inserter(parts))) continue;
      if (parts.size() != 2) continue;
      const auto page = proto::decode_replay_page(
          {static_cast<const std::uint8_t*>(parts[1].data()), parts[1].size()});
      if (!page || page.value().request_id != request.request_id) continue;
      OwnedPage owned{page.value().status,         page.value().done,
                      page.value().next_time_us,   page.value().oldest_time_us,
                      page.value().newest_time_us, {}};
      for (const auto& event : page.value().events) owned.events.push_back(own(event));
      return owned;
    }
    return std::nullopt;
  }

  /// Every stored event from `start` on that matches `filters` (page after page until done).
  std::vector<OwnedEvent> read_all(proto::ReplayRequest filters, std::int64_t start = 0) {
    std::vector<OwnedEvent> events;
    filters.start_time_us = start;
    filters.clamp_to_oldest = true;
    if (filters.max_events == 0) filters.max_events = 1000;
    if (filters.max_bytes == 0) filters.max_bytes = 4u << 20;
    for (int pages = 0; pages < 100000; ++pages) {
      auto page = request(filters);
      if (!page || page->status != proto::ReplayStatus::ok) break;
      for (auto& event : page->events) events.push_back(std::move(event));
      if (page->done) break;
      filters.start_time_us = page->next_time_us;
    }
    return events;
  }

 private:
  zmq::socket_t socket_;
  std::uint64_t last_id_ = 0;
};

}  // namespace jetstream::testing
