// jetstream-fanout: the v1 `/subscribe` API. Wiring of the HTTP/websocket server, the feed from
// decode, the window, the broadcaster and one session actor per client. `run_fanout` is the
// whole program; `FanoutService` lets tests embed it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/config/flags.hpp"

namespace jetstream::fanout {

struct FanoutOptions {
  std::string listen_addr = ":6008";
  std::string metrics_listen_addr = ":6009";
  std::string events_endpoint = "tcp://127.0.0.1:6012";
  std::string replay_endpoint = "tcp://127.0.0.1:6013";
  std::string zstd_dictionary_path;  ///< present = compressed streams may be requested
  double max_sub_rate = 5000;        ///< events/s per client IP; 0 = unlimited
  /// How far (%) catch-up may raise live sends' p99 write lag above live alone
  /// (catch_up_governor.hpp); 0 = off.
  double catch_up_live_rise = 20;
  double catch_up_min_rate = 10000;   ///< events/s catch-up always gets, the replica together
  std::string trusted_proxies = "*";  ///< peers whose X-Forwarded-For/X-Real-IP are believed
  std::int64_t window_bytes = std::int64_t{256} << 20;
  std::int64_t io_threads = 0;     ///< 0 = half the cores, at least one
  std::int64_t actor_threads = 0;  ///< CAF threads for the sessions; 0 = the remaining cores
  std::chrono::microseconds ping_interval = std::chrono::seconds(30);
  std::chrono::microseconds pong_timeout = std::chrono::seconds(30);
  std::chrono::microseconds slow_client_timeout = std::chrono::seconds(60);
  std::int64_t client_buffer_bytes = 1 << 20;  ///< unsent bytes per client before it waits
  std::chrono::microseconds shutdown_grace = std::chrono::seconds(5);
  /// Time a client has to send its request (line and headers) once it starts one.
  std::chrono::microseconds header_timeout = std::chrono::seconds(10);
  /// Memory the requests being read may hold together (HttpServerOptions::max_request_memory).
  std::int64_t max_request_memory = std::int64_t{128} << 20;
  /// Answer permessage-deflate offers (HttpServerOptions::permessage_deflate).
  bool permessage_deflate = true;
  std::string log_level = "info";
};

void register_fanout_flags(config::FlagSet& flags, FanoutOptions& options);

/// Why `options` cannot run (a value out of range, named by its flag), or nullopt.
/// FanoutService::start checks it first.
std::optional<std::string> validate_fanout_options(const FanoutOptions& options);

class FanoutService {
 public:
  static std::unique_ptr<FanoutService> start(const FanoutOptions& options, std::string& error);
  ~FanoutService();
  FanoutService(const FanoutService&) = delete;
  FanoutService& operator=(const FanoutService&) = delete;

  /// Closes every client with 1001 "server shutting down", then stops. Idempotent.
  void stop();
  std::uint16_t port() const;
  std::uint16_t metrics_port() const;

 private:
  struct Impl;
  explicit FanoutService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

int run_fanout(int argc, char** argv);

}  // namespace jetstream::fanout
