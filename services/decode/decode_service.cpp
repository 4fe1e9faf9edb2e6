#include "services/decode/decode_service.hpp"

#include <prometheus/registry.h>

#include <filesystem>
#include <future>
#include <iostream>
#include <limits>
#include <optional>
#include <thread>

#include "common/clock/clock.hpp"
#include "common/http/http_client.hpp"
#include "common/identity/did_resolver.hpp"
#include "common/identity/identity_cache.hpp"
#include "common/log/log.hpp"
#include "common/metrics/metrics_server.hpp"
#include "common/metrics/process_metrics.hpp"
#include "common/runtime/actor_scheduler.hpp"
#include "common/runtime/service_main.hpp"
#include "common/websocket/url.hpp"
#include "common/zstd/zstd_dictionary.hpp"
#include "services/decode/backfill_receiver.hpp"
#include "services/decode/commit_verifier.hpp"
#include "services/decode/decode_probe.hpp"
#include "services/decode/event_sequencer.hpp"
#include "services/decode/event_store.hpp"
#include "services/decode/frame_receiver.hpp"
#include "services/decode/log_upkeep.hpp"
#include "services/decode/replay_server.hpp"
#include "services/decode/sequencer_actor.hpp"
#include "services/decode/stage_messages.hpp"
#include "services/decode/zmq_event_publisher.hpp"

namespace jetstream::decode {

void register_decode_flags(config::FlagSet& flags, DecodeOptions& o) {
  flags.add_string("data-dir", &o.data_dir, "folder of the event log (RocksDB)");
  flags.add_string("zstd-dictionary-path", &o.zstd_dictionary_path,
                   "v1 zstd dictionary; without it no compressed bodies are produced");
  flags.add_duration("event-ttl", &o.event_ttl, "how long events are kept (retention)");
  flags.add_string("frames-endpoint", &o.frames_endpoint, "ingest's frames PUB to connect to");
  flags.add_string("control-endpoint", &o.control_endpoint, "ingest's control PULL to connect to");
  flags.add_string("events-endpoint", &o.events_endpoint, "where to bind the events PUB");
  flags.add_string("replay-endpoint", &o.replay_endpoint, "where to bind the replay ROUTER");
  flags.add_string("backfill-endpoint", &o.backfill_endpoint,
                   "where to bind the ROUTER that takes jetstream-backfill's repository batches "
                   "(empty: none)");
  flags.add_string("metrics-listen-addr", &o.metrics_listen_addr,
                   "HTTP address for /metrics, /healthz and /readyz");
  flags.add_string("ws-url", &o.ws_url_label,
                   "upstream URL, used only as the socket_url label of v1 consumer metrics");
  flags.add_int64("workers", &o.workers, "decode worker actors (0 = one per core)");
  flags.add_int64("replay-readers", &o.replay_readers, "threads serving replay pages");
  flags.add_int64("max-batch-frames", &o.max_batch_frames, "frames per decode batch, at most");
  flags.add_int64("max-batches-in-flight", &o.max_batches_in_flight,
                  "batches received but not stored before reading pauses");
  flags.add_int64("frames-receive-hwm", &o.frames_receive_hwm,
                  "ZeroMQ high-water mark of the frames subscription (messages)");
  flags.add_int64("frames-receive-buffer", &o.frames_receive_buffer,
                  "kernel receive buffer of the frames subscription in bytes (0 = OS default)");
  flags.add_int64("events-send-hwm", &o.events_send_hwm,
                  "events PUB high-water mark per fanout, in messages (beyond it fanout repairs)");
  flags.add_duration("heartbeat-interval", &o.heartbeat_interval,
                     "how often a heartbeat goes to fanout");
  flags.add_duration("retention-interval", &o.retention_interval,
                     "how often old events are deleted");
  flags.add_bool("sync-writes", &o.sync_writes, "fsync every event log write (slower)");
  flags.add_int64("min-free-bytes", &o.min_free_bytes,
                  "free space the data directory keeps: below it decode stops storing (ingest "
                  "holds the frames), /readyz says disk full, and it resumes by itself");
  flags.add_duration("disk-check-interval", &o.disk_check_interval,
                     "how often the data directory's free space is looked at");
  flags.add_string("log-level", &o.log_level, "debug, info, warn or error");
  flags.add_string("compact-collections", &o.compact_collections,
                   "collections whose current records are kept in the compacted twin for "
                   "snapshot=true: exact NSIDs and prefix.* patterns, comma-separated (empty: "
                   "no twin)");
  flags.add_duration("tombstone-ttl", &o.tombstone_ttl,
                     "how long a delete is kept in the compacted twin (a snapshot cursor older "
                     "than that restarts the snapshot)");
  flags.add_int64("twin-build-step-events", &o.twin_build_step_events,
                  "log events read per step when newly compacted collections are built from the "
                  "log");
  flags.add_bool("check-state", &o.check_state,
                 "recompute the compacted twin from the log, compare it with the stored one, "
                 "print the differences and exit (0 equal, 1 not)");
  flags.add_string("verify", &o.verify,
                   "off (v1: nothing checked), signatures (each commit's signature against the "
                   "#atproto key of its DID's document) or full (also Sync 1.1: its ops proven "
                   "against the signed tree and prevData, its rev above the repository's last); "
                   "failures are dropped and counted");
  flags.add_bool("verify-strict", &o.verify_strict,
                 "--verify full: drop commits older than Sync 1.1 (no prevData) instead of "
                 "passing and counting them");
  flags.add_int64("verify-rev-cache-size", &o.verify_rev_cache_size,
                  "--verify full: repositories whose last rev is kept in memory (the others "
                  "are read from the event store)");
  flags.add_string("plc-url", &o.plc_url, "PLC directory that resolves did:plc (--verify)");
  flags.add_bool("did-web-insecure", &o.did_web_insecure,
                 "resolve did:web over plain http and allow a port (loopback tests only)");
  flags.add_bool("verify-fail-open", &o.verify_fail_open,
                 "pass commits whose DID cannot be resolved (counted) instead of dropping them");
  flags.add_duration("verify-resolve-timeout", &o.verify_resolve_timeout,
                     "how long one DID resolution may take before its commits count as "
                     "unresolvable");
  flags.add_int64("identity-cache-size", &o.identity_cache_size,
                  "resolved DIDs kept in memory (least recently used leave first)");
  flags.add_duration("identity-ttl", &o.identity_ttl,
                     "how long a resolved DID document is trusted before it is fetched again");
  flags.add_string("allow-hosts", &o.allow_hosts,
                   "comma-separated hosts the HTTP client may reach on private or loopback "
                   "addresses and over plain http (--plc-url's host always may)");
}

namespace {

std::optional<VerifyMode> parse_verify_mode(std::string_view text) {
  if (text == "off") return VerifyMode::off;
  if (text == "signatures") return VerifyMode::signatures;
  if (text == "full") return VerifyMode::full;
  return std::nullopt;
}

}  // namespace

struct DecodeService::Impl {
  DecodeOptions options;
  std::unique_ptr<EventStore> store;
  std::shared_ptr<const zstd::Dictionary> dictionary;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<DecodeProbe> probe;
  PipelineCounters counters;
  zmq::context_t context{1};
  // --verify: the identity cache the workers read, and the resolver that fills it. Declared
  // before the actor system so they outlive it; stop() stops the HTTP thread first.
  std::unique_ptr<identity::IdentityCache> identity_cache;
  std::unique_ptr<http::HttpClient> http_client;
  std::unique_ptr<identity::DidResolver> resolver;
  std::unique_ptr<caf::actor_system_config> actor_config;
  std::unique_ptr<caf::actor_system> actors;
  sequencer_actor sequencer;
  retention_actor retention_worker;
  disk_watch_actor disk_watcher;
  twin_build_actor twin_builder;
  std::vector<decode_worker_actor> workers;
  std::unique_ptr<FrameReceiver> receiver;
  std::unique_ptr<ReplayServer> replay;
  std::unique_ptr<BackfillReceiver> backfill;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::atomic<bool> stopping{false};
  std::string events_endpoint;
  bool stopped = false;
};

DecodeService::DecodeService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DecodeService::~DecodeService() { stop(); }

std::optional<std::string> validate_decode_options(const DecodeOptions& o) {
  constexpr std::int64_t kMaxSocketSetting = 1'000'000'000;  // ZeroMQ takes an int
  if (o.event_ttl.count() <= 0) return "--event-ttl must be positive";
  if (o.workers < 0) return "--workers must not be negative (0 = one per core)";
  if (o.replay_readers < 1) return "--replay-readers must be at least 1";
  if (o.max_batch_frames < 1) return "--max-batch-frames must be at least 1";
  if (o.max_batches_in_flight < 1) return "--max-batches-in-flight must be at least 1";
  if (o.frames_receive_hwm < 0 || o.frames_receive_hwm > kMaxSocketSetting) {
    return "--frames-receive-hwm must be between 0 (no limit) and 1000000000";
  }
  if (o.frames_receive_buffer < 0 || o.frames_receive_buffer > kMaxSocketSetting) {
    return "--frames-receive-buffer must be between 0 (OS default) and 1000000000";
  }
  if (o.events_send_hwm < 0 || o.events_send_hwm > kMaxSocketSetting) {
    return "--events-send-hwm must be between 0 (no limit) and 1000000000";
  }
  if (o.heartbeat_interval.count() <= 0) return "--heartbeat-interval must be positive";
  if (o.retention_interval.count() <= 0) return "--retention-interval must be positive";
  if (o.min_free_bytes < 0) return "--min-free-bytes must not be negative (0 = no reserve)";
  if (o.disk_check_interval < std::chrono::milliseconds(10)) {
    return "--disk-check-interval must be at least 10ms";
  }
  std::string set_error;
  if (!CollectionSet::parse(o.compact_collections, set_error)) {
    return "--compact-collections: " + set_error;
  }
  if (o.tombstone_ttl.count() <= 0) return "--tombstone-ttl must be positive";
  if (o.twin_build_step_events < 1) return "--twin-build-step-events must be at least 1";
  if (!parse_verify_mode(o.verify)) return "--verify must be off, signatures or full";
  if (o.verify_strict && o.verify != "full") return "--verify-strict needs --verify full";
  if (o.verify_rev_cache_size < 1) return "--verify-rev-cache-size must be at least 1";
  std::string url_error;
  if (!websocket::parse_http_url(o.plc_url, &url_error)) return "--plc-url: " + url_error;
  if (o.verify_resolve_timeout < std::chrono::milliseconds(100)) {
    return "--verify-resolve-timeout must be at least 100ms";
  }
  if (o.identity_cache_size < 1) return "--identity-cache-size must be at least 1";
  if (o.identity_ttl.count() <= 0) return "--identity-ttl must be positive";
  return std::nullopt;
}

std::unique_ptr<DecodeService> DecodeService::start(const DecodeOptions& options,
                                                    std::string& error) {
  if (auto invalid = validate_decode_options(options)) {
    error = std::move(*invalid);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  Impl& s = *impl;

  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  EventStore::Options store_options;
  store_options.path = (std::filesystem::path(options.data_dir) / "events").string();
  store_options.sync_writes = options.sync_writes;
  {
    std::string ignored;  // validated above
    store_options.compact =
        CollectionSet::parse(options.compact_collections, ignored).value_or(CollectionSet{});
  }
  // RocksDB aborts the process when the writes of a read-write open fail on a full disk, and a
  // pod that crash-loops cannot serve the replay it still holds: below the reserve, the log
  // opens read-only, and the disk watch opens it for writing once space returns.
  const auto free_at_start = free_bytes(options.data_dir);
  if (free_at_start && *free_at_start < static_cast<std::uint64_t>(options.min_free_bytes)) {
    store_options.read_only = true;
    s.counters.disk_has_room.store(false);
    s.counters.disk_free_bytes.store(*free_at_start);
    log::warn(disk_full_text(*free_at_start, options.min_free_bytes) +
                  ": the event log opens read-only (replay is served; storing resumes by itself "
                  "when space returns)",
              {{"dir", options.data_dir}});
  }
  s.store = EventStore::open(store_options, error);
  if (!s.store) return nullptr;
  if (!s.store->twin_open_report().empty()) {
    log::info("compacted twin: " + s.store->twin_open_report());
  }
  s.counters.durable_cursor.store(s.store->upstream_cursor());
  s.counters.newest_time_us.store(s.store->last_time_us());

  if (options.zstd_dictionary_path.empty()) {
    log::warn(
        "no zstd dictionary configured: events are stored and published without "
        "compressed bodies, and fanout cannot serve compress=true");
  } else {
    s.dictionary = zstd::Dictionary::load(options.zstd_dictionary_path, error);
    if (!s.dictionary) return nullptr;
    if (s.dictionary->id() != zstd::kV1DictionaryId) {
      log::warn("zstd dictionary is not the Jetstream v1 dictionary; v1 clients cannot read it",
                {{"dictionary_id", s.dictionary->id()}});
    }
  }

  s.registry = std::make_shared<prometheus::Registry>();
  metrics::register_process_metrics(*s.registry);
  metrics::register_build_info(*s.registry, "decode");
  s.probe = std::make_unique<DecodeProbe>(s.registry, options.ws_url_label);
  s.probe->set_log_bounds(s.store->oldest_time_us(), s.store->newest_time_us());
  s.probe->set_min_free(static_cast<std::uint64_t>(options.min_free_bytes));
  s.probe->set_log_writable(s.store->writable());

  const auto listen = config::parse_listen_address(options.metrics_listen_addr, &error);
  if (!listen) return nullptr;
  try {
    s.metrics_server = std::make_unique<metrics::MetricsServer>(*listen, s.registry);
  } catch (const std::exception& e) {
    error = std::string("metrics server: ") + e.what();
    return nullptr;
  }

  const auto cores = std::max(1u, std::thread::hardware_concurrency());
  s.actor_config = runtime::actor_system_config(cores);
  s.actors = std::make_unique<caf::actor_system>(*s.actor_config);

  const VerifyMode verify_mode = parse_verify_mode(options.verify).value_or(VerifyMode::off);
  std::shared_ptr<const WorkerVerification> worker_verification;
  SequencerActorOptions sequencer_options{s.store.get(),
                                          s.dictionary,
                                          s.probe.get(),
                                          &s.counters,
                                          &s.context,
                                          options.events_endpoint,
                                          options.heartbeat_interval,
                                          static_cast<int>(options.events_send_hwm),
                                          &s.stopping,
                                          std::nullopt,
                                          {}};
  if (verify_mode != VerifyMode::off) {
    s.identity_cache = std::make_unique<identity::IdentityCache>(
        static_cast<std::size_t>(options.identity_cache_size));
    http::HttpClient::Options http_options;
    const auto plc = websocket::parse_http_url(options.plc_url);
    if (plc) http_options.policy.allow_host(plc->host);  // validated above
    for (const auto& host : config::split_list(options.allow_hosts))
      http_options.policy.allow_host(host);
    s.http_client = std::make_unique<http::HttpClient>(std::move(http_options));
    identity::DidResolver::Options resolver_options;
    resolver_options.plc_url = options.plc_url;
    resolver_options.did_web_insecure = options.did_web_insecure;
    resolver_options.document_ttl =
        std::chrono::duration_cast<std::chrono::seconds>(options.identity_ttl);
    const auto timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(options.verify_resolve_timeout);
    resolver_options.limits.connect_timeout = timeout;
    resolver_options.limits.header_timeout = timeout;
    resolver_options.limits.body_timeout = timeout;
    s.resolver = std::make_unique<identity::DidResolver>(resolver_options, *s.http_client,
                                                         *s.identity_cache, clock::wall_clock_us);
    CommitVerifier::Options verifier_options;
    verifier_options.fail_open = options.verify_fail_open;
    verifier_options.full = verify_mode == VerifyMode::full;
    verifier_options.strict = options.verify_strict;
    worker_verification = std::make_shared<WorkerVerification>(
        WorkerVerification{s.identity_cache.get(), verifier_options, clock::wall_clock_us});
    sequencer_options.verification = SequencerVerification{
        s.identity_cache.get(), s.resolver.get(),
        s.http_client.get(),    verifier_options,
        verifier_options.full,  static_cast<std::size_t>(options.verify_rev_cache_size)};
    log::info("verification on", {{"verify", options.verify},
                                  {"plc_url", options.plc_url},
                                  {"fail_open", options.verify_fail_open},
                                  {"strict", options.verify_strict}});
  }

  if (!options.backfill_endpoint.empty()) {
    try {
      s.backfill = std::make_unique<BackfillReceiver>(s.context, options.backfill_endpoint,
                                                      *s.store, *s.probe, s.counters);
    } catch (const std::exception& e) {
      error = std::string("backfill endpoint ") + options.backfill_endpoint + ": " + e.what();
      return nullptr;
    }
    auto* backfill = s.backfill.get();
    sequencer_options.backfill_acks = [backfill](const BackfillBatch& batch,
                                                 const proto::BatchAck& ack) {
      backfill->acknowledge(batch, ack);
    };
  }
  try {
    s.sequencer = spawn_sequencer(*s.actors, sequencer_options, s.events_endpoint);
  } catch (const std::exception& e) {
    error = std::string("events endpoint ") + options.events_endpoint + ": " + e.what();
    return nullptr;
  }
  const auto worker_count =
      options.workers > 0 ? static_cast<std::size_t>(options.workers) : std::size_t{cores};
  for (std::size_t i = 0; i < worker_count; ++i) {
    s.workers.push_back(spawn_decode_worker(*s.actors, s.sequencer, worker_verification));
  }
  s.retention_worker = spawn_retention(*s.actors, *s.store, *s.probe, options.event_ttl,
                                       options.tombstone_ttl, options.retention_interval);
  s.probe->set_twin(s.store->twin_counts(), s.store->twin_disk_bytes());
  s.probe->set_twin_build(s.store->twin_build(), s.store->oldest_time_us());
  if (s.store->twin_build().pending) {
    s.twin_builder = spawn_twin_build(*s.actors, *s.store, *s.probe,
                                      static_cast<std::size_t>(options.twin_build_step_events));
  }
  s.disk_watcher = spawn_disk_watch(*s.actors, *s.store, *s.probe, s.counters, options.data_dir,
                                    options.min_free_bytes, options.disk_check_interval);
  try {
    s.replay =
        std::make_unique<ReplayServer>(s.context, options.replay_endpoint, *s.store, *s.probe,
                                       static_cast<std::size_t>(options.replay_readers));
  } catch (const std::exception& e) {
    error = std::string("replay endpoint ") + options.replay_endpoint + ": " + e.what();
    return nullptr;
  }
  s.replay->start();
  if (s.backfill) s.backfill->start(s.sequencer);

  FrameReceiverOptions receiver_options;
  receiver_options.frames_endpoint = options.frames_endpoint;
  receiver_options.control_endpoint = options.control_endpoint;
  receiver_options.max_batch_frames = static_cast<std::size_t>(options.max_batch_frames);
  receiver_options.max_batches_in_flight = options.max_batches_in_flight;
  receiver_options.receive_high_water_mark = static_cast<int>(options.frames_receive_hwm);
  receiver_options.receive_buffer_bytes = static_cast<int>(options.frames_receive_buffer);
  s.receiver =
      std::make_unique<FrameReceiver>(s.context, receiver_options, *s.probe, s.counters, s.workers);
  s.receiver->start();

  auto* receiver = s.receiver.get();
  auto* counters = &s.counters;
  const std::int64_t min_free = options.min_free_bytes;
  s.metrics_server->set_health(
      [] { return true; },
      [receiver, counters, min_free] {
        if (!counters->disk_has_room.load()) {
          return metrics::HealthReport::unhealthy(
              disk_full_text(counters->disk_free_bytes.load(), min_free));
        }
        return receiver->streaming()
                   ? metrics::HealthReport::healthy()
                   : metrics::HealthReport::unhealthy("not following an ingest stream yet");
      });
  log::info("decode started", {{"data_dir", options.data_dir},
                               {"events", s.events_endpoint},
                               {"replay", s.replay->endpoint()},
                               {"backfill", s.backfill ? s.backfill->endpoint() : ""},
                               {"metrics_port", s.metrics_server->port()},
                               {"upstream_cursor", s.store->upstream_cursor()},
                               {"last_time_us", s.store->last_time_us()}});
  return std::unique_ptr<DecodeService>(new DecodeService(std::move(impl)));
}

void DecodeService::stop() {
  if (!impl_ || impl_->stopped) return;
  Impl& s = *impl_;
  s.stopped = true;
  if (s.receiver) s.receiver->stop();
  // Let every dispatched batch be stored: its frames are acknowledged to nobody yet, but storing
  // them now saves ingest from sending them again after the restart.
  // On a full disk nothing more is stored: do not wait for it.
  const bool disk_full = !s.counters.disk_has_room.load();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(disk_full ? 0 : 10);
  while (s.counters.batches_in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.stopping.store(true);
  if (s.replay) s.replay->stop();
  if (s.backfill) s.backfill->stop();
  if (s.actors) {
    for (auto& worker : s.workers) caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(s.sequencer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(s.retention_worker, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(s.disk_watcher, caf::exit_reason::user_shutdown);
    if (s.twin_builder) caf::anon_send_exit(s.twin_builder, caf::exit_reason::user_shutdown);
    s.workers.clear();
    s.sequencer = nullptr;
    s.retention_worker = nullptr;
    s.disk_watcher = nullptr;
    s.twin_builder = nullptr;
    s.actors->await_all_actors_done();
  }
  // Resolutions still in flight answer actors that are gone: stop their thread before the actor
  // system goes.
  s.resolver.reset();
  s.http_client.reset();
  if (s.metrics_server) s.metrics_server->stop();
  if (s.store && disk_full && s.store->writable()) {
    log::warn(
        "disk full: the event log is left for RocksDB to recover at the next start, as after "
        "a crash (closing it would write to the full disk)");
    s.store->abandon_at_close();
  }
  log::info("decode stopped", {{"upstream_cursor", s.store ? s.store->upstream_cursor() : -1}});
}

std::string DecodeService::events_endpoint() const { return impl_->events_endpoint; }
std::string DecodeService::replay_endpoint() const { return impl_->replay->endpoint(); }
std::string DecodeService::backfill_endpoint() const {
  return impl_->backfill ? impl_->backfill->endpoint() : std::string();
}
std::uint16_t DecodeService::metrics_port() const { return impl_->metrics_server->port(); }

int check_state(const DecodeOptions& options, std::ostream& out) {
  if (auto invalid = validate_decode_options(options)) {
    out << "jetstream-decode --check-state: " << *invalid << "\n";
    return 1;
  }
  EventStore::Options store_options;
  store_options.path = (std::filesystem::path(options.data_dir) / "events").string();
  store_options.read_only = true;
  std::string error;
  store_options.compact =
      CollectionSet::parse(options.compact_collections, error).value_or(CollectionSet{});
  const auto store = EventStore::open(store_options, error);
  if (!store) {
    out << "jetstream-decode --check-state: " << error << "\n";
    return 1;
  }
  const EventStore::TwinCheck check = store->check_twin();
  out << "state check of " << store_options.path << " (compacted: '"
      << store_options.compact.canonical() << "'): " << check.log_events_folded
      << " log events folded, " << check.entries_checked << " twin entries checked\n";
  for (const auto& [group, counts] : store->twin_counts()) {
    out << "  " << group << ": " << counts.records << " records, " << counts.tombstones
        << " tombstones\n";
  }
  if (store->twin_build().pending) {
    out << "  building from the log: " << store->twin_build().collections << "\n";
  }
  for (const auto& problem : check.problems) out << "  problem: " << problem << "\n";
  if (check.problem_count > check.problems.size()) {
    out << "  ... and " << check.problem_count - check.problems.size() << " more\n";
  }
  out << (check.ok() ? "OK" : "MISMATCH: " + std::to_string(check.problem_count) + " problems")
      << "\n";
  return check.ok() ? 0 : 1;
}

int run_decode(int argc, char** argv) {
  DecodeOptions options;
  config::FlagSet flags("jetstream-decode",
                        "Decodes firehose frames from ingest into v1 events, stores them in the "
                        "event log and publishes them to fanout; serves replay.");
  register_decode_flags(flags, options);
  // --check-state is a one-shot command, not the service: parsed here first (a bad flag or
  // --help is left to run_service, which reports it).
  if (flags.parse(argc, argv).ok() && options.check_state) return check_state(options, std::cout);
  runtime::keep_freed_memory(std::size_t{256} << 20);
  return runtime::run_service<DecodeService>(argc, argv, flags, "decode", options);
}

}  // namespace jetstream::decode
