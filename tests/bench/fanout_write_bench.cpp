// The fanout write path on loopback: one shared batch of frames sent to N websocket clients over
// and over, through HttpServer + ClientConnection exactly as the service does, with and without
// gathering.
//
//   build/release/tests/bench/fanout_write_bench [--clients 1000] [--frame-bytes 500]
//       [--batch 64] [--seconds 4] [--io-threads 1] [--queue-kib 256]
//       [--modes gathered,scattered,single]
//
// Modes (each on a fresh server, same clients count):
//   gathered   frames of one batch laid out back to back in one buffer (as the fanout's event
//              blocks are): a write gathers everything queued, adjacent frames become one iovec
//   scattered  every frame its own allocation: a write gathers up to 1024 iovecs
//   single     one frame per write (max_frames_per_write = 1): one sendmsg per message per client
//
// The driver thread (standing in for the client actors) sends the batch to every client whose
// queue holds less than --queue-kib; a reader thread drains every client socket with epoll
// (level-triggered, 64 KiB recv). Deliveries are frames the readers received. Server CPU is the
// process's CPU time minus the reader thread's (so it includes the driver and the io threads, and
// on loopback the kernel's receive path that runs in the sender's context); "io" is the part
// outside the driver. The summary line gives each mode's deliveries per server-CPU-second and the
// ratio to the 2,000,000 deliveries/s/core target (research/perf.md §3). "idle memory" is the
// resident memory the process gained per connection when the clients connected (server
// connection + the test client's few bytes; kernel socket buffers are not resident memory).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/websocket/codec.hpp"
#include "services/fanout/client_connection.hpp"
#include "services/fanout/http_server.hpp"
#include "tests/support/child_process.hpp"

namespace {

using namespace jetstream::fanout;
using namespace jetstream::websocket;
using Clock = std::chrono::steady_clock;

constexpr double kTargetPerCore = 2'000'000.0;

struct Settings {
  std::size_t clients = 1000;
  std::size_t frame_bytes = 500;
  std::size_t batch = 64;
  double seconds = 4;
  std::size_t io_threads = 1;
  std::size_t queue_kib = 256;
  std::vector<std::string> modes = {"gathered", "scattered", "single"};
};

struct Result {
  std::string mode;
  std::uint64_t deliveries = 0;
  std::uint64_t bytes = 0;
  std::uint64_t writes = 0;
  double wall = 0;
  double server_cpu = 0;
  double driver_cpu = 0;
  double reader_cpu = 0;
  double bytes_per_connection = 0;  // resident memory added per idle websocket (both ends)
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Resident set size in bytes (/proc/self/statm).
std::uint64_t resident_bytes() {
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return 0;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int n = std::fscanf(file, "%llu %llu", &size, &resident);
  std::fclose(file);
  return n == 2 ? resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

int connect_client(std::uint16_t port) {
  const int fd = jetstream::testing::connect_loopback(port);
  if (fd < 0) {
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  const std::string request =
      "GET /subscribe HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    throw std::runtime_error("send handshake");
  }
  std::string response;
  char c;
  while (response.size() < 4 || response.compare(response.size() - 4, 4, "\r\n\r\n") != 0) {
    if (::recv(fd, &c, 1, 0) != 1) throw std::runtime_error("handshake response");
    response += c;
  }
  if (response.compare(0, 12, "HTTP/1.1 101") != 0) throw std::runtime_error("no 101");
  return fd;
}

Result run_mode(const Settings& settings, const std::string& mode) {
  ConnectionOptions connection_options;
  connection_options.max_frames_per_write = mode == "single" ? 1 : 1024;
  connection_options.ping_interval = std::chrono::hours(1);

  std::mutex mutex;
  std::vector<std::shared_ptr<ClientConnection>> connections;
  HttpServerOptions options;
  options.listen = jetstream::config::ListenAddress{"127.0.0.1", 0};
  options.threads = settings.io_threads;
  options.connection = connection_options;
  HttpServer server(options, [&](const SubscribeRequest&) -> SubscribeDecision {
    return SubscribeAccept{[&](const std::shared_ptr<ClientConnection>& connection) {
      std::lock_guard lock(mutex);
      connections.push_back(connection);
      return ConnectionHandlers{};
    }};
  });

  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::uint64_t resident_before = resident_bytes();
  std::vector<int> fds;
  for (std::size_t i = 0; i < settings.clients; ++i) fds.push_back(connect_client(server.port()));
  while (true) {
    std::lock_guard lock(mutex);
    if (connections.size() == settings.clients) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double bytes_per_connection = static_cast<double>(resident_bytes() - resident_before) /
                                      static_cast<double>(settings.clients);

  // The batch every client gets.
  const std::string payload(settings.frame_bytes, 'e');
  const std::size_t frame_size = frame_header_size(payload.size()) + payload.size();
  std::vector<SharedFrame> batch;
  if (mode == "scattered") {
    for (std::size_t i = 0; i < settings.batch; ++i) {
      batch.push_back(SharedFrame::copy_of(make_frame(Opcode::kText, payload)));
    }
  } else {
    auto buffer = std::make_shared<std::string>();
    for (std::size_t i = 0; i < settings.batch; ++i) append_frame(*buffer, Opcode::kText, payload);
    std::shared_ptr<const std::string> shared = buffer;
    for (std::size_t i = 0; i < settings.batch; ++i) {
      batch.push_back(SharedFrame::slice(shared, i * frame_size, frame_size));
    }
  }

  // Reader: drains every client socket.
  std::atomic<bool> reading{true};
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> measuring{false};
  std::atomic<int> acknowledged{0};  // 1: the reader's clock started, 2: its figures are stored
  std::atomic<double> reader_cpu{0};
  std::thread reader([&] {
    const int epoll = ::epoll_create1(0);
    for (int fd : fds) {
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = fd;
      ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    }
    std::vector<epoll_event> events(256);
    std::vector<char> buffer(64 * 1024);
    double cpu_start = 0;
    bool was_measuring = false;
    std::uint64_t local = 0;
    while (reading.load(std::memory_order_relaxed)) {
      const bool now_measuring = measuring.load(std::memory_order_relaxed);
      if (now_measuring != was_measuring) {
        if (now_measuring) {
          cpu_start = thread_cpu_seconds();
          local = 0;
          acknowledged.store(1);
        } else {
          reader_cpu = thread_cpu_seconds() - cpu_start;
          received.store(local);
          acknowledged.store(2);
        }
        was_measuring = now_measuring;
      }
      const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 10);
      for (int i = 0; i < n; ++i) {
        const ssize_t got = ::recv(events[static_cast<std::size_t>(i)].data.fd, buffer.data(),
                                   buffer.size(), MSG_DONTWAIT);
        if (got > 0) local += static_cast<std::uint64_t>(got);
      }
    }
    ::close(epoll);
  });

  const std::uint64_t limit = settings.queue_kib * 1024;
  auto drive = [&](double seconds) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
      bool sent = false;
      for (const auto& connection : connections) {
        if (connection->queued_bytes() < limit) {
          connection->send(batch);
          sent = true;
        }
      }
      if (!sent) std::this_thread::sleep_for(std::chrono::microseconds(200));  // all queues full
    }
  };

  drive(0.5);  // warm-up: TCP windows and buffers grow
  std::uint64_t writes_before = 0;
  for (const auto& connection : connections) writes_before += connection->stats().writes;
  measuring.store(true);
  while (acknowledged.load() != 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double process_start = process_cpu_seconds();
  const double driver_start = thread_cpu_seconds();
  const auto wall_start = Clock::now();
  drive(settings.seconds);
  const double driver_cpu = thread_cpu_seconds() - driver_start;
  const auto wall_end = Clock::now();
  const double process_cpu = process_cpu_seconds() - process_start;
  measuring.store(false);
  while (acknowledged.load() != 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::uint64_t writes_after = 0;
  for (const auto& connection : connections) writes_after += connection->stats().writes;

  Result result;
  result.mode = mode;
  result.bytes = received.load();
  result.deliveries = result.bytes / frame_size;
  result.writes = writes_after - writes_before;
  result.wall = std::chrono::duration<double>(wall_end - wall_start).count();
  result.driver_cpu = driver_cpu;
  result.reader_cpu = reader_cpu.load();
  result.server_cpu = process_cpu - result.reader_cpu;
  result.bytes_per_connection = bytes_per_connection;

  reading.store(false);
  reader.join();
  for (const auto& connection : connections) connection->abort("bench over");
  server.shutdown();
  for (int fd : fds) ::close(fd);
  return result;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--clients") {
      settings.clients = std::strtoul(value, nullptr, 10);
    } else if (flag == "--frame-bytes") {
      settings.frame_bytes = std::strtoul(value, nullptr, 10);
    } else if (flag == "--batch") {
      settings.batch = std::strtoul(value, nullptr, 10);
    } else if (flag == "--seconds") {
      settings.seconds = std::strtod(value, nullptr);
    } else if (flag == "--io-threads") {
      settings.io_threads = std::strtoul(value, nullptr, 10);
    } else if (flag == "--queue-kib") {
      settings.queue_kib = std::strtoul(value, nullptr, 10);
    } else if (flag == "--modes") {
      settings.modes = split(value);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);

  std::printf(
      "fanout_write_bench: %zu clients, %zu-byte payloads, batches of %zu, %zu io thread(s),"
      " %.1f s per mode, %u cores\n",
      settings.clients, settings.frame_bytes, settings.batch, settings.io_threads, settings.seconds,
      std::thread::hardware_concurrency());
  std::vector<Result> results;
  for (const auto& mode : settings.modes) {
    const Result r = run_mode(settings, mode);
    const double per_cpu = static_cast<double>(r.deliveries) / r.server_cpu;
    std::printf(
        "%-9s deliveries %10llu  wall %7.0f k/s  per server-CPU-s %7.0f k/s  %7.1f MB/s  "
        "frames/write %6.1f  cpu: server %.2f s (driver %.2f, io %.2f) reader %.2f s\n",
        r.mode.c_str(), static_cast<unsigned long long>(r.deliveries),
        static_cast<double>(r.deliveries) / r.wall / 1e3, per_cpu / 1e3,
        static_cast<double>(r.bytes) / r.wall / 1e6,
        r.writes ? static_cast<double>(r.deliveries) / static_cast<double>(r.writes) : 0.0,
        r.server_cpu, r.driver_cpu, r.server_cpu - r.driver_cpu, r.reader_cpu);
    std::fflush(stdout);
    results.push_back(r);
  }
  if (!results.empty()) {
    // Only the first mode's figure means anything: later modes reuse memory freed before them.
    std::printf("idle memory: %.1f KiB per connection (first mode)\n",
                results.front().bytes_per_connection / 1024.0);
  }
  std::printf("summary:");
  for (const auto& r : results) {
    const double per_cpu = static_cast<double>(r.deliveries) / r.server_cpu;
    std::printf(" %s %.2fM/s/core (%.2fx target)", r.mode.c_str(), per_cpu / 1e6,
                per_cpu / kTargetPerCore);
  }
  std::printf(" | target %.0fM deliveries/s/core\n", kTargetPerCore / 1e6);
  return 0;
}
