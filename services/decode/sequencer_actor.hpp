// The actor that runs decode's EventSequencer: the single writer of the event log. Decode
// workers send it their batches (in any order); it hands them to the sequencer, which restores
// arrival order, stamps time_us, stores and publishes (event_sequencer.hpp), and it publishes a
// heartbeat every --heartbeat-interval. Detached (a thread of its own): RocksDB writes block.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/http/http_client.hpp"
#include "common/identity/did_resolver.hpp"
#include "common/identity/identity_cache.hpp"
#include "common/zstd/zstd_dictionary.hpp"
#include "services/decode/commit_verifier.hpp"
#include "services/decode/decode_probe.hpp"
#include "services/decode/event_store.hpp"
#include "services/decode/stage_messages.hpp"

namespace jetstream::decode {

/// --verify: what the sequencer needs to hold frames and have their DIDs resolved.
struct SequencerVerification {
  identity::IdentityCache* cache = nullptr;
  identity::DidResolver* resolver = nullptr;
  http::HttpClient* http_client = nullptr;  ///< for its metrics
  CommitVerifier::Options options;
  bool check_revs = false;  ///< --verify full
  std::size_t rev_cache_size = 250'000;
};

/// What the sequencer actor uses; every pointer outlives the actor.
struct SequencerActorOptions {
  EventStore* store = nullptr;
  std::shared_ptr<const zstd::Dictionary> dictionary;
  DecodeProbe* probe = nullptr;
  PipelineCounters* counters = nullptr;
  zmq::context_t* context = nullptr;
  std::string events_endpoint;  ///< where the events PUB binds
  std::chrono::microseconds heartbeat_interval{1'000'000};
  int send_high_water_mark = 1000;
  /// Set on shutdown: a write that keeps failing is no longer retried.
  std::atomic<bool>* stopping = nullptr;
  std::optional<SequencerVerification> verification;
  /// Where the answer to a backfill batch goes (BackfillReceiver::acknowledge), on the actor's
  /// thread. Empty: no backfill channel.
  std::function<void(const BackfillBatch&, const proto::BatchAck&)> backfill_acks;
};

/// Spawns the sequencer actor, detached. Its events PUB is bound before this returns:
/// `bound_endpoint` receives the endpoint actually bound (the port chosen for `:*`). Throws what
/// the bind threw (zmq::error_t) when the endpoint cannot be bound.
sequencer_actor spawn_sequencer(caf::actor_system& system, SequencerActorOptions options,
                                std::string& bound_endpoint);

}  // namespace jetstream::decode
