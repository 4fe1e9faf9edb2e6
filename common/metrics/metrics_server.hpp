// The metrics port of every service: Prometheus exposition and health endpoints over a tiny
// HTTP/1.1 server of its own (no Beast, no civetweb), on its own thread.
//
//   GET /metrics   200, Prometheus text format of the registry (plus attached collectables)
//   GET /healthz   200 "ok\n" while live, else 503 "not live\n"
//   GET /readyz    200 "ready\n" when ready, else 503 "not ready: <reason>\n"
//   anything else  404 (405 for methods other than GET and HEAD); HEAD is supported everywhere
//
// One request per connection (`Connection: close`). A request head is bounded to 8 KiB and must
// arrive within 2 s; a response must be taken within 2 s. Up to 32 connections are served at
// once by one poll(2) loop, so a silent client delays nobody. Garbage gets a 400 and a close.
//
// Why not prometheus-cpp's own Exposer (civetweb), measured by tests/bench/
// metrics_server_comparison.cpp on the same registry: the Exposer answers /healthz and /readyz
// with 404 (it serves collectables only, so the probes every service answers on this port would
// need a second server), and two clients that never finish a request head take both of its worker
// threads, so a scrape gets no answer (5 s and counting); here the scrape is answered at once and
// the readiness reason is in the body. One server, shared by the three services.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/config/listen_address.hpp"

namespace prometheus {
class Registry;
}

namespace jetstream::metrics {

/// The answer of a readiness (or health) check: `ok`, or not with a one-line reason.
struct HealthReport {
  bool ok = true;
  std::string reason;

  static HealthReport healthy() { return {true, {}}; }
  static HealthReport unhealthy(std::string why) { return {false, std::move(why)}; }
};

class MetricsServer {
 public:
  /// Longest request line + headers accepted; longer gets 431.
  static constexpr std::size_t kMaxRequestHeadBytes = 8 * 1024;
  /// Time a client has to send its request head, and then to take the response.
  static constexpr std::chrono::milliseconds kIoTimeout{2000};
  /// Connections served at once; more wait in the listen backlog.
  static constexpr std::size_t kMaxConnections = 32;

  /// Binds (SO_REUSEADDR) and starts serving on a new thread. An empty host listens on every
  /// interface (IPv6 and IPv4); port 0 picks a free port. Throws std::system_error (or
  /// std::runtime_error for a host that does not resolve) naming the address when it cannot
  /// listen; std::invalid_argument when `registry` is null.
  MetricsServer(const config::ListenAddress& address,
                std::shared_ptr<prometheus::Registry> registry);
  MetricsServer(std::string host, std::uint16_t port,
                std::shared_ptr<prometheus::Registry> registry);
  /// Calls stop().
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// The checks behind /healthz and /readyz. They run on the server thread for each request, so
  /// they must be thread-safe and quick; one that throws counts as failing (its what() is the
  /// reason). An empty function means always ok, which is also the state before any call.
  void set_health(std::function<bool()> live, std::function<HealthReport()> ready);

  /// The port actually bound (the kernel's pick when constructed with port 0).
  std::uint16_t port() const;

  /// Stops serving, joins the thread, closes open connections and the listening socket (new
  /// connections are refused). Returns within
  /// milliseconds (the loop is woken through an eventfd, and polls at most 100 ms anyway).
  /// Idempotent. Must not be called from a health callback.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace jetstream::metrics
