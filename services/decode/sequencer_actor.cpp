#include "services/decode/sequencer_actor.hpp"

#include <future>

#include "services/decode/event_sequencer.hpp"
#include "services/decode/zmq_event_publisher.hpp"

namespace jetstream::decode {
namespace {

void publish_identity_figures(const SequencerVerification& verification, DecodeProbe& probe) {
  DecodeProbe::IdentityFigures figures;
  const auto& cache = verification.cache->counters();
  figures.cache_entries = verification.cache->size();
  figures.cache_hits = cache.hits.load(std::memory_order_relaxed);
  figures.cache_misses = cache.misses.load(std::memory_order_relaxed);
  const auto& resolver = verification.resolver->counters();
  figures.resolved = resolver.resolved.load(std::memory_order_relaxed);
  figures.failed = resolver.failed.load(std::memory_order_relaxed);
  figures.coalesced = resolver.coalesced.load(std::memory_order_relaxed);
  figures.refresh_limited = resolver.refresh_limited.load(std::memory_order_relaxed);
  const auto& http = verification.http_client->counters();
  for (std::size_t i = 0; i < figures.http_errors.size(); ++i) {
    figures.http_errors[i] = http.errors[i].load(std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < figures.refused_addresses.size(); ++i) {
    figures.refused_addresses[i] = http.refused_addresses[i].load(std::memory_order_relaxed);
  }
  probe.set_identity(figures);
}

struct SequencerActorState {
  std::unique_ptr<ZmqEventPublisher> publisher;
  std::unique_ptr<EventSequencer> sequencer;
};

sequencer_actor::behavior_type sequencer_behavior(
    sequencer_actor::stateful_pointer<SequencerActorState> self, SequencerActorOptions options,
    std::promise<std::string>* bound) {
  auto& state = self->state;
  try {
    // The PUB lives on the actor's own thread: ZeroMQ sockets are not shared between threads.
    state.publisher = std::make_unique<ZmqEventPublisher>(*options.context, options.events_endpoint,
                                                          options.send_high_water_mark);
  } catch (...) {
    bound->set_exception(std::current_exception());
    self->quit();
    return {[](store_atom, DecodedBatchPtr&) {}, [](tick_atom) {},
            [](resolved_atom, const std::string&) {}, [](backfill_atom, BackfillBatchPtr&) {}};
  }
  bound->set_value(state.publisher->endpoint());
  state.sequencer = std::make_unique<EventSequencer>(
      *options.store, options.dictionary, *options.probe, *options.counters, *state.publisher);
  if (options.verification) {
    const SequencerVerification& verification = *options.verification;
    auto* resolver = verification.resolver;
    const sequencer_actor handle = caf::actor_cast<sequencer_actor>(self);
    state.sequencer->enable_verification(EventSequencer::Verification{
        verification.cache, verification.options,
        [resolver, handle](const std::string& did, bool refresh) {
          // The answer is in the cache when this runs (on the resolver's thread, or inline on a
          // hit): the actor releases the DID's frames on its own thread.
          resolver->resolve(did, refresh, [handle, did](const identity::ResolutionPtr&) {
            caf::anon_send(handle, resolved_atom::value, did);
          });
        },
        verification.check_revs, verification.rev_cache_size});
  }
  self->send(self, tick_atom::value);
  return {
      [self, options](store_atom, DecodedBatchPtr& batch) {
        if (!self->state.sequencer->accept(std::move(batch), *options.stopping)) self->quit();
      },
      [self, options](tick_atom) {
        self->state.sequencer->publish_heartbeat();
        if (options.verification) publish_identity_figures(*options.verification, *options.probe);
        self->delayed_send(self, options.heartbeat_interval, tick_atom::value);
      },
      [self, options](resolved_atom, const std::string& did) {
        if (!self->state.sequencer->release(did, *options.stopping)) self->quit();
      },
      [self, options](backfill_atom, BackfillBatchPtr& batch) {
        const auto start = std::chrono::steady_clock::now();
        EventSequencer::BackfillProgress progress{batch->next_record, batch->ack};
        const auto ack = self->state.sequencer->apply_backfill_step(
            progress, batch->view, EventSequencer::kBackfillRecordsPerStep);
        batch->next_record = progress.next;
        batch->ack = progress.ack;
        if (!ack) {
          // The rest behind whatever waits in the mailbox now: live batches go first. While
          // live frames are being decoded, backfill gets at most half of the writer's time (the
          // next step waits as long as this one took), so the two cores stay the live stream's.
          if (options.counters->batches_in_flight.load(std::memory_order_relaxed) > 0) {
            const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - start);
            self->delayed_send(self, took, backfill_atom::value, std::move(batch));
          } else {
            self->send(self, backfill_atom::value, std::move(batch));
          }
          return;
        }
        if (options.backfill_acks) options.backfill_acks(*batch, *ack);
      },
  };
}

}  // namespace

sequencer_actor spawn_sequencer(caf::actor_system& system, SequencerActorOptions options,
                                std::string& bound_endpoint) {
  std::promise<std::string> bound;
  auto endpoint = bound.get_future();
  auto actor = system.spawn<caf::detached>(sequencer_behavior, std::move(options), &bound);
  bound_endpoint = endpoint.get();  // rethrows a failed bind
  return actor;
}

}  // namespace jetstream::decode
