#include "common/runtime/actor_scheduler.hpp"

#include <algorithm>
#include <caf/timestamp.hpp>
#include <chrono>

namespace jetstream::runtime {

std::unique_ptr<caf::actor_system_config> actor_system_config(std::size_t threads) {
  auto config = std::make_unique<caf::actor_system_config>();
  config->set("scheduler.max-threads", std::max<std::size_t>(1, threads));
  config->set("work-stealing.aggressive-poll-attempts", std::size_t{100});
  config->set("work-stealing.aggressive-steal-interval", std::size_t{10});
  config->set("work-stealing.moderate-poll-attempts", std::size_t{0});
  config->set("work-stealing.relaxed-steal-interval", std::size_t{1});
  config->set("work-stealing.relaxed-sleep-duration", caf::timespan{std::chrono::milliseconds(10)});
  return config;
}

}  // namespace jetstream::runtime
