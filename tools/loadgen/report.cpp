#include "tools/loadgen/report.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <tuple>

#include "common/codec/json_writer.hpp"

namespace jetstream::loadgen {
namespace {

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

/// `1234567` bytes → `1.2 MB`; below 1 MB, `12,345 bytes`.
std::string amount(double bytes) {
  if (bytes < 1e6) return with_commas(static_cast<std::uint64_t>(bytes)) + " bytes";
  const auto tenths = static_cast<std::uint64_t>(bytes / 1e5 + 0.5);
  return with_commas(tenths / 10) + "." + std::to_string(tenths % 10) + " MB";
}

/// The all-connected window is reported when it is long enough to mean something.
bool window_shown(const RunFigures& run) { return run.all_connected_s >= 1.0; }

double per_second(std::uint64_t count, double seconds) {
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

struct Totals {
  std::uint64_t deliveries = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t wire_bytes = 0;
  std::uint64_t min_messages = UINT64_MAX;
  std::uint64_t max_messages = 0;
};

Totals totals_of(const std::vector<ClientResult>& clients) {
  Totals totals;
  for (const ClientResult& c : clients) {
    totals.deliveries += c.messages;
    totals.payload_bytes += c.payload_bytes;
    totals.wire_bytes += c.wire_bytes;
    totals.min_messages = std::min(totals.min_messages, c.messages);
    totals.max_messages = std::max(totals.max_messages, c.messages);
  }
  if (clients.empty()) totals.min_messages = 0;
  return totals;
}

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

std::size_t LatencyHistogram::bucket_of(std::uint64_t value) {
  if (value < 256) return static_cast<std::size_t>(value);
  const auto width = static_cast<std::size_t>(std::bit_width(value));  // 9..64
  const std::size_t shift = width - (kSubBucketBits + 1);              // 1..56
  const std::uint64_t sub = value >> shift;                            // 128..255
  return 256 + (shift - 1) * 128 + static_cast<std::size_t>(sub - 128);
}

std::uint64_t LatencyHistogram::bucket_high(std::size_t bucket) {
  if (bucket < 256) return bucket;
  const std::size_t shift = (bucket - 256) / 128 + 1;
  const std::uint64_t sub = 128 + (bucket - 256) % 128;
  return ((sub + 1) << shift) - 1;  // wraps to UINT64_MAX for the very last bucket
}

void LatencyHistogram::record(std::uint64_t value) {
  ++counts_[bucket_of(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t LatencyHistogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(bucket_high(i), max_);
  }
  return max_;
}

void SequenceHash::add(std::int64_t time_us) {
  // splitmix64 finalizer over (state, value): order-sensitive and well mixed.
  std::uint64_t z = value ^ (static_cast<std::uint64_t>(time_us) + 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  value = std::rotl(z ^ (z >> 31), 17) + value * 31;
}

std::vector<std::string> verify(const std::vector<ClientResult>& clients,
                                const Expectations& expect) {
  std::vector<std::string> failures;
  auto first_index = [&](auto predicate) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      if (predicate(clients[i])) return i;
    }
    return std::nullopt;
  };
  auto count_if = [&](auto predicate) {
    return static_cast<std::size_t>(std::count_if(clients.begin(), clients.end(), predicate));
  };

  const std::size_t connected = count_if([](const ClientResult& c) { return c.connected; });
  if (connected < expect.clients) {
    std::string line = "connected " + std::to_string(connected) + " of " +
                       std::to_string(expect.clients) + " clients";
    if (const auto i = first_index([](const ClientResult& c) { return !c.connected; })) {
      line += " (client " + std::to_string(*i) + ": " +
              (clients[*i].end_reason.empty() ? "never connected" : clients[*i].end_reason) + ")";
    }
    failures.push_back(std::move(line));
  }

  const auto disorder = [](const ClientResult& c) { return c.order_violations > 0; };
  if (const auto i = first_index(disorder)) {
    const ClientResult& c = clients[*i];
    failures.push_back(std::to_string(count_if(disorder)) +
                       " clients saw time_us not strictly increasing (client " +
                       std::to_string(*i) + ": " + std::to_string(c.order_violations) +
                       " times, first " + std::to_string(c.first_violation_next) + " after " +
                       std::to_string(c.first_violation_previous) + ")");
  }

  const auto unreadable = [](const ClientResult& c) {
    return c.unparsed > 0 || c.decompress_failures > 0;
  };
  if (const auto i = first_index(unreadable)) {
    const ClientResult& c = clients[*i];
    failures.push_back(std::to_string(count_if(unreadable)) +
                       " clients got messages without a readable time_us (client " +
                       std::to_string(*i) + ": " + std::to_string(c.unparsed) + " unparsed, " +
                       std::to_string(c.decompress_failures) + " failed to decompress)");
  }

  if (expect.until_events > 0) {
    const auto short_of = [&](const ClientResult& c) { return !c.reached_target; };
    if (const auto i = first_index(short_of)) {
      failures.push_back(std::to_string(count_if(short_of)) + " clients did not reach " +
                         std::to_string(expect.until_events) +
                         " events (--until-events) before the run ended (client " +
                         std::to_string(*i) + ": " + std::to_string(clients[*i].messages) + ")");
    }
  }

  if (expect.expect_events > 0) {
    const auto wrong = [&](const ClientResult& c) { return c.messages != expect.expect_events; };
    if (const auto i = first_index(wrong)) {
      failures.push_back(std::to_string(count_if(wrong)) + " clients did not get exactly " +
                         std::to_string(expect.expect_events) + " events (client " +
                         std::to_string(*i) + ": " + std::to_string(clients[*i].messages) + ")");
    }
  }

  if (expect.expect_same && !clients.empty()) {
    // Sequences are compared by (count, timed count, hash); the most common one is the reference.
    std::map<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>, std::size_t> groups;
    for (const ClientResult& c : clients) ++groups[{c.messages, c.timed, c.hash.value}];
    if (groups.size() > 1) {
      const auto reference =
          std::max_element(groups.begin(), groups.end(),
                           [](const auto& a, const auto& b) { return a.second < b.second; });
      const auto key = reference->first;
      const auto i = first_index([&](const ClientResult& c) {
        return std::tuple{c.messages, c.timed, c.hash.value} != key;
      });
      failures.push_back(
          std::to_string(groups.size()) + " different event sequences among " +
          std::to_string(clients.size()) + " clients (--expect-same); the most common (" +
          std::to_string(reference->second) + " clients) has " + std::to_string(std::get<0>(key)) +
          " events; client " + std::to_string(*i) + " got " + std::to_string(clients[*i].messages) +
          " events, time_us " + std::to_string(clients[*i].first_time_us) + ".." +
          std::to_string(clients[*i].last_time_us));
    }
  }
  return failures;
}

std::map<std::string, std::size_t> close_reasons(const std::vector<ClientResult>& clients) {
  std::map<std::string, std::size_t> reasons;
  for (const ClientResult& c : clients) {
    if (!c.end_reason.empty()) ++reasons[c.end_reason];
  }
  return reasons;
}

std::string with_commas(std::uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

/// `text` as a JSON string: the project's one JSON string writer (Go's escaping; invalid UTF-8
/// becomes \ufffd), so a close reason or URL from a server cannot break the report.
std::string json_string(std::string_view text) {
  std::string out;
  codec::append_json_string(out, text);
  return out;
}

std::string format_summary(const RunFigures& run, const std::vector<ClientResult>& clients,
                           const LatencyHistogram& latency,
                           const std::vector<std::string>& failures) {
  const Totals totals = totals_of(clients);
  std::ostringstream out;
  out << "jetstream-loadgen summary" << (run.interrupted ? " (interrupted)" : "") << "\n";
  out << "  url           " << run.url << "\n";
  out << "  clients       " << run.clients << " asked, " << run.connected << " connected\n";
  out << "  elapsed       " << fixed(run.elapsed_s, 2) << " s";
  if (window_shown(run)) {
    out << " (all clients connected for the last " << fixed(run.all_connected_s, 2) << " s)";
  }
  out << "\n";
  out << "  deliveries    " << with_commas(totals.deliveries) << " total, "
      << with_commas(static_cast<std::uint64_t>(per_second(totals.deliveries, run.elapsed_s)))
      << "/s over the run";
  if (window_shown(run)) {
    out << ", "
        << with_commas(static_cast<std::uint64_t>(
               per_second(run.all_connected_deliveries, run.all_connected_s)))
        << "/s while all were connected";
  }
  out << "\n";
  out << "  per client    min " << with_commas(totals.min_messages) << ", max "
      << with_commas(totals.max_messages) << " events\n";
  out << "  bytes         " << amount(static_cast<double>(totals.wire_bytes)) << " received ("
      << amount(static_cast<double>(totals.payload_bytes)) << " payload), "
      << amount(per_second(totals.wire_bytes, run.elapsed_s)) << "/s";
  if (window_shown(run)) {
    out << ", " << amount(per_second(run.all_connected_bytes, run.all_connected_s))
        << "/s while all were connected";
  }
  out << "\n";
  if (latency.count() > 0) {
    out << "  latency (us)  p50 " << with_commas(latency.percentile(50)) << ", p90 "
        << with_commas(latency.percentile(90)) << ", p99 " << with_commas(latency.percentile(99))
        << ", p99.9 " << with_commas(latency.percentile(99.9)) << ", max "
        << with_commas(latency.max()) << " (mean " << fixed(latency.mean(), 0) << ", "
        << with_commas(latency.count()) << " samples";
    if (run.negative_latencies > 0) {
      out << ", " << with_commas(run.negative_latencies) << " negative counted as 0";
    }
    out << ")\n";
  } else {
    out << "  latency (us)  no samples\n";
  }
  out << "  cpu           loadgen " << fixed(run.loadgen_cpu_s, 2) << " s ("
      << fixed(run.elapsed_s > 0 ? run.loadgen_cpu_s / run.elapsed_s : 0, 2) << " cores)";
  if (run.server_cpu_s >= 0) {
    const std::uint64_t window_deliveries =
        run.all_connected_s > 0 ? run.all_connected_deliveries : totals.deliveries;
    out << "; server pid " << run.server_pid << " " << fixed(run.server_cpu_s, 2) << " s in "
        << fixed(run.server_cpu_window_s, 2) << " s ("
        << fixed(run.server_cpu_window_s > 0 ? run.server_cpu_s / run.server_cpu_window_s : 0, 2)
        << " cores) = "
        << with_commas(static_cast<std::uint64_t>(per_second(window_deliveries, run.server_cpu_s)))
        << " deliveries per server CPU second";
  }
  out << "\n";
  const auto reasons = close_reasons(clients);
  if (reasons.empty()) {
    out << "  closed        none before the end of the run\n";
  } else {
    std::size_t closed = 0;
    for (const auto& [reason, count] : reasons) closed += count;
    out << "  closed        " << closed << " clients before the end of the run:\n";
    for (const auto& [reason, count] : reasons)
      out << "                " << count << " x " << reason << "\n";
  }
  if (run.ignored_after_target > 0) {
    out << "  after target  " << with_commas(run.ignored_after_target)
        << " messages arrived after --until-events and were not counted\n";
  }
  if (failures.empty()) {
    out << "  verification  OK\n";
  } else {
    out << "  verification  FAILED\n";
    for (const std::string& failure : failures) out << "                - " << failure << "\n";
  }
  return out.str();
}

std::string format_json(const RunFigures& run, const std::vector<ClientResult>& clients,
                        const LatencyHistogram& latency, const std::vector<std::string>& failures) {
  const Totals totals = totals_of(clients);
  std::ostringstream out;
  out << "{\"url\":" << json_string(run.url) << ",\"clients\":" << run.clients
      << ",\"connected\":" << run.connected
      << ",\"interrupted\":" << (run.interrupted ? "true" : "false")
      << ",\"elapsed_s\":" << fixed(run.elapsed_s, 3) << ",\"deliveries\":" << totals.deliveries
      << ",\"deliveries_per_s\":" << fixed(per_second(totals.deliveries, run.elapsed_s), 1)
      << ",\"wire_bytes\":" << totals.wire_bytes << ",\"payload_bytes\":" << totals.payload_bytes
      << ",\"bytes_per_s\":" << fixed(per_second(totals.wire_bytes, run.elapsed_s), 1)
      << ",\"all_connected_s\":" << fixed(run.all_connected_s, 3)
      << ",\"all_connected_deliveries_per_s\":"
      << fixed(per_second(run.all_connected_deliveries, run.all_connected_s), 1)
      << ",\"all_connected_bytes_per_s\":"
      << fixed(per_second(run.all_connected_bytes, run.all_connected_s), 1)
      << ",\"min_events_per_client\":" << totals.min_messages
      << ",\"max_events_per_client\":" << totals.max_messages;
  out << ",\"latency_us\":{\"count\":" << latency.count() << ",\"min\":" << latency.min()
      << ",\"mean\":" << fixed(latency.mean(), 1) << ",\"p50\":" << latency.percentile(50)
      << ",\"p90\":" << latency.percentile(90) << ",\"p99\":" << latency.percentile(99)
      << ",\"p999\":" << latency.percentile(99.9) << ",\"max\":" << latency.max()
      << ",\"negative\":" << run.negative_latencies << "}";
  out << ",\"loadgen_cpu_s\":" << fixed(run.loadgen_cpu_s, 3);
  if (run.server_cpu_s >= 0) {
    const std::uint64_t window_deliveries =
        run.all_connected_s > 0 ? run.all_connected_deliveries : totals.deliveries;
    out << ",\"server_pid\":" << run.server_pid
        << ",\"server_cpu_s\":" << fixed(run.server_cpu_s, 3)
        << ",\"server_cpu_window_s\":" << fixed(run.server_cpu_window_s, 3)
        << ",\"deliveries_per_server_cpu_s\":"
        << fixed(per_second(window_deliveries, run.server_cpu_s), 1);
  }
  out << ",\"closed\":{";
  bool first = true;
  for (const auto& [reason, count] : close_reasons(clients)) {
    out << (first ? "" : ",") << json_string(reason) << ":" << count;
    first = false;
  }
  out << "},\"ignored_after_target\":" << run.ignored_after_target;
  out << ",\"verification\":{\"ok\":" << (failures.empty() ? "true" : "false") << ",\"failures\":[";
  for (std::size_t i = 0; i < failures.size(); ++i) {
    out << (i == 0 ? "" : ",") << json_string(failures[i]);
  }
  out << "]}}";
  return out.str();
}

}  // namespace jetstream::loadgen
