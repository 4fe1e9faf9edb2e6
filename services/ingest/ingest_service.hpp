// jetstream-ingest: reads the upstream firehose and publishes every frame untouched, in the
// envelope of proto/README.md §3.1, for decode. See README.md here for the threads and actors.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/config/listen_address.hpp"

namespace jetstream::config {
class FlagSet;
}

namespace jetstream::ingest {

/// Every flag of jetstream-ingest (and its JETSTREAM_* variable), with its default.
struct IngestOptions {
  std::string ws_url = "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos";
  std::int64_t override_relay_cursor = -1;
  std::string frames_listen_addr = ":6010";
  std::string control_listen_addr = ":6011";
  config::ListenAddress metrics_listen_addr{"", 6019};
  std::chrono::microseconds status_interval = std::chrono::seconds(1);
  std::chrono::microseconds connect_timeout = std::chrono::seconds(10);
  std::chrono::microseconds handshake_timeout = std::chrono::seconds(10);
  std::chrono::microseconds ping_interval = std::chrono::seconds(20);
  std::chrono::microseconds idle_timeout = std::chrono::seconds(60);
  std::chrono::microseconds stall_timeout = std::chrono::seconds(60);
  std::chrono::microseconds backoff_initial = std::chrono::milliseconds(250);
  std::chrono::microseconds backoff_max = std::chrono::seconds(30);
  std::string ca_file;
  std::int64_t frames_send_hwm = 100'000;
  std::string log_level = "info";
};

void register_ingest_flags(config::FlagSet& flags, IngestOptions& options);

/// Why `options` cannot run (a value out of range, named by its flag), or nullopt.
/// IngestService::start checks it first.
std::optional<std::string> validate_ingest_options(const IngestOptions& options);

/// A running ingest: sockets bound, threads and the connection state machine started, waiting for
/// decode's first resume.
class IngestService {
 public:
  /// Binds everything and starts; nullptr with `error` set when it cannot.
  static std::unique_ptr<IngestService> start(const IngestOptions& options, std::string& error);
  ~IngestService();
  IngestService(const IngestService&) = delete;
  IngestService& operator=(const IngestService&) = delete;

  /// Stops the control thread, the actor, the upstream connection and the metrics server.
  void stop();

  std::uint64_t epoch() const;
  std::string frames_endpoint() const;
  std::string control_endpoint() const;
  std::uint16_t metrics_port() const;

 private:
  struct Impl;
  explicit IngestService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The whole program: flags, logging, start, wait for SIGINT/SIGTERM, stop.
int run_ingest(int argc, char** argv);

}  // namespace jetstream::ingest
