// Why common/metrics keeps its own HTTP server rather than prometheus-cpp's Exposer (civetweb),
// measured: both serve the same registry on 127.0.0.1 and go through the same three checks.
//
//   1. /healthz and /readyz: the liveness and readiness probes every service answers on its
//      metrics port (API.md, the Kubernetes manifests).
//   2. a scrape while two clients hold connections with request heads they never finish (a port
//      scanner, a stuck proxy): is it answered within 5 s?
//   3. threads the server adds to the process.
//
//   build/release/tests/bench/metrics_server_comparison
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "common/metrics/metrics_server.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_get.hpp"

namespace {

using Clock = std::chrono::steady_clock;

/// The status line of GET `path`, or "no answer in 5 s".
std::string status_of(std::uint16_t port, const std::string& path) {
  const auto response = jetstream::testing::http_get(port, path, std::chrono::seconds(5));
  return response.raw.empty() ? "no answer in 5 s" : response.status_line();
}

int thread_count() {
  int n = 0;
  DIR* tasks = ::opendir("/proc/self/task");
  while (const dirent* entry = ::readdir(tasks)) n += entry->d_name[0] != '.';
  ::closedir(tasks);
  return n;
}

void report(const char* name, int threads, std::uint16_t port) {
  std::printf("%s\n", name);
  std::printf("  threads added          %d\n", threads);
  std::printf("  GET /healthz           %s\n", status_of(port, "/healthz").c_str());
  std::printf("  GET /readyz            %s\n", status_of(port, "/readyz").c_str());
  int stuck[2];
  for (int& fd : stuck) {
    fd = jetstream::testing::connect_loopback(port);
    [[maybe_unused]] const auto sent = ::send(fd, "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL);
  }
  // The stuck connections are established (connect returned) and queued ahead of the scrape's:
  // a server takes them first, whatever the timing.
  const auto start = Clock::now();
  const std::string scrape = status_of(port, "/metrics");
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  std::printf("  scrape, 2 stuck heads  %s (%lld ms)\n", scrape.c_str(),
              static_cast<long long>(ms));
  for (const int fd : stuck) ::close(fd);
}

}  // namespace

int main() {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("example_total")
      .Help("x")
      .Register(*registry)
      .Add({})
      .Increment();
  {
    const int before = thread_count();
    jetstream::metrics::MetricsServer server("127.0.0.1", 0, registry);
    server.set_health([] { return true; },
                      [] { return jetstream::metrics::HealthReport::unhealthy("warming up"); });
    report("common/metrics MetricsServer", thread_count() - before, server.port());
  }
  {
    const int before = thread_count();
    prometheus::Exposer exposer("127.0.0.1:0");
    exposer.RegisterCollectable(registry);
    report("prometheus-cpp 1.0 Exposer (civetweb, default 2 threads)", thread_count() - before,
           static_cast<std::uint16_t>(exposer.GetListeningPorts().front()));
  }
  return 0;
}
