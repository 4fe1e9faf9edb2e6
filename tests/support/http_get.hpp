// One blocking HTTP GET for tests and benchmarks: the services' /metrics, /healthz, /readyz and
// fanout's plain HTTP answers, on 127.0.0.1. HTTP/1.0, so the server closes after its answer and
// the whole response is what was read before the close.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/child_process.hpp"

namespace jetstream::testing {

struct HttpResponse {
  int status = 0;    ///< 0 when nothing came back (unreachable, or no answer in time)
  std::string raw;   ///< status line, headers and body as received
  std::string body;  ///< after the blank line

  /// The status line without its line end ("HTTP/1.1 200 OK"), or "" when nothing came back.
  [[nodiscard]] std::string status_line() const { return raw.substr(0, raw.find("\r\n")); }
};

/// `method` http://127.0.0.1:`port``path` (HTTP/1.0, no body). Each read waits at most
/// `read_timeout`: a server that stops answering yields what came so far.
inline HttpResponse http_request(
    std::uint16_t port, const std::string& method, const std::string& path,
    std::chrono::milliseconds read_timeout = std::chrono::seconds(10)) {
  HttpResponse response;
  const int fd = connect_loopback(port);
  if (fd < 0) return response;
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(read_timeout.count() / 1000);
  timeout.tv_usec = static_cast<suseconds_t>((read_timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const std::string request = method + " " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  [[maybe_unused]] const auto sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  char buffer[65536];
  for (ssize_t n = 0; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
    response.raw.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (response.raw.size() >= 12 && response.raw.compare(0, 5, "HTTP/") == 0) {
    response.status = std::stoi(response.raw.substr(9, 3));
  }
  const auto blank = response.raw.find("\r\n\r\n");
  if (blank != std::string::npos) response.body = response.raw.substr(blank + 4);
  return response;
}

/// GET http://127.0.0.1:`port``path` (see `http_request`).
inline HttpResponse http_get(std::uint16_t port, const std::string& path,
                             std::chrono::milliseconds read_timeout = std::chrono::seconds(10)) {
  return http_request(port, "GET", path, read_timeout);
}

/// The value of the sample `series` (the metric name plus its labels exactly as exposed) in a
/// Prometheus text scrape; -1 when absent.
inline double metric_value(const std::string& scrape, const std::string& series) {
  std::size_t at = 0;
  while ((at = scrape.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || scrape[at - 1] == '\n') return std::stod(scrape.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

/// The sum of every sample of metric `name`, whatever its labels; 0 when absent.
inline double metric_sum(const std::string& scrape, const std::string& name) {
  double sum = 0;
  std::size_t at = 0;
  while ((at = scrape.find(name, at)) != std::string::npos) {
    const auto line_end = scrape.find('\n', at);
    const bool line_start = at == 0 || scrape[at - 1] == '\n';
    const std::string line = scrape.substr(at, line_end - at);
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    const auto space = line.rfind(' ');
    if (line_start && (next == '{' || next == ' ') && space != std::string::npos) {
      sum += std::stod(line.substr(space + 1));
    }
    if (line_end == std::string::npos) break;
    at = line_end;
  }
  return sum;
}

/// The `q` quantile (0..1) of Prometheus histogram `name` over what it recorded between two
/// scrapes (`before`, `after`), interpolated linearly within a bucket as Prometheus'
/// histogram_quantile does; -1 when nothing was recorded.
inline double histogram_quantile(const std::string& before, const std::string& after,
                                 const std::string& name, double q) {
  const auto buckets = [&](const std::string& scrape) {
    std::vector<std::pair<double, double>> out;  // (upper bound, cumulative count)
    const std::string prefix = name + "_bucket{le=\"";
    std::size_t at = 0;
    while ((at = scrape.find(prefix, at)) != std::string::npos) {
      const auto bound_end = scrape.find('"', at + prefix.size());
      const std::string bound = scrape.substr(at + prefix.size(), bound_end - at - prefix.size());
      const auto value_at = scrape.find(' ', bound_end);
      out.emplace_back(bound == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(bound),
                       std::stod(scrape.substr(value_at + 1)));
      at = value_at;
    }
    return out;
  };
  const auto first = buckets(before);
  const auto second = buckets(after);
  if (second.empty() || (!first.empty() && first.size() != second.size())) return -1;
  const auto count = [&](std::size_t i) {
    return second[i].second - (first.empty() ? 0 : first[i].second);
  };
  const double total = count(second.size() - 1);
  if (total <= 0) return -1;
  const double want = q * total;
  double lower = 0, below = 0;
  for (std::size_t i = 0; i < second.size(); ++i) {
    const double here = count(i);
    if (here >= want) {
      const double upper = std::isinf(second[i].first) ? lower : second[i].first;
      const double fraction = here > below ? (want - below) / (here - below) : 1;
      return lower + (upper - lower) * fraction;
    }
    lower = second[i].first;
    below = here;
  }
  return lower;
}

}  // namespace jetstream::testing
