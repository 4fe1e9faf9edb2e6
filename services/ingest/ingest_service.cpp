#include "services/ingest/ingest_service.hpp"

#include <prometheus/registry.h>

#include <caf/all.hpp>
#include <fstream>
#include <iostream>
#include <random>
#include <zmq.hpp>

#include "common/config/flags.hpp"
#include "common/log/log.hpp"
#include "common/metrics/metrics_server.hpp"
#include "common/metrics/process_metrics.hpp"
#include "common/runtime/actor_scheduler.hpp"
#include "common/runtime/service_main.hpp"
#include "common/websocket/url.hpp"
#include "proto/wire.hpp"
#include "services/ingest/connection_state_machine.hpp"
#include "services/ingest/control_receiver.hpp"
#include "services/ingest/ingest_probe.hpp"
#include "services/ingest/upstream_link.hpp"

namespace jetstream::ingest {

namespace {

std::chrono::milliseconds to_millis(std::chrono::microseconds value) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(value);
}

std::uint64_t random_epoch() {
  std::random_device device;
  std::uint64_t epoch = 0;
  while (epoch == 0) {
    epoch = (static_cast<std::uint64_t>(device()) << 32) ^ static_cast<std::uint64_t>(device());
  }
  return epoch;
}

}  // namespace

void register_ingest_flags(config::FlagSet& flags, IngestOptions& o) {
  flags.add_string("ws-url", &o.ws_url,
                   "upstream subscribeRepos websocket (ws:// or wss://); its cursor parameter is "
                   "replaced by decode's cursor on every connection");
  flags.add_int64("override-relay-cursor", &o.override_relay_cursor,
                  "when >= 0, the first stream starts after this upstream seq instead of "
                  "decode's cursor");
  flags.add_string("frames-listen-addr", &o.frames_listen_addr,
                   "where the frames PUB binds: host:port, :port, or a ZeroMQ endpoint");
  flags.add_string("control-listen-addr", &o.control_listen_addr,
                   "where the control PULL (decode's resumes) binds: host:port, :port, or a "
                   "ZeroMQ endpoint");
  flags.add_listen_address("metrics-listen-addr", &o.metrics_listen_addr,
                           "Prometheus /metrics, /healthz and /readyz");
  flags.add_duration("status-interval", &o.status_interval, "how often status is published");
  flags.add_duration("connect-timeout", &o.connect_timeout, "upstream DNS + TCP connect limit");
  flags.add_duration("handshake-timeout", &o.handshake_timeout,
                     "upstream TLS handshake and websocket upgrade limit (each)");
  flags.add_duration("ping-interval", &o.ping_interval, "websocket ping period (0 = no pings)");
  flags.add_duration("idle-timeout", &o.idle_timeout,
                     "reconnect when nothing at all (not even a pong) arrives for this long "
                     "(0 = never)");
  flags.add_duration("stall-timeout", &o.stall_timeout,
                     "reconnect when no frame arrives for this long, pongs notwithstanding "
                     "(0 = never; quiet PDSes may want 0)");
  flags.add_duration("backoff-initial", &o.backoff_initial, "first reconnect delay");
  flags.add_duration("backoff-max", &o.backoff_max, "reconnect delay cap (doubling, jittered)");
  flags.add_string("ca-file", &o.ca_file,
                   "extra PEM CA certificates trusted for wss:// (besides the system store)");
  flags.add_int64("frames-send-hwm", &o.frames_send_hwm,
                  "frames PUB high-water mark, in messages per subscriber");
  flags.add_string("log-level", &o.log_level, "debug, info, warn or error");
}

struct IngestService::Impl {
  IngestOptions options;
  std::uint64_t epoch = 0;
  zmq::context_t context{1};
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<IngestProbe> probe;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::unique_ptr<caf::actor_system_config> actor_config;
  std::unique_ptr<caf::actor_system> actors;
  caf::actor state_machine;
  std::unique_ptr<UpstreamLink> link;
  std::unique_ptr<ControlReceiver> control;
  bool stopped = false;

  ~Impl() { stop(); }

  void stop() {
    if (stopped) return;
    stopped = true;
    if (control) control->stop();
    if (state_machine) {
      caf::anon_send_exit(state_machine, caf::exit_reason::user_shutdown);
      state_machine = nullptr;
    }
    if (actors) actors->await_all_actors_done();
    if (link) link->stop();
    if (metrics_server) metrics_server->stop();
    control.reset();
    link.reset();
    actors.reset();
    context.close();
  }
};

std::optional<std::string> validate_ingest_options(const IngestOptions& o) {
  if (o.backoff_initial.count() <= 0 || o.backoff_max < o.backoff_initial) {
    return "--backoff-initial must be > 0 and <= --backoff-max";
  }
  if (!o.ca_file.empty() && !std::ifstream(o.ca_file).good()) {
    return "--ca-file " + o.ca_file + ": cannot be read";
  }
  if (o.frames_send_hwm < 0 || o.frames_send_hwm > 1'000'000'000) {
    return "--frames-send-hwm must be between 0 (no limit) and 1000000000";
  }
  if (o.status_interval.count() <= 0) return "--status-interval must be > 0";
  if (o.connect_timeout.count() <= 0 || o.handshake_timeout.count() <= 0) {
    return "--connect-timeout and --handshake-timeout must be > 0";
  }
  if (o.ping_interval.count() < 0 || o.idle_timeout.count() < 0 || o.stall_timeout.count() < 0) {
    return "--ping-interval, --idle-timeout and --stall-timeout must not be negative (0 = off)";
  }
  return std::nullopt;
}

std::unique_ptr<IngestService> IngestService::start(const IngestOptions& options,
                                                    std::string& error) {
  if (auto invalid = validate_ingest_options(options)) {
    error = std::move(*invalid);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.options = options;
  s.epoch = random_epoch();

  std::string url_error;
  const auto url = websocket::parse_url(options.ws_url, &url_error);
  if (!url) {
    error = "--ws-url " + options.ws_url + ": " + url_error;
    return nullptr;
  }
  const auto frames_endpoint = zmq_bind_endpoint(options.frames_listen_addr, &error);
  if (frames_endpoint.empty()) {
    error = "--frames-listen-addr: " + error;
    return nullptr;
  }
  const auto control_endpoint = zmq_bind_endpoint(options.control_listen_addr, &error);
  if (control_endpoint.empty()) {
    error = "--control-listen-addr: " + error;
    return nullptr;
  }
  s.registry = std::make_shared<prometheus::Registry>();
  metrics::register_process_metrics(*s.registry);
  metrics::register_build_info(*s.registry, "ingest");
  s.probe = std::make_unique<IngestProbe>(*s.registry);
  try {
    s.metrics_server =
        std::make_unique<metrics::MetricsServer>(options.metrics_listen_addr, s.registry);
  } catch (const std::exception& e) {
    error = std::string("metrics server: ") + e.what();
    return nullptr;
  }

  s.actor_config = runtime::actor_system_config(1);
  s.actors = std::make_unique<caf::actor_system>(*s.actor_config);

  LinkOptions link_options;
  link_options.url = *url;
  link_options.client.connect_timeout = to_millis(options.connect_timeout);
  link_options.client.handshake_timeout = to_millis(options.handshake_timeout);
  link_options.client.ping_interval = to_millis(options.ping_interval);
  link_options.client.idle_timeout = to_millis(options.idle_timeout);
  link_options.client.message_timeout = to_millis(options.stall_timeout);
  link_options.client.max_message_bytes = proto::kMaxUpstreamFrameBytes;
  link_options.client.extra_ca_file = options.ca_file;
  link_options.client.user_agent = "jetstream-cpp-ingest";
  link_options.frames_endpoint = frames_endpoint;
  link_options.send_high_water_mark = static_cast<int>(options.frames_send_hwm);
  link_options.status_interval = to_millis(options.status_interval);

  // The link reports to the connection state machine, which is spawned after the link exists: the
  // events go through this holder, filled before the link's thread starts.
  auto machine_ref = std::make_shared<caf::actor>();
  LinkEvents events;
  events.opened = [machine_ref](std::uint64_t generation) {
    send_opened(*machine_ref, generation);
  };
  events.failed = [machine_ref](std::uint64_t generation, std::string reason, std::string message,
                                std::int64_t last_stream_seq, bool delivered) {
    send_failed(*machine_ref, generation, std::move(reason), std::move(message), last_stream_seq,
                delivered);
  };
  try {
    s.link = std::make_unique<UpstreamLink>(s.context, s.epoch, std::move(link_options), *s.probe,
                                            std::move(events));
  } catch (const std::exception& e) {
    error = "frames endpoint " + frames_endpoint + ": " + e.what();
    return nullptr;
  }

  ConnectionStateMachineConfig machine_config;
  machine_config.link = s.link.get();
  machine_config.probe = s.probe.get();
  machine_config.epoch = s.epoch;
  machine_config.backoff_initial = to_millis(options.backoff_initial);
  machine_config.backoff_max = to_millis(options.backoff_max);
  machine_config.override_cursor = options.override_relay_cursor;
  s.state_machine = spawn_connection_state_machine(*s.actors, machine_config);
  *machine_ref = s.state_machine;

  try {
    s.control = std::make_unique<ControlReceiver>(
        s.context, control_endpoint, *s.probe,
        [state_machine = s.state_machine](const proto::Resume& resume) {
          send_resume(state_machine, resume);
        });
  } catch (const std::exception& e) {
    error = "control endpoint " + control_endpoint + ": " + e.what();
    return nullptr;
  }

  auto* probe = s.probe.get();
  s.metrics_server->set_health(
      [] { return true; },
      [probe] {
        switch (probe->state()) {
          case UpstreamState::connected: return metrics::HealthReport::healthy();
          // Idle is ready on purpose: ingest is waiting for decode's first resume, and decode can
          // only send it if ingest is reachable.
          case UpstreamState::idle: return metrics::HealthReport::healthy();
          default:
            return metrics::HealthReport::unhealthy("upstream not connected (" +
                                                    std::string(to_string(probe->state())) + ")");
        }
      });

  s.link->start();
  s.control->start();
  log::info("ingest started; waiting for decode's first resume before connecting upstream",
            {{"epoch", s.epoch},
             {"ws_url", url->to_string()},
             {"frames", s.link->frames_endpoint()},
             {"control", s.control->endpoint()},
             {"metrics_port", s.metrics_server->port()}});
  return std::unique_ptr<IngestService>(new IngestService(std::move(impl)));
}

IngestService::IngestService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

IngestService::~IngestService() { stop(); }

void IngestService::stop() {
  if (impl_) impl_->stop();
}

std::uint64_t IngestService::epoch() const { return impl_->epoch; }
std::string IngestService::frames_endpoint() const { return impl_->link->frames_endpoint(); }
std::string IngestService::control_endpoint() const { return impl_->control->endpoint(); }
std::uint16_t IngestService::metrics_port() const { return impl_->metrics_server->port(); }

int run_ingest(int argc, char** argv) {
  IngestOptions options;
  config::FlagSet flags("jetstream-ingest",
                        "Reads the upstream firehose (subscribeRepos) from where decode says and "
                        "publishes every frame untouched, in an envelope, for decode.");
  register_ingest_flags(flags, options);
  return runtime::run_service<IngestService>(argc, argv, flags, "ingest", options);
}

}  // namespace jetstream::ingest
