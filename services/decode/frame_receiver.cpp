#include "services/decode/frame_receiver.hpp"

#include <chrono>
#include <optional>
#include <random>

#include "common/clock/clock.hpp"
#include "common/log/log.hpp"
#include "proto/wire.hpp"
#include "proto/zmq_message.hpp"
#include "services/decode/ingest_tracker.hpp"

namespace jetstream::decode {
namespace {

std::uint64_t random_nonzero() {
  std::random_device device;
  std::uint64_t value = 0;
  while (value == 0) value = (std::uint64_t{device()} << 32) | device();
  return value;
}

}  // namespace

FrameReceiver::FrameReceiver(zmq::context_t& context, FrameReceiverOptions options,
                             DecodeProbe& probe, PipelineCounters& counters,
                             std::vector<decode_worker_actor> workers)
    : context_(context),
      options_(std::move(options)),
      probe_(probe),
      counters_(counters),
      workers_(std::move(workers)) {}

FrameReceiver::~FrameReceiver() { stop(); }

void FrameReceiver::start() {
  thread_ = std::thread([this] { run(); });
}

void FrameReceiver::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void FrameReceiver::run() {
  zmq::socket_t frames(context_, zmq::socket_type::sub);
  frames.set(zmq::sockopt::rcvhwm, options_.receive_high_water_mark);
  if (options_.receive_buffer_bytes > 0)
    frames.set(zmq::sockopt::rcvbuf, options_.receive_buffer_bytes);
  frames.set(zmq::sockopt::subscribe, proto::topic(proto::MessageType::frame));
  frames.set(zmq::sockopt::subscribe, proto::topic(proto::MessageType::status));
  frames.connect(options_.frames_endpoint);
  zmq::socket_t control(context_, zmq::socket_type::push);
  control.set(zmq::sockopt::immediate, 1);  // queue nothing for an ingest that is not there
  control.set(zmq::sockopt::sndhwm, 16);
  control.set(zmq::sockopt::linger, 0);
  control.connect(options_.control_endpoint);

  IngestTracker tracker(counters_.durable_cursor.load(), random_nonzero());
  std::size_t next_worker = 0;
  proto::ReceivedMessage message;

  auto send_resume = [&](const proto::Resume& resume) {
    probe_.record_resume_requested();
    const auto body = proto::encode_resume(resume);
    const auto topic = proto::topic(proto::MessageType::resume);
    const bool sent =
        control.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
        control.send(zmq::buffer(body), zmq::send_flags::dontwait);
    log::info(
        sent ? "asked ingest to resume" : "ingest unreachable; resume will be re-sent",
        {{"resume_id", resume.resume_id}, {"cursor", resume.cursor}, {"epoch", resume.seen_epoch}});
  };

  while (!stopping_.load(std::memory_order_relaxed)) {
    if (counters_.batches_in_flight.load(std::memory_order_acquire) >=
        options_.max_batches_in_flight) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      continue;
    }
    zmq::pollitem_t item{frames.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;

    FrameBatchPtr batch;
    for (std::size_t received = 0; received < options_.max_batch_frames; ++received) {
      if (!proto::receive_message(frames, message)) break;
      tracker.set_durable_cursor(counters_.durable_cursor.load(std::memory_order_acquire));
      if (!message.type()) {
        probe_.record_proto_rejected(message.label("frames"),
                                     proto::to_string(message.type().error()));
        continue;  // a lost frame: the ingest seq gap that follows triggers a resume
      }
      std::optional<proto::Resume> resume;
      switch (message.type().value()) {
        case proto::MessageType::status: {
          const auto status = proto::decode_status(message.body());
          if (!status) {
            probe_.record_proto_rejected("status", proto::to_string(status.error()));
            continue;
          }
          tracker.on_status(status.value(), resume);
          counters_.upstream_connected.store(status.value().connected, std::memory_order_relaxed);
          counters_.upstream_status_at_us.store(clock::wall_clock_us(), std::memory_order_relaxed);
          break;
        }
        case proto::MessageType::frame: {
          const auto frame = proto::decode_frame(message.body(0), message.body(1));
          if (!frame) {
            probe_.record_proto_rejected("frame", proto::to_string(frame.error()));
            continue;  // treated as lost: the ingest seq gap that follows triggers a resume
          }
          counters_.frames_received.fetch_add(1, std::memory_order_relaxed);
          const FrameVerdict verdict = tracker.on_frame(frame.value().header, resume);
          probe_.record_frame_verdict(verdict);
          if (verdict == FrameVerdict::process) {
            if (!batch) {
              batch = std::make_shared<FrameBatch>();
              batch->frames.reserve(options_.max_batch_frames);
              batch->headers.reserve(options_.max_batch_frames);
            }
            batch->headers.push_back(frame.value().header);
            batch->frames.push_back(std::move(message.body_part(1)));
          }
          break;
        }
        default:
          probe_.record_proto_rejected(message.label("frames"),
                                       proto::to_string(proto::DecodeError::wrong_type));
          continue;
      }
      if (resume) send_resume(*resume);
    }
    streaming_.store(tracker.synced(), std::memory_order_relaxed);
    if (batch) {
      batch->sequence = next_sequence_++;
      counters_.batches_in_flight.fetch_add(1, std::memory_order_acq_rel);
      caf::anon_send(workers_[next_worker], decode_atom::value, std::move(batch));
      next_worker = (next_worker + 1) % workers_.size();
    }
  }
}

}  // namespace jetstream::decode
