// The one HTTP client: GETs to hosts named by strangers (DID documents, PDS endpoints, relay host
// lists) and by the operator. Every address a name resolves to is checked by an AddressPolicy
// before connecting, and again after each redirect (at most `max_redirects`); https verifies the
// peer against the system CA store; every stage has a timeout and every response a size cap.
// Beast and OpenSSL stay in http_client.cpp: this header includes neither.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/http/address_policy.hpp"

namespace jetstream::http {

struct FetchLimits {
  std::size_t max_body_bytes = 64 * 1024;            ///< after gzip decoding, if the server used it
  std::chrono::milliseconds connect_timeout{5'000};  ///< DNS, TCP and TLS
  std::chrono::milliseconds header_timeout{10'000};  ///< request written to response head read
  std::chrono::milliseconds body_timeout{30'000};    ///< response head to the body's last byte
  int max_redirects = 3;
};

enum class FetchError : std::uint8_t {
  bad_url,
  plain_http_refused,  ///< http:// to a host the operator did not name
  dns,
  forbidden_address,  ///< every address of the host is loopback, private, link-local, ...
  connect,
  tls,
  timeout,
  too_large,  ///< the body (or the head) is over its cap
  bad_response,
  too_many_redirects,
  aborted,  ///< a streamed body's consumer refused a chunk (get_stream)
};
inline constexpr std::size_t kFetchErrorCount = 11;
std::string_view to_string(FetchError error);

struct FetchResult {
  std::optional<FetchError> error;
  std::string detail;                         ///< what failed, for a log line (bounded)
  std::optional<AddressClass> refused_class;  ///< with forbidden_address
  unsigned status = 0;                        ///< the final response's status
  std::string body;
  std::string final_url;  ///< after redirects
  std::string content_type;
  /// Politeness headers, kept verbatim for the caller's backoff (`Retry-After`, `RateLimit-*`).
  std::optional<std::string> retry_after;
  std::optional<std::string> ratelimit_remaining;
  std::optional<std::string> ratelimit_reset;
};

class HttpClient {
 public:
  struct Options {
    AddressPolicy policy;
    std::string user_agent = "jetstream-cpp";
    std::string extra_ca_file;  ///< a PEM file trusted beside the system store (tests)
  };
  using Callback = std::function<void(FetchResult)>;

  /// Starts the client's I/O thread.
  explicit HttpClient(Options options);
  /// Stops the I/O thread; requests still in flight are abandoned without their callback.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Fetches `url`; `done` runs on the client's I/O thread, exactly once.
  void get(std::string url, FetchLimits limits, Callback done);

  /// A body too large to hold (a getRepo CAR): handed over chunk by chunk as it arrives.
  struct Stream {
    /// A 2xx body's next bytes (views valid during the call), on the I/O thread; false stops the
    /// fetch with FetchError::aborted. Bodies of other statuses are not streamed: they arrive
    /// whole in the result (capped at 64 KiB), for the error text.
    std::function<bool(std::span<const std::uint8_t> chunk)> on_chunk;
    Callback done;  ///< exactly once, after the last chunk; `body` empty for a streamed 2xx
  };
  /// Like get, streaming a 2xx body: `max_body_bytes` caps the streamed total, and
  /// `body_timeout` is the longest wait for the next bytes (not the whole body's time). The
  /// request asks for no content coding; a body in gzip is streamed inflated.
  void get_stream(std::string url, FetchLimits limits, Stream stream);

  struct Counters {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> in_flight{0};
    std::array<std::atomic<std::uint64_t>, kFetchErrorCount> errors{};
    std::array<std::atomic<std::uint64_t>, kAddressClassCount> refused_addresses{};
  };
  const Counters& counters() const;

  struct Impl;  ///< the I/O thread and TLS context (http_client.cpp)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace jetstream::http
