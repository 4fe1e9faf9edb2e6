// Asynchronous DID resolution: the cache first, else the DID's document over the guarded HTTP
// client (did:plc from the PLC directory, did:web from its host), parsed and cached. Concurrent
// requests for one DID share one fetch. Never blocks its caller: callbacks run on the HTTP
// client's thread (or inline, on a cache hit).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/http/http_client.hpp"
#include "common/identity/identity_cache.hpp"

namespace jetstream::identity {

class DidResolver {
 public:
  struct Options {
    std::string plc_url = "https://plc.directory";
    bool did_web_insecure = false;  ///< did:web over http with a port: loopback tests only
    std::chrono::seconds document_ttl{3600};
    /// How long a DID that did not resolve is answered from the cache (a stranger's broken DID
    /// must not cost a fetch per commit).
    std::chrono::seconds failure_ttl{60};
    http::FetchLimits limits;  ///< max_body_bytes is forced to kMaxDocumentBytes
    /// Fetches at once; the others wait in order (a cold start asks for thousands of DIDs, and
    /// neither the directory nor our file descriptors should see them all at once).
    std::size_t max_in_flight = 32;
    /// A refresh (a key that failed) is fetched at most once per DID in this time: a stream of
    /// commits forged for one DID must not become a stream of requests to its directory.
    std::chrono::seconds min_refresh_interval{60};
  };
  using Callback = std::function<void(ResolutionPtr)>;

  DidResolver(Options options, http::HttpClient& client, IdentityCache& cache,
              std::function<std::int64_t()> now_us);

  /// Calls `done` exactly once with the DID's resolution. `refresh` skips the cache (a key that
  /// failed to verify: keys rotate), unless the cached document is itself a refresh younger than
  /// `min_refresh_interval`.
  void resolve(std::string_view did, bool refresh, Callback done);

  struct Counters {
    std::atomic<std::uint64_t> fetches{0};
    std::atomic<std::uint64_t> coalesced{0};  ///< requests that joined a fetch in flight
    std::atomic<std::uint64_t> resolved{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> queued{0};  ///< DIDs waiting for a free fetch slot, now
    /// Refreshes answered from the cache (a refresh of the DID was fetched moments ago).
    std::atomic<std::uint64_t> refresh_limited{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  void fetch(const std::string& did, const std::string& url, bool refresh);
  void complete(const std::string& did, ResolutionPtr resolution, std::chrono::seconds ttl);

  Options options_;
  http::HttpClient& client_;
  IdentityCache& cache_;
  std::function<std::int64_t()> now_us_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::vector<Callback>> in_flight_;  ///< fetching or queued
  struct Queued {
    std::string did;
    std::string url;
    bool refresh = false;
  };
  std::deque<Queued> queued_;
  std::size_t fetching_ = 0;
  Counters counters_;
};

/// The resolution failure reasons (Resolution::failure) a DidResolver produces: "bad_did_<why>",
/// "not_found" (404/410 from the directory or host), "http_<status>", "document_<error>", and the
/// HTTP client's errors ("timeout", "forbidden_address", ...).

}  // namespace jetstream::identity
