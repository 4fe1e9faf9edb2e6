// What jetstream-loadgen measures and checks, without sockets: the latency histogram, the
// per-client record of a run, the verification rules and the summary (text and one JSON line).
// Pure code, tested in tests/integration/loadgen_test.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetstream::loadgen {

/// A log-linear histogram of non-negative integers (latencies in µs), HDR-style: values below 256
/// are exact, larger ones fall into buckets 1/128 of their power of two wide (< 0.8% error), up to
/// 2^64. Fixed size (~58 KiB), no allocation after construction; one per thread, merged at the
/// end. Not thread-safe.
class LatencyHistogram {
 public:
  LatencyHistogram();

  void record(std::uint64_t value);
  void merge(const LatencyHistogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const;
  /// The smallest recorded bucket bound at or below which `percent` of the values lie (the
  /// bucket's highest value, capped at `max()`); 0 when empty. `percent` in [0, 100].
  std::uint64_t percentile(double percent) const;

  /// Bucket index of a value and the highest value of a bucket (exposed for tests).
  static std::size_t bucket_of(std::uint64_t value);
  static std::uint64_t bucket_high(std::size_t bucket);
  static constexpr std::size_t kSubBucketBits = 7;
  static constexpr std::size_t kBuckets = 256 + 56 * 128;

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

/// Order-sensitive 64-bit hash of a `time_us` sequence: equal sequences give equal hashes, and
/// any reordering, loss or duplicate changes it (with overwhelming probability).
struct SequenceHash {
  std::uint64_t value = 0x6a09e667f3bcc908ull;
  void add(std::int64_t time_us);
};

/// Everything one client did in a run.
struct ClientResult {
  bool connected = false;       ///< completed the websocket handshake
  bool reached_target = false;  ///< got `--until-events` events
  std::uint64_t messages = 0;   ///< data messages (text or binary) = deliveries
  std::uint64_t payload_bytes = 0;
  std::uint64_t wire_bytes = 0;  ///< bytes received after the handshake, frame headers included
  std::uint64_t timed = 0;       ///< messages whose time_us was read (all, or the sampled ones)
  std::uint64_t unparsed = 0;    ///< messages that should have had a readable time_us and did not
  std::uint64_t decompress_failures = 0;
  std::uint64_t order_violations = 0;  ///< time_us not greater than the previous one
  std::int64_t first_violation_previous = 0;
  std::int64_t first_violation_next = 0;
  std::int64_t first_time_us = 0;
  std::int64_t last_time_us = 0;
  SequenceHash hash;
  /// Why the connection ended before the run did (empty: open until the end, or closed by the
  /// load generator itself after `--until-events`). E.g. `close 1001 server shutting down`,
  /// `eof without close frame`, `connect: Connection refused`, `handshake: HTTP 400 ...`.
  std::string end_reason;
};

/// What the run asked to verify.
struct Expectations {
  std::size_t clients = 0;
  std::uint64_t expect_events = 0;  ///< 0: not checked
  bool expect_same = false;
  std::uint64_t until_events = 0;  ///< 0: not asked
  bool time_us_expected = true;    ///< false with --decompress-every 0 (nothing decompressed)
};

/// One line per failed check (empty: everything passed). Lines name a first offending client.
std::vector<std::string> verify(const std::vector<ClientResult>& clients,
                                const Expectations& expect);

/// Distinct end reasons with their client counts.
std::map<std::string, std::size_t> close_reasons(const std::vector<ClientResult>& clients);

/// Figures of the whole run, filled by the runner.
struct RunFigures {
  std::string url;
  std::size_t clients = 0;
  std::size_t connected = 0;
  double elapsed_s = 0;
  /// Window in which every asked client was connected (0 if that never happened).
  double all_connected_s = 0;
  std::uint64_t all_connected_deliveries = 0;
  std::uint64_t all_connected_bytes = 0;
  double loadgen_cpu_s = 0;
  /// CPU seconds of `--server-pid` during the all-connected window (or the whole run); negative
  /// when not measured.
  double server_cpu_s = -1;
  double server_cpu_window_s = 0;
  std::int64_t server_pid = 0;
  bool interrupted = false;
  std::uint64_t negative_latencies = 0;
  std::uint64_t ignored_after_target = 0;  ///< messages that arrived after --until-events
};

/// The human summary (several lines) and the machine one (one JSON object, one line).
std::string format_summary(const RunFigures& run, const std::vector<ClientResult>& clients,
                           const LatencyHistogram& latency,
                           const std::vector<std::string>& failures);
std::string format_json(const RunFigures& run, const std::vector<ClientResult>& clients,
                        const LatencyHistogram& latency, const std::vector<std::string>& failures);

/// `1234567` → `1,234,567`.
std::string with_commas(std::uint64_t value);
/// JSON string literal (quotes included) for arbitrary bytes; invalid UTF-8 becomes U+FFFD.
std::string json_string(std::string_view text);

}  // namespace jetstream::loadgen
