#include <limits>

#include "services/decode/commit_verifier.hpp"
#include "services/decode/stage_messages.hpp"

namespace jetstream::decode {
namespace {

struct WorkerState {
  firehose::V1Encoder encoder;
  std::unique_ptr<CommitVerifier> verifier;  // --verify only
};

decode_worker_actor::behavior_type decode_worker(
    decode_worker_actor::stateful_pointer<WorkerState> self, sequencer_actor sequencer,
    std::shared_ptr<const WorkerVerification> verification) {
  const bool check_revs = verification && verification->options.full;
  if (verification) {
    self->state.verifier = std::make_unique<CommitVerifier>(
        *verification->cache, verification->now_us, verification->options);
    self->state.encoder.set_commit_gate(self->state.verifier.get());
  }
  return {
      [self, sequencer, check_revs](decode_atom, const FrameBatchPtr& batch) {
        auto decoded = std::make_shared<DecodedBatch>();
        decoded->sequence = batch->sequence;
        decoded->oldest_receive_time_us = std::numeric_limits<std::int64_t>::max();
        auto& encoder = self->state.encoder;
        CommitVerifier* verifier = self->state.verifier.get();
        if (verifier != nullptr) decoded->frames = batch;
        encoder.reset_stats();
        for (std::size_t i = 0; i < batch->frames.size(); ++i) {
          const auto& frame = batch->frames[i];
          const auto& header = batch->headers[i];
          const std::size_t position = decoded->events.size();
          const auto outcome = encoder.events_from_frame(
              {static_cast<const std::uint8_t*>(frame.data()), frame.size()}, decoded->events);
          if (verifier != nullptr) {
            decoded->event_frames.resize(decoded->events.size(), static_cast<std::uint32_t>(i));
            decoded->frame_gate.push_back(static_cast<std::uint8_t>(
                (outcome.gate_passed ? DecodedBatch::kGatePassed : 0) |
                (outcome.gate_unverified ? DecodedBatch::kGateUnverified : 0) |
                (outcome.gate_unproven ? DecodedBatch::kGateUnproven : 0)));
            // A passed commit is the sequencer's business only for its rev (--verify full), or
            // when it made no event to find it by (it may have to wait behind a held frame).
            const bool made_no_event = decoded->events.size() == position;
            if (outcome.held || (outcome.gate_passed && (check_revs || made_no_event))) {
              decoded->gated.push_back({position, static_cast<std::uint32_t>(i),
                                        std::string(outcome.repo), std::string(outcome.rev),
                                        outcome.held,
                                        outcome.held && verifier->last_hold_wants_refresh()});
            }
          }
          if (outcome.resync != firehose::FrameOutcome::Resync::none) {
            decoded->resyncs.emplace_back(std::string(outcome.resync_did),
                                          static_cast<std::uint8_t>(outcome.resync));
          }
          if (!outcome.upstream_error.empty() && decoded->upstream_errors.size() < 8) {
            decoded->upstream_errors.push_back(outcome.upstream_error);
          }
          if (header.upstream_seq > decoded->cursor) decoded->cursor = header.upstream_seq;
          if (header.receive_time_us < decoded->oldest_receive_time_us) {
            decoded->oldest_receive_time_us = header.receive_time_us;
          }
        }
        decoded->stats = encoder.stats();
        self->send(sequencer, store_atom::value, std::move(decoded));
      },
  };
}

}  // namespace

decode_worker_actor spawn_decode_worker(caf::actor_system& system, sequencer_actor sequencer,
                                        std::shared_ptr<const WorkerVerification> verification) {
  return system.spawn(decode_worker, std::move(sequencer), std::move(verification));
}

}  // namespace jetstream::decode
