// jetstream-loadgen: N websocket clients against `GET /subscribe`, measuring deliveries/s,
// bytes/s and publish→receive latency, and verifying what every client received (README.md).
// `main.cpp` only installs the signal handlers and calls `loadgen_main`; tests call it in-process.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "common/config/flags.hpp"

namespace jetstream::loadgen {

/// Every flag of the tool (README.md lists them with their meaning).
struct Options {
  std::string url = "ws://127.0.0.1:6008/subscribe";
  std::string query;
  std::string query_file;  ///< more query read from a file (URLs longer than one argv string)
  std::int64_t clients = 1000;
  double connect_rate = 0;  ///< connections per second in total; 0 = all at once
  std::chrono::microseconds duration = std::chrono::seconds(10);
  std::int64_t until_events = 0;   ///< 0 = off
  std::int64_t expect_events = 0;  ///< 0 = off
  bool expect_same = false;
  std::int64_t threads = 1;
  bool compress = false;
  bool deflate = false;  ///< offer permessage-deflate, as browsers do
  std::string zstd_dictionary_path;
  std::int64_t decompress_every = 1;
  bool json = false;
  std::int64_t server_pid = 0;
  std::chrono::microseconds handshake_timeout = std::chrono::seconds(10);
  bool progress = true;
  /// Spread the clients over this many loopback source addresses (127.0.B.1, 127.0.B.2, …), so
  /// a server that limits per IP sees that many peers (0: the kernel picks, one address).
  std::int64_t source_addresses = 0;
  std::int64_t source_network = 1;  ///< the B of 127.0.B.x for --source-addresses
};

/// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitVerificationFailed = 1;
inline constexpr int kExitUsage = 2;  ///< bad flags or setup (URL, address, dictionary)

/// Parses flags (JETSTREAM_* environment through `env`) and runs. Progress lines and setup errors
/// go to `err`; the summary to `out` (with `--json`: the JSON line to `out`, the text to `err`).
/// The run ends early, with a summary, once `interrupt` (may be null) becomes true.
int loadgen_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
                 const config::EnvLookup& env = config::process_env,
                 const std::atomic<bool>* interrupt = nullptr);

/// Runs with already parsed options.
int run(const Options& options, std::ostream& out, std::ostream& err,
        const std::atomic<bool>* interrupt = nullptr);

}  // namespace jetstream::loadgen
