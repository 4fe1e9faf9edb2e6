// A tiny HTTP/1.1 server for tests, on raw POSIX sockets (no Beast: cheap to compile): it answers
// each request with whatever bytes the test's handler returns, so tests can serve well-formed,
// hostile, slow or silent responses. One thread; one request per connection.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace jetstream::testing {

class TestHttpServer {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::string head;  ///< the whole request head, for header checks
  };
  /// Returns the raw response bytes; nullopt holds the connection open, silent, until stop.
  using Handler = std::function<std::optional<std::string>(const Request&)>;

  explicit TestHttpServer(Handler handler, const std::string& address = "127.0.0.1")
      : handler_(std::move(handler)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int on = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in bound{};
    bound.sin_family = AF_INET;
    ::inet_pton(AF_INET, address.c_str(), &bound.sin_addr);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&bound), sizeof bound) != 0 ||
        ::listen(listener_, 64) != 0) {
      throw std::runtime_error("TestHttpServer cannot listen on " + address);
    }
    socklen_t size = sizeof bound;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &size);
    port_ = ntohs(bound.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TestHttpServer() {
    stopping_ = true;
    thread_.join();
    ::close(listener_);
    for (const int fd : held_) ::close(fd);
  }
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  /// A complete response with Content-Length.
  static std::string response(int status, const std::string& body,
                              const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
           "Connection: close\r\n\r\n" + body;
  }

 private:
  void run() {
    while (!stopping_) {
      pollfd ready{listener_, POLLIN, 0};
      if (::poll(&ready, 1, 20) <= 0) continue;
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      serve(fd);
    }
  }

  void serve(int fd) {
    std::string head;
    char chunk[4096];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < (1u << 20)) {
      pollfd ready{fd, POLLIN, 0};
      if (::poll(&ready, 1, 2000) <= 0) break;
      const ssize_t got = ::read(fd, chunk, sizeof chunk);
      if (got <= 0) break;
      head.append(chunk, static_cast<std::size_t>(got));
    }
    Request request;
    request.head = head;
    const auto space = head.find(' ');
    const auto second = head.find(' ', space + 1);
    if (space != std::string::npos && second != std::string::npos) {
      request.method = head.substr(0, space);
      request.target = head.substr(space + 1, second - space - 1);
    }
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(request);
    }
    const auto answer = handler_(request);
    if (!answer) {
      held_.push_back(fd);
      return;
    }
    std::size_t sent = 0;
    while (sent < answer->size()) {
      const ssize_t wrote = ::send(fd, answer->data() + sent, answer->size() - sent, MSG_NOSIGNAL);
      if (wrote <= 0) break;
      sent += static_cast<std::size_t>(wrote);
    }
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }

  Handler handler_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  std::vector<int> held_;
  std::thread thread_;
};

}  // namespace jetstream::testing
