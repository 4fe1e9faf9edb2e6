#include "services/backfill/backfill_service.hpp"

#include <prometheus/registry.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>

#include "common/clock/clock.hpp"
#include "common/config/flags.hpp"
#include "common/http/http_client.hpp"
#include "common/identity/did_resolver.hpp"
#include "common/identity/identity_cache.hpp"
#include "common/log/log.hpp"
#include "common/metrics/metrics_server.hpp"
#include "common/metrics/process_metrics.hpp"
#include "common/runtime/actor_scheduler.hpp"
#include "common/runtime/service_main.hpp"
#include "common/websocket/url.hpp"
#include "services/backfill/backfill_probe.hpp"
#include "services/backfill/backfill_store.hpp"
#include "services/backfill/decode_link.hpp"
#include "services/backfill/repo_fetch.hpp"

namespace jetstream::backfill {
using OutcomePtr = std::shared_ptr<const FetchOutcome>;
using HttpResultPtr = std::shared_ptr<const http::FetchResult>;
}  // namespace jetstream::backfill

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::backfill::OutcomePtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(jetstream::backfill::HttpResultPtr)

namespace jetstream::backfill {

void register_backfill_flags(config::FlagSet& flags, BackfillOptions& o) {
  flags.add_string("pds", &o.pds,
                   "PDS URLs whose repositories to backfill (com.atproto.sync.listRepos), "
                   "comma-separated");
  flags.add_string("relay", &o.relay,
                   "relay URLs, comma-separated: when every compacted pattern is an exact NSID, "
                   "the repositories holding one (com.atproto.sync.listReposByCollection); "
                   "otherwise, or when the relay does not offer it, every host it lists "
                   "(com.atproto.sync.listHosts) like a --pds");
  flags.add_string("dids-file", &o.dids_file,
                   "a file of DIDs to backfill, one per line ('#' starts a comment)");
  flags.add_string("plc-url", &o.plc_url, "the PLC directory that resolves did:plc");
  flags.add_bool("did-web-insecure", &o.did_web_insecure,
                 "resolve did:web over plain http with a port (loopback tests only)");
  flags.add_string("allow-hosts", &o.allow_hosts,
                   "hosts reachable on any address and over http beside --pds, --relay and "
                   "--plc-url, comma-separated (everything else must be public and https)");
  flags.add_string("data-dir", &o.data_dir,
                   "backfill's own store: each repository's state and each source's cursor");
  flags.add_string("decode-backfill-endpoint", &o.decode_backfill_endpoint,
                   "decode's backfill ROUTER (its --backfill-endpoint)");
  flags.add_string("decode-events-endpoint", &o.decode_events_endpoint,
                   "decode's events PUB (its --events-endpoint), for the compacted collections");
  flags.add_listen_address("metrics-listen-addr", &o.metrics_listen_addr,
                           "address for /metrics, /healthz and /readyz");
  flags.add_int64("max-fetches", &o.max_fetches, "getRepo fetches at once, in total");
  flags.add_int64("max-fetches-per-host", &o.max_fetches_per_host,
                  "getRepo fetches at once to one host");
  flags.add_double("host-request-rate", &o.host_request_rate,
                   "getRepo requests per second to one host, at most");
  flags.add_int64("max-repo-bytes", &o.max_repo_bytes,
                  "a repository larger than this is not fetched (counted as too_large)");
  flags.add_int64("max-attempts", &o.max_attempts,
                  "fetch attempts of one repository before it is given up (429 and 5xx "
                  "answers pause the host and are not counted)");
  flags.add_int64("batch-records", &o.batch_records, "records per batch to decode");
  flags.add_int64("max-unacked-batches", &o.max_unacked_batches,
                  "batches sent to decode and not yet acknowledged, at most");
  flags.add_duration("ack-timeout", &o.ack_timeout,
                     "a batch decode has not acknowledged in this time is sent again");
  flags.add_duration("fetch-timeout", &o.fetch_timeout,
                     "connect, response head, and the longest wait for the next body bytes");
  flags.add_duration("progress-interval", &o.progress_interval, "how often progress is logged");
  flags.add_int64("fetch-threads", &o.fetch_threads,
                  "threads reading repositories as they stream (0: one per core)");
  flags.add_bool("exit-when-done", &o.exit_when_done,
                 "exit once every source is listed and every repository is done or failed "
                 "(a one-shot run; the default keeps running)");
  flags.add_string("verify", &o.verify,
                   "off, signatures or full: each fetched repository's commit must be signed by "
                   "its DID's #atproto key (full = signatures here: the whole tree is hash-checked "
                   "from the commit in every mode)");
  flags.add_string("log-level", &o.log_level, "debug, info, warn or error");
}

std::optional<std::string> validate_backfill_options(const BackfillOptions& o) {
  if (o.pds.empty() && o.relay.empty() && o.dids_file.empty()) {
    return "nothing to backfill: give --pds, --relay or --dids-file";
  }
  for (const auto& [name, list] : {std::pair{"--pds", &o.pds}, std::pair{"--relay", &o.relay}}) {
    for (const auto& url : config::split_list(*list)) {
      std::string why;
      if (!websocket::parse_http_url(url, &why)) return std::string(name) + ": " + url + ": " + why;
    }
  }
  if (!websocket::parse_http_url(o.plc_url)) return "--plc-url is not an http(s) URL";
  if (o.max_fetches < 1) return "--max-fetches must be at least 1";
  if (o.max_fetches_per_host < 1) return "--max-fetches-per-host must be at least 1";
  if (!(o.host_request_rate > 0)) return "--host-request-rate must be above 0";
  if (o.max_repo_bytes < 1024) return "--max-repo-bytes must be at least 1024";
  if (o.max_attempts < 1) return "--max-attempts must be at least 1";
  if (o.batch_records < 1 || o.batch_records > proto::kMaxRecordsPerBatch) {
    return "--batch-records must be 1.." + std::to_string(proto::kMaxRecordsPerBatch);
  }
  if (o.max_unacked_batches < 1) return "--max-unacked-batches must be at least 1";
  if (o.ack_timeout.count() <= 0) return "--ack-timeout must be positive";
  if (o.fetch_timeout.count() <= 0) return "--fetch-timeout must be positive";
  if (o.progress_interval.count() <= 0) return "--progress-interval must be positive";
  if (o.fetch_threads < 0) return "--fetch-threads must not be negative";
  if (o.verify != "off" && o.verify != "signatures" && o.verify != "full") {
    return "--verify must be off, signatures or full";
  }
  return std::nullopt;
}

namespace {

using enqueue_atom = caf::atom_constant<caf::atom("enqueue")>;
using fetched_atom = caf::atom_constant<caf::atom("fetched")>;
using pump_atom = caf::atom_constant<caf::atom("pump")>;
using listed_atom = caf::atom_constant<caf::atom("listed")>;
using resolved_atom = caf::atom_constant<caf::atom("resolved")>;
using result_atom = caf::atom_constant<caf::atom("result")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

using Clock = std::chrono::steady_clock;

/// `scheme://host[:port]` of a URL: what one host actor serves.
std::string origin_of(const std::string& url) {
  const auto parsed = websocket::parse_http_url(url);
  if (!parsed) return url;
  return std::string(parsed->tls ? "https://" : "http://") + parsed->host_header();
}

bool plausible_did(std::string_view did) {
  return did.size() > 8 && did.size() <= 2048 && did.starts_with("did:") &&
         did.find_first_of(" \t\r\n/?#") == std::string_view::npos;
}

/// What every actor reads; owned by the service, outlives the actors.
struct Shared {
  BackfillOptions options;
  BackfillStore* store = nullptr;
  DecodeLink* link = nullptr;
  BackfillProbe* probe = nullptr;
  identity::DidResolver* resolver = nullptr;
  http::HttpClient* list_client = nullptr;
  std::vector<std::unique_ptr<http::HttpClient>> fetch_clients;
  std::atomic<std::size_t> next_client{0};
  std::atomic<std::int64_t> fetches_running{0};
  std::atomic<std::uint64_t> next_fetch_id{0};
  std::atomic<std::uint64_t> next_batch_id{0};
  std::string spill_directory;
  std::mutex fetches_mutex;
  std::unordered_map<std::uint64_t, std::shared_ptr<RepoFetch>> fetches;  ///< by fetch id

  bool take_slot() {
    std::int64_t running = fetches_running.load();
    while (running < options.max_fetches) {
      if (fetches_running.compare_exchange_weak(running, running + 1)) return true;
    }
    return false;
  }
  void give_slot() { fetches_running.fetch_sub(1); }
};

// ---- One actor per host: its queue, its concurrency, its rate, its pauses.

struct HostJob {
  std::string did;
  std::string pds;
  std::string signing_key;  ///< --verify: the DID's #atproto key (did:key), else empty
};

struct HostState {
  std::string host;
  std::deque<HostJob> queue;
  std::unordered_map<std::string, HostJob> running;  ///< by DID: the fetches in flight
  std::int64_t in_flight = 0;
  Clock::time_point paused_until{};
  int busy_streak = 0;
  double tokens = 1.0;
  Clock::time_point refilled = Clock::now();
  bool pump_scheduled = false;
};

void start_fetch(caf::stateful_actor<HostState>* self, Shared& shared, const HostJob& job) {
  const std::uint64_t fetch_id = ++shared.next_fetch_id;
  RepoReader::Options reader;
  reader.did = job.did;
  std::string error;
  const auto compacted = shared.link->compacted().value_or("");
  reader.collections =
      syntax::CollectionSet::parse(compacted, error).value_or(syntax::CollectionSet{});
  reader.batch_records = static_cast<std::size_t>(shared.options.batch_records);
  reader.spill_directory = shared.spill_directory;
  Shared* shared_ptr = &shared;
  reader.next_batch_id = [shared_ptr] { return ++shared_ptr->next_batch_id; };
  if (shared.options.verify != "off") {
    // Resolved with the PDS (a document without a usable key never gets here).
    auto key = crypto::PublicKey::from_did_key(job.signing_key);
    if (auto* parsed = std::get_if<crypto::PublicKey>(&key))
      reader.signing_key = std::move(*parsed);
  }
  const caf::actor handle = caf::actor_cast<caf::actor>(self);
  auto fetch = std::make_shared<RepoFetch>(
      fetch_id, std::move(reader), *shared.link,
      [shared_ptr, handle, fetch_id, did = job.did](FetchOutcome outcome) {
        {
          std::lock_guard lock(shared_ptr->fetches_mutex);
          shared_ptr->fetches.erase(fetch_id);
        }
        caf::anon_send(handle, fetched_atom::value, did,
                       std::make_shared<const FetchOutcome>(std::move(outcome)));
      });
  {
    std::lock_guard lock(shared.fetches_mutex);
    shared.fetches.emplace(fetch_id, fetch);
  }
  http::FetchLimits limits;
  limits.max_body_bytes = static_cast<std::size_t>(shared.options.max_repo_bytes);
  const auto timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(shared.options.fetch_timeout);
  limits.connect_timeout = timeout;
  limits.header_timeout = timeout;
  limits.body_timeout = timeout;
  auto& client =
      *shared.fetch_clients[shared.next_client.fetch_add(1) % shared.fetch_clients.size()];
  fetch->start(client, get_repo_url(job.pds, job.did), limits);
}

void pump_host(caf::stateful_actor<HostState>* self, Shared& shared) {
  auto& state = self->state;
  const auto now = Clock::now();
  const auto schedule = [&](Clock::duration after) {
    if (state.pump_scheduled) return;
    state.pump_scheduled = true;
    self->delayed_send(self, std::chrono::duration_cast<std::chrono::microseconds>(after),
                       pump_atom::value);
  };
  if (now < state.paused_until) return schedule(state.paused_until - now);
  const double rate = shared.options.host_request_rate;
  state.tokens =
      std::min(std::max(1.0, rate),
               state.tokens + rate * std::chrono::duration<double>(now - state.refilled).count());
  state.refilled = now;
  while (!state.queue.empty() && state.in_flight < shared.options.max_fetches_per_host &&
         state.tokens >= 1.0 && shared.take_slot()) {
    state.tokens -= 1.0;
    ++state.in_flight;
    const HostJob job = std::move(state.queue.front());
    state.queue.pop_front();
    state.running[job.did] = job;
    start_fetch(self, shared, job);
  }
  if (!state.queue.empty()) {
    // Waiting for a token, a slot of this host or one of all hosts: look again shortly.
    const auto for_token = std::chrono::duration<double>(std::max(0.0, 1.0 - state.tokens) / rate);
    schedule(std::max<Clock::duration>(std::chrono::milliseconds(50),
                                       std::chrono::duration_cast<Clock::duration>(for_token)));
  }
}

caf::behavior host_actor(caf::stateful_actor<HostState>* self, Shared* shared,
                         caf::actor coordinator, std::string host) {
  self->state.host = std::move(host);
  return {
      [self, shared](enqueue_atom, std::string& did, std::string& pds, std::string& key) {
        self->state.queue.push_back({std::move(did), std::move(pds), std::move(key)});
        pump_host(self, *shared);
      },
      [self, shared, coordinator](fetched_atom, std::string& did, OutcomePtr& outcome) {
        auto& state = self->state;
        --state.in_flight;
        shared->give_slot();
        HostJob job = std::move(state.running[did]);
        state.running.erase(did);
        if (outcome->kind == FetchOutcome::Kind::host_busy) {
          // The host said "too many" or failed: it pauses for its Retry-After (or RateLimit-Reset)
          // when it gave one, else for a backoff doubling per busy answer in a row, 5 s to 10 min.
          ++state.busy_streak;
          const Clock::duration backoff = std::chrono::seconds(
              std::min<std::int64_t>(600, std::int64_t{5} << std::min(state.busy_streak - 1, 7)));
          const Clock::duration pause =
              outcome->pause.count() > 0
                  ? std::max<Clock::duration>(outcome->pause, std::chrono::seconds(1))
                  : backoff;
          state.paused_until = Clock::now() + pause;
          log::warn("host answered busy; pausing it",
                    {{"host", state.host},
                     {"reason", outcome->reason},
                     {"pause_s", std::chrono::duration_cast<std::chrono::seconds>(pause).count()}});
          // The repository waits here, first in line, for the host to take requests again.
          shared->probe->record_fetch(to_string(outcome->kind), outcome->reason);
          state.queue.push_front(std::move(job));
          pump_host(self, *shared);
          return;
        }
        state.busy_streak = 0;
        self->send(coordinator, result_atom::value, std::move(did), std::move(outcome));
        pump_host(self, *shared);
      },
      [self, shared](pump_atom) {
        self->state.pump_scheduled = false;
        pump_host(self, *shared);
      },
      [self](tick_atom) -> std::vector<std::int64_t> {
        const auto& state = self->state;
        const bool paused = Clock::now() < state.paused_until;
        return {state.in_flight, paused ? 1 : 0, static_cast<std::int64_t>(state.queue.size())};
      },
  };
}

// ---- The coordinator: sources, resolution, retries, the store, progress.

/// Where repositories are listed from.
enum class SourceKind : std::uint8_t {
  pds,               ///< com.atproto.sync.listRepos of a PDS
  relay_pending,     ///< a relay, until decode's compacted set says how to list it
  relay_planned,     ///< a relay replaced by its relay_collection sources (lists nothing)
  relay_hosts,       ///< com.atproto.sync.listHosts: each host becomes a pds source
  relay_collection,  ///< com.atproto.sync.listReposByCollection for one compacted NSID
};

struct Source {
  std::string url;
  SourceKind kind = SourceKind::pds;
  std::string collection;  ///< relay_collection: the NSID
  BackfillStore::Listing listing;
  bool in_flight = false;
  Clock::time_point next_at{};
  /// The store's key for this source's listing cursor.
  std::string listing_key() const {
    return kind == SourceKind::relay_collection ? url + "#collection=" + collection : url;
  }
};

struct CoordinatorState {
  std::vector<Source> sources;
  std::deque<std::string> to_resolve;
  std::unordered_set<std::string> active;  ///< DIDs somewhere between queue and done
  std::unordered_map<std::string, std::uint32_t> attempts;
  std::multimap<Clock::time_point, std::string> retries;
  /// DIDs decode asked to fetch again while a fetch of theirs was under way: again once it ends.
  std::unordered_set<std::string> refetch;
  std::map<std::string, caf::actor> hosts;
  std::map<std::string, std::vector<std::int64_t>> host_figures;
  std::uint64_t resolving = 0;
  std::uint64_t in_hosts = 0;
  std::uint64_t known = 0;
  std::uint64_t done = 0;
  std::uint64_t failed = 0;
  std::uint64_t bytes = 0;
  Clock::time_point last_progress = Clock::now();
  std::uint64_t progress_records = 0;
  std::uint64_t progress_finished = 0;
  bool waiting_logged = false;
  bool complete = false;
  std::function<void()> on_complete;
};

using Coordinator = caf::stateful_actor<CoordinatorState>;

void store_rows(Shared& shared, const std::vector<std::pair<std::string, RepoRow>>& rows,
                const std::optional<std::pair<std::string, std::string>>& cursor = std::nullopt) {
  std::string error;
  if (!shared.store->put(rows, cursor, error)) {
    log::error("backfill store write failed (the repositories are fetched again next run)",
               {{"error", error}});
  }
}

/// Queues DIDs the store does not hold yet; returns how many were new.
std::size_t admit(Coordinator* self, Shared& shared, const std::vector<std::string>& dids,
                  const std::optional<std::pair<std::string, std::string>>& cursor) {
  auto& state = self->state;
  std::vector<std::pair<std::string, RepoRow>> rows;
  for (const auto& did : dids) {
    if (state.active.count(did) != 0 || shared.store->repo(did)) continue;
    rows.emplace_back(did, RepoRow{});
  }
  store_rows(shared, rows, cursor);
  for (auto& [did, row] : rows) {
    state.active.insert(did);
    state.to_resolve.push_back(did);
  }
  state.known += rows.size();
  shared.probe->record_listed(dids.size());
  return rows.size();
}

void request_listing(Coordinator* self, Shared& shared, std::size_t index) {
  Source& source = self->state.sources[index];
  source.in_flight = true;
  std::string url = source.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  switch (source.kind) {
    case SourceKind::relay_hosts: url += "/xrpc/com.atproto.sync.listHosts?limit=1000"; break;
    case SourceKind::relay_collection:
      // An NSID needs no escaping in a query (letters, digits, '.', '-').
      url +=
          "/xrpc/com.atproto.sync.listReposByCollection?limit=1000&collection=" + source.collection;
      break;
    default: url += "/xrpc/com.atproto.sync.listRepos?limit=1000"; break;
  }
  if (!source.listing.cursor.empty()) url += "&cursor=" + source.listing.cursor;
  http::FetchLimits limits;
  limits.max_body_bytes = 1 << 20;  // a page of listRepos
  const caf::actor handle = caf::actor_cast<caf::actor>(self);
  shared.list_client->get(url, limits, [handle, index](http::FetchResult result) {
    caf::anon_send(handle, listed_atom::value, index,
                   std::make_shared<const http::FetchResult>(std::move(result)));
  });
}

void on_listed(Coordinator* self, Shared& shared, std::size_t index,
               const http::FetchResult& result) {
  auto& state = self->state;
  Source& source = state.sources[index];
  source.in_flight = false;
  if (source.kind == SourceKind::relay_collection && !result.error &&
      (result.status == 404 || result.status == 501 ||
       (result.status == 400 && result.body.find("MethodNotImplemented") != std::string::npos))) {
    // The relay does not offer listReposByCollection: list its hosts instead, once per relay.
    const std::string relay = source.url;
    const auto status = result.status;
    bool hosts_listed = false;
    for (Source& other : state.sources) {
      if (other.url != relay) continue;
      if (other.kind == SourceKind::relay_collection) other.listing.complete = true;
      hosts_listed = hosts_listed || other.kind == SourceKind::relay_hosts;
    }
    if (!hosts_listed) {
      log::info("the relay does not list repositories by collection; listing its hosts",
                {{"relay", relay}, {"status", status}});
      Source hosts;
      hosts.url = relay;
      hosts.kind = SourceKind::relay_hosts;
      hosts.listing = shared.store->listing(relay);
      state.sources.push_back(std::move(hosts));
    }
    return;
  }
  rapidjson::Document page;
  if (!result.error && result.status == 200) page.Parse(result.body.data(), result.body.size());
  if (result.error || result.status != 200 || page.HasParseError() || !page.IsObject()) {
    source.next_at = Clock::now() + std::chrono::seconds(10);
    log::warn_every(std::chrono::seconds(30), "backfill_listing_failed",
                    "listing a source failed; trying again in 10s",
                    {{"source", source.url},
                     {"status", result.status},
                     {"error", result.error ? std::string(http::to_string(*result.error))
                                            : std::string("bad_page")}});
    return;
  }
  std::string cursor;
  if (const auto c = page.FindMember("cursor"); c != page.MemberEnd() && c->value.IsString()) {
    cursor.assign(c->value.GetString(), c->value.GetStringLength());
  }
  const bool hosts = source.kind == SourceKind::relay_hosts;
  const char* list_name = hosts ? "hosts" : "repos";
  const auto items = page.FindMember(list_name);
  std::size_t count = 0;
  std::vector<std::string> dids;
  if (items != page.MemberEnd() && items->value.IsArray()) {
    for (const auto& item : items->value.GetArray()) {
      if (!item.IsObject()) continue;
      ++count;
      if (hosts) {
        const auto host = item.FindMember("hostname");
        const auto status = item.FindMember("status");
        if (host == item.MemberEnd() || !host->value.IsString()) continue;
        if (status != item.MemberEnd() && status->value.IsString() &&
            std::string_view(status->value.GetString()) != "active") {
          continue;
        }
        const std::string url = "https://" + std::string(host->value.GetString());
        if (!websocket::parse_http_url(url)) continue;
        bool known = false;
        for (const auto& other : state.sources) known = known || other.url == url;
        if (!known) {
          Source added;
          added.url = url;
          added.listing = shared.store->listing(url);
          state.sources.push_back(std::move(added));
        }
      } else {
        const auto did = item.FindMember("did");
        const auto active = item.FindMember("active");
        if (did == item.MemberEnd() || !did->value.IsString()) continue;
        if (active != item.MemberEnd() && active->value.IsBool() && !active->value.GetBool()) {
          continue;  // deactivated, taken down, ...: nothing to fetch
        }
        std::string_view text(did->value.GetString(), did->value.GetStringLength());
        if (plausible_did(text)) dids.emplace_back(text);
      }
    }
  }
  Source& listed = state.sources[index];  // sources may have grown
  const bool complete = cursor.empty() || count == 0 || cursor == listed.listing.cursor;
  listed.listing.cursor = cursor;
  listed.listing.complete = complete;
  const std::string key = listed.listing_key();
  if (!dids.empty()) admit(self, shared, dids, std::pair{key, cursor});
  std::string error;
  if (!shared.store->put_listing(key, listed.listing, error)) {
    log::error("backfill store write failed", {{"error", error}});
  }
  if (complete) {
    log::info("source listed", {{"source", listed.url}, {"collection", listed.collection}});
  }
}

void attempt_failed(Coordinator* self, Shared& shared, const std::string& did,
                    const std::string& reason, const std::string& detail) {
  auto& state = self->state;
  std::uint32_t& attempts = state.attempts[did];
  ++attempts;
  if (attempts >= static_cast<std::uint32_t>(shared.options.max_attempts)) {
    store_rows(shared, {{did, RepoRow{RepoStatus::failed, attempts, {}, reason}}});
    state.active.erase(did);
    state.attempts.erase(did);
    ++state.failed;
    shared.probe->record_failed(reason);
    log::warn("repository given up", {{"did", did}, {"reason", reason}, {"detail", detail}});
    return;
  }
  store_rows(shared, {{did, RepoRow{RepoStatus::queued, attempts, {}, reason}}});
  // Exponential backoff per attempt, 2 s to ~10 min.
  const auto wait =
      std::chrono::seconds(std::min<std::int64_t>(600, std::int64_t{2} << std::min(attempts, 8u)));
  state.retries.emplace(Clock::now() + wait, did);
}

void pump_resolutions(Coordinator* self, Shared& shared) {
  auto& state = self->state;
  const auto compacted = shared.link->compacted();
  if (!compacted || compacted->empty()) {
    if (!state.waiting_logged) {
      log::info(compacted ? "decode keeps no compacted collections (--compact-collections): "
                            "nothing to backfill until it does"
                          : "waiting for decode's compacted collections (its state info)",
                {{"decode", shared.options.decode_events_endpoint}});
      state.waiting_logged = true;
    }
    return;
  }
  state.waiting_logged = false;
  const auto backlog = static_cast<std::uint64_t>(shared.options.max_fetches) * 4;
  while (!state.to_resolve.empty() && state.resolving < 64 && state.in_hosts < backlog) {
    std::string did = std::move(state.to_resolve.front());
    state.to_resolve.pop_front();
    ++state.resolving;
    const bool refresh = state.attempts[did] > 0;  // a failed fetch may be a moved account
    const caf::actor handle = caf::actor_cast<caf::actor>(self);
    const bool verify = shared.options.verify != "off";
    shared.resolver->resolve(
        did, refresh, [handle, did, verify](const identity::ResolutionPtr& resolution) {
          std::string pds;
          std::string key;
          std::string failure = resolution->failure;
          if (resolution->document) {
            pds = resolution->document->pds_endpoint.value_or("");
            if (resolution->document->signing_key)
              key = resolution->document->signing_key->did_key();
            if (pds.empty()) {
              failure = "no_pds_endpoint";
            } else if (verify && key.empty()) {
              pds.clear();
              failure = "unknown_key";  // --verify: nothing to check its commit against
            }
          }
          caf::anon_send(handle, resolved_atom::value, did, pds, key, failure);
        });
  }
}

void on_resolved(Coordinator* self, Shared& shared, const std::string& did, const std::string& pds,
                 const std::string& key, const std::string& failure) {
  auto& state = self->state;
  --state.resolving;
  if (pds.empty()) {
    const bool own_reason = failure == "no_pds_endpoint" || failure == "unknown_key";
    attempt_failed(self, shared, did, own_reason ? failure : "unresolvable_did", failure);
    return;
  }
  const std::string host = origin_of(pds);
  auto found = state.hosts.find(host);
  if (found == state.hosts.end()) {
    found = state.hosts
                .emplace(host, self->spawn<caf::linked>(host_actor, &shared,
                                                        caf::actor_cast<caf::actor>(self), host))
                .first;
  }
  ++state.in_hosts;
  self->send(found->second, enqueue_atom::value, did, pds, key);
}

/// Queues `did` for a fetch, whatever the store says of it (decode asked: a `#sync`, an account
/// active again).
void requeue(Coordinator* self, Shared& shared, const std::string& did) {
  auto& state = self->state;
  if (state.active.count(did) != 0) {
    state.refetch.insert(did);  // under way: once more when it ends
    return;
  }
  if (const auto row = shared.store->repo(did)) {
    if (row->status == RepoStatus::done && state.done > 0) --state.done;
    if (row->status == RepoStatus::failed && state.failed > 0) --state.failed;
  } else {
    ++state.known;
  }
  store_rows(shared, {{did, RepoRow{}}});
  state.active.insert(did);
  state.attempts.erase(did);
  state.to_resolve.push_back(did);
  state.complete = false;
}

void on_result(Coordinator* self, Shared& shared, const std::string& did,
               const FetchOutcome& outcome) {
  auto& state = self->state;
  --state.in_hosts;
  state.bytes += outcome.bytes;
  shared.probe->record_bytes(outcome.bytes);
  shared.probe->record_fetch(to_string(outcome.kind), outcome.reason);
  switch (outcome.kind) {
    case FetchOutcome::Kind::done:
      store_rows(shared, {{did, RepoRow{RepoStatus::done, state.attempts[did], outcome.rev, {}}}});
      state.active.erase(did);
      state.attempts.erase(did);
      ++state.done;
      log::debug("repository backfilled", {{"did", did},
                                           {"rev", outcome.rev},
                                           {"applied", outcome.totals.applied},
                                           {"tombstoned", outcome.totals.tombstoned}});
      break;
    case FetchOutcome::Kind::failed: {
      store_rows(shared,
                 {{did, RepoRow{RepoStatus::failed, state.attempts[did], {}, outcome.reason}}});
      state.active.erase(did);
      state.attempts.erase(did);
      ++state.failed;
      shared.probe->record_failed(outcome.reason);
      log::warn("repository not backfilled",
                {{"did", did}, {"reason", outcome.reason}, {"detail", outcome.detail}});
      break;
    }
    case FetchOutcome::Kind::retry:
      log::warn_every(std::chrono::seconds(10), "backfill_fetch_retry",
                      "fetching a repository failed; it is tried again later",
                      {{"did", did}, {"reason", outcome.reason}, {"detail", outcome.detail}});
      attempt_failed(self, shared, did, outcome.reason, outcome.detail);
      break;
    case FetchOutcome::Kind::host_busy:  // kept by the host actor, never sent here
      break;
  }
  if (state.refetch.erase(did) != 0 && state.active.count(did) == 0) requeue(self, shared, did);
}

std::string with_commas(std::uint64_t value) {
  std::string digits = std::to_string(value);
  for (std::size_t i = digits.size(); i > 3; i -= 3) digits.insert(i - 3, ",");
  return digits;
}

std::string short_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 90) return std::to_string(static_cast<int>(seconds)) + "s";
  if (seconds < 5400) return std::to_string(static_cast<int>(seconds / 60)) + "m";
  return std::to_string(static_cast<int>(seconds / 3600)) + "h";
}

/// Once decode's compacted set is known: a relay is listed by collection when every compacted
/// pattern is an exact NSID (listReposByCollection takes one NSID, not a prefix), which fetches
/// only the repositories that hold one; otherwise by its hosts (every repository of each).
void plan_relays(CoordinatorState& state, Shared& shared) {
  const auto compacted = shared.link->compacted();
  if (!compacted || compacted->empty()) return;
  const std::vector<std::string> patterns = config::split_list(*compacted);
  const bool exact = std::none_of(patterns.begin(), patterns.end(),
                                  [](const std::string& p) { return p.ends_with('*'); });
  std::vector<Source> added;
  for (Source& source : state.sources) {
    if (source.kind != SourceKind::relay_pending) continue;
    if (!exact) {
      source.kind = SourceKind::relay_hosts;
      continue;
    }
    source.kind = SourceKind::relay_planned;  // replaced by one source per collection
    source.listing.complete = true;
    for (const auto& nsid : patterns) {
      Source by_collection;
      by_collection.url = source.url;
      by_collection.kind = SourceKind::relay_collection;
      by_collection.collection = nsid;
      by_collection.listing = shared.store->listing(by_collection.listing_key());
      added.push_back(std::move(by_collection));
    }
    log::info("listing the relay's repositories by collection",
              {{"relay", source.url}, {"collections", *compacted}});
  }
  for (auto& source : added) state.sources.push_back(std::move(source));
}

void on_tick(Coordinator* self, Shared& shared) {
  auto& state = self->state;
  const auto now = Clock::now();
  // Repositories decode asked to fetch again (the link stored them): queued now, whatever the
  // store says of them, then forgotten.
  const std::vector<std::string> resyncs = shared.store->resyncs();
  for (const auto& did : resyncs) {
    requeue(self, shared, did);
    std::string error;
    shared.store->clear_resync(did, error);
  }
  if (!resyncs.empty()) {
    log::info("decode asked to fetch repositories again", {{"repositories", resyncs.size()}});
  }
  while (!state.retries.empty() && state.retries.begin()->first <= now) {
    state.to_resolve.push_back(std::move(state.retries.begin()->second));
    state.retries.erase(state.retries.begin());
  }
  plan_relays(state, shared);
  for (std::size_t i = 0; i < state.sources.size(); ++i) {
    const Source& source = state.sources[i];
    const bool lists =
        source.kind != SourceKind::relay_pending && source.kind != SourceKind::relay_planned;
    if (lists && !source.listing.complete && !source.in_flight && source.next_at <= now) {
      request_listing(self, shared, i);
    }
  }
  pump_resolutions(self, shared);

  // Figures.
  const auto& link = shared.link->counters();
  BackfillProbe::RepoFigures figures;
  figures.queued = state.to_resolve.size() + state.retries.size();
  figures.resolving = state.resolving;
  figures.fetching = state.in_hosts;
  figures.done = state.done;
  figures.failed = state.failed;
  shared.probe->set_repos(figures);
  shared.probe->set_link(link, shared.link->compacted().has_value());
  // For fanout's status page, through decode (proto §3.13).
  shared.link->set_progress(proto::BackfillProgress{
      state.done, state.done + state.failed + figures.queued + figures.resolving + figures.fetching,
      state.failed, link.records_applied.load()});
  std::array<std::uint64_t, http::kFetchErrorCount> errors{};
  std::array<std::uint64_t, http::kAddressClassCount> refused{};
  auto add_client = [&](const http::HttpClient& client) {
    for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += client.counters().errors[i].load();
    for (std::size_t i = 0; i < refused.size(); ++i) {
      refused[i] += client.counters().refused_addresses[i].load();
    }
  };
  add_client(*shared.list_client);
  for (const auto& client : shared.fetch_clients) add_client(*client);
  shared.probe->set_http(errors, refused);
  std::uint64_t active = 0;
  std::uint64_t paused = 0;
  for (const auto& [host, host_figures] : state.host_figures) {
    if (host_figures.size() != 3) continue;
    if (host_figures[1] != 0) {
      ++paused;
    } else if (host_figures[0] != 0 || host_figures[2] != 0) {
      ++active;
    }
  }
  shared.probe->set_hosts(active, paused, state.hosts.size() - active - paused);
  for (const auto& [host, actor] : state.hosts) {
    self->request(actor, std::chrono::seconds(5), tick_atom::value)
        .then([self, host = host](std::vector<std::int64_t>& reply) {
          self->state.host_figures[host] = std::move(reply);
        });
  }

  if (now - state.last_progress >= shared.options.progress_interval) {
    const double seconds = std::chrono::duration<double>(now - state.last_progress).count();
    const std::uint64_t records = link.records_applied.load() + link.records_unchanged.load();
    const std::uint64_t finished = state.done + state.failed;
    const double records_per_s = static_cast<double>(records - state.progress_records) / seconds;
    const double repos_per_s = static_cast<double>(finished - state.progress_finished) / seconds;
    const double remaining = static_cast<double>(state.known - std::min(state.known, finished));
    std::string listing = "";
    for (const auto& source : state.sources) {
      if (!source.listing.complete) listing = " · listing";
    }
    char rate[32];
    if (records_per_s >= 1000) {
      std::snprintf(rate, sizeof rate, "%.1fk", records_per_s / 1000.0);
    } else {
      std::snprintf(rate, sizeof rate, "%.0f", records_per_s);
    }
    log::info("backfill " + with_commas(finished) + "/" + with_commas(state.known) + " repos · " +
                  rate + " records/s · ETA " +
                  (repos_per_s > 0 ? short_duration(remaining / repos_per_s) : std::string("?")) +
                  listing,
              {{"done", state.done},
               {"failed", state.failed},
               {"fetching", state.in_hosts},
               {"resolving", state.resolving},
               {"queued", figures.queued}});
    state.last_progress = now;
    state.progress_records = records;
    state.progress_finished = finished;
  }

  bool listed = true;
  for (const auto& source : state.sources) listed = listed && source.listing.complete;
  if (!state.complete && listed && state.to_resolve.empty() && state.retries.empty() &&
      state.resolving == 0 && state.in_hosts == 0 && shared.link->compacted()) {
    state.complete = true;
    log::info("backfill complete", {{"done", state.done}, {"failed", state.failed}});
    if (state.on_complete) state.on_complete();
  }
}

caf::behavior coordinator_actor(Coordinator* self, Shared* shared,
                                std::function<void()> on_complete) {
  auto& state = self->state;
  state.on_complete = std::move(on_complete);
  // What the store holds: done and failed repositories are counted, queued ones go on.
  shared->store->for_each_repo([&](std::string_view did, const RepoRow& row) {
    ++state.known;
    switch (row.status) {
      case RepoStatus::done: ++state.done; break;
      case RepoStatus::failed: ++state.failed; break;
      case RepoStatus::queued:
        state.active.emplace(did);
        state.to_resolve.emplace_back(did);
        if (row.attempts > 0) state.attempts.emplace(std::string(did), row.attempts);
        break;
    }
  });
  for (const auto& url : config::split_list(shared->options.pds)) {
    Source source;
    source.url = url;
    source.listing = shared->store->listing(url);
    state.sources.push_back(std::move(source));
  }
  for (const auto& url : config::split_list(shared->options.relay)) {
    Source source;
    source.url = url;
    source.kind = SourceKind::relay_pending;
    source.listing = shared->store->listing(url);
    state.sources.push_back(std::move(source));
  }
  if (!shared->options.dids_file.empty()) {
    std::ifstream file(shared->options.dids_file);
    std::vector<std::string> dids;
    std::string line;
    std::uint64_t skipped = 0;
    while (std::getline(file, line)) {
      const auto hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())) != 0)
        line.pop_back();
      std::size_t start = 0;
      while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start])) != 0)
        ++start;
      const std::string_view did = std::string_view(line).substr(start);
      if (did.empty()) continue;
      if (plausible_did(did)) {
        dids.emplace_back(did);
      } else {
        ++skipped;
      }
    }
    const std::size_t added = admit(self, *shared, dids, std::nullopt);
    log::info("dids file read", {{"path", shared->options.dids_file},
                                 {"dids", dids.size()},
                                 {"new", added},
                                 {"not_dids", skipped}});
  }
  log::info("backfill starting", {{"known", state.known},
                                  {"done", state.done},
                                  {"failed", state.failed},
                                  {"queued", state.to_resolve.size()},
                                  {"sources", state.sources.size()}});
  self->send(self, tick_atom::value);
  return {
      [self, shared](tick_atom) {
        on_tick(self, *shared);
        self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
      },
      [self, shared](listed_atom, std::size_t index, HttpResultPtr& result) {
        on_listed(self, *shared, index, *result);
      },
      [self, shared](resolved_atom, std::string& did, std::string& pds, std::string& key,
                     std::string& failure) {
        on_resolved(self, *shared, did, pds, key, failure);
        pump_resolutions(self, *shared);
      },
      [self, shared](result_atom, std::string& did, OutcomePtr& outcome) {
        on_result(self, *shared, did, *outcome);
        pump_resolutions(self, *shared);
      },

  };
}

}  // namespace

struct BackfillService::Impl {
  BackfillOptions options;
  zmq::context_t context{1};
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<BackfillProbe> probe;
  std::unique_ptr<BackfillStore> store;
  std::unique_ptr<http::HttpClient> list_client;
  std::unique_ptr<identity::IdentityCache> identity_cache;
  std::unique_ptr<identity::DidResolver> resolver;
  std::unique_ptr<DecodeLink> link;
  Shared shared;
  std::unique_ptr<caf::actor_system_config> actor_config;
  std::unique_ptr<caf::actor_system> actors;
  caf::actor coordinator;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::thread exit_thread;
  bool stopped = false;
};

BackfillService::BackfillService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BackfillService::~BackfillService() { stop(); }

std::unique_ptr<BackfillService> BackfillService::start(const BackfillOptions& options,
                                                        std::string& error) {
  if (auto invalid = validate_backfill_options(options)) {
    error = *invalid;
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.options = options;
  s.registry = std::make_shared<prometheus::Registry>();
  metrics::register_process_metrics(*s.registry);
  metrics::register_build_info(*s.registry, "backfill");
  s.probe = std::make_unique<BackfillProbe>(*s.registry);
  s.store = BackfillStore::open(options.data_dir + "/store", error);
  if (!s.store) return nullptr;

  // The hosts the operator named may be on any address and plain http; every other host (a
  // DID document's PDS, a relay's host list) must be public and https.
  http::HttpClient::Options http_options;
  for (const auto& list : {options.pds, options.relay, options.allow_hosts}) {
    for (const auto& item : config::split_list(list)) {
      const auto url = websocket::parse_http_url(item);
      http_options.policy.allow_host(url ? url->host : item);
    }
  }
  if (const auto plc = websocket::parse_http_url(options.plc_url)) {
    http_options.policy.allow_host(plc->host);
  }
  s.list_client = std::make_unique<http::HttpClient>(http_options);
  const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t fetch_threads =
      options.fetch_threads > 0 ? static_cast<std::size_t>(options.fetch_threads) : cores;
  for (std::size_t i = 0; i < fetch_threads; ++i) {
    s.shared.fetch_clients.push_back(std::make_unique<http::HttpClient>(http_options));
  }
  s.identity_cache = std::make_unique<identity::IdentityCache>(100'000);
  identity::DidResolver::Options resolver_options;
  resolver_options.plc_url = options.plc_url;
  resolver_options.did_web_insecure = options.did_web_insecure;
  s.resolver = std::make_unique<identity::DidResolver>(resolver_options, *s.list_client,
                                                       *s.identity_cache, clock::wall_clock_us);

  DecodeLink::Options link_options;
  link_options.backfill_endpoint = options.decode_backfill_endpoint;
  link_options.events_endpoint = options.decode_events_endpoint;
  link_options.max_unacked = static_cast<std::size_t>(options.max_unacked_batches);
  link_options.ack_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(options.ack_timeout);
  Shared* shared = &s.shared;
  Impl* raw = &s;
  try {
    s.link = std::make_unique<DecodeLink>(
        s.context, link_options,
        [shared](std::uint64_t fetch_id, const FetchTotals& totals) {
          std::shared_ptr<RepoFetch> fetch;
          {
            std::lock_guard lock(shared->fetches_mutex);
            const auto found = shared->fetches.find(fetch_id);
            if (found != shared->fetches.end()) fetch = found->second;
          }
          if (fetch) fetch->stored(totals);
        },
        [raw](const std::vector<std::pair<std::string, proto::ResyncReason>>& dids) {
          // Stored before this returns (decode forgets what the next poll acknowledges); the
          // coordinator then queues them, whatever it knew of them.
          std::vector<std::string> repositories;
          for (const auto& [did, reason] : dids) {
            if (reason == proto::ResyncReason::identity) {
              raw->identity_cache->invalidate(did);  // its PDS may have moved
              continue;
            }
            repositories.push_back(did);
          }
          std::string why;
          if (!repositories.empty() && !raw->store->put_resyncs(repositories, why)) {
            log::error("storing decode's resync requests failed (they come again)",
                       {{"error", why}});
          }
        });
  } catch (const std::exception& e) {
    error = std::string("decode endpoints: ") + e.what();
    return nullptr;
  }

  s.shared.options = options;
  s.shared.store = s.store.get();
  s.shared.link = s.link.get();
  s.shared.probe = s.probe.get();
  s.shared.resolver = s.resolver.get();
  s.shared.list_client = s.list_client.get();
  s.shared.spill_directory = options.data_dir;

  try {
    s.metrics_server =
        std::make_unique<metrics::MetricsServer>(options.metrics_listen_addr, s.registry);
  } catch (const std::exception& e) {
    error = std::string("metrics listen address: ") + e.what();
    return nullptr;
  }
  auto* link = s.link.get();
  s.metrics_server->set_health(
      [] { return true; },
      [link] {
        const auto compacted = link->compacted();
        if (!compacted) {
          return metrics::HealthReport::unhealthy("no state info from decode yet");
        }
        if (compacted->empty()) {
          return metrics::HealthReport::unhealthy("decode keeps no compacted collections");
        }
        return metrics::HealthReport::healthy();
      });

  s.actor_config = runtime::actor_system_config(2);
  s.actors = std::make_unique<caf::actor_system>(*s.actor_config);
  s.coordinator = s.actors->spawn(coordinator_actor, shared, [raw] {
    {
      std::lock_guard lock(raw->done_mutex);
      raw->done = true;
    }
    raw->done_cv.notify_all();
  });
  if (options.exit_when_done) {
    // run_service waits for SIGTERM: the end of the work sends it.
    s.exit_thread = std::thread([raw] {
      std::unique_lock lock(raw->done_mutex);
      raw->done_cv.wait(lock, [raw] { return raw->done || raw->stopped; });
      if (raw->done && !raw->stopped) ::kill(::getpid(), SIGTERM);
    });
  }
  log::info("backfill started", {{"data_dir", options.data_dir},
                                 {"decode", options.decode_backfill_endpoint},
                                 {"metrics_port", s.metrics_server->port()},
                                 {"fetch_threads", fetch_threads}});
  return std::unique_ptr<BackfillService>(new BackfillService(std::move(impl)));
}

void BackfillService::stop() {
  if (!impl_ || impl_->stopped) return;
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.done_mutex);
    s.stopped = true;
  }
  s.done_cv.notify_all();
  if (s.exit_thread.joinable()) s.exit_thread.join();
  // The link first: a fetch waiting for room to submit gives up, its repository stays queued.
  if (s.link) s.link->stop();
  s.shared.fetch_clients.clear();  // abandons fetches in flight (no callback)
  if (s.actors) {
    caf::anon_send_exit(s.coordinator, caf::exit_reason::user_shutdown);
    s.coordinator = nullptr;
    s.actors.reset();
  }
  {
    std::lock_guard lock(s.shared.fetches_mutex);
    s.shared.fetches.clear();
  }
  s.list_client.reset();
  if (s.metrics_server) s.metrics_server->stop();
  log::info("backfill stopped");
}

bool BackfillService::wait_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->done_mutex);
  return impl_->done_cv.wait_for(lock, timeout, [&] { return impl_->done; });
}

std::uint16_t BackfillService::metrics_port() const { return impl_->metrics_server->port(); }

int run_backfill(int argc, char** argv) {
  BackfillOptions options;
  config::FlagSet flags("jetstream-backfill",
                        "Fetches the repositories of PDSes and relays and hands the records of "
                        "decode's compacted collections to decode (API.md \"Backfill\").");
  register_backfill_flags(flags, options);
  return runtime::run_service<BackfillService>(argc, argv, flags, "backfill", options);
}

}  // namespace jetstream::backfill
