#include "services/fanout/fanout_service.hpp"

#include <prometheus/registry.h>

#include <iostream>
#include <thread>

#include "common/clock/clock.hpp"
#include "common/log/log.hpp"
#include "common/metrics/metrics_server.hpp"
#include "common/metrics/process_metrics.hpp"
#include "common/runtime/actor_scheduler.hpp"
#include "common/runtime/service_main.hpp"
#include "common/zstd/zstd_dictionary.hpp"
#include "services/fanout/catch_up_governor.hpp"
#include "services/fanout/client_connection.hpp"
#include "services/fanout/client_session.hpp"
#include "services/fanout/event_feed.hpp"
#include "services/fanout/event_window.hpp"
#include "services/fanout/fanout_probe.hpp"
#include "services/fanout/http_server.hpp"
#include "services/fanout/ip_rate_limiter.hpp"
#include "services/fanout/status_board.hpp"
#include "services/fanout/subscribe_route.hpp"
#include "services/fanout/subscriber_options.hpp"

namespace jetstream::fanout {

void register_fanout_flags(config::FlagSet& flags, FanoutOptions& o) {
  flags.add_string("listen-addr", &o.listen_addr, "HTTP and websocket address (/subscribe)");
  flags.add_string("metrics-listen-addr", &o.metrics_listen_addr,
                   "HTTP address for /metrics, /healthz and /readyz");
  flags.add_string("events-endpoint", &o.events_endpoint, "decode's events PUB to connect to");
  flags.add_string("replay-endpoint", &o.replay_endpoint, "decode's replay ROUTER to connect to");
  flags.add_string("zstd-dictionary-path", &o.zstd_dictionary_path,
                   "the v1 zstd dictionary decode uses; without it compress=true is refused");
  flags.add_double(
      "max-sub-rate", &o.max_sub_rate,
      "events per second delivered to one client IP (all its connections); 0 = no limit");
  flags.add_double(
      "catch-up-live-rise", &o.catch_up_live_rise,
      "live first: percent by which replay and snapshot deliveries may raise live sends' p99 "
      "write lag (arrival at fanout to the socket) above live alone, measured every 10 s with "
      "catch-up paused for 200 ms; above it they are slowed (halved per 100 ms); 0 = off");
  flags.add_double("catch-up-min-rate", &o.catch_up_min_rate,
                   "events per second replay and snapshot deliveries of this replica always get "
                   "together, however busy live is");
  flags.add_string("trusted-proxies", &o.trusted_proxies,
                   "peers whose X-Forwarded-For / X-Real-IP name the client IP: * = any (v1), "
                   "empty = none, or comma-separated addresses and CIDR blocks");
  flags.add_int64("window-bytes", &o.window_bytes, "memory for the window of recent events");
  flags.add_int64("io-threads", &o.io_threads, "socket threads (0 = half the cores, at least 1)");
  flags.add_int64(
      "actor-threads", &o.actor_threads,
      "threads running the client sessions (0 = the cores left by the socket threads, at least 1)");
  flags.add_duration("ping-interval", &o.ping_interval, "how often clients are pinged");
  flags.add_duration("pong-timeout", &o.pong_timeout,
                     "a client silent this long after a ping is dropped");
  flags.add_duration("slow-client-timeout", &o.slow_client_timeout,
                     "a client that reads nothing for this long while events wait is closed");
  flags.add_int64("client-buffer-bytes", &o.client_buffer_bytes,
                  "unsent bytes queued per client before it is served from the log instead");
  flags.add_duration("shutdown-grace", &o.shutdown_grace,
                     "how long clients get to receive their 1001 close on shutdown");
  flags.add_duration("header-timeout", &o.header_timeout,
                     "a client that has not sent its whole request this long after starting it "
                     "is closed (a byte a second holds nothing for long)");
  flags.add_int64("max-request-memory", &o.max_request_memory,
                  "bytes the requests being read may hold together: a request head over 16 KiB "
                  "(up to 1 MiB: 10,000 wantedDids) waits in line for a 4 MiB share");
  flags.add_bool("permessage-deflate", &o.permessage_deflate,
                 "answer browsers' permessage-deflate offers (RFC 7692): each event compressed "
                 "once per replica, only while such a client is connected; false = plain text");
  flags.add_string("log-level", &o.log_level, "debug, info, warn or error");
}

namespace {

using housekeeping_atom = caf::atom_constant<caf::atom("housekeep")>;

/// The status page's sample of this second (status_board.hpp).
StatusSample status_sample(const FanoutProbe& probe, const EventFeed& feed) {
  StatusSample sample;
  sample.at = std::chrono::steady_clock::now();
  sample.wall_time_us = clock::wall_clock_us();
  const auto figures = probe.figures();
  sample.clients_text = figures.clients[static_cast<std::size_t>(MessageEncoding::text)];
  sample.clients_zstd = figures.clients[static_cast<std::size_t>(MessageEncoding::zstd)];
  sample.clients_deflate = figures.clients[static_cast<std::size_t>(MessageEncoding::deflate)];
  sample.events_received = figures.events_received;
  sample.events_delivered = figures.events_delivered;
  sample.joined = feed.status().joined;
  if (const auto pipeline = feed.pipeline_status()) {
    sample.pipeline = pipeline->status;
    sample.pipeline_age = sample.at - pipeline->received;
  }
  if (const auto state = feed.compacted_state()) {
    sample.compacted = state->compacted.canonical();
    sample.building = state->building.canonical();
  }
  return sample;
}

/// What the housekeeping actor reads and feeds.
struct HousekeepingParts {
  const EventWindow* window;
  IpRateLimiter* limiter;
  const CatchUpGovernor* catch_up;
  const DeflateStats* deflate;
  FanoutProbe* probe;
  const HttpServer* http;
  const EventFeed* feed;
  StatusBoard* status;
};

/// Once a second: the window's, the catch-up governor's, permessage-deflate's and the HTTP
/// server's figures into the probe, a sample for the status page, and the rate limiter forgets
/// idle addresses.
caf::actor spawn_housekeeping(caf::actor_system& actors, HousekeepingParts parts) {
  return actors.spawn([parts](caf::event_based_actor* self) {
    self->send(self, housekeeping_atom::value);
    return caf::behavior{[self, parts](housekeeping_atom) {
      parts.probe->set_window(parts.window->bytes(), parts.window->newest());
      parts.probe->set_http(parts.http->stats());
      parts.probe->set_deflate(*parts.deflate);
      const auto& catch_up = *parts.catch_up;
      parts.probe->set_catch_up(catch_up.enabled() ? catch_up.events_per_second() : -1,
                                catch_up.baseline_seconds(), catch_up.congested_intervals());
      parts.status->add(status_sample(*parts.probe, *parts.feed));
      parts.limiter->forget_idle(std::chrono::seconds(60));
      self->delayed_send(self, std::chrono::seconds(1), housekeeping_atom::value);
    }};
  });
}

/// /readyz: joined to decode's stream, not repairing a gap, and heard from decode lately.
metrics::HealthReport feed_readiness(const EventFeed& feed) {
  const auto status = feed.status();
  if (!status.joined) return metrics::HealthReport::unhealthy("not joined to decode's stream");
  if (status.repairing) return metrics::HealthReport::unhealthy("repairing a gap from the log");
  if (!feed.compacted_state()) {
    // Sent by decode right after each heartbeat: needed to answer snapshot=true handshakes.
    return metrics::HealthReport::unhealthy("decode's state info not received yet");
  }
  if (std::chrono::steady_clock::now() - status.last_message > std::chrono::seconds(5)) {
    return metrics::HealthReport::unhealthy("no message from decode for 5s");
  }
  return metrics::HealthReport::healthy();
}

}  // namespace

struct FanoutService::Impl {
  FanoutOptions options;
  bool compression_available = false;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<FanoutProbe> probe;
  std::unique_ptr<EventWindow> window;
  std::unique_ptr<IpRateLimiter> limiter;
  std::unique_ptr<CatchUpGovernor> catch_up;
  DeflateStats deflate;
  StatusBoard status;
  zmq::context_t context{1};
  std::unique_ptr<caf::actor_system_config> actor_config;
  std::unique_ptr<caf::actor_system> actors;
  broadcaster_actor broadcaster;
  caf::actor housekeeping;
  std::unique_ptr<EventFeed> feed;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::atomic<bool> stopping{false};
  bool stopped = false;
};

FanoutService::FanoutService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FanoutService::~FanoutService() { stop(); }

std::optional<std::string> validate_fanout_options(const FanoutOptions& o) {
  if (o.window_bytes < 1) return "--window-bytes must be at least 1";
  if (o.client_buffer_bytes < 1) return "--client-buffer-bytes must be at least 1";
  if (o.max_sub_rate < 0) return "--max-sub-rate must not be negative (0 = no limit)";
  if (o.catch_up_live_rise < 0) return "--catch-up-live-rise must not be negative (0 = off)";
  if (o.catch_up_min_rate < 1) return "--catch-up-min-rate must be at least 1";
  if (o.io_threads < 0 || o.actor_threads < 0) {
    return "--io-threads and --actor-threads must not be negative (0 = automatic)";
  }
  if (o.ping_interval.count() <= 0 || o.pong_timeout.count() <= 0) {
    return "--ping-interval and --pong-timeout must be positive";
  }
  if (o.slow_client_timeout < std::chrono::seconds(1)) {
    return "--slow-client-timeout must be at least 1s";
  }
  if (o.shutdown_grace.count() < 0) return "--shutdown-grace must not be negative";
  if (o.header_timeout < std::chrono::milliseconds(100)) {
    return "--header-timeout must be at least 100ms";
  }
  if (o.max_request_memory < 0 ||
      static_cast<std::size_t>(o.max_request_memory) < request_memory_share(HttpServerOptions{})) {
    return "--max-request-memory must be at least " +
           std::to_string(request_memory_share(HttpServerOptions{})) +
           " (one long request's share)";
  }
  std::string proxies_error;
  if (!TrustedProxies::parse(o.trusted_proxies, &proxies_error)) {
    return "--trusted-proxies: " + proxies_error;
  }
  return std::nullopt;
}

std::unique_ptr<FanoutService> FanoutService::start(const FanoutOptions& options,
                                                    std::string& error) {
  if (auto invalid = validate_fanout_options(options)) {
    error = std::move(*invalid);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.options = options;
  if (!options.zstd_dictionary_path.empty()) {
    // fanout never compresses; it only checks the operator gave it the dictionary clients need.
    if (!zstd::Dictionary::load(options.zstd_dictionary_path, error)) return nullptr;
    s.compression_available = true;
  } else {
    log::warn("no zstd dictionary configured: compress=true requests get 400");
  }
  const auto listen = config::parse_listen_address(options.listen_addr, &error);
  const auto metrics_listen = config::parse_listen_address(options.metrics_listen_addr, &error);
  if (!listen || !metrics_listen) return nullptr;

  s.registry = std::make_shared<prometheus::Registry>();
  metrics::register_process_metrics(*s.registry);
  metrics::register_build_info(*s.registry, "fanout");
  s.probe = std::make_unique<FanoutProbe>(s.registry);
  s.window = std::make_unique<EventWindow>(static_cast<std::size_t>(options.window_bytes));
  s.limiter = std::make_unique<IpRateLimiter>(options.max_sub_rate);
  CatchUpGovernor::Options catch_up;
  catch_up.live_rise = options.catch_up_live_rise / 100;
  catch_up.min_events_per_second = options.catch_up_min_rate;
  catch_up.start_events_per_second = std::max(options.catch_up_min_rate, 100'000.0);
  catch_up.max_events_per_second = std::max(options.catch_up_min_rate, 100'000'000.0);
  s.catch_up = std::make_unique<CatchUpGovernor>(catch_up);

  const auto cores = std::max(1u, std::thread::hardware_concurrency());
  // By default the cores are split between socket threads and session threads (on 2 cores,
  // one each: fewer threads spinning and switching than two each; see README "Benchmarks").
  const std::size_t io_threads = options.io_threads > 0
                                     ? static_cast<std::size_t>(options.io_threads)
                                     : std::max<std::size_t>(1, cores / 2);
  const std::size_t actor_threads = options.actor_threads > 0
                                        ? static_cast<std::size_t>(options.actor_threads)
                                        : std::max<std::size_t>(1, cores - io_threads);
  s.actor_config = runtime::actor_system_config(actor_threads);
  s.actors = std::make_unique<caf::actor_system>(*s.actor_config);
  s.broadcaster = spawn_broadcaster(*s.actors);

  EventFeedOptions feed_options;
  feed_options.events_endpoint = options.events_endpoint;
  feed_options.replay_endpoint = options.replay_endpoint;
  feed_options.deflate = &s.deflate;
  s.feed = std::make_unique<EventFeed>(s.context, feed_options, *s.window,
                                       notify_broadcaster(s.broadcaster), *s.probe);
  s.feed->start();

  SessionContext session_context;
  session_context.window = s.window.get();
  session_context.feed = s.feed.get();
  session_context.probe = s.probe.get();
  session_context.limiter = s.limiter.get();
  session_context.catch_up = s.catch_up->enabled() ? s.catch_up.get() : nullptr;
  session_context.broadcaster = s.broadcaster;
  session_context.deflate = &s.deflate;
  session_context.config.high_water_bytes = static_cast<std::uint64_t>(options.client_buffer_bytes);
  session_context.config.slow_client_timeout =
      std::chrono::duration_cast<std::chrono::seconds>(options.slow_client_timeout);

  HttpServerOptions http_options;
  http_options.listen = *listen;
  http_options.threads = io_threads;
  http_options.trusted_proxies = *TrustedProxies::parse(options.trusted_proxies);  // validated
  http_options.permessage_deflate = options.permessage_deflate;
  // API.md "Status page": the figures as JSON, and the page that shows them live.
  http_options.pages.emplace_back("/status.json", [board = &s.status] {
    return Page{"application/json", board->json(), {{"Cache-Control", "no-store"}}};
  });
  http_options.pages.emplace_back("/status", [] {
    return Page{"text/html; charset=utf-8",
                std::string(status_page_html()),
                {{"Cache-Control", "no-cache"},
                 // Only its own inline script and style, and requests to its own origin.
                 {"Content-Security-Policy",
                  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                  "connect-src 'self'; img-src data:"}}};
  });
  http_options.connection.ping_interval =
      std::chrono::duration_cast<std::chrono::milliseconds>(options.ping_interval);
  http_options.connection.pong_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(options.pong_timeout);
  auto* lag_probe = s.probe.get();
  auto* governor = s.catch_up.get();
  // Only live sends carry a measure_from (Subscription::deliver_queue).
  http_options.connection.on_frame_written = [lag_probe,
                                              governor](std::chrono::steady_clock::duration since) {
    lag_probe->write_lag(std::chrono::duration<double>(since).count());
    governor->observe_live_lag(since);
  };
  http_options.header_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(options.header_timeout);
  http_options.max_request_memory = static_cast<std::size_t>(options.max_request_memory);
  try {
    s.http = std::make_unique<HttpServer>(
        http_options,
        subscribe_handler(*s.actors, session_context, s.stopping, s.compression_available));
    s.metrics_server = std::make_unique<metrics::MetricsServer>(*metrics_listen, s.registry);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
  s.housekeeping = spawn_housekeeping(
      *s.actors, HousekeepingParts{s.window.get(), s.limiter.get(), s.catch_up.get(), &s.deflate,
                                   s.probe.get(), s.http.get(), s.feed.get(), &s.status});
  s.metrics_server->set_health([] { return true; },
                               [feed = s.feed.get()] { return feed_readiness(*feed); });
  log::info("fanout started", {{"listen", options.listen_addr},
                               {"port", s.http->port()},
                               {"metrics_port", s.metrics_server->port()},
                               {"events", options.events_endpoint},
                               {"replay", options.replay_endpoint},
                               {"compression", s.compression_available}});
  return std::unique_ptr<FanoutService>(new FanoutService(std::move(impl)));
}

void FanoutService::stop() {
  if (!impl_ || impl_->stopped) return;
  Impl& s = *impl_;
  s.stopped = true;
  s.stopping.store(true);
  s.http->stop();                                       // no new connections
  caf::anon_send(s.broadcaster, shutdown_atom::value);  // every session closes with 1001
  const auto deadline = std::chrono::steady_clock::now() + s.options.shutdown_grace;
  {
    // Hidden, and gone before await_all_actors_done: a visible scoped actor would wait for itself.
    caf::scoped_actor self{*s.actors, true};
    while (std::chrono::steady_clock::now() < deadline) {
      std::uint64_t sessions = 1;
      self->request(s.broadcaster, std::chrono::seconds(1), count_atom::value)
          .receive([&](std::uint64_t count) { sessions = count; }, [](caf::error&) {});
      if (sessions == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // close frames leave the queues
  s.http->shutdown();
  s.feed->stop();
  caf::anon_send_exit(s.broadcaster, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(s.housekeeping, caf::exit_reason::user_shutdown);
  s.broadcaster = nullptr;
  s.housekeeping = nullptr;
  s.actors->await_all_actors_done();
  s.metrics_server->stop();
  log::info("fanout stopped");
}

std::uint16_t FanoutService::port() const { return impl_->http->port(); }
std::uint16_t FanoutService::metrics_port() const { return impl_->metrics_server->port(); }

int run_fanout(int argc, char** argv) {
  FanoutOptions options;
  config::FlagSet flags("jetstream-fanout",
                        "Serves the Jetstream v1 /subscribe websocket API from decode's events.");
  register_fanout_flags(flags, options);
  return runtime::run_service<FanoutService>(argc, argv, flags, "fanout", options);
}

}  // namespace jetstream::fanout
