// ingest's upstream connection state machine, a CAF actor (proto/README.md §5.1, ingest side).
//
// It decides; the UpstreamLink acts. It holds the last accepted resume id, the stream's cursor,
// the reconnect backoff and a generation number that tells current link events from stale ones.
// Inputs arrive as messages from other threads (`caf::anon_send` is thread-safe): resumes from
// the control thread, opened/failed from the io thread, and its own delayed reconnect timer.
// Its handlers only post to the link (non-blocking) and update metrics.
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <string>

#include "proto/ingest.hpp"

namespace jetstream::ingest {

class IngestProbe;
class UpstreamLink;

struct ConnectionStateMachineConfig {
  UpstreamLink* link = nullptr;  ///< outlives the actor
  IngestProbe* probe = nullptr;  ///< outlives the actor
  std::uint64_t epoch = 0;       ///< this process's epoch (to log resumes aimed elsewhere)
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{30'000};
  /// v1's --override-relay-cursor: when >= 0, replaces the cursor of the first resume accepted
  /// after start (an operator's manual skip; later resumes are decode's).
  std::int64_t override_cursor = -1;
};

caf::actor spawn_connection_state_machine(caf::actor_system& system,
                                          ConnectionStateMachineConfig config);

// Messages to the connection state machine, callable from any thread.
void send_resume(const caf::actor& state_machine, const proto::Resume& resume);
void send_opened(const caf::actor& state_machine, std::uint64_t generation);
void send_failed(const caf::actor& state_machine, std::uint64_t generation, std::string reason,
                 std::string message, std::int64_t last_stream_seq, bool delivered);

}  // namespace jetstream::ingest
