// The metrics port: Prometheus text on /metrics (own counters, process metrics, build info),
// health endpoints that follow their callbacks, and an HTTP server that survives garbage,
// silent clients and floods, and stops promptly. Real sockets on 127.0.0.1 only.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common/metrics/exposition.hpp"
#include "common/metrics/metrics_server.hpp"
#include "common/metrics/process_metrics.hpp"
#include "tests/support/child_process.hpp"

namespace {

namespace metrics = jetstream::metrics;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Every socket read in these tests gives up after this long, so no test can hang.
constexpr milliseconds kClientTimeout{5000};

/// A connected TCP socket to 127.0.0.1:port, closed on destruction.
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    connected_ = jetstream::testing::connect_to_loopback(fd_, port);
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  /// Everything the server sends until it closes, or until `limit` passes (`closed` says which).
  std::string read_to_end(milliseconds limit = kClientTimeout) {
    std::string out;
    const auto deadline = Clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return out;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) {
        closed_ = true;
        return out;
      }
      out.append(buffer, static_cast<std::size_t>(n));
    }
  }

  bool closed() const { return closed_; }

 private:
  int fd_;
  bool connected_ = false;
  bool closed_ = false;
};

struct HttpResponse {
  int status = 0;
  std::string head;
  std::string body;
  bool closed = false;

  std::string header(std::string_view name) const {
    const std::string key = "\r\n" + std::string(name) + ": ";
    const std::size_t at = head.find(key);
    if (at == std::string::npos) return {};
    const std::size_t start = at + key.size();
    return head.substr(start, head.find("\r\n", start) - start);
  }
};

HttpResponse round_trip(std::uint16_t port, std::string_view request) {
  Client client(port);
  EXPECT_TRUE(client.connected());
  client.send(request);
  const std::string raw = client.read_to_end();
  HttpResponse response;
  response.closed = client.closed();
  const std::size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return response;
  response.status = std::stoi(raw.substr(9, 3));
  response.head = raw.substr(0, end + 2);
  response.body = raw.substr(end + 4);
  return response;
}

HttpResponse get(std::uint16_t port, std::string_view path, std::string_view method = "GET") {
  return round_trip(port, std::string(method) + " " + std::string(path) +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n");
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void TearDown() override { metrics::detach_collectables(*registry_); }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
};

TEST_F(MetricsServerTest, MetricsShowsOwnCounterProcessMetricsAndBuildInfo) {
  prometheus::BuildCounter()
      .Name("jetstream_test_events_total")
      .Help("Events seen by the test.")
      .Register(*registry_)
      .Add({})
      .Increment(3);
  metrics::register_process_metrics(*registry_);
  metrics::register_build_info(*registry_, "decode", metrics::version());
  metrics::MetricsServer server("127.0.0.1", 0, registry_);

  const auto response = get(server.port(), "/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.header("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_EQ(response.header("Connection"), "close");
  EXPECT_EQ(response.header("Content-Length"), std::to_string(response.body.size()));
  EXPECT_TRUE(response.closed);
  const std::string& body = response.body;
  EXPECT_NE(body.find("\njetstream_test_events_total 3\n"), std::string::npos) << body;
  EXPECT_NE(body.find("\nprocess_resident_memory_bytes "), std::string::npos) << body;
  EXPECT_NE(body.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
  for (const char* name : {"process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    EXPECT_NE(body.find(std::string("\n") + name + " "), std::string::npos) << name;
  }
  EXPECT_NE(body.find("jetstream_build_info{service=\"decode\",version=\"" +
                      std::string(metrics::version()) + "\"} 1\n"),
            std::string::npos)
      << body;
}

TEST_F(MetricsServerTest, HeadGetsTheHeadersWithoutTheBody) {
  metrics::register_build_info(*registry_, "fanout");
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  const auto response = get(server.port(), "/metrics", "HEAD");
  EXPECT_EQ(response.status, 200);
  EXPECT_GT(std::stoul(response.header("Content-Length")), 0u);
  EXPECT_TRUE(response.body.empty());
  EXPECT_EQ(get(server.port(), "/healthz", "HEAD").body, "");
}

TEST_F(MetricsServerTest, HealthAndReadinessAreOkWithoutCallbacks) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  const auto health = get(server.port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  const auto ready = get(server.port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");
}

TEST_F(MetricsServerTest, HealthzAndReadyzFlipWithTheCallbacks) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  std::atomic<bool> live{true};
  std::atomic<bool> ready{false};
  server.set_health([&] { return live.load(); },
                    [&] {
                      return ready.load() ? metrics::HealthReport::healthy()
                                          : metrics::HealthReport::unhealthy("catching up");
                    });
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
  auto response = get(server.port(), "/readyz");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body, "not ready: catching up\n");

  ready = true;
  live = false;
  response = get(server.port(), "/readyz");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "ready\n");
  response = get(server.port(), "/healthz");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body, "not live\n");

  live = true;
  EXPECT_EQ(get(server.port(), "/healthz").body, "ok\n");
}

TEST_F(MetricsServerTest, ACallbackThatThrowsIsA503WithItsReasonOnOneLine) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  server.set_health([]() -> bool { throw std::runtime_error("store\nbroken"); },
                    []() -> metrics::HealthReport { throw std::runtime_error("no upstream"); });
  auto response = get(server.port(), "/healthz");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body, "not live: store broken\n");
  response = get(server.port(), "/readyz");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body, "not ready: no upstream\n");
}

TEST_F(MetricsServerTest, OtherPathsAre404OtherMethods405AndQueryStringsIgnored) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  EXPECT_EQ(get(server.port(), "/").status, 404);
  EXPECT_EQ(get(server.port(), "/metricsx").status, 404);
  EXPECT_EQ(get(server.port(), "/metrics?format=text").status, 200);
  EXPECT_EQ(get(server.port(), "http://127.0.0.1/healthz").status, 200);
  const auto post = get(server.port(), "/metrics", "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("Allow"), "GET, HEAD");
}

TEST_F(MetricsServerTest, GarbageGetsA400AndTheServerKeepsServing) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  EXPECT_EQ(round_trip(server.port(), "\x16\x03\x01\x02garbage\r\n\r\n").status, 400);
  EXPECT_EQ(round_trip(server.port(), "GET /metrics HTTP/2.0\r\n\r\n").status, 400);
  EXPECT_EQ(round_trip(server.port(), "GET\r\n\r\n").status, 400);
  EXPECT_EQ(round_trip(server.port(), "GET  HTTP/1.1\r\n\r\n").status, 400);
  {
    Client half(server.port());  // hangs up in the middle of a request
    half.send("GET /metr");
  }
  {
    Client binary(server.port());
    std::string noise;
    for (int i = 0; i < 3000; ++i) noise += static_cast<char>((i * 37) & 0xff);
    binary.send(noise);
    binary.read_to_end(milliseconds(200));
  }
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
}

TEST_F(MetricsServerTest, RequestHeadOver8KiBGetsA431) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  const std::string huge =
      "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(10'000, 'a') + "\r\n\r\n";
  const auto response = round_trip(server.port(), huge);
  EXPECT_EQ(response.status, 431);
  EXPECT_TRUE(response.closed);
  // Just under the limit is fine.
  const std::string request = "GET /healthz HTTP/1.1\r\nX-Padding: ";
  const std::string fits =
      request +
      std::string(metrics::MetricsServer::kMaxRequestHeadBytes - request.size() - 4, 'a') +
      "\r\n\r\n";
  ASSERT_EQ(fits.size(), metrics::MetricsServer::kMaxRequestHeadBytes);
  EXPECT_EQ(round_trip(server.port(), fits).status, 200);
}

TEST_F(MetricsServerTest, ASilentClientDelaysNobodyAndIsDroppedAfterTheReadTimeout) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  Client silent(server.port());
  ASSERT_TRUE(silent.connected());
  const auto start = Clock::now();
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));

  EXPECT_EQ(silent.read_to_end(), "");
  EXPECT_TRUE(silent.closed());
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, metrics::MetricsServer::kIoTimeout - milliseconds(100));
  EXPECT_LT(waited, metrics::MetricsServer::kIoTimeout + milliseconds(1500));
}

TEST_F(MetricsServerTest, MoreIdleConnectionsThanTheLimitOnlyDelayTheNextRequest) {
  metrics::MetricsServer server("127.0.0.1", 0, registry_);
  std::vector<std::unique_ptr<Client>> idle;
  for (std::size_t i = 0; i < metrics::MetricsServer::kMaxConnections + 8; ++i) {
    idle.push_back(std::make_unique<Client>(server.port()));
  }
  const auto start = Clock::now();
  EXPECT_EQ(get(server.port(), "/readyz").status, 200);
  EXPECT_LT(Clock::now() - start, 2 * metrics::MetricsServer::kIoTimeout + milliseconds(1500));
}

TEST_F(MetricsServerTest, StopReturnsPromptlyWithAClientConnected) {
  auto server = std::make_unique<metrics::MetricsServer>("127.0.0.1", 0, registry_);
  const std::uint16_t port = server->port();
  Client idle(port);
  ASSERT_TRUE(idle.connected());
  std::this_thread::sleep_for(milliseconds(50));  // let the server accept it
  const auto start = Clock::now();
  server->stop();
  EXPECT_LT(Clock::now() - start, milliseconds(100));
  idle.read_to_end(milliseconds(1000));
  EXPECT_TRUE(idle.closed()) << "stop closes open connections";
  server->stop();  // idempotent
  server.reset();
  EXPECT_FALSE(Client(port).connected()) << "nothing listens after stop";
}

TEST_F(MetricsServerTest, PortZeroPicksAFreePortAndABusyPortFailsNamingTheAddress) {
  metrics::MetricsServer first("127.0.0.1", 0, registry_);
  metrics::MetricsServer second(jetstream::config::ListenAddress{"127.0.0.1", 0}, registry_);
  EXPECT_NE(first.port(), 0);
  EXPECT_NE(second.port(), 0);
  EXPECT_NE(first.port(), second.port());
  try {
    metrics::MetricsServer clash("127.0.0.1", first.port(), registry_);
    FAIL() << "binding a port in use must fail";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(metrics::MetricsServer("127.0.0.1", 0, nullptr), std::invalid_argument);
}

TEST_F(MetricsServerTest, EmptyHostListensOnEveryInterface) {
  metrics::MetricsServer server(jetstream::config::ListenAddress{"", 0}, registry_);
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
}

TEST(ProcessMetrics, CollectorReportsPlausibleValuesFromProc) {
  const auto families = metrics::ProcessCollector().Collect();
  std::map<std::string, double> values;
  for (const auto& family : families) {
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    const auto& metric = family.metric[0];
    values[family.name] =
        family.type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value;
  }
  ASSERT_EQ(values.size(), 6u);
  const double now = static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  EXPECT_GE(values["process_cpu_seconds_total"], 0.0);
  EXPECT_GT(values["process_resident_memory_bytes"], 1e6);
  EXPECT_GE(values["process_virtual_memory_bytes"], values["process_resident_memory_bytes"]);
  EXPECT_GE(values["process_open_fds"], 3.0);
  EXPECT_GE(values["process_max_fds"], values["process_open_fds"]);
  EXPECT_GT(values["process_start_time_seconds"], now - 86400.0);
  EXPECT_LE(values["process_start_time_seconds"], now + 2.0);
}

TEST(ProcessMetrics, OpenFdsCountsANewDescriptor) {
  const auto open_fds = [] {
    for (const auto& family : metrics::ProcessCollector().Collect()) {
      if (family.name == "process_open_fds") return family.metric[0].gauge.value;
    }
    return -1.0;
  };
  const double before = open_fds();
  const int fd = ::dup(STDERR_FILENO);
  EXPECT_EQ(open_fds(), before + 1);
  ::close(fd);
}

TEST(ProcessMetrics, RegisteringTwiceAttachesOneCollector) {
  prometheus::Registry registry;
  metrics::register_process_metrics(registry);
  metrics::register_process_metrics(registry);
  EXPECT_EQ(metrics::attached_collectables(registry).size(), 1u);
  const std::string text = metrics::serialize(registry);
  EXPECT_EQ(text.find("# TYPE process_open_fds"), text.rfind("# TYPE process_open_fds"));
  metrics::detach_collectables(registry);
  EXPECT_EQ(metrics::serialize(registry).find("process_open_fds"), std::string::npos);
}

TEST(BuildInfo, VersionIsTheCMakeProjectVersion) {
  // MAJOR.MINOR.PATCH, as CMake's project(VERSION) gives it.
  const std::string_view version = metrics::version();
  int dots = 0;
  bool digits_only = !version.empty();
  for (const char c : version) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      digits_only = false;
    }
  }
  EXPECT_TRUE(digits_only && dots == 2) << version;
}

TEST(BuildInfo, RegisteringTwiceKeepsOneSeries) {
  prometheus::Registry registry;
  metrics::register_build_info(registry, "ingest", "1.2.3");
  metrics::register_build_info(registry, "ingest", "1.2.3");
  const std::string text = metrics::serialize(registry);
  EXPECT_NE(text.find("# TYPE jetstream_build_info gauge\n"), std::string::npos);
  const std::string series = "jetstream_build_info{service=\"ingest\",version=\"1.2.3\"} 1\n";
  const std::size_t at = text.find(series);
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_EQ(text.find(series, at + 1), std::string::npos);
}

}  // namespace
