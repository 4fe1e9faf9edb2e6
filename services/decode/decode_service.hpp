// jetstream-decode: wiring of the receiver, workers, writer, replay server, retention and
// metrics. `run_decode` is the whole program; `DecodeService` lets tests embed it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "common/config/flags.hpp"

namespace jetstream::decode {

struct DecodeOptions {
  std::string data_dir = "./data";
  std::string zstd_dictionary_path;
  std::chrono::microseconds event_ttl = std::chrono::hours(24);
  std::string frames_endpoint = "tcp://127.0.0.1:6010";
  std::string control_endpoint = "tcp://127.0.0.1:6011";
  std::string events_endpoint = "tcp://*:6012";
  std::string replay_endpoint = "tcp://*:6013";
  /// Where backfill's repository batches arrive (ROUTER, proto §3.9); empty: no backfill.
  std::string backfill_endpoint = "tcp://*:6014";
  std::string metrics_listen_addr = ":6029";
  std::string ws_url_label = "upstream";  ///< `socket_url` label of v1 consumer metrics
  std::int64_t workers = 0;               ///< 0 = one per core
  std::int64_t replay_readers = 4;
  std::int64_t max_batch_frames = 256;
  std::int64_t max_batches_in_flight = 64;
  std::int64_t frames_receive_hwm = 100000;
  std::int64_t frames_receive_buffer = 0;  ///< kernel receive buffer (SO_RCVBUF), 0 = OS default
  std::int64_t events_send_hwm = 100000;   ///< events PUB high-water mark per subscriber (messages)
  std::chrono::microseconds heartbeat_interval = std::chrono::seconds(1);
  std::chrono::microseconds retention_interval = std::chrono::minutes(1);
  bool sync_writes = false;
  /// Below this much free space in the data directory's file system decode stops storing (and so
  /// taking frames) before RocksDB meets ENOSPC; on start below it the log opens read-only.
  std::int64_t min_free_bytes = std::int64_t{1} << 30;
  /// How often the free space is looked at.
  std::chrono::microseconds disk_check_interval = std::chrono::seconds(1);
  std::string log_level = "info";
  /// Collections whose compacted twin is kept: exact NSIDs and `prefix.*`, comma-separated;
  /// empty (the default): no twin, nothing costs anything (API.md "State").
  std::string compact_collections;
  /// How long a delete stays in the twin as a tombstone.
  std::chrono::microseconds tombstone_ttl = std::chrono::hours(24 * 7);
  /// Log events per step of the twin's build from the log (newly compacted collections).
  std::int64_t twin_build_step_events = 5000;
  /// Recompute the twin from the log, compare it with the stored one, print what differs and
  /// exit (0: equal, 1: not, or the store cannot be read). Does not start the service.
  bool check_state = false;

  // --verify (API.md "Authenticity"; README "Verification").
  /// off (v1), signatures (each commit's signature against its DID's #atproto key), full (also
  /// Sync 1.1: the ops proven against the signed tree and prevData, revs increasing per repo).
  std::string verify = "off";
  /// --verify full: drop commits older than Sync 1.1 (no prevData) instead of passing them.
  bool verify_strict = false;
  /// --verify full: repositories whose last rev stays in memory (the rest are read from disk).
  std::int64_t verify_rev_cache_size = 250'000;
  std::string plc_url = "https://plc.directory";
  /// did:web over plain http with a port (did:web:localhost%3A2583): loopback tests only.
  bool did_web_insecure = false;
  /// Pass (and count) commits whose DID cannot be resolved instead of dropping them.
  bool verify_fail_open = false;
  /// How long a DID's resolution may take before its held commits are decided as unresolvable.
  std::chrono::microseconds verify_resolve_timeout = std::chrono::seconds(10);
  std::int64_t identity_cache_size = 1'000'000;
  std::chrono::microseconds identity_ttl = std::chrono::hours(1);
  /// Hosts (comma-separated) the HTTP client may reach on non-public addresses and over plain
  /// http, beside --plc-url's host.
  std::string allow_hosts;
};

/// `--check-state`: opens the store read-only (beside a running decode too), checks the twin
/// and prints the result to `out`; returns the exit code.
int check_state(const DecodeOptions& options, std::ostream& out);

/// Declares every flag of jetstream-decode (with its JETSTREAM_* environment variable).
void register_decode_flags(config::FlagSet& flags, DecodeOptions& options);

/// Why `options` cannot run (a value out of range, named by its flag), or nullopt.
/// DecodeService::start checks it first.
std::optional<std::string> validate_decode_options(const DecodeOptions& options);

class DecodeService {
 public:
  /// Opens the store and binds every socket; on failure `error` says why and nullptr is returned.
  static std::unique_ptr<DecodeService> start(const DecodeOptions& options, std::string& error);
  ~DecodeService();
  DecodeService(const DecodeService&) = delete;
  DecodeService& operator=(const DecodeService&) = delete;

  /// Stops receiving, lets batches in flight be stored, then stops everything. Idempotent.
  void stop();

  std::string events_endpoint() const;
  std::string replay_endpoint() const;
  /// The backfill ROUTER's bound endpoint (empty when --backfill-endpoint is empty).
  std::string backfill_endpoint() const;
  std::uint16_t metrics_port() const;

 private:
  struct Impl;
  explicit DecodeService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The jetstream-decode program: parse flags, run until SIGINT/SIGTERM. Returns the exit code.
int run_decode(int argc, char** argv);

}  // namespace jetstream::decode
