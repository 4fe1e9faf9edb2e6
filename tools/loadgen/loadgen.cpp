#include "tools/loadgen/loadgen.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "tools/loadgen/engine.hpp"
#include "tools/loadgen/protocol.hpp"
#include "tools/loadgen/report.hpp"

namespace jetstream::loadgen {
namespace {

/// File descriptors kept free beyond one per client (stdio, epoll, dictionary, libraries).
constexpr rlim_t kSpareFds = 64;

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

/// Raises the soft RLIMIT_NOFILE to fit `clients` sockets; says so on `err` when it cannot.
void raise_fd_limit(std::size_t clients, std::ostream& err) {
  const rlim_t need = static_cast<rlim_t>(clients) + kSpareFds;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    err << "jetstream-loadgen: getrlimit(RLIMIT_NOFILE): " << std::strerror(errno) << "\n";
    return;
  }
  if (limit.rlim_cur >= need) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? need : std::min(need, limit.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    err << "jetstream-loadgen: cannot raise RLIMIT_NOFILE from " << before << " to "
        << limit.rlim_cur << ": " << std::strerror(errno) << "\n";
    return;
  }
  err << "jetstream-loadgen: raised RLIMIT_NOFILE from " << before << " to " << limit.rlim_cur
      << "\n";
  if (limit.rlim_cur < need) {
    err << "jetstream-loadgen: the hard limit is " << limit.rlim_max << ": at most about "
        << (limit.rlim_max > kSpareFds ? limit.rlim_max - kSpareFds : 0)
        << " clients can connect (raise it with `ulimit -Hn` as root)\n";
  }
}

/// user + system CPU seconds of `pid` from /proc, or negative when unreadable.
double process_cpu_seconds(std::int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return -1;
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  double ticks = 0;
  // After the command name: state is field 3; utime and stime are fields 14 and 15.
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14 || index == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

struct Snapshot {
  std::uint64_t deliveries = 0;
  std::uint64_t wire_bytes = 0;
  std::uint64_t connected = 0;
  std::uint64_t open = 0;
  std::uint64_t settled = 0;
};

Snapshot snapshot(const std::vector<std::unique_ptr<Worker>>& workers) {
  Snapshot s;
  for (const auto& worker : workers) {
    const WorkerCounters& c = worker->counters();
    s.deliveries += c.deliveries.load(std::memory_order_relaxed);
    s.wire_bytes += c.wire_bytes.load(std::memory_order_relaxed);
    s.connected += c.connected.load(std::memory_order_relaxed);
    s.open += c.open.load(std::memory_order_relaxed);
    s.settled += c.settled.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace

int run(const Options& options, std::ostream& out, std::ostream& err,
        const std::atomic<bool>* interrupt) {
  auto usage_error = [&](const std::string& text) {
    err << "jetstream-loadgen: " << text << "\n";
    return kExitUsage;
  };
  if (options.clients < 1 || options.clients > 1'000'000) {
    return usage_error("--clients must be between 1 and 1000000");
  }
  if (options.source_addresses < 0 || options.source_addresses > 254) {
    return usage_error("--source-addresses must be between 0 and 254");
  }
  if (options.source_network < 0 || options.source_network > 255) {
    return usage_error("--source-network must be between 0 and 255");
  }
  if (options.threads < 1 || options.threads > 64) {
    return usage_error("--threads must be between 1 and 64");
  }
  if (options.connect_rate < 0) return usage_error("--connect-rate must not be negative");
  if (options.duration.count() <= 0) {
    return usage_error("--duration must be positive (the run is always bounded)");
  }
  if (options.handshake_timeout.count() <= 0) {
    return usage_error("--handshake-timeout must be positive");
  }
  if (options.until_events < 0 || options.expect_events < 0 || options.decompress_every < 0) {
    return usage_error(
        "--until-events, --expect-events and --decompress-every must not be negative");
  }
  std::string error;
  const auto url = parse_ws_url(options.url, &error);
  if (!url) return usage_error("--url " + options.url + ": " + error);
  std::string target = append_query(url->target, options.query);
  if (!options.query_file.empty()) {
    std::ifstream file(options.query_file, std::ios::binary);
    if (!file) return usage_error("--query-file " + options.query_file + ": cannot open it");
    std::ostringstream text;
    text << file.rdbuf();
    std::string more = std::move(text).str();
    while (!more.empty() && (more.back() == '\n' || more.back() == '\r')) more.pop_back();
    target = append_query(target, more);
  }
  if (options.compress) target = append_query(target, "compress=true");

  EngineConfig config;
  config.host_header = url->host_header();
  config.target = target;
  config.until_events = static_cast<std::uint64_t>(options.until_events);
  config.decompress_every = static_cast<std::uint64_t>(options.decompress_every);
  config.deflate = options.deflate;
  config.connect_rate = options.connect_rate / static_cast<double>(options.threads);
  config.handshake_timeout = options.handshake_timeout;
  if (!options.zstd_dictionary_path.empty() && options.decompress_every > 0) {
    config.dictionary = zstd::Dictionary::load(options.zstd_dictionary_path, error);
    if (!config.dictionary) {
      return usage_error("--zstd-dictionary-path " + options.zstd_dictionary_path + ": " + error);
    }
  } else if (options.compress && options.decompress_every > 0) {
    return usage_error(
        "--compress needs --zstd-dictionary-path (or JETSTREAM_ZSTD_DICTIONARY_PATH) to read "
        "time_us from the zstd frames; --decompress-every 0 only counts messages");
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url->port);
  if (const int rc = getaddrinfo(url->host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return usage_error("cannot resolve " + url->host + ": " + gai_strerror(rc));
  }
  if (options.source_addresses > 0 &&
      (found->ai_family != AF_INET ||
       (ntohl(reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr.s_addr) >> 24) !=
           127)) {
    freeaddrinfo(found);
    return usage_error("--source-addresses needs a 127.x.x.x server address, not " + url->host);
  }
  config.source_addresses = static_cast<std::uint32_t>(options.source_addresses);
  config.source_network = static_cast<std::uint32_t>(options.source_network);
  std::memcpy(&config.address, found->ai_addr, found->ai_addrlen);
  config.address_length = static_cast<socklen_t>(found->ai_addrlen);
  freeaddrinfo(found);

  const auto clients = static_cast<std::size_t>(options.clients);
  raise_fd_limit(clients, err);

  // Client i belongs to worker i % threads.
  const auto thread_count = static_cast<std::size_t>(options.threads);
  std::vector<std::unique_ptr<Worker>> workers;
  std::random_device entropy;
  for (std::size_t t = 0; t < thread_count; ++t) {
    std::vector<std::size_t> ids;
    for (std::size_t i = t; i < clients; i += thread_count) ids.push_back(i);
    const std::uint64_t seed = (std::uint64_t{entropy()} << 32) ^ entropy() ^ t;
    workers.push_back(std::make_unique<Worker>(config, std::move(ids), seed));
  }

  RunFigures figures;
  websocket::WebSocketUrl shown = *url;
  shown.target = target;
  figures.url = shown.to_string();
  figures.clients = clients;
  figures.server_pid = options.server_pid;

  const double cpu_start = own_cpu_seconds();
  const std::int64_t start = steady_clock_us();
  const std::int64_t deadline = start + options.duration.count();
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (auto& worker : workers) {
    threads.emplace_back([&stop, w = worker.get()] { w->run(stop); });
  }

  std::int64_t all_connected_at = 0;
  Snapshot at_all_connected;
  double server_cpu_at_window = process_cpu_seconds(options.server_pid);
  std::int64_t server_window_start = start;
  Snapshot last_progress;
  std::int64_t last_progress_at = start;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const std::int64_t now = steady_clock_us();
    const Snapshot s = snapshot(workers);
    if (all_connected_at == 0 && s.connected == clients) {
      all_connected_at = now;
      at_all_connected = s;
      server_cpu_at_window = process_cpu_seconds(options.server_pid);
      server_window_start = now;
    }
    if (interrupt != nullptr && interrupt->load()) {
      figures.interrupted = true;
      break;
    }
    if (now >= deadline || s.settled >= clients) break;
    if (options.progress && now - last_progress_at >= 1'000'000) {
      const double seconds = static_cast<double>(now - last_progress_at) / 1e6;
      err << "[" << fixed(static_cast<double>(now - start) / 1e6, 1) << "s] connected "
          << s.connected << "/" << clients << ", open " << s.open << ", deliveries/s "
          << with_commas(static_cast<std::uint64_t>(
                 static_cast<double>(s.deliveries - last_progress.deliveries) / seconds))
          << ", MB/s "
          << fixed(static_cast<double>(s.wire_bytes - last_progress.wire_bytes) / seconds / 1e6, 1)
          << ", deliveries " << with_commas(s.deliveries);
      if (options.until_events > 0) err << ", settled " << s.settled;
      err << std::endl;
      last_progress = s;
      last_progress_at = now;
    }
  }
  const std::int64_t stop_at = steady_clock_us();
  const Snapshot final_counts = snapshot(workers);
  const double server_cpu_end = process_cpu_seconds(options.server_pid);
  stop.store(true, std::memory_order_release);
  for (std::thread& thread : threads) thread.join();

  std::vector<ClientResult> results(clients);
  LatencyHistogram latency;
  for (const auto& worker : workers) {
    worker->collect(results);
    latency.merge(worker->latency());
    figures.negative_latencies += worker->negative_latencies();
    figures.ignored_after_target += worker->ignored_after_target();
  }
  figures.elapsed_s = static_cast<double>(stop_at - start) / 1e6;
  figures.connected = static_cast<std::size_t>(snapshot(workers).connected);
  if (all_connected_at != 0) {
    figures.all_connected_s = static_cast<double>(stop_at - all_connected_at) / 1e6;
    figures.all_connected_deliveries = final_counts.deliveries - at_all_connected.deliveries;
    figures.all_connected_bytes = final_counts.wire_bytes - at_all_connected.wire_bytes;
  }
  figures.loadgen_cpu_s = own_cpu_seconds() - cpu_start;
  if (options.server_pid > 0 && server_cpu_at_window >= 0 && server_cpu_end >= 0) {
    figures.server_cpu_s = server_cpu_end - server_cpu_at_window;
    figures.server_cpu_window_s = static_cast<double>(stop_at - server_window_start) / 1e6;
  } else if (options.server_pid > 0) {
    err << "jetstream-loadgen: cannot read /proc/" << options.server_pid
        << "/stat: server CPU not measured\n";
  }

  Expectations expect;
  expect.clients = clients;
  expect.expect_events = static_cast<std::uint64_t>(options.expect_events);
  expect.expect_same = options.expect_same;
  expect.until_events = static_cast<std::uint64_t>(options.until_events);
  expect.time_us_expected = options.decompress_every > 0;
  const std::vector<std::string> failures = verify(results, expect);

  const std::string summary = format_summary(figures, results, latency, failures);
  if (options.json) {
    err << summary;
    out << format_json(figures, results, latency, failures) << std::endl;
  } else {
    out << summary << std::flush;
  }
  return failures.empty() ? kExitOk : kExitVerificationFailed;
}

int loadgen_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
                 const config::EnvLookup& env, const std::atomic<bool>* interrupt) {
  Options o;
  config::FlagSet flags(
      "jetstream-loadgen",
      "Opens N websocket clients to a fanout's /subscribe; reports deliveries/s, bytes/s and "
      "publish->receive latency, and verifies every client's events (count, order, sameness). "
      "Exit 0 when every check passes, 1 when one fails, 2 on bad flags.");
  flags.add_string("url", &o.url, "fanout websocket URL (ws:// only)");
  flags.add_string(
      "query", &o.query,
      "query appended to the URL, e.g. 'wantedCollections=app.bsky.feed.post&cursor=0'");
  flags.add_string("query-file", &o.query_file,
                   "file whose contents (trailing newlines dropped) are appended to the query "
                   "after --query: URLs longer than a command line allows (10,000 wantedDids)");
  flags.add_int64("clients", &o.clients, "websocket clients to open");
  flags.add_double("connect-rate", &o.connect_rate,
                   "new connections per second in total (0 = all at once)");
  flags.add_duration("duration", &o.duration,
                     "stop after this long (Go duration, counted from the start; always bounded)");
  flags.add_int64("until-events", &o.until_events,
                  "stop each client after this many events and the run once every client has "
                  "them (0 = off)");
  flags.add_int64("expect-events", &o.expect_events,
                  "verify every client got exactly this many events (0 = not checked)");
  flags.add_bool("expect-same", &o.expect_same,
                 "verify every client got the identical sequence of time_us");
  flags.add_int64("threads", &o.threads, "epoll threads (clients are split between them)");
  flags.add_bool("compress", &o.compress, "ask for zstd (adds compress=true to the query)");
  flags.add_bool("deflate", &o.deflate,
                 "offer permessage-deflate as browsers do (without --compress the server sends "
                 "compressed text; each message's start is inflated to read time_us)");
  flags.add_string("zstd-dictionary-path", &o.zstd_dictionary_path,
                   "v1 zstd dictionary, to read time_us from binary messages");
  flags.add_int64("decompress-every", &o.decompress_every,
                  "with --compress or --deflate: decompress every K-th message of each client "
                  "(1 = all, for verification; 0 = none, count only)");
  flags.add_bool("json", &o.json, "print the summary as one JSON line on stdout (text to stderr)");
  flags.add_int64("server-pid", &o.server_pid,
                  "pid of the fanout on this machine: report deliveries per server CPU second");
  flags.add_duration("handshake-timeout", &o.handshake_timeout,
                     "connect + websocket handshake limit per client");
  flags.add_bool("progress", &o.progress, "print a progress line to stderr every second");
  flags.add_int64("source-addresses", &o.source_addresses,
                  "spread the clients over this many loopback source addresses (127.0.B.1, "
                  "127.0.B.2, ...; at most 254) so a per-IP limit sees that many peers (0 = one)");
  flags.add_int64("source-network", &o.source_network,
                  "the B of the 127.0.B.x source addresses of --source-addresses");
  const auto outcome = flags.parse(argc, argv, env);
  if (const auto code = flags.report(outcome, out, err)) return *code;
  if (!outcome.positional.empty()) {
    err << "jetstream-loadgen: unexpected argument '" << outcome.positional.front()
        << "' (--help for the flags)\n";
    return kExitUsage;
  }
  return run(o, out, err, interrupt);
}

}  // namespace jetstream::loadgen
