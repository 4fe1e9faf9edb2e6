// fanout's connection layer on real sockets (127.0.0.1): HttpServer's routes and errors, the
// websocket handshake, and ClientConnection's delivery, pings, closing handshakes and drops, seen
// by a raw-socket websocket client written here (no websocket library on the client side).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/websocket/codec.hpp"
#include "services/fanout/client_connection.hpp"
#include "services/fanout/http_server.hpp"
#include "tests/support/child_process.hpp"

namespace jetstream::fanout {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using websocket::append_frame;
using websocket::make_frame;
using websocket::Opcode;

constexpr auto kWait = 10s;
constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Polls `predicate` until it holds or `timeout` passes.
template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = Clock::now() + timeout;
  while (!predicate()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// --- A raw websocket client ----------------------------------------------------------------

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool has(const std::string& name) const { return headers.count(name) != 0; }
};

/// A complete message from the server, as the codec parsed it (a frame that breaks RFC 6455 fails
/// the test). For a close, `payload` is the close payload (code and reason).
struct ServerFrame {
  std::uint8_t opcode = 0;
  std::string payload;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

class RawClient {
 public:
  /// Connects to 127.0.0.1:port. A nonzero `receive_buffer` shrinks SO_RCVBUF before connecting.
  explicit RawClient(std::uint16_t port, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    connected_ = jetstream::testing::connect_to_loopback(fd_, port);
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  void send_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  /// A client frame with first byte b0 (FIN/RSV/opcode, unchecked), masked unless told not to.
  void send_frame(std::uint8_t b0, std::string_view payload, bool masked = true) {
    send_all(encode_frame(b0, payload, masked));
  }
  static std::string encode_frame(std::uint8_t b0, std::string_view payload, bool masked = true) {
    static constexpr websocket::Mask kMask = {0x12, 0x34, 0x56, 0x78};
    std::string out;
    websocket::append_raw_frame(out, b0, payload, masked ? &kMask : nullptr);
    return out;
  }

  /// Reads until the buffer holds `n` bytes; false on EOF, error or timeout.
  bool fill(std::size_t n, std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (buffer_.size() < n) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got <= 0) return false;
      buffer_.append(chunk, static_cast<std::size_t>(got));
    }
    return true;
  }

  /// Reads exactly `n` bytes.
  std::optional<std::string> read_bytes(std::size_t n) {
    if (!fill(n)) return std::nullopt;
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
  }

  std::optional<HttpResponse> read_http(bool head_request = false) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(buffer_.size() + 1)) return std::nullopt;
    }
    HttpResponse response;
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    response.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      response.headers[lower(line.substr(0, colon))] = value;
    }
    if (!head_request && response.has("content-length")) {
      const auto length = static_cast<std::size_t>(std::stoul(response.header("content-length")));
      auto body = read_bytes(length);
      if (!body) return std::nullopt;
      response.body = *body;
    }
    return response;
  }

  std::optional<ServerFrame> read_frame(std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto frame = next_buffered_frame()) return frame;
      if (parser_.error().close_code != 0) return std::nullopt;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || !fill(buffer_.size() + 1, left)) return std::nullopt;
    }
  }

  /// The next message among the bytes already received, if one is complete.
  std::optional<ServerFrame> next_buffered_frame() {
    std::string_view input(buffer_);
    const auto status = parser_.parse(input, message_);
    std::optional<ServerFrame> frame;
    if (status == websocket::FrameParser::Status::kMessage) {  // copied before buffer_ changes
      frame = ServerFrame{static_cast<std::uint8_t>(message_.opcode), std::string(message_.view)};
      if (message_.opcode == websocket::Opcode::kClose) {
        frame->payload = websocket::close_payload(message_.close_code, message_.view);
      }
    }
    buffer_.erase(0, buffer_.size() - input.size());
    if (status == websocket::FrameParser::Status::kError) {
      ADD_FAILURE() << "the server broke RFC 6455: " << parser_.error().reason;
    }
    return frame;
  }

  /// Waits for the server to close the TCP connection (EOF or reset), discarding data.
  bool wait_closed(std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got <= 0) return true;
    }
  }

  std::string& buffer() { return buffer_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
  websocket::FrameParser parser_{websocket::Sender::kServer, std::uint64_t{1} << 30};
  websocket::Message message_;
};

std::string upgrade_request(std::string_view target, std::string_view key = kRfcKey,
                            std::string_view extra_headers = "") {
  std::string out = "GET ";
  out += target;
  out +=
      " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ";
  out += key;
  out += "\r\n";
  out += extra_headers;
  out += "\r\n";
  return out;
}

using websocket::close_payload;

// --- The server side: records what the fanout logic would see -----------------------------

class Hub {
 public:
  /// nullopt: accept. Otherwise the error to answer.
  std::function<std::optional<HttpError>(const SubscribeRequest&)> decide;

  SubscribeHandler handler() {
    return [this](const SubscribeRequest& request) -> SubscribeDecision {
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      if (decide) {
        if (auto error = decide(request)) return *error;
      }
      return SubscribeAccept{[this](const std::shared_ptr<ClientConnection>& connection) {
        const std::size_t index = add(connection);
        ConnectionHandlers handlers;
        handlers.on_text = [this, index](std::string text) {
          std::lock_guard lock(mutex_);
          texts_.emplace_back(index, std::move(text));
          changed_.notify_all();
        };
        handlers.on_closed = [this, index](const CloseInfo& info) {
          std::lock_guard lock(mutex_);
          closes_.emplace_back(index, info);
          changed_.notify_all();
        };
        handlers.on_room = [this](std::uint64_t) { writable_calls_.fetch_add(1); };
        return handlers;
      }};
    };
  }

  std::size_t add(const std::shared_ptr<ClientConnection>& connection) {
    std::lock_guard lock(mutex_);
    connections_.push_back(connection);
    changed_.notify_all();
    return connections_.size() - 1;
  }

  /// Waits until `predicate` (called with the hub's lock held) holds.
  template <class Predicate>
  bool wait(Predicate predicate, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return predicate(); });
  }

  std::shared_ptr<ClientConnection> connection(std::size_t index) {
    if (!wait([&] { return connections_.size() > index; })) return nullptr;
    std::lock_guard lock(mutex_);
    return connections_[index];
  }

  std::optional<CloseInfo> wait_closed(std::size_t index,
                                       std::chrono::milliseconds timeout = kWait) {
    std::optional<CloseInfo> found;
    wait(
        [&] {
          for (const auto& [i, info] : closes_) {
            if (i == index) found = info;
          }
          return found.has_value();
        },
        timeout);
    return found;
  }

  bool wait_texts(std::size_t count) {
    return wait([&] { return texts_.size() >= count; });
  }

  std::vector<std::string> texts() {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [i, text] : texts_) out.push_back(text);
    return out;
  }
  std::size_t text_count() {
    std::lock_guard lock(mutex_);
    return texts_.size();
  }
  std::size_t close_count() {
    std::lock_guard lock(mutex_);
    return closes_.size();
  }
  std::vector<SubscribeRequest> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::uint64_t writable_calls() const { return writable_calls_.load(); }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::shared_ptr<ClientConnection>> connections_;
  std::vector<std::pair<std::size_t, std::string>> texts_;
  std::vector<std::pair<std::size_t, CloseInfo>> closes_;
  std::vector<SubscribeRequest> requests_;
  std::atomic<std::uint64_t> writable_calls_{0};
};

class FanoutConnectionTest : public ::testing::Test {
 protected:
  void start(ConnectionOptions connection = {}, std::size_t threads = 2,
             TrustedProxies trusted_proxies = {}) {
    HttpServerOptions options;
    options.connection = connection;
    options.threads = threads;
    options.trusted_proxies = std::move(trusted_proxies);
    start_with(std::move(options));
  }
  void start_with(HttpServerOptions options) {
    options.listen = config::ListenAddress{"127.0.0.1", 0};
    server_ = std::make_unique<HttpServer>(options, hub_.handler());
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }

  std::uint16_t port() const { return server_->port(); }

  std::optional<HttpResponse> get(std::string_view request, bool head = false) {
    RawClient client(port());
    EXPECT_TRUE(client.connected());
    client.send_all(request);
    return client.read_http(head);
  }

  /// Connects a websocket client and waits until the fanout side holds its connection.
  std::unique_ptr<RawClient> open(std::size_t expected_index, int receive_buffer = 0,
                                  std::string_view target = "/subscribe") {
    auto client = std::make_unique<RawClient>(port(), receive_buffer);
    EXPECT_TRUE(client->connected());
    client->send_all(upgrade_request(target));
    const auto response = client->read_http(true);
    EXPECT_TRUE(response);
    if (!response) return nullptr;
    EXPECT_EQ(response->status, 101);
    EXPECT_TRUE(hub_.connection(expected_index) != nullptr);
    return client;
  }

  Hub hub_;
  std::unique_ptr<HttpServer> server_;
};

/// Frames laid out back to back in one buffer, as the fanout logic shares a batch.
std::vector<SharedFrame> batch_of(const std::vector<std::string>& payloads, std::string* expected) {
  auto buffer = std::make_shared<std::string>();
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  for (const auto& payload : payloads) {
    const std::size_t offset = buffer->size();
    append_frame(*buffer, Opcode::kText, payload);
    ranges.emplace_back(offset, buffer->size() - offset);
  }
  if (expected) *expected += *buffer;
  std::shared_ptr<const std::string> shared = buffer;
  std::vector<SharedFrame> frames;
  for (const auto& [offset, size] : ranges)
    frames.push_back(SharedFrame::slice(shared, offset, size));
  return frames;
}

// --- HTTP ----------------------------------------------------------------------------------

TEST_F(FanoutConnectionTest, RootAnswersWelcomeToJetstreamWithCors) {
  start();
  const auto response = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "Welcome to Jetstream");
  EXPECT_EQ(response->header("content-type"), "text/plain; charset=UTF-8");
  EXPECT_EQ(response->header("access-control-allow-origin"), "*");
  EXPECT_EQ(response->header("content-length"), "20");

  const auto head = get("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("content-length"), "20");
  EXPECT_TRUE(head->body.empty());
}

TEST_F(FanoutConnectionTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  RawClient client(port());
  client.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto first = client.read_http();
  const auto second = client.read_http();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 404);
  client.send_all("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const auto third = client.read_http();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->header("connection"), "close");
  EXPECT_TRUE(client.wait_closed());
}

TEST_F(FanoutConnectionTest, OptionsPreflightOnAnyPathGetsCorsHeaders) {
  start();
  for (const char* path : {"/subscribe", "/", "/anything"}) {
    const auto response = get(std::string("OPTIONS ") + path +
                              " HTTP/1.1\r\nHost: x\r\nOrigin: https://example.com\r\n"
                              "Access-Control-Request-Method: GET\r\n"
                              "Access-Control-Request-Headers: socket-encoding\r\n\r\n");
    ASSERT_TRUE(response) << path;
    EXPECT_EQ(response->status, 204) << path;
    EXPECT_EQ(response->header("access-control-allow-origin"), "*");
    EXPECT_EQ(response->header("access-control-allow-methods"), "GET, HEAD, OPTIONS");
    EXPECT_EQ(response->header("access-control-allow-headers"), "socket-encoding");
    EXPECT_TRUE(response->body.empty());
  }
}

TEST_F(FanoutConnectionTest, UnknownPathIs404AndWrongMethodIs405InEchoJson) {
  start();
  const auto missing = get("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, "{\"message\":\"Not Found\"}\n");
  EXPECT_EQ(missing->header("access-control-allow-origin"), "*");

  for (const char* request : {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                              "POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
                              "DELETE /subscribe HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    const auto response = get(request);
    ASSERT_TRUE(response) << request;
    EXPECT_EQ(response->status, 405) << request;
    EXPECT_EQ(response->body, "{\"message\":\"Method Not Allowed\"}\n");
  }
  EXPECT_TRUE(hub_.requests().empty());  // the subscribe handler never saw them
}

TEST_F(FanoutConnectionTest, MalformedAndOversizedRequestsAreRefused) {
  start();
  const auto garbage = get("NOT-HTTP\r\n\r\n");
  ASSERT_TRUE(garbage);
  EXPECT_EQ(garbage->status, 400);

  // A head of 1 MiB + 1 byte: over the limit (max_header_bytes counts the whole head).
  const std::string prefix = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ";
  const auto huge =
      get(prefix + std::string(1024 * 1024 + 1 - prefix.size() - 4, 'a') + "\r\n\r\n");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 431);
  EXPECT_TRUE(jetstream::testing::eventually(
      [&] { return server_->stats().request_memory_in_use == 0; }, kWait))
      << "the share is given back once the answer is written";
}

/// `/subscribe?wantedDids=...` with `count` DIDs of 32 bytes: ~440 KB for 10,000, as v1 takes.
std::string long_subscribe_target(std::size_t count, std::size_t salt = 0) {
  std::string target = "/subscribe?";
  for (std::size_t i = 0; i < count; ++i) {
    char did[64];
    std::snprintf(did, sizeof did, "%swantedDids=did:plc:%012zu%012zu", i ? "&" : "", salt, i);
    target += did;
  }
  return target;
}

TEST_F(FanoutConnectionTest, ASubscribeUrlWithTenThousandDidsReachesTheHandlerWhole) {
  start();
  const std::string target = long_subscribe_target(10'000);
  ASSERT_GT(target.size(), 400'000u);
  RawClient client(port());
  client.send_all(upgrade_request(target));
  const auto response = client.read_http(true);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 101);
  const auto requests = hub_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].query, target.substr(target.find('?') + 1));
  EXPECT_EQ(server_->stats().long_requests, 1u);
  EXPECT_TRUE(jetstream::testing::eventually(
      [&] { return server_->stats().request_memory_in_use == 0; }, kWait))
      << "the upgraded session gave its share back";
}

TEST_F(FanoutConnectionTest, LongRequestsWaitInLineForRequestMemoryAndAllAreServed) {
  HttpServerOptions options;
  options.max_request_memory = request_memory_share(options);  // one long request at a time
  start_with(options);
  constexpr std::size_t kClients = 12;
  std::vector<std::thread> threads;
  std::atomic<std::size_t> upgraded{0};
  std::atomic<std::size_t> most_in_use{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      const std::size_t in_use = server_->stats().request_memory_in_use;
      if (in_use > most_in_use.load()) most_in_use.store(in_use);
      std::this_thread::sleep_for(1ms);
    }
  });
  for (std::size_t i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      RawClient client(port());
      client.send_all(upgrade_request(long_subscribe_target(10'000, i)));
      const auto response = client.read_http(true);
      if (response && response->status == 101) upgraded.fetch_add(1);
    });
  }
  for (auto& thread : threads) thread.join();
  done.store(true);
  watcher.join();
  EXPECT_EQ(upgraded.load(), kClients);
  EXPECT_EQ(server_->stats().long_requests, kClients);
  EXPECT_LE(most_in_use.load(), request_memory_share(options));
  EXPECT_TRUE(jetstream::testing::eventually(
      [&] { return server_->stats().request_memory_in_use == 0; }, kWait));
  EXPECT_EQ(server_->stats().requests_waiting, 0u);
}

TEST_F(FanoutConnectionTest, AClientSendingItsHeadAByteASecondIsClosedAtTheHeaderTimeout) {
  HttpServerOptions options;
  options.header_timeout = 1500ms;
  start_with(options);
  RawClient slow(port());
  std::atomic<bool> closed{false};
  // The slow client drips a byte every 200 ms (faster than "a byte a second", so the timeout,
  // not a gap between bytes, is what closes it); it would need minutes to finish its head.
  std::thread dripper([&] {
    const std::string request = upgrade_request("/subscribe");
    for (std::size_t i = 0; i < request.size() - 1 && !closed.load(); ++i) {
      if (::send(slow.fd(), request.data() + i, 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(200ms);
    }
  });
  // Meanwhile other clients are served as usual.
  const auto root = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 200);
  EXPECT_TRUE(slow.wait_closed(30s)) << "still open long after the header timeout";
  closed.store(true);
  dripper.join();
  EXPECT_EQ(server_->stats().header_timeouts, 1u);
  EXPECT_TRUE(hub_.requests().empty());
}

TEST_F(FanoutConnectionTest, SubscribeErrorFromTheHandlerIsPlainTextAndComesBeforeTheHandshake) {
  start();
  hub_.decide = [](const SubscribeRequest& request) -> std::optional<HttpError> {
    if (request.query.find("cursor=x") != std::string::npos) {
      return HttpError{400, "invalid cursor: x"};
    }
    return std::nullopt;
  };
  // A full, valid websocket handshake with a bad cursor: the query error wins (v1 order).
  RawClient client(port());
  client.send_all(upgrade_request("/subscribe?cursor=x"));
  const auto response = client.read_http();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->body, "invalid cursor: x");
  EXPECT_EQ(response->header("content-type"), "text/plain; charset=UTF-8");
  EXPECT_EQ(response->header("access-control-allow-origin"), "*");
  EXPECT_FALSE(response->has("upgrade"));

  // Same on a plain GET.
  const auto plain = get("GET /subscribe?cursor=x HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->body, "invalid cursor: x");
  EXPECT_EQ(server_->stats().rejected, 2u);
}

TEST_F(FanoutConnectionTest, SubscribeWithoutAValidUpgradeGetsGorillasBadRequest) {
  start();
  const std::vector<std::string> requests = {
      "GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n",
      upgrade_request("/subscribe", "not-a-key"),
      upgrade_request("/subscribe", "dGhlIHNhbXBsZQ=="),  // 10 bytes
      "GET /subscribe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 12\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      "GET /subscribe HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  };
  for (const auto& request : requests) {
    const auto response = get(request);
    ASSERT_TRUE(response) << request;
    EXPECT_EQ(response->status, 400) << request;
    EXPECT_EQ(response->body, "Bad Request\n");
    EXPECT_EQ(response->header("sec-websocket-version"), "13");
    EXPECT_EQ(response->header("access-control-allow-origin"), "*");
  }
  EXPECT_EQ(hub_.requests().size(), requests.size());  // the handler ran first every time
  EXPECT_EQ(server_->stats().upgrades, 0u);
}

// --- Handshake -----------------------------------------------------------------------------

TEST_F(FanoutConnectionTest, HandshakeAnswers101WithTheRfcAcceptKeyAndNoExtension) {
  start();
  RawClient client(port());
  client.send_all(
      upgrade_request("/subscribe?wantedCollections=app.bsky.feed.post&compress=true", kRfcKey,
                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                      "Sec-WebSocket-Protocol: chat\r\nSocket-Encoding: zstd\r\n"
                      "X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n"));
  const auto response = client.read_http(true);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 101);
  EXPECT_EQ(response->header("sec-websocket-accept"), kRfcAccept);
  EXPECT_EQ(lower(response->header("upgrade")), "websocket");
  EXPECT_EQ(lower(response->header("connection")), "upgrade");
  EXPECT_FALSE(response->has("sec-websocket-extensions"));
  EXPECT_FALSE(response->has("sec-websocket-protocol"));

  const auto requests = hub_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].query, "wantedCollections=app.bsky.feed.post&compress=true");
  EXPECT_EQ(requests[0].socket_encoding, "zstd");
  EXPECT_EQ(requests[0].client_ip, "203.0.113.7");
  const auto connection = hub_.connection(0);
  ASSERT_TRUE(connection);
  EXPECT_EQ(connection->client_ip(), "203.0.113.7");
}

TEST_F(FanoutConnectionTest, ClientIpFallsBackToXRealIpThenThePeer) {
  start();
  {
    RawClient client(port());
    client.send_all(upgrade_request("/subscribe", kRfcKey, "X-Real-IP: [2001:db8::1]\r\n"));
    ASSERT_TRUE(client.read_http(true));
  }
  {
    RawClient client(port());
    client.send_all(upgrade_request("/subscribe"));
    ASSERT_TRUE(client.read_http(true));
  }
  const auto requests = hub_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].client_ip, "2001:db8::1");
  EXPECT_EQ(requests[1].client_ip, "127.0.0.1");
}

TEST_F(FanoutConnectionTest, ForwardingHeadersCountOnlyFromTrustedProxies) {
  const auto subscribe_with = [&](std::string_view headers) {
    RawClient client(port());
    client.send_all(upgrade_request("/subscribe", kRfcKey, headers));
    ASSERT_TRUE(client.read_http(true));
  };
  start({}, 2, *TrustedProxies::parse("10.0.0.0/8"));  // the loopback peer is not a proxy
  subscribe_with("X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 7.7.7.7\r\n");
  server_->shutdown();
  start({}, 2, *TrustedProxies::parse("127.0.0.0/8, 10.0.0.0/8"));
  subscribe_with("X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.0.0.7\r\n");
  // A proxy that adds its own line after the client's forged one (as HAProxy does).
  subscribe_with("X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 198.51.100.4\r\n");
  const auto requests = hub_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].client_ip, "127.0.0.1") << "headers from an untrusted peer were believed";
  EXPECT_EQ(requests[1].client_ip, "203.0.113.9") << "the forged first entry was believed";
  EXPECT_EQ(requests[2].client_ip, "198.51.100.4") << "only the first header line was read";
}

// --- Delivery ------------------------------------------------------------------------------

TEST_F(FanoutConnectionTest, TenThousandFramesArriveByteExactAndInOrder) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  const auto connection = hub_.connection(0);
  connection->send(SharedFrame{});  // an empty reference is ignored, never written
  std::string expected;
  std::size_t sent = 0;
  for (int batch = 0; batch < 100; ++batch) {
    std::vector<std::string> payloads;
    for (int i = 0; i < 100; ++i, ++sent) {
      // Sizes across the 7-, 16- and 64-bit length encodings.
      const std::size_t filler = sent % 997 == 0 ? 70'000 : (sent * 37) % 400;
      payloads.push_back("{\"n\":" + std::to_string(sent) + "}" + std::string(filler, 'x'));
    }
    connection->send(batch_of(payloads, &expected));
  }
  const auto received = client->read_bytes(expected.size());
  ASSERT_TRUE(received);
  EXPECT_TRUE(*received == expected) << "the byte stream differs";
  // And nothing more.
  EXPECT_FALSE(client->read_frame(200ms));
  ASSERT_TRUE(eventually([&] { return connection->stats().frames_written == 10'000; }));
  EXPECT_EQ(connection->queued_bytes(), 0u);
  EXPECT_GT(hub_.writable_calls(), 0u);
  EXPECT_LT(connection->stats().writes, 10'000u);  // gathered, not one write per frame
}

// Frames of one batch may borrow their owner from a later frame (SharedFrame). A client close
// while such a frame is half written drops the later frames: the half-written one must keep
// the bytes alive to finish (16 MiB are unmapped when freed, so a dangling read would crash).
TEST_F(FanoutConnectionTest, ClientCloseDuringAHalfWrittenBorrowingFrameKeepsItsBytesAlive) {
  start();
  auto client = open(0, 4096);
  ASSERT_TRUE(client);
  const auto connection = hub_.connection(0);
  std::string big(16u << 20, 'd');
  std::vector<SharedFrame> frames = batch_of({big, "small"}, nullptr);
  frames[0].owner.reset();  // borrows from frames[1], the only reference left
  connection->send(std::move(frames));
  ASSERT_TRUE(eventually([&] { return connection->stats().bytes_written > 0; }));
  // A ping first: its pong is queued right behind the half-written frame and owns only itself.
  client->send_frame(0x89, "between");
  std::this_thread::sleep_for(100ms);
  client->send_frame(0x88, close_payload(1000, "bye"));
  std::this_thread::sleep_for(100ms);  // the close is read while the big frame is unfinished
  const auto first = client->read_frame();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->opcode, 0x1);
  EXPECT_TRUE(first->payload == big) << "the half-written frame's bytes changed";
  const auto pong = client->read_frame();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->opcode, 0xA);
  EXPECT_EQ(pong->payload, "between");
  const auto echo = client->read_frame();
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->opcode, 0x8) << "the dropped small frame must not be sent";
  EXPECT_EQ(echo->payload, close_payload(1000, ""));
}

TEST_F(FanoutConnectionTest, TextMessagesReachOnTextIncludingFragmentedAndPipelinedOnes) {
  start();
  RawClient client(port());
  // The first frame travels in the same segment as the upgrade request.
  client.send_all(upgrade_request("/subscribe") +
                  RawClient::encode_frame(0x81, R"({"type":"options_update","payload":{}})"));
  ASSERT_TRUE(client.read_http(true));
  client.send_frame(0x01, "frag");
  client.send_frame(0x89, "interleaved ping");
  client.send_frame(0x80, "mented");
  client.send_frame(0x82, "binary is ignored");
  client.send_frame(0x81, "last");
  ASSERT_TRUE(hub_.wait_texts(3));
  const auto texts = hub_.texts();
  EXPECT_EQ(texts[0], R"({"type":"options_update","payload":{}})");
  EXPECT_EQ(texts[1], "fragmented");
  EXPECT_EQ(texts[2], "last");
  const auto pong = client.read_frame();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->opcode, 0xA);
  EXPECT_EQ(pong->payload, "interleaved ping");
  EXPECT_EQ(hub_.close_count(), 0u);
}

TEST_F(FanoutConnectionTest, PingIsAnsweredWithAPongCarryingTheSamePayload) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  client->send_frame(0x89, "are you there?");
  const auto pong = client->read_frame();
  ASSERT_TRUE(pong);
  // (A fragmented pong would have failed the codec's parser.)
  EXPECT_EQ(pong->opcode, 0xA);
  EXPECT_EQ(pong->payload, "are you there?");
}

// --- Closing -------------------------------------------------------------------------------

TEST_F(FanoutConnectionTest, ClientCloseIsEchoedThenTheServerClosesTheSocket) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  client->send_frame(0x88, close_payload(1000, "bye"));
  const auto echo = client->read_frame();
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->opcode, 0x8);
  EXPECT_EQ(echo->payload, close_payload(1000, ""));
  EXPECT_TRUE(client->wait_closed());
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kClient);
  EXPECT_EQ(info->code, 1000);
  EXPECT_EQ(info->reason, "bye");
}

TEST_F(FanoutConnectionTest, ServerCloseFollowsQueuedDataAndWaitsForTheClientsClose) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  const auto connection = hub_.connection(0);
  connection->send(batch_of({"one", "two", "three"}, nullptr));
  connection->close(1001, "server shutting down");
  connection->send(batch_of({"after close"}, nullptr));  // dropped
  for (const char* expected : {"one", "two", "three"}) {
    const auto frame = client->read_frame();
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->opcode, 0x1);
    EXPECT_EQ(frame->payload, expected);
  }
  const auto close = client->read_frame();
  ASSERT_TRUE(close);
  EXPECT_EQ(close->opcode, 0x8);
  EXPECT_EQ(close->payload, close_payload(1001, "server shutting down"));
  EXPECT_EQ(hub_.close_count(), 0u);  // still waiting for the client's close
  client->send_frame(0x88, close_payload(1001, ""));
  EXPECT_TRUE(client->wait_closed());
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kServer);
  EXPECT_EQ(info->code, 1001);
  EXPECT_EQ(info->reason, "server shutting down");
  EXPECT_EQ(connection->queued_bytes(), 0u);
}

TEST_F(FanoutConnectionTest, ServerCloseGivesUpOnASilentClientAfterTheCloseTimeout) {
  ConnectionOptions options;
  options.close_timeout = 300ms;
  start(options);
  auto client = open(0);
  ASSERT_TRUE(client);
  const auto started = Clock::now();
  hub_.connection(0)->close(1008, std::string(300, 'r'));  // reason cut to fit
  const auto close = client->read_frame();
  ASSERT_TRUE(close);
  EXPECT_EQ(close->payload.size(), 125u);
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kServer);
  EXPECT_EQ(info->reason, std::string(120, 'r') + "...") << "the one close-reason policy";
  EXPECT_GE(Clock::now() - started, 250ms);
  EXPECT_TRUE(client->wait_closed());
}

TEST_F(FanoutConnectionTest, MessageOverTheLimitClosesWith1009) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  // A frame header announcing 10,000,001 bytes, then a little of its payload.
  std::string header = {
      static_cast<char>(0x81), static_cast<char>(0xFF), 0, 0, 0, 0, 0, static_cast<char>(0x98),
      static_cast<char>(0x96), static_cast<char>(0x81), 1, 2, 3, 4};
  client->send_all(header + std::string(1000, 'z'));
  const auto close = client->read_frame();
  ASSERT_TRUE(close);
  EXPECT_EQ(close->opcode, 0x8);
  EXPECT_EQ(close->payload, close_payload(1009, "message too big"));
  EXPECT_TRUE(client->wait_closed());
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kProtocol);
  EXPECT_EQ(info->code, 1009);
}

TEST_F(FanoutConnectionTest, UnmaskedClientFrameClosesWith1002) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  client->send_frame(0x81, "not masked", false);
  const auto close = client->read_frame();
  ASSERT_TRUE(close);
  EXPECT_EQ(close->payload, close_payload(1002, "unmasked client frame"));
  EXPECT_TRUE(client->wait_closed());
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kProtocol);
  EXPECT_EQ(info->code, 1002);
  EXPECT_EQ(hub_.text_count(), 0u);
}

TEST_F(FanoutConnectionTest, ClientVanishingWithoutACloseFrameIsReportedAsDropped) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  client.reset();
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kDropped);
  EXPECT_EQ(info->code, 1006);
  EXPECT_EQ(info->reason, "connection closed by client");
}

// --- Liveness ------------------------------------------------------------------------------

TEST_F(FanoutConnectionTest, ClientThatNeverAnswersPingsIsDropped) {
  ConnectionOptions options;
  options.ping_interval = 100ms;
  options.pong_timeout = 200ms;
  start(options);
  auto client = open(0);
  ASSERT_TRUE(client);
  const auto ping = client->read_frame();
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->opcode, 0x9);
  const auto info = hub_.wait_closed(0, 5000ms);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kDropped);
  EXPECT_EQ(info->reason, "ping timeout");
  EXPECT_TRUE(client->wait_closed());
}

TEST_F(FanoutConnectionTest, ClientThatAnswersPingsStaysConnected) {
  ConnectionOptions options;
  options.ping_interval = 100ms;
  options.pong_timeout = 200ms;
  start(options);
  auto client = open(0);
  ASSERT_TRUE(client);
  int pings = 0;
  const auto until = Clock::now() + 1500ms;
  while (Clock::now() < until) {
    const auto frame = client->read_frame(100ms);
    if (!frame) continue;
    ASSERT_EQ(frame->opcode, 0x9);
    ++pings;
    client->send_frame(0x8A, frame->payload);
  }
  EXPECT_GE(pings, 4);
  EXPECT_EQ(hub_.close_count(), 0u);
}

TEST_F(FanoutConnectionTest, ClientThatStopsReadingIsDroppedWhenWritesStall) {
  ConnectionOptions options;
  options.write_stall_timeout = 300ms;
  start(options);
  auto client = open(0, 4096);
  ASSERT_TRUE(client);
  const auto connection = hub_.connection(0);
  // 32 MiB of frames referencing one shared 1 MiB payload: far more than the socket buffers.
  auto frame =
      std::make_shared<const std::string>(make_frame(Opcode::kBinary, std::string(1 << 20, 'q')));
  std::vector<SharedFrame> frames;
  for (int i = 0; i < 32; ++i) frames.push_back(SharedFrame::slice(frame, 0, frame->size()));
  connection->send(std::move(frames));
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kDropped);
  EXPECT_EQ(info->reason, "write stalled");
  EXPECT_EQ(connection->queued_bytes(), 0u);
  EXPECT_TRUE(connection->closing());
}

// --- Scale and shutdown --------------------------------------------------------------------

TEST_F(FanoutConnectionTest, TwoHundredClientsEachReceiveAThousandFramesInOrder) {
  start();
  constexpr std::size_t kClients = 200;
  constexpr std::size_t kFrames = 1000;
  constexpr std::size_t kBatch = 50;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    clients.push_back(open(i));
    ASSERT_TRUE(clients.back());
  }
  std::vector<std::shared_ptr<ClientConnection>> connections;
  for (std::size_t i = 0; i < kClients; ++i) connections.push_back(hub_.connection(i));

  std::thread sender([&] {
    for (std::size_t first = 0; first < kFrames; first += kBatch) {
      std::vector<std::string> payloads;
      for (std::size_t n = first; n < first + kBatch; ++n) payloads.push_back(std::to_string(n));
      const auto batch = batch_of(payloads, nullptr);  // one buffer shared by every client
      for (const auto& connection : connections) connection->send(batch);
    }
  });

  // One poll loop reads every client and checks its sequence.
  std::vector<std::size_t> next(kClients, 0);
  std::size_t done = 0;
  const auto deadline = Clock::now() + 30s;
  std::vector<pollfd> fds(kClients);
  while (done < kClients && Clock::now() < deadline) {
    for (std::size_t i = 0; i < kClients; ++i) fds[i] = pollfd{clients[i]->fd(), POLLIN, 0};
    if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
    for (std::size_t i = 0; i < kClients; ++i) {
      if ((fds[i].revents & POLLIN) == 0) continue;
      char chunk[65536];
      const ssize_t got = ::recv(clients[i]->fd(), chunk, sizeof chunk, MSG_DONTWAIT);
      ASSERT_GT(got, 0) << "client " << i << " lost its connection";
      clients[i]->buffer().append(chunk, static_cast<std::size_t>(got));
      while (const auto frame = clients[i]->next_buffered_frame()) {
        ASSERT_EQ(frame->opcode, 0x1);
        ASSERT_EQ(frame->payload, std::to_string(next[i])) << "client " << i;
        if (++next[i] == kFrames) ++done;
      }
    }
  }
  sender.join();
  EXPECT_EQ(done, kClients);
  EXPECT_EQ(server_->stats().upgrades, kClients);
}

TEST_F(FanoutConnectionTest, ShutdownDropsOpenWebsocketsAndStopRefusesNewConnections) {
  start();
  auto client = open(0);
  ASSERT_TRUE(client);
  server_->stop();
  std::this_thread::sleep_for(50ms);
  RawClient late(port());
  EXPECT_FALSE(late.connected());
  server_->shutdown();
  const auto info = hub_.wait_closed(0);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->initiator, CloseInitiator::kDropped);
  EXPECT_EQ(info->reason, "server shutdown");
  EXPECT_TRUE(client->wait_closed());
  // The connection object outlives the server; calls on it are harmless no-ops.
  const auto connection = hub_.connection(0);
  connection->send(batch_of({"late"}, nullptr));
  connection->close(1000, "late");
  EXPECT_EQ(connection->queued_bytes(), 0u);
}

}  // namespace
}  // namespace jetstream::fanout
