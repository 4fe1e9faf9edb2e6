#include "services/decode/sequencer_actor.hpp"

#include <future>

#include "services/decode/event_sequencer.hpp"
#include "services/decode/zmq_event_publisher.hpp"

namespace jetstream::decode {
namespace {

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
    return {[](store_atom, DecodedBatchPtr&) {}, [](tick_atom) {}};
  }
  bound->set_value(state.publisher->endpoint());
  state.sequencer = std::make_unique<EventSequencer>(
      *options.store, options.dictionary, *options.probe, *options.counters, *state.publisher);
  self->send(self, tick_atom::value);
  return {
      [self, options](store_atom, DecodedBatchPtr& batch) {
        if (!self->state.sequencer->accept(std::move(batch), *options.stopping)) self->quit();
      },
      [self, options](tick_atom) {
        self->state.sequencer->publish_heartbeat();
        self->delayed_send(self, options.heartbeat_interval, tick_atom::value);
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
