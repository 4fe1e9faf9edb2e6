// One getRepo attempt: the body streamed into a RepoReader whose batches go to decode through
// the DecodeLink, and how the attempt ended (FetchOutcome) once decode stored the fetch's last
// batch, or once it failed. Lives as long as the HTTP client or the link holds it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/http/http_client.hpp"
#include "services/backfill/decode_link.hpp"
#include "services/backfill/repo_reader.hpp"

namespace jetstream::backfill {

/// How one fetch attempt ended.
struct FetchOutcome {
  enum class Kind : std::uint8_t {
    done,       ///< every record is in decode's hands (totals), at `rev`
    retry,      ///< worth trying again later (counts an attempt)
    failed,     ///< not worth trying again (not found, deactivated, too large, ...)
    host_busy,  ///< 429 or 5xx: the host pauses for `pause` (or its backoff), the DID waits
  };
  Kind kind = Kind::done;
  std::string reason;  ///< a metric reason; empty for done
  std::string detail;  ///< for the log line (bounded)
  std::string rev;
  FetchTotals totals;
  std::chrono::milliseconds pause{0};
  std::uint64_t bytes = 0;
  std::uint64_t records = 0;
};
std::string_view to_string(FetchOutcome::Kind kind);

/// The outcome of a response that carried no streamed repository: a transport error, or a
/// status other than 200 (the error body is the XRPC `{"error": ...}`). `now_unix_s` reads
/// `ratelimit-reset` (unix seconds).
FetchOutcome classify_response(const http::FetchResult& result, std::int64_t now_unix_s);

/// The outcome of a repository that could not be read.
FetchOutcome classify_failure(RepoFailure failure, const std::string& detail);

/// `endpoint` + `/xrpc/com.atproto.sync.getRepo?did=` + the DID, percent-encoded.
std::string get_repo_url(std::string_view endpoint, std::string_view did);

class RepoFetch : public std::enable_shared_from_this<RepoFetch> {
 public:
  using Done = std::function<void(FetchOutcome)>;
  RepoFetch(std::uint64_t fetch_id, RepoReader::Options reader_options, DecodeLink& link,
            Done done);

  /// Starts the request; `done` runs once, on the HTTP client's or the link's thread.
  void start(http::HttpClient& client, const std::string& url, const http::FetchLimits& limits);
  /// The link stored the fetch's last batch (DecodeLink::FetchDone for this fetch_id).
  void stored(const FetchTotals& totals);

  std::uint64_t fetch_id() const { return fetch_id_; }

 private:
  void on_response(const http::FetchResult& result);
  void finish(FetchOutcome outcome);

  std::uint64_t fetch_id_;
  DecodeLink& link_;
  RepoReader reader_;
  Done done_;
  std::atomic<bool> finished_{false};
  bool submit_failed_ = false;
};

}  // namespace jetstream::backfill
