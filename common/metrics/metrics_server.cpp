#include "common/metrics/metrics_server.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "common/log/log.hpp"
#include "common/metrics/exposition.hpp"

namespace jetstream::metrics {
namespace {

using Clock = std::chrono::steady_clock;

/// Upper bound of one poll(2) wait, so a lost wake-up still stops the loop promptly.
constexpr std::chrono::milliseconds kPollInterval{100};
/// After the response, how long unread request bytes are drained so close() does not reset
/// the connection before the client has read the response.
constexpr std::chrono::milliseconds kDrainTime{500};
constexpr std::size_t kMaxDrainBytes = 64 * 1024;
/// Longest readiness reason echoed back.
constexpr std::size_t kMaxReasonBytes = 256;
/// How long accepting pauses when the process is out of file descriptors.
constexpr std::chrono::milliseconds kAcceptBackoff{100};

void close_fd(int fd) {
  if (fd >= 0) ::close(fd);
}

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool allow_header = false;
};

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string render(const Response& response, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " ";
  out += reason_phrase(response.status);
  out += "\r\nContent-Type: " + response.content_type;
  out += "\r\nContent-Length: " + std::to_string(response.body.size());
  out += "\r\nCache-Control: no-store";
  if (response.allow_header) out += "\r\nAllow: GET, HEAD";
  out += "\r\nConnection: close\r\n\r\n";
  if (!head_only) out += response.body;
  return out;
}

Response text(int status, std::string body) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

/// A reason from a health callback, made safe for a one-line body.
std::string one_line(std::string_view reason) {
  std::string out;
  for (const char c : reason.substr(0, kMaxReasonBytes)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte == 0x7f) ? ' ' : c;
  }
  if (out.empty()) out = "unspecified";
  return out;
}

/// The end of the request head (index just past the blank line), or npos while incomplete.
std::size_t head_end(std::string_view buffer) {
  const std::size_t crlf = buffer.find("\r\n\r\n");
  const std::size_t lf = buffer.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string_view::npos;
  if (lf == std::string_view::npos || (crlf != std::string_view::npos && crlf < lf)) {
    return crlf + 4;
  }
  return lf + 2;
}

bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

struct Connection {
  enum class State : std::uint8_t { kReading, kWriting, kDraining };
  int fd = -1;
  State state = State::kReading;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  std::size_t drained = 0;
  Clock::time_point deadline;
};

int bind_socket(int family, const sockaddr* address, socklen_t length, bool dual_stack) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) {
    const int v6only = dual_stack ? 0 : 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (::bind(fd, address, length) != 0 || ::listen(fd, 64) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

/// A listening socket for `address`, or throws naming it.
int listen_on(const config::ListenAddress& address) {
  const std::string where = config::format_listen_address(address);
  if (address.host.empty()) {
    // Every interface: one dual-stack IPv6 socket, or IPv4 only where IPv6 is unavailable.
    sockaddr_in6 any6{};
    any6.sin6_family = AF_INET6;
    any6.sin6_addr = in6addr_any;
    any6.sin6_port = htons(address.port);
    int fd = bind_socket(AF_INET6, reinterpret_cast<const sockaddr*>(&any6), sizeof any6, true);
    if (fd >= 0) return fd;
    if (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL) {
      throw std::system_error(errno, std::generic_category(), "cannot listen on " + where);
    }
    sockaddr_in any4{};
    any4.sin_family = AF_INET;
    any4.sin_addr.s_addr = htonl(INADDR_ANY);
    any4.sin_port = htons(address.port);
    fd = bind_socket(AF_INET, reinterpret_cast<const sockaddr*>(&any4), sizeof any4, false);
    if (fd >= 0) return fd;
    throw std::system_error(errno, std::generic_category(), "cannot listen on " + where);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error("cannot listen on " + where + ": " + ::gai_strerror(rc));
  }
  int error = EADDRNOTAVAIL;
  int fd = -1;
  for (const addrinfo* entry = found; entry != nullptr && fd < 0; entry = entry->ai_next) {
    fd = bind_socket(entry->ai_family, entry->ai_addr, entry->ai_addrlen, false);
    if (fd < 0) error = errno;
  }
  ::freeaddrinfo(found);
  if (fd < 0) throw std::system_error(error, std::generic_category(), "cannot listen on " + where);
  return fd;
}

std::uint16_t bound_port(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

}  // namespace

class MetricsServer::Impl {
 public:
  Impl(const config::ListenAddress& address, std::shared_ptr<prometheus::Registry> registry)
      : registry_(std::move(registry)) {
    if (!registry_) throw std::invalid_argument("metrics server: registry is null");
    listen_fd_ = listen_on(address);
    port_ = bound_port(listen_fd_);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
      const int saved = errno;
      close_fd(listen_fd_);
      throw std::system_error(saved, std::generic_category(), "metrics server: eventfd");
    }
    thread_ = std::thread([this] { run(); });
  }

  ~Impl() {
    stop();
    close_fd(listen_fd_);
    close_fd(wake_fd_);
  }

  void set_health(std::function<bool()> live, std::function<HealthReport()> ready) {
    const std::lock_guard lock(health_mutex_);
    live_ = std::move(live);
    ready_ = std::move(ready);
  }

  std::uint16_t port() const { return port_; }

  void stop() {
    const std::lock_guard lock(stop_mutex_);
    stopping_.store(true);
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
      thread_.join();
      close_fd(listen_fd_);  // refuse new connections from now on
      listen_fd_ = -1;
    }
  }

 private:
  void run() {
    std::vector<Connection> connections;
    std::vector<pollfd> fds;
    Clock::time_point accept_paused_until{};
    while (!stopping_.load()) {
      const Clock::time_point now = Clock::now();
      fds.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      const bool accepting = connections.size() < kMaxConnections && now >= accept_paused_until;
      fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
      Clock::time_point wake_at = now + kPollInterval;
      for (const Connection& c : connections) {
        const short events = c.state == Connection::State::kWriting ? POLLOUT : POLLIN;
        fds.push_back({c.fd, events, 0});
        wake_at = std::min(wake_at, c.deadline);
      }
      const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
      const int ready =
          ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(timeout, 0)));
      if (ready < 0 && errno != EINTR) {
        log::warn_every(std::chrono::seconds(60), "metrics-server-poll",
                        "metrics server poll failed", {{"errno", errno}});
        std::this_thread::sleep_for(kPollInterval);
        continue;
      }
      if (stopping_.load()) break;
      if (ready <= 0) {
        expire(connections, Clock::now());
        continue;
      }
      // Connections first (their pollfds start at index 2), then new ones.
      for (std::size_t i = 0; i < connections.size(); ++i) {
        const short revents = fds[i + 2].revents;
        if (revents != 0) service(connections[i], revents);
      }
      expire(connections, Clock::now());
      if (accepting && (fds[1].revents & POLLIN) != 0) {
        accept_paused_until = accept_new(connections);
      }
    }
    for (Connection& c : connections) close_fd(c.fd);
  }

  /// Accepts what is pending, up to the connection limit. Returns until when accepting pauses.
  Clock::time_point accept_new(std::vector<Connection>& connections) {
    while (connections.size() < kMaxConnections) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        log::warn_every(std::chrono::seconds(60), "metrics-server-accept",
                        "metrics server cannot accept", {{"errno", errno}});
        return Clock::now() + kAcceptBackoff;
      }
      Connection c;
      c.fd = fd;
      c.deadline = Clock::now() + kIoTimeout;
      connections.push_back(std::move(c));
    }
    return {};
  }

  /// Closes and forgets connections that are finished (fd < 0) or past their deadline.
  static void expire(std::vector<Connection>& connections, Clock::time_point now) {
    std::erase_if(connections, [now](Connection& c) {
      if (c.fd >= 0 && now >= c.deadline) {
        ::close(c.fd);
        c.fd = -1;
      }
      return c.fd < 0;
    });
  }

  static void finish(Connection& c) {
    ::close(c.fd);
    c.fd = -1;
  }

  void service(Connection& c, short revents) {
    try {
      switch (c.state) {
        case Connection::State::kReading: read_request(c); break;
        case Connection::State::kWriting: write_response(c); break;
        case Connection::State::kDraining: drain(c); break;
      }
      if (c.fd >= 0 && (revents & (POLLERR | POLLNVAL)) != 0) finish(c);
    } catch (const std::exception& e) {
      log::warn_every(std::chrono::seconds(60), "metrics-server-error",
                      "metrics server dropped a connection", {{"error", e.what()}});
      if (c.fd >= 0) finish(c);
    }
  }

  void read_request(Connection& c) {
    char buffer[4096];
    for (;;) {
      const std::size_t room = kMaxRequestHeadBytes + 1 - c.in.size();
      const ssize_t n = ::recv(c.fd, buffer, std::min(room, sizeof buffer), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return finish(c);
      }
      if (n == 0) return finish(c);  // closed before a complete request
      c.in.append(buffer, static_cast<std::size_t>(n));
      const std::size_t end = head_end(c.in);
      if (end != std::string::npos) return respond(c, std::string_view(c.in).substr(0, end));
      if (c.in.size() > kMaxRequestHeadBytes) {
        Response response = text(431, "request head too large\n");
        return start_writing(c, render(response, false));
      }
    }
  }

  void respond(Connection& c, std::string_view head) {
    const std::string_view line = head.substr(0, head.find('\n'));
    const std::string_view request_line =
        !line.empty() && line.back() == '\r' ? line.substr(0, line.size() - 1) : line;
    const std::size_t first = request_line.find(' ');
    const std::size_t last = request_line.rfind(' ');
    if (first == std::string_view::npos || first == last) {
      return start_writing(c, render(text(400, "bad request\n"), false));
    }
    const std::string_view method = request_line.substr(0, first);
    std::string_view target = request_line.substr(first + 1, last - first - 1);
    const std::string_view version = request_line.substr(last + 1);
    if (!is_token(method) || target.empty() || target.find(' ') != std::string_view::npos ||
        (version != "HTTP/1.1" && version != "HTTP/1.0")) {
      return start_writing(c, render(text(400, "bad request\n"), false));
    }
    // Absolute form (`http://host/metrics`) is allowed by HTTP/1.1; only the path matters.
    for (const std::string_view scheme : {"http://", "https://"}) {
      if (target.substr(0, scheme.size()) == scheme) {
        target.remove_prefix(scheme.size());
        const std::size_t slash = target.find('/');
        target = slash == std::string_view::npos ? "/" : target.substr(slash);
      }
    }
    const std::string_view path = target.substr(0, target.find('?'));
    const bool head_only = method == "HEAD";
    if (method != "GET" && !head_only) {
      Response response = text(405, "method not allowed\n");
      response.allow_header = true;
      return start_writing(c, render(response, false));
    }
    start_writing(c, render(route(path), head_only));
  }

  Response route(std::string_view path) {
    if (path == "/metrics") {
      try {
        Response response = text(200, serialize(*registry_));
        response.content_type = std::string(kTextContentType);
        return response;
      } catch (const std::exception& e) {
        log::warn_every(std::chrono::seconds(60), "metrics-collect-failed",
                        "collecting metrics failed", {{"error", e.what()}});
        return text(500, "collecting metrics failed\n");
      }
    }
    if (path == "/healthz") {
      std::function<bool()> live;
      {
        const std::lock_guard lock(health_mutex_);
        live = live_;
      }
      try {
        if (!live || live()) return text(200, "ok\n");
        return text(503, "not live\n");
      } catch (const std::exception& e) {
        return text(503, "not live: " + one_line(e.what()) + "\n");
      } catch (...) {
        return text(503, "not live: check failed\n");
      }
    }
    if (path == "/readyz") {
      std::function<HealthReport()> ready;
      {
        const std::lock_guard lock(health_mutex_);
        ready = ready_;
      }
      try {
        if (!ready) return text(200, "ready\n");
        const HealthReport report = ready();
        if (report.ok) return text(200, "ready\n");
        return text(503, "not ready: " + one_line(report.reason) + "\n");
      } catch (const std::exception& e) {
        return text(503, "not ready: " + one_line(e.what()) + "\n");
      } catch (...) {
        return text(503, "not ready: check failed\n");
      }
    }
    return text(404, "not found\n");
  }

  void start_writing(Connection& c, std::string response) {
    c.state = Connection::State::kWriting;
    c.out = std::move(response);
    c.sent = 0;
    c.deadline = Clock::now() + kIoTimeout;
    write_response(c);
  }

  void write_response(Connection& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return finish(c);
      }
      c.sent += static_cast<std::size_t>(n);
    }
    // Everything is sent: half-close, then drain what the client still sends until it closes.
    ::shutdown(c.fd, SHUT_WR);
    c.state = Connection::State::kDraining;
    c.in.clear();
    c.in.shrink_to_fit();
    c.out.clear();
    c.out.shrink_to_fit();
    c.deadline = Clock::now() + kDrainTime;
    drain(c);
  }

  static void drain(Connection& c) {
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) return finish(c);
      c.drained += static_cast<std::size_t>(n);
      if (c.drained > kMaxDrainBytes) return finish(c);
    }
  }

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mutex_;
  std::mutex health_mutex_;
  std::function<bool()> live_;
  std::function<HealthReport()> ready_;
  std::thread thread_;
};

MetricsServer::MetricsServer(const config::ListenAddress& address,
                             std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>(address, std::move(registry))) {}

MetricsServer::MetricsServer(std::string host, std::uint16_t port,
                             std::shared_ptr<prometheus::Registry> registry)
    : MetricsServer(config::ListenAddress{std::move(host), port}, std::move(registry)) {}

MetricsServer::~MetricsServer() = default;

void MetricsServer::set_health(std::function<bool()> live, std::function<HealthReport()> ready) {
  impl_->set_health(std::move(live), std::move(ready));
}

std::uint16_t MetricsServer::port() const { return impl_->port(); }

void MetricsServer::stop() { impl_->stop(); }

}  // namespace jetstream::metrics
