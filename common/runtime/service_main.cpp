#include "common/runtime/service_main.hpp"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <iostream>

#include "common/log/log.hpp"

namespace jetstream::runtime {

void keep_freed_memory(std::size_t keep_bytes) {
  const int bytes = static_cast<int>(std::min<std::size_t>(keep_bytes, 1u << 30));
  // A heap's free top is trimmed only beyond `bytes`; blocks up to 32 MiB (a memtable arena
  // block is 8 MiB) come from the heaps, where freed ones are reused, not from fresh mmaps.
  mallopt(M_TRIM_THRESHOLD, bytes);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
}

int run_service(int argc, char** argv, config::FlagSet& flags, std::string_view service_name,
                const std::string& log_level, const std::function<bool(std::string& error)>& start,
                const std::function<void()>& stop) {
  const auto outcome = flags.parse(argc, argv);
  if (const auto exit_code = flags.report(outcome, std::cout, std::cerr)) return *exit_code;
  log::set_service(service_name);
  if (const auto level = log::parse_level(log_level)) {
    log::set_level(*level);
  } else {
    std::cerr << "unknown --log-level '" << log_level << "' (debug, info, warn or error)\n";
    return 2;
  }

  // Signals go to this thread's sigwait only: every thread started below inherits the mask.
  // A peer closing a socket must never kill the process: SIGPIPE is ignored.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::string error;
  if (!start(error)) {
    log::error("failed to start", {{"error", error}});
    return 1;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  log::info("stopping", {{"signal", signal_number}});
  stop();
  log::info("stopped");
  return 0;
}

}  // namespace jetstream::runtime
