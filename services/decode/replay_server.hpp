// Serves fanout's replay requests (proto §3.7/§3.8, §5.3): a ROUTER socket for every fanout,
// proxied to a pool of reader threads, each reading pages from the event store concurrently.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "services/decode/decode_probe.hpp"
#include "services/decode/event_store.hpp"

namespace jetstream::decode {

class ReplayServer {
 public:
  ReplayServer(zmq::context_t& context, std::string endpoint, const EventStore& store,
               DecodeProbe& probe, std::size_t readers);
  ~ReplayServer();
  ReplayServer(const ReplayServer&) = delete;
  ReplayServer& operator=(const ReplayServer&) = delete;

  void start();
  void stop();
  /// The bound endpoint with its real port.
  std::string endpoint() const { return bound_endpoint_; }

 private:
  void run_proxy();
  void run_reader(std::size_t index);

  zmq::context_t& context_;
  std::string endpoint_;
  std::string bound_endpoint_;
  std::string backend_endpoint_;
  std::string control_endpoint_;
  const EventStore& store_;
  DecodeProbe& probe_;
  std::size_t reader_count_;
  zmq::socket_t frontend_;
  std::atomic<bool> stopping_{false};
  std::thread proxy_;
  std::vector<std::thread> readers_;
};

}  // namespace jetstream::decode
