// Every metric jetstream-backfill exports, behind one class: the coordinator hands it figures
// (once a second, and per fetch) and never touches the registry. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/http/http_client.hpp"
#include "services/backfill/decode_link.hpp"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace jetstream::backfill {

class BackfillProbe {
 public:
  explicit BackfillProbe(prometheus::Registry& registry);

  /// Repositories by state, now.
  struct RepoFigures {
    std::uint64_t queued = 0;     ///< waiting for a fetch slot or a retry
    std::uint64_t resolving = 0;  ///< their DID document is being fetched
    std::uint64_t fetching = 0;   ///< their getRepo is streaming, or its batches await acks
    std::uint64_t done = 0;
    std::uint64_t failed = 0;  ///< given up on (failed_total says why)
  };
  void set_repos(const RepoFigures& figures);
  /// Hosts by state: active (fetching), paused (backing off after 429/5xx), idle.
  void set_hosts(std::uint64_t active, std::uint64_t paused, std::uint64_t idle);
  /// One fetch attempt ended: `outcome` done / retry / failed / host_busy; `reason` for all but
  /// done (a metric reason: http_500, timeout, cid_mismatch, not_found, ...).
  void record_fetch(std::string_view outcome, std::string_view reason);
  /// A repository given up on, by reason.
  void record_failed(std::string_view reason);
  void record_listed(std::uint64_t repos);
  void record_bytes(std::uint64_t bytes);
  /// The link's counters (advanced by their difference since the last call).
  void set_link(const DecodeLink::Counters& counters, bool decode_known);
  /// Errors and refused addresses summed over the service's HTTP clients.
  void set_http(const std::array<std::uint64_t, http::kFetchErrorCount>& errors,
                const std::array<std::uint64_t, http::kAddressClassCount>& refused);

 private:
  static void advance(prometheus::Counter* counter, std::uint64_t total, std::uint64_t& seen);

  prometheus::Registry& registry_;
  std::array<prometheus::Gauge*, 5> repos_{};
  std::array<prometheus::Gauge*, 3> hosts_{};
  prometheus::Family<prometheus::Counter>* fetches_ = nullptr;
  prometheus::Family<prometheus::Counter>* fetch_errors_ = nullptr;
  prometheus::Family<prometheus::Counter>* failed_ = nullptr;
  prometheus::Counter* listed_ = nullptr;
  prometheus::Counter* bytes_ = nullptr;
  std::array<prometheus::Counter*, 4> records_{};
  std::array<std::uint64_t, 4> records_seen_{};
  std::array<prometheus::Counter*, 5> batches_{};
  std::array<std::uint64_t, 5> batches_seen_{};
  prometheus::Gauge* unacked_ = nullptr;
  prometheus::Gauge* decode_known_ = nullptr;
  std::array<prometheus::Counter*, http::kFetchErrorCount> http_errors_{};
  std::array<std::uint64_t, http::kFetchErrorCount> http_errors_seen_{};
  std::array<prometheus::Counter*, http::kAddressClassCount> refused_{};
  std::array<std::uint64_t, http::kAddressClassCount> refused_seen_{};
};

}  // namespace jetstream::backfill
