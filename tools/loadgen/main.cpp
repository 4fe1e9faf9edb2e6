// jetstream-loadgen: websocket load generator and verifier for jetstream-fanout (README.md).
#include <signal.h>

#include <atomic>
#include <iostream>

#include "tools/loadgen/loadgen.hpp"

namespace {

std::atomic<bool> interrupted{false};

void on_signal(int) { interrupted.store(true); }

}  // namespace

int main(int argc, char** argv) {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return jetstream::loadgen::loadgen_main(argc, argv, std::cout, std::cerr,
                                          jetstream::config::process_env, &interrupted);
}
