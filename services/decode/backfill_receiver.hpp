// decode's end of the backfill channel (proto/README.md §3.9, §3.10): a ROUTER that backfill's
// DEALER sends repository batches to. Each valid batch goes to the sequencer (the single writer),
// which applies it and answers with an ack; the ack comes back here over an inproc socket and
// leaves on the ROUTER to the backfill that sent the batch. At most `max_in_flight` batches wait
// in the sequencer: past that the ROUTER is not read, so ZeroMQ pushes back on backfill.
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "proto/backfill.hpp"
#include "services/decode/decode_probe.hpp"
#include "services/decode/stage_messages.hpp"

namespace jetstream::decode {

class BackfillReceiver {
 public:
  /// Binds the ROUTER on `endpoint` (throws zmq::error_t when it cannot).
  BackfillReceiver(zmq::context_t& context, std::string endpoint, DecodeProbe& probe,
                   std::size_t max_in_flight = 4);
  ~BackfillReceiver();
  BackfillReceiver(const BackfillReceiver&) = delete;
  BackfillReceiver& operator=(const BackfillReceiver&) = delete;

  /// Starts the receiving thread; batches go to `sequencer`.
  void start(sequencer_actor sequencer);
  void stop();
  /// The bound endpoint with its real port.
  std::string endpoint() const { return bound_endpoint_; }

  /// The sequencer's answer to `batch`: sent back to its backfill. Called on the sequencer's
  /// thread only (the inproc socket it writes to is used by that thread alone).
  void acknowledge(const BackfillBatch& batch, const proto::BatchAck& ack);

 private:
  void run(sequencer_actor sequencer);

  zmq::context_t& context_;
  std::string bound_endpoint_;
  std::string acks_endpoint_;
  DecodeProbe& probe_;
  std::size_t max_in_flight_;
  zmq::socket_t router_;
  zmq::socket_t acks_in_;      ///< PULL, the receiving thread's
  zmq::socket_t acks_out_;     ///< PUSH, the sequencer's thread's
  std::mutex acks_out_mutex_;  ///< uncontended: documents (and enforces) one writer at a time
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace jetstream::decode
