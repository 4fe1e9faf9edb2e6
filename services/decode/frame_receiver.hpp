// The receiver thread: owns the SUB socket on ingest's frames and the PUSH socket of the control
// channel. Applies the ingest stream rules (IngestTracker), batches accepted frames and hands
// them to the decode workers. Stops reading while too many batches are in flight: ZeroMQ then
// drops at its high-water mark, the tracker sees the gap and ingest resumes from the durable
// cursor — back-pressure without unbounded queues.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "services/decode/decode_probe.hpp"
#include "services/decode/stage_messages.hpp"

namespace jetstream::decode {

struct FrameReceiverOptions {
  std::string frames_endpoint;   ///< ingest's PUB, e.g. tcp://127.0.0.1:6010
  std::string control_endpoint;  ///< ingest's PULL, e.g. tcp://127.0.0.1:6011
  std::size_t max_batch_frames = 256;
  std::int64_t max_batches_in_flight = 64;
  int receive_high_water_mark = 100000;
  int receive_buffer_bytes = 0;  ///< SO_RCVBUF; 0 keeps the OS default
};

class FrameReceiver {
 public:
  FrameReceiver(zmq::context_t& context, FrameReceiverOptions options, DecodeProbe& probe,
                PipelineCounters& counters, std::vector<decode_worker_actor> workers);
  ~FrameReceiver();
  FrameReceiver(const FrameReceiver&) = delete;
  FrameReceiver& operator=(const FrameReceiver&) = delete;

  void start();
  void stop();
  /// True once ingest follows decode's cursor, even before a first frame (used by /readyz).
  bool streaming() const { return streaming_.load(std::memory_order_relaxed); }
  std::uint64_t batches_dispatched() const { return next_sequence_ - 1; }

 private:
  void run();

  zmq::context_t& context_;
  FrameReceiverOptions options_;
  DecodeProbe& probe_;
  PipelineCounters& counters_;
  std::vector<decode_worker_actor> workers_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> streaming_{false};
  std::uint64_t next_sequence_ = 1;
  std::thread thread_;
};

}  // namespace jetstream::decode
