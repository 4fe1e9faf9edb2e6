// decode's end of the backfill channel (proto/README.md §3.9, §3.10): a ROUTER that backfill's
// DEALER sends repository batches to. Each valid batch goes to the sequencer (the single writer),
// which applies it and answers with an ack; the ack comes back here over an inproc socket and
// leaves on the ROUTER to the backfill that sent the batch. At most `max_in_flight` batches wait
// in the sequencer: past that the ROUTER is not read, so ZeroMQ pushes back on backfill.
// Resync polls (proto §3.11, §3.12) are answered here from the store: the repositories decode
// saw a reason to fetch again.
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
#include "services/decode/event_store.hpp"
#include "services/decode/stage_messages.hpp"

namespace jetstream::decode {

class BackfillReceiver {
 public:
  /// Binds the ROUTER on `endpoint` (throws zmq::error_t when it cannot).
  /// `store` answers backfill's resync polls (proto §3.11): its `resync:` rows.
  /// `counters` take backfill's progress reports (proto §3.13) for the status figures.
  BackfillReceiver(zmq::context_t& context, std::string endpoint, EventStore& store,
                   DecodeProbe& probe, PipelineCounters& counters, std::size_t max_in_flight = 4);
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
  void answer_poll(zmq::message_t& routing, std::span<const std::uint8_t> body);

  zmq::context_t& context_;
  std::string bound_endpoint_;
  std::string acks_endpoint_;
  EventStore& store_;
  DecodeProbe& probe_;
  PipelineCounters& counters_;
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
