#include "services/ingest/connection_state_machine.hpp"

#include <caf/all.hpp>

#include "common/log/log.hpp"
#include "services/ingest/backoff.hpp"
#include "services/ingest/ingest_probe.hpp"
#include "services/ingest/upstream_link.hpp"

namespace jetstream::ingest {

namespace {

using resume_atom = caf::atom_constant<caf::atom("resume")>;
using opened_atom = caf::atom_constant<caf::atom("opened")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;

struct MachineState {
  explicit MachineState() : backoff(std::chrono::milliseconds{250}, std::chrono::seconds{30}) {}

  std::uint64_t accepted_resume = 0;  ///< 0: none yet (idle)
  std::int64_t stream_cursor = proto::kLiveCursor;
  std::uint64_t generation = 0;
  bool override_pending = false;
  Backoff backoff;

  static inline const char* name = "ingest-connection-state-machine";
};

caf::behavior state_machine(caf::stateful_actor<MachineState>* self,
                            ConnectionStateMachineConfig config) {
  self->state.backoff = Backoff(config.backoff_initial, config.backoff_max);
  self->state.override_pending = config.override_cursor >= 0;
  return {
      [self, config](resume_atom, std::uint64_t resume_id, std::uint64_t seen_epoch,
                     std::int64_t cursor) {
        auto& st = self->state;
        if (resume_id == st.accepted_resume) {
          // A retry: decode has not seen our acknowledgement yet. Repeat it, change nothing.
          config.probe->record_resume(true);
          config.link->publish_status();
          return;
        }
        config.probe->record_resume(false);
        if (seen_epoch != 0 && seen_epoch != config.epoch) {
          log::info("resume aimed at an earlier ingest epoch; acting on it",
                    {{"seen_epoch", seen_epoch}, {"epoch", config.epoch}});
        }
        if (st.override_pending) {
          log::warn("--override-relay-cursor replaces decode's cursor for this first stream",
                    {{"decode_cursor", cursor}, {"cursor", config.override_cursor}});
          cursor = config.override_cursor;
          st.override_pending = false;
        }
        st.accepted_resume = resume_id;
        st.stream_cursor = cursor;
        st.backoff.reset();
        ++st.generation;
        log::info("resume accepted", {{"resume_id", resume_id}, {"cursor", cursor}});
        config.probe->set_state(UpstreamState::connecting);
        config.link->begin_stream(st.generation, resume_id, cursor);
      },
      [self, config](opened_atom, std::uint64_t generation) {
        if (generation != self->state.generation) return;
        config.probe->set_state(UpstreamState::connected);
        log::info("upstream connected",
                  {{"resume_id", self->state.accepted_resume}, {"generation", generation}});
      },
      [self, config](failed_atom, std::uint64_t generation, const std::string& reason,
                     const std::string& message, std::int64_t last_stream_seq, bool delivered) {
        auto& st = self->state;
        if (generation != st.generation) return;
        config.probe->record_reconnect(reason);
        if (delivered) st.backoff.reset();
        const auto delay = st.backoff.next();
        // proto §5.1 rule 4: continue the same stream after the last seq it delivered.
        const std::int64_t cursor = last_stream_seq > 0 ? last_stream_seq : st.stream_cursor;
        ++st.generation;
        config.probe->set_state(UpstreamState::backoff);
        log::warn_every(std::chrono::seconds(5), reason, "upstream connection ended; reconnecting",
                        {{"reason", reason},
                         {"error", message},
                         {"cursor", cursor},
                         {"delay_ms", delay.count()},
                         {"attempt", st.backoff.attempt()}});
        self->delayed_send(self, delay, reconnect_atom::value, st.generation, cursor);
      },
      [self, config](reconnect_atom, std::uint64_t generation, std::int64_t cursor) {
        if (generation != self->state.generation) return;
        config.probe->set_state(UpstreamState::connecting);
        config.link->reconnect(generation, cursor);
      },
  };
}

}  // namespace

caf::actor spawn_connection_state_machine(caf::actor_system& system,
                                          ConnectionStateMachineConfig config) {
  return system.spawn(state_machine, config);
}

void send_resume(const caf::actor& state_machine, const proto::Resume& resume) {
  caf::anon_send(state_machine, resume_atom::value, resume.resume_id, resume.seen_epoch,
                 resume.cursor);
}

void send_opened(const caf::actor& state_machine, std::uint64_t generation) {
  caf::anon_send(state_machine, opened_atom::value, generation);
}

void send_failed(const caf::actor& state_machine, std::uint64_t generation, std::string reason,
                 std::string message, std::int64_t last_stream_seq, bool delivered) {
  caf::anon_send(state_machine, failed_atom::value, generation, std::move(reason),
                 std::move(message), last_stream_seq, delivered);
}

}  // namespace jetstream::ingest
