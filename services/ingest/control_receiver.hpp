// The control channel: decode's `resume` messages (proto/README.md §3.3) on a PULL socket.
//
// Threads: one thread of its own owns the PULL socket (bound in the constructor, then handed to
// that thread). It polls with a short timeout so stop() returns promptly, decodes each message
// strictly and hands valid resumes to `on_resume` (which must not block: the service sends them
// to the connection state machine with caf::anon_send). Rejected messages are counted and logged at
// a bounded rate.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "proto/ingest.hpp"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace jetstream::ingest {

class IngestProbe;

class ControlReceiver {
 public:
  /// Binds the PULL socket to `endpoint` (throws zmq::error_t when it cannot).
  ControlReceiver(zmq::context_t& context, const std::string& endpoint, IngestProbe& probe,
                  std::function<void(const proto::Resume&)> on_resume);
  /// Calls stop().
  ~ControlReceiver();
  ControlReceiver(const ControlReceiver&) = delete;
  ControlReceiver& operator=(const ControlReceiver&) = delete;

  void start();
  /// Stops and joins the thread, closes the socket. Idempotent.
  void stop();
  /// The endpoint actually bound.
  std::string endpoint() const { return endpoint_; }

 private:
  void run();

  std::unique_ptr<zmq::socket_t> socket_;
  std::string endpoint_;
  IngestProbe& probe_;
  std::function<void(const proto::Resume&)> on_resume_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace jetstream::ingest
