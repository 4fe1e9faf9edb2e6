// WebSocketClient against FrameServer on 127.0.0.1: byte-exact delivery, cursor, faults (peer
// drop, stall, refused, 404), TLS with a certificate made at test time.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/firehose/capture.hpp"
#include "common/firehose/frame.hpp"
#include "common/websocket/client.hpp"
#include "common/websocket/frame_server.hpp"
#include "common/websocket/url.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/tls_certificate.hpp"

namespace jetstream::websocket {
namespace {

using namespace std::chrono_literals;
using Frames = std::vector<std::vector<std::uint8_t>>;

constexpr auto kWait = 10s;

Frames synthetic_frames(std::size_t count, std::size_t size) {
  Frames frames;
  for (std::size_t i = 0; i < count; ++i) {
    std::vector<std::uint8_t> frame(size);
    for (std::size_t j = 0; j < size; ++j) frame[j] = static_cast<std::uint8_t>(i * 31 + j);
    frames.push_back(std::move(frame));
  }
  return frames;
}

std::optional<Frames> corpus_frames() {
  const auto path = testing::shared_file("corpus/dev.frames");
  if (!path) return std::nullopt;
  const auto bytes = testing::read_binary_file(*path);
  const auto views = firehose::split_capture({bytes.data(), bytes.size()});
  if (!views) return std::nullopt;
  Frames frames;
  for (const auto view : *views) frames.emplace_back(view.begin(), view.end());
  return frames;
}

/// Runs an io_context on its own thread for the client under test.
class IoThread {
 public:
  IoThread() : guard_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

/// Collects what a client's handlers report, for the test thread to wait on.
class Collector {
 public:
  ClientHandlers handlers() {
    return {
        [this] {
          std::lock_guard lock(mutex_);
          opened_ = true;
          changed_.notify_all();
        },
        [this](std::vector<std::uint8_t>&& message) {
          std::lock_guard lock(mutex_);
          messages_.push_back(std::move(message));
          changed_.notify_all();
        },
        [this](const ClientError& error) {
          std::lock_guard lock(mutex_);
          ++errors_;
          error_ = error;
          changed_.notify_all();
        },
    };
  }

  bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, done);
  }
  bool wait_messages(std::size_t count) {
    return wait_for([&] { return messages_.size() >= count || error_.has_value(); }) &&
           messages_.size() >= count;
  }
  bool wait_error() {
    return wait_for([&] { return error_.has_value(); });
  }

  // Read these only after a wait returned (the mutex orders them with the io thread).
  Frames messages() {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  std::optional<ClientError> error() {
    std::lock_guard lock(mutex_);
    return error_;
  }
  int errors() {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  bool opened() {
    std::lock_guard lock(mutex_);
    return opened_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool opened_ = false;
  Frames messages_;
  std::optional<ClientError> error_;
  int errors_ = 0;
};

/// Polls `done` every 10 ms (for conditions no handler announces, such as server counters).
bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

WebSocketUrl url_of(const std::string& text) {
  std::string error;
  auto url = parse_url(text, &error);
  EXPECT_TRUE(url.has_value()) << text << ": " << error;
  return url.value_or(WebSocketUrl{});
}

// ---- URLs ------------------------------------------------------------------------------------

TEST(WebSocketUrl, ParsesSchemeHostDefaultPortAndTarget) {
  const auto url = parse_url("wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos");
  ASSERT_TRUE(url);
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->host, "bsky.network");
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->target, "/xrpc/com.atproto.sync.subscribeRepos");
  EXPECT_EQ(url->host_header(), "bsky.network");

  const auto local = parse_url("WS://127.0.0.1:8080?cursor=5");
  ASSERT_TRUE(local);
  EXPECT_FALSE(local->tls);
  EXPECT_EQ(local->port, 8080);
  EXPECT_EQ(local->target, "/?cursor=5");
  EXPECT_EQ(local->host_header(), "127.0.0.1:8080");

  const auto v6 = parse_url("ws://[::1]:9/x");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->host_header(), "[::1]:9");
  EXPECT_EQ(v6->to_string(), "ws://[::1]:9/x");
}

TEST(WebSocketUrl, RejectsOtherSchemesUserinfoBadPortsAndSpaces) {
  for (const char* bad : {"http://x/", "x", "ws://", "ws://:80/", "ws://a:0/", "ws://a:65536/",
                          "ws://a:/", "ws://u@a/", "ws://a/b c", "ws://a/#frag", "ws://[::1/"}) {
    std::string error;
    EXPECT_FALSE(parse_url(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(WebSocketUrl, HttpUrlsFollowTheSameRulesWithTheirOwnSchemes) {
  const auto url = parse_http_url("HTTPS://plc.directory/did:plc:abc");
  ASSERT_TRUE(url);
  EXPECT_TRUE(url->tls);
  EXPECT_TRUE(url->http);
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->target, "/did:plc:abc");
  EXPECT_EQ(url->to_string(), "https://plc.directory/did:plc:abc");
  const auto plain = parse_http_url("http://127.0.0.1:2582");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->to_string(), "http://127.0.0.1:2582/");
  for (const char* bad : {"ws://x/", "ftp://x/", "http://u@a/", "http://a:0/", "https://a/b c"}) {
    std::string error;
    EXPECT_FALSE(parse_http_url(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(WebSocketUrl, WithCursorReplacesOnlyTheCursorParameter) {
  EXPECT_EQ(with_cursor("/sub", 42), "/sub?cursor=42");
  EXPECT_EQ(with_cursor("/sub?cursor=1", 42), "/sub?cursor=42");
  EXPECT_EQ(with_cursor("/sub?a=1&cursor=1&b=2", 7), "/sub?a=1&b=2&cursor=7");
  EXPECT_EQ(with_cursor("/sub?cursor=1", std::nullopt), "/sub");
  EXPECT_EQ(with_cursor("/sub?a=1&cursor=1", std::nullopt), "/sub?a=1");
  EXPECT_EQ(with_cursor("/sub?cursorx=1", 0), "/sub?cursorx=1&cursor=0");
  EXPECT_EQ(query_param("/sub?a=1&cursor=9", "cursor"), "9");
  EXPECT_EQ(query_param("/sub?a=1", "cursor"), std::nullopt);
}

// ---- Plain websocket -------------------------------------------------------------------------

TEST(WebSocketClient, DeliversEveryCorpusFrameByteIdenticalAndInOrder) {
  const auto frames = corpus_frames();
  if (!frames) GTEST_FAIL() << "shared input missing: corpus/dev.frames";
  FrameServer server(*frames, {});
  IoThread io;
  Collector collector;
  WebSocketClient client(io.io(), {}, collector.handlers());
  client.connect(url_of(server.url()));
  ASSERT_TRUE(collector.wait_messages(frames->size()));
  EXPECT_TRUE(collector.opened());
  EXPECT_EQ(collector.messages(), *frames);
  // After the last frame the server closes normally: the client reports the peer's close.
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::closed_by_peer);
  EXPECT_EQ(server.connections(), 1u);
}

TEST(FrameServer, CursorStartsTheStreamAfterThatSeq) {
  const auto frames = corpus_frames();
  if (!frames) GTEST_FAIL() << "shared input missing: corpus/dev.frames";
  // Pick the 10th frame that has a seq; a cursor equal to it starts right after it.
  std::size_t index = 0;
  std::int64_t cursor = 0;
  for (std::size_t seen = 0; index < frames->size(); ++index) {
    const auto seq = firehose::peek_frame_seq({(*frames)[index].data(), (*frames)[index].size()});
    if (seq && ++seen == 10) {
      cursor = *seq;
      break;
    }
  }
  ASSERT_LT(index, frames->size());
  FrameServer server(*frames, {});
  IoThread io;
  Collector collector;
  WebSocketClient client(io.io(), {}, collector.handlers());
  auto url = url_of(server.url());
  url.target = with_cursor(url.target, cursor);
  client.connect(url);
  ASSERT_TRUE(collector.wait_error());
  const Frames expected(frames->begin() + static_cast<std::ptrdiff_t>(index) + 1, frames->end());
  EXPECT_EQ(collector.messages(), expected);
  ASSERT_EQ(server.request_targets().size(), 1u);
  EXPECT_EQ(server.request_targets()[0],
            std::string(kSubscribeReposPath) + "?cursor=" + std::to_string(cursor));
}

TEST(WebSocketClient, ServerDroppingTheConnectionIsReportedAsClosedByPeer) {
  FrameServerOptions options;
  options.drop_after = 5;
  FrameServer server(synthetic_frames(20, 100), options);
  IoThread io;
  Collector collector;
  WebSocketClient client(io.io(), {}, collector.handlers());
  client.connect(url_of(server.url()));
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::closed_by_peer)
      << collector.error()->message;
  EXPECT_EQ(collector.messages().size(), 5u);
  EXPECT_EQ(collector.errors(), 1);
}

TEST(WebSocketClient, PeerThatStopsAnsweringIsReportedAsStall) {
  FrameServerOptions options;
  options.keep_open = true;
  options.answer_pings = false;  // sends its frames, then nothing: no data, no pong
  FrameServer server(synthetic_frames(3, 10), options);
  IoThread io;
  Collector collector;
  ClientOptions client_options;
  client_options.ping_interval = 100ms;
  client_options.idle_timeout = 400ms;
  WebSocketClient client(io.io(), client_options, collector.handlers());
  const auto start = std::chrono::steady_clock::now();
  client.connect(url_of(server.url()));
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::stall) << collector.error()->message;
  EXPECT_EQ(collector.messages().size(), 3u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms);
}

TEST(WebSocketClient, QuietPeerThatAnswersPingsIsAStallOnlyWithAMessageTimeout) {
  FrameServerOptions options;
  options.keep_open = true;  // answers pings, sends nothing more
  FrameServer server(synthetic_frames(2, 10), options);
  IoThread io;
  Collector quiet_ok;
  ClientOptions pings_only;
  pings_only.ping_interval = 50ms;
  pings_only.idle_timeout = 1000ms;  // generous: a loaded CI box may delay a pong
  WebSocketClient first(io.io(), pings_only, quiet_ok.handlers());
  first.connect(url_of(server.url()));

  Collector stalls;
  ClientOptions with_message_timeout = pings_only;
  with_message_timeout.message_timeout = 1200ms;
  WebSocketClient second(io.io(), with_message_timeout, stalls.handlers());
  second.connect(url_of(server.url()));

  ASSERT_TRUE(stalls.wait_error());
  EXPECT_EQ(stalls.error()->category, ErrorCategory::stall);
  // Pongs keep the first one alive well past its idle timeout (1.8 s > 1 s).
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(quiet_ok.errors(), 0) << quiet_ok.error()->message;
  EXPECT_EQ(quiet_ok.messages().size(), 2u);
}

TEST(WebSocketClient, RefusedConnectionIsReportedAsConnect) {
  std::uint16_t port = 0;
  {
    FrameServer server({}, {});
    port = server.port();
  }  // stopped: nothing listens there now
  IoThread io;
  Collector collector;
  WebSocketClient client(io.io(), {}, collector.handlers());
  client.connect(url_of("ws://127.0.0.1:" + std::to_string(port) + "/"));
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::connect) << collector.error()->message;
  EXPECT_FALSE(collector.opened());
}

TEST(WebSocketClient, UnresolvableHostIsReportedAsDns) {
  IoThread io;
  Collector collector;
  ClientOptions options;
  options.connect_timeout = 3s;
  WebSocketClient client(io.io(), options, collector.handlers());
  client.connect(url_of("ws://no-such-host.invalid/"));
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::dns) << collector.error()->message;
}

TEST(WebSocketClient, WrongPathIsReportedAsHandshakeWithTheHttpStatus) {
  FrameServer server(synthetic_frames(1, 10), {});
  IoThread io;
  Collector collector;
  WebSocketClient client(io.io(), {}, collector.handlers());
  auto url = url_of(server.url());
  url.target = "/xrpc/other";
  client.connect(url);
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::handshake);
  EXPECT_NE(collector.error()->message.find("404"), std::string::npos)
      << collector.error()->message;
  EXPECT_EQ(server.connections(), 0u);
}

TEST(WebSocketClient, MessageOverTheLimitIsReportedAsProtocol) {
  FrameServer server(synthetic_frames(2, 4096), {});
  IoThread io;
  Collector collector;
  ClientOptions options;
  options.max_message_bytes = 1024;
  WebSocketClient client(io.io(), options, collector.handlers());
  client.connect(url_of(server.url()));
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::protocol) << collector.error()->message;
  EXPECT_TRUE(collector.messages().empty());
}

TEST(WebSocketClient, CloseEndsTheConnectionWithoutReportingAnError) {
  FrameServerOptions options;
  options.keep_open = true;
  FrameServer server(synthetic_frames(3, 10), options);
  IoThread io;
  Collector collector;
  {
    WebSocketClient client(io.io(), {}, collector.handlers());
    client.connect(url_of(server.url()));
    ASSERT_TRUE(collector.wait_messages(3));
    client.close();
  }
  ASSERT_TRUE(poll_until([&] { return server.open_connections() == 0; }, 5s))
      << "server still sees the connection open";
  EXPECT_EQ(collector.errors(), 0);
}

TEST(FrameServer, RateLimitPacesTheFrames) {
  FrameServerOptions options;
  options.rate = 100;  // 20 frames take at least 190 ms
  FrameServer server(synthetic_frames(20, 10), options);
  IoThread io;
  Collector collector;
  WebSocketClient client(io.io(), {}, collector.handlers());
  const auto start = std::chrono::steady_clock::now();
  client.connect(url_of(server.url()));
  ASSERT_TRUE(collector.wait_messages(20));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 185ms);
}

// ---- TLS -------------------------------------------------------------------------------------

class WebSocketTls : public ::testing::Test {
 protected:
  void SetUp() override {
    certificate_ = testing::make_localhost_certificate();
    ASSERT_NE(certificate_.certificate_pem.find("BEGIN CERTIFICATE"), std::string::npos);
    ca_file_ = std::filesystem::temp_directory_path() /
               ("jetstream-websocket-test-ca-" + std::to_string(::getpid()) + ".pem");
    std::ofstream(ca_file_) << certificate_.certificate_pem;
  }
  void TearDown() override { std::filesystem::remove(ca_file_); }

  FrameServerOptions tls_options() const {
    FrameServerOptions options;
    options.tls_certificate_pem = certificate_.certificate_pem;
    options.tls_private_key_pem = certificate_.private_key_pem;
    return options;
  }

  testing::TestCertificate certificate_;
  std::filesystem::path ca_file_;
};

TEST_F(WebSocketTls, ClientTrustingTheTestCaConnectsOverWssAndReceivesFrames) {
  const auto frames = synthetic_frames(10, 300);
  FrameServer server(frames, tls_options());
  ASSERT_EQ(server.url().rfind("wss://localhost:", 0), 0u) << server.url();
  IoThread io;
  Collector collector;
  ClientOptions options;
  options.extra_ca_file = ca_file_.string();
  WebSocketClient client(io.io(), options, collector.handlers());
  client.connect(url_of(server.url()));
  ASSERT_TRUE(collector.wait_messages(frames.size()))
      << (collector.error() ? collector.error()->message : "no error");
  EXPECT_EQ(collector.messages(), frames);
}

TEST_F(WebSocketTls, ClientWithDefaultTrustRejectsTheSelfSignedCertificateAsTls) {
  FrameServer server(synthetic_frames(3, 10), tls_options());
  IoThread io;
  Collector collector;
  WebSocketClient client(io.io(), {}, collector.handlers());
  client.connect(url_of(server.url()));
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::tls) << collector.error()->message;
  EXPECT_TRUE(collector.messages().empty());
  EXPECT_EQ(server.connections(), 0u);
}

TEST_F(WebSocketTls, CertificateForAnotherHostNameIsRejectedAsTls) {
  FrameServer server(synthetic_frames(3, 10), tls_options());
  IoThread io;
  Collector collector;
  ClientOptions options;
  options.extra_ca_file = ca_file_.string();
  WebSocketClient client(io.io(), options, collector.handlers());
  // Same server, reached by IP: the certificate names only "localhost".
  client.connect(url_of("wss://127.0.0.1:" + std::to_string(server.port()) + kSubscribeReposPath));
  ASSERT_TRUE(collector.wait_error());
  EXPECT_EQ(collector.error()->category, ErrorCategory::tls) << collector.error()->message;
}

}  // namespace
}  // namespace jetstream::websocket
