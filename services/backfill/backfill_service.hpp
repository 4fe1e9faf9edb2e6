// jetstream-backfill: the records that existed before the service started (API.md "Backfill").
// Lists repositories (--pds: com.atproto.sync.listRepos; --relay: com.atproto.sync.listHosts,
// then each host's listRepos; --dids-file), resolves each DID to its PDS (common/identity),
// fetches com.atproto.sync.getRepo streaming, and hands the records of decode's compacted
// collections to decode, which applies them. README.md here has the actors and threads.
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

namespace jetstream::backfill {

/// Every flag of jetstream-backfill (and its JETSTREAM_* variable), with its default.
struct BackfillOptions {
  std::string pds;        ///< comma-separated PDS URLs to list (listRepos)
  std::string relay;      ///< comma-separated relay URLs (listHosts, then each host)
  std::string dids_file;  ///< one DID per line ('#' starts a comment)
  std::string plc_url = "https://plc.directory";
  bool did_web_insecure = false;
  std::string allow_hosts;  ///< hosts besides --pds/--relay/--plc-url reachable on any address
  std::string data_dir = "./backfill-data";
  std::string decode_backfill_endpoint = "tcp://127.0.0.1:6014";
  std::string decode_events_endpoint = "tcp://127.0.0.1:6012";
  config::ListenAddress metrics_listen_addr{"", 6039};
  std::int64_t max_fetches = 8;
  std::int64_t max_fetches_per_host = 2;
  double host_request_rate = 5.0;  ///< getRepo requests per second per host
  std::int64_t max_repo_bytes = std::int64_t{1} << 30;
  std::int64_t max_attempts = 5;
  std::int64_t batch_records = 500;
  std::int64_t max_unacked_batches = 32;
  std::chrono::microseconds ack_timeout = std::chrono::seconds(30);
  std::chrono::microseconds fetch_timeout = std::chrono::seconds(60);  ///< per stage / idle read
  std::chrono::microseconds progress_interval = std::chrono::seconds(5);
  std::int64_t fetch_threads = 0;  ///< HTTP clients streaming repositories; 0 = one per core
  bool exit_when_done = false;
  /// off, or signatures / full: each fetched repository's commit must be signed by its DID's
  /// #atproto key (checked before any record is handed over; the tree is hash-checked from the
  /// commit in every mode, so full adds nothing a whole repository could still lack).
  std::string verify = "off";
  std::string log_level = "info";
};

void register_backfill_flags(config::FlagSet& flags, BackfillOptions& options);
std::optional<std::string> validate_backfill_options(const BackfillOptions& options);

class BackfillService {
 public:
  static std::unique_ptr<BackfillService> start(const BackfillOptions& options, std::string& error);
  ~BackfillService();
  BackfillService(const BackfillService&) = delete;
  BackfillService& operator=(const BackfillService&) = delete;

  void stop();
  /// Blocks until every source is listed and every repository is done or failed (true), or
  /// `timeout` passes (false). For --exit-when-done and tests.
  bool wait_done(std::chrono::milliseconds timeout);
  std::uint16_t metrics_port() const;

  struct Impl;

 private:
  explicit BackfillService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// main(): flags, start, wait for SIGINT/SIGTERM (or, with --exit-when-done, the end), stop.
int run_backfill(int argc, char** argv);

}  // namespace jetstream::backfill
