// jetstream-loadgen: its pure parts (frame parsing at every split, time_us extraction, latency
// percentiles, handshake keys, verification) and the whole tool against a tiny in-test websocket
// server on 127.0.0.1.
#include "tools/loadgen/loadgen.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/websocket/codec.hpp"
#include "common/zstd/zstd_dictionary.hpp"
#include "tests/support/shared_data.hpp"
#include "tools/loadgen/engine.hpp"
#include "tools/loadgen/protocol.hpp"
#include "tools/loadgen/report.hpp"

namespace jetstream::loadgen {
namespace {

// ---------------------------------------------------------------------------------------------
// Server frames, as a server writes them (unmasked).

std::string server_frame(std::uint8_t first_byte, std::string_view payload) {
  std::string out;
  websocket::append_raw_frame(out, first_byte, payload);
  return out;
}

std::string text_frame(std::string_view payload) { return server_frame(0x81, payload); }

// ---------------------------------------------------------------------------------------------
// time_us

TEST(LoadgenTimeUs, ReadsTheV1PrefixAndFallsBackToAKeySearch) {
  EXPECT_EQ(extract_time_us(R"({"did":"did:plc:abc","time_us":1725911162329308,"kind":"commit"})"),
            1725911162329308);
  EXPECT_EQ(extract_time_us(R"({"did":"did:web:example.com","time_us":7})"), 7);
  // Another key order still works (the slow path).
  EXPECT_EQ(extract_time_us(R"({"kind":"account","time_us":42,"did":"did:plc:x"})"), 42);
  // A prefix that stops inside or right after the number cannot be trusted.
  EXPECT_EQ(extract_time_us(R"({"did":"did:plc:abc","time_us":17259)"), std::nullopt);
  EXPECT_EQ(extract_time_us(R"({"did":"did:plc:abc","time_us":)"), std::nullopt);
  EXPECT_EQ(extract_time_us(R"({"did":"did:plc:abc","time_us":-5,"kind":"x"})"), std::nullopt);
  EXPECT_EQ(extract_time_us(R"({"did":"did:plc:abc","time_us":"5","kind":"x"})"), std::nullopt);
  EXPECT_EQ(extract_time_us(R"({"did":"did:plc:abc","time_us":99999999999999999999,"k":1})"),
            std::nullopt);
  EXPECT_EQ(extract_time_us(R"({"did":"did:plc:abc","kind":"commit"})"), std::nullopt);
  EXPECT_EQ(extract_time_us(""), std::nullopt);
}

TEST(LoadgenTimeUs, ReadsEveryEventOfTheRealV1Capture) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "corpus/golden_v1.jsonl");
  std::istringstream lines(testing::read_text_file(path));
  std::string line;
  int read = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const auto key = line.find("\"time_us\":");
    ASSERT_NE(key, std::string::npos);
    const std::int64_t expected = std::stoll(line.substr(key + 10));
    EXPECT_EQ(extract_time_us(line), expected) << line.substr(0, 120);
    EXPECT_EQ(extract_time_us(std::string_view(line).substr(0, kTimeUsPrefixBytes)), expected);
    ++read;
  }
  EXPECT_GT(read, 0);
}

// ---------------------------------------------------------------------------------------------
// Handshake

TEST(LoadgenHandshake, RequestCarriesTheUpgradeHeaders) {
  const std::string request = upgrade_request("127.0.0.1:6008", "/subscribe?cursor=0", "KEY");
  EXPECT_EQ(request.rfind("GET /subscribe?cursor=0 HTTP/1.1\r\nHost: 127.0.0.1:6008\r\n", 0), 0u);
  EXPECT_NE(request.find("\r\nUpgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(request.find("\r\nConnection: Upgrade\r\n"), std::string::npos);
  EXPECT_NE(request.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(request.find("\r\nSec-WebSocket-Key: KEY\r\n"), std::string::npos);
  EXPECT_TRUE(request.ends_with("\r\n\r\n"));
}

TEST(LoadgenHandshake, ChecksTheResponse) {
  const std::string accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
  const std::string ok =
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, "
      "Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      accept + "\r\n\r\n";
  const auto upgraded = check_upgrade_response(ok + "\x81\x01x", accept);
  EXPECT_EQ(upgraded.status, UpgradeCheck::Status::kUpgraded);
  EXPECT_EQ(upgraded.header_bytes, ok.size());
  for (std::size_t cut = 0; cut < ok.size(); ++cut) {
    EXPECT_EQ(check_upgrade_response(ok.substr(0, cut), accept).status,
              UpgradeCheck::Status::kIncomplete);
  }
  const auto wrong = check_upgrade_response(ok, "c3BwcHBwcHBwcHBwcHBwcHBwcHA=");
  EXPECT_EQ(wrong.status, UpgradeCheck::Status::kRejected);
  EXPECT_NE(wrong.error.find("Sec-WebSocket-Accept mismatch"), std::string::npos);

  const std::string refusal =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\n"
      "invalid cursor: banana";
  EXPECT_EQ(check_upgrade_response(refusal.substr(0, refusal.size() - 3), accept).status,
            UpgradeCheck::Status::kIncomplete);
  const auto refused = check_upgrade_response(refusal, accept);
  EXPECT_EQ(refused.status, UpgradeCheck::Status::kRejected);
  EXPECT_EQ(refused.http_status, 400);
  EXPECT_EQ(refused.error, "HTTP 400 Bad Request: invalid cursor: banana");
  EXPECT_EQ(check_upgrade_response("HTTP/1.1 101", accept, true).status,
            UpgradeCheck::Status::kRejected);
  EXPECT_EQ(check_upgrade_response("SSH-2.0\r\n\r\n", accept).status,
            UpgradeCheck::Status::kRejected);
}

TEST(LoadgenUrl, ParsesWsUrlsAndAppendsQueries) {
  const auto url = parse_ws_url("ws://127.0.0.1:6008/subscribe");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 6008);
  EXPECT_EQ(url->target, "/subscribe");
  EXPECT_EQ(url->host_header(), "127.0.0.1:6008");
  const auto v6 = parse_ws_url("WS://[::1]/x?a=1");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 80);
  EXPECT_EQ(v6->host_header(), "[::1]");
  EXPECT_EQ(parse_ws_url("ws://localhost")->target, "/");
  std::string error;
  EXPECT_FALSE(parse_ws_url("wss://jetstream.example/subscribe", &error));
  EXPECT_NE(error.find("wss"), std::string::npos);
  EXPECT_FALSE(parse_ws_url("http://x/"));
  EXPECT_FALSE(parse_ws_url("ws://x:0/"));
  EXPECT_FALSE(parse_ws_url("ws://x:99999/"));
  EXPECT_FALSE(parse_ws_url("ws://:80/"));

  EXPECT_EQ(append_query("/subscribe", "cursor=0"), "/subscribe?cursor=0");
  EXPECT_EQ(append_query("/subscribe?a=1", "?cursor=0"), "/subscribe?a=1&cursor=0");
  EXPECT_EQ(append_query("/subscribe", ""), "/subscribe");
}

// ---------------------------------------------------------------------------------------------
// Latency histogram and verification

TEST(LoadgenHistogram, PercentilesAreExactBelow256AndWithinOnePercentAbove) {
  LatencyHistogram exact;
  for (std::uint64_t v = 1; v <= 200; ++v) exact.record(v);
  EXPECT_EQ(exact.percentile(50), 100u);
  EXPECT_EQ(exact.percentile(99), 198u);
  EXPECT_EQ(exact.percentile(100), 200u);
  EXPECT_EQ(exact.percentile(0), 1u);
  EXPECT_EQ(exact.min(), 1u);
  EXPECT_EQ(exact.max(), 200u);
  EXPECT_DOUBLE_EQ(exact.mean(), 100.5);

  LatencyHistogram wide;
  for (std::uint64_t v = 1; v <= 100'000; ++v) wide.record(v * 10);  // 10 µs .. 1 s
  const auto near = [](std::uint64_t got, double want) {
    return std::abs(static_cast<double>(got) - want) <= want * 0.008 + 1;
  };
  EXPECT_TRUE(near(wide.percentile(50), 500'000)) << wide.percentile(50);
  EXPECT_TRUE(near(wide.percentile(99), 990'000)) << wide.percentile(99);
  EXPECT_TRUE(near(wide.percentile(99.9), 999'000)) << wide.percentile(99.9);
  EXPECT_EQ(wide.max(), 1'000'000u);
  EXPECT_EQ(wide.percentile(100), 1'000'000u);

  LatencyHistogram merged;
  merged.merge(exact);
  merged.merge(wide);
  EXPECT_EQ(merged.count(), 100'200u);
  EXPECT_EQ(merged.min(), 1u);
  EXPECT_EQ(merged.max(), 1'000'000u);
  EXPECT_EQ(LatencyHistogram().percentile(99), 0u);
}

TEST(LoadgenHistogram, BucketsCoverEveryValueInOrder) {
  std::vector<std::uint64_t> values;
  for (int bit = 0; bit < 64; ++bit) {
    values.push_back(std::uint64_t{1} << bit);
    values.push_back((std::uint64_t{1} << bit) + 1);
    values.push_back((std::uint64_t{2} << bit) - 1);
  }
  std::sort(values.begin(), values.end());
  std::size_t previous = 0;
  for (const std::uint64_t v : values) {
    const std::size_t bucket = LatencyHistogram::bucket_of(v);
    ASSERT_LT(bucket, LatencyHistogram::kBuckets);
    ASSERT_GE(bucket, previous) << v;
    ASSERT_GE(LatencyHistogram::bucket_high(bucket), v);
    if (bucket > 0) {
      ASSERT_LT(LatencyHistogram::bucket_high(bucket - 1), v);
    }
    previous = bucket;
  }
  LatencyHistogram h;
  h.record(UINT64_MAX);
  EXPECT_EQ(h.percentile(50), UINT64_MAX);
}

ClientResult client_with(std::initializer_list<std::int64_t> times) {
  ClientResult c;
  c.connected = true;
  for (const std::int64_t t : times) {
    if (c.timed > 0 && t <= c.last_time_us && c.order_violations++ == 0) {
      c.first_violation_previous = c.last_time_us;
      c.first_violation_next = t;
    }
    if (c.timed == 0) c.first_time_us = t;
    c.last_time_us = t;
    c.hash.add(t);
    ++c.timed;
    ++c.messages;
  }
  return c;
}

TEST(LoadgenVerify, PassesIdenticalOrderedSequences) {
  const std::vector<ClientResult> clients = {client_with({1, 2, 3}), client_with({1, 2, 3})};
  Expectations expect;
  expect.clients = 2;
  expect.expect_events = 3;
  expect.expect_same = true;
  EXPECT_TRUE(verify(clients, expect).empty());
}

TEST(LoadgenVerify, ReportsDisorderCountsDifferencesAndMissingClients) {
  std::vector<ClientResult> clients = {client_with({1, 2, 3}), client_with({1, 3, 2}),
                                       client_with({1, 2}), ClientResult{}};
  clients[3].end_reason = "connect: Connection refused";
  Expectations expect;
  expect.clients = 4;
  expect.expect_events = 3;
  expect.expect_same = true;
  const auto failures = verify(clients, expect);
  ASSERT_EQ(failures.size(), 4u);
  EXPECT_EQ(failures[0], "connected 3 of 4 clients (client 3: connect: Connection refused)");
  EXPECT_EQ(failures[1],
            "1 clients saw time_us not strictly increasing (client 1: 1 times, first 2 after 3)");
  EXPECT_NE(failures[2].find("did not get exactly 3 events (client 2: 2)"), std::string::npos);
  EXPECT_NE(failures[3].find("different event sequences"), std::string::npos);

  // A swap keeps the count and the set but not the order: the hash tells them apart.
  EXPECT_NE(client_with({1, 2, 3}).hash.value, client_with({2, 1, 3}).hash.value);
  EXPECT_NE(client_with({1, 2, 3}).hash.value, client_with({1, 2, 3, 3}).hash.value);
}

TEST(LoadgenReport, JsonSummaryIsOneValidObject) {
  std::vector<ClientResult> clients = {client_with({1, 2}), client_with({1, 2})};
  clients[1].end_reason = "close 1001 server \"shutting\" down \xff";
  RunFigures run;
  run.url = "ws://127.0.0.1:1/subscribe";
  run.clients = 2;
  run.connected = 2;
  run.elapsed_s = 2;
  LatencyHistogram latency;
  latency.record(1500);
  const std::string json = format_json(run, clients, latency, {"a \"failure\""});
  EXPECT_EQ(json.find('\n'), std::string::npos);
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  ASSERT_FALSE(doc.HasParseError()) << json;
  EXPECT_EQ(doc["deliveries"].GetUint64(), 4u);
  EXPECT_DOUBLE_EQ(doc["deliveries_per_s"].GetDouble(), 2.0);
  EXPECT_FALSE(doc["verification"]["ok"].GetBool());
  EXPECT_STREQ(doc["verification"]["failures"][0].GetString(), "a \"failure\"");
  EXPECT_EQ(doc["closed"]["close 1001 server \"shutting\" down \xef\xbf\xbd"].GetInt(), 1);
  EXPECT_EQ(with_commas(1234567), "1,234,567");
  EXPECT_EQ(with_commas(12), "12");
}

// ---------------------------------------------------------------------------------------------
// The whole tool against a tiny websocket server on 127.0.0.1.

/// Accepts connections and serves each in its own thread: completes the upgrade, writes that
/// client's prebuilt frames, optionally a close frame, then reads the client's frames (masked)
/// until it closes. Records each request line and each client frame's opcode and payload.
class TinyServer {
 public:
  struct Behaviour {
    std::function<std::string(std::size_t client)> frames;  ///< raw bytes after the upgrade
    bool send_close = true;
    bool wrong_accept = false;
  };

  explicit TinyServer(Behaviour behaviour) : behaviour_(std::move(behaviour)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listener_, 512), 0);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~TinyServer() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    for (std::thread& t : sessions_) t.join();
    ::close(listener_);
  }

  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/subscribe"; }

  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  /// The IPv4 source addresses clients connected from (host order).
  std::set<std::uint32_t> peers() {
    std::lock_guard lock(mutex_);
    return peers_;
  }
  /// "opcode:payload" of every frame clients sent, all clients together.
  std::vector<std::string> client_frames() {
    std::lock_guard lock(mutex_);
    return client_frames_;
  }

 private:
  void accept_loop() {
    std::size_t next = 0;
    while (!stopping_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      sockaddr_in peer{};
      socklen_t peer_length = sizeof peer;
      const int fd =
          ::accept4(listener_, reinterpret_cast<sockaddr*>(&peer), &peer_length, SOCK_CLOEXEC);
      if (fd < 0) continue;
      {
        std::lock_guard lock(mutex_);
        peers_.insert(ntohl(peer.sin_addr.s_addr));
      }
      sessions_.emplace_back([this, fd, id = next++] { serve(fd, id); });
    }
  }

  static bool read_some(int fd, std::string& into) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    into.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  static void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  void serve(int fd, std::size_t id) {
    std::string in;
    while (in.find("\r\n\r\n") == std::string::npos) {
      if (!read_some(fd, in)) {
        ::close(fd);
        return;
      }
    }
    const auto key_at = in.find("Sec-WebSocket-Key: ");
    const std::string key = key_at == std::string::npos
                                ? ""
                                : in.substr(key_at + 19, in.find("\r\n", key_at) - key_at - 19);
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(in.substr(0, in.find("\r\n")));
    }
    in.erase(0, in.find("\r\n\r\n") + 4);
    const std::string accept = behaviour_.wrong_accept ? websocket::websocket_accept("wrong")
                                                       : websocket::websocket_accept(key);
    write_all(fd,
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: " +
                  accept + "\r\n\r\n");
    write_all(fd, behaviour_.frames(id));
    if (behaviour_.send_close) write_all(fd, websocket::make_close_frame(1000, "done"));
    // Read the client's masked frames until it closes the connection.
    websocket::FrameParser parser(websocket::Sender::kClient, 1 << 20);
    websocket::Message message;
    for (;;) {
      std::string_view rest(in);
      while (parser.parse(rest, message) == websocket::FrameParser::Status::kMessage) {
        std::lock_guard lock(mutex_);
        client_frames_.push_back(std::to_string(static_cast<int>(message.opcode)) + ":" +
                                 message.payload);
      }
      EXPECT_FALSE(parser.error().close_code != 0) << parser.error().reason;
      in.clear();
      if (!read_some(fd, in)) break;
    }
    ::close(fd);
  }

  Behaviour behaviour_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::vector<std::thread> sessions_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
  std::vector<std::string> client_frames_;
  std::set<std::uint32_t> peers_;
};

std::string event_json(std::int64_t time_us) {
  return R"({"did":"did:plc:loadgentest","time_us":)" + std::to_string(time_us) +
         R"(,"kind":"commit","commit":{"rev":"3l","operation":"create","collection":"app.bsky.feed.like"}})";
}

/// `count` text events with time_us from now on (so latencies are small and positive).
std::string text_events(std::int64_t base, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += text_frame(event_json(base + i));
  return out;
}

struct ToolRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  rapidjson::Document json;
};

std::optional<std::string> no_environment(std::string_view) { return std::nullopt; }

ToolRun run_tool(std::vector<std::string> args) {
  args.insert(args.begin(), "jetstream-loadgen");
  args.push_back("--json");
  args.push_back("--progress=false");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  std::ostringstream err;
  ToolRun result;
  result.exit_code = loadgen_main(static_cast<int>(argv.size()), argv.data(), out, err,
                                  config::EnvLookup(no_environment));
  result.out = out.str();
  result.err = err.str();
  result.json.Parse(result.out.c_str());
  return result;
}

TEST(LoadgenEndToEnd, CountsEveryEventOfEveryClientAndExitsZero) {
  const std::int64_t base = wall_clock_us();
  TinyServer server({[&](std::size_t) { return text_events(base, 50); }, true, false});
  const auto run =
      run_tool({"--url", server.url(), "--query", "wantedCollections=app.bsky.*", "--clients", "8",
                "--threads", "2", "--duration", "20s", "--expect-events", "50", "--expect-same"});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  ASSERT_FALSE(run.json.HasParseError()) << run.out;
  EXPECT_EQ(run.json["connected"].GetUint(), 8u);
  EXPECT_EQ(run.json["deliveries"].GetUint64(), 400u);
  EXPECT_EQ(run.json["min_events_per_client"].GetUint64(), 50u);
  EXPECT_EQ(run.json["latency_us"]["count"].GetUint64(), 400u);
  EXPECT_TRUE(run.json["verification"]["ok"].GetBool());
  EXPECT_EQ(run.json["closed"]["close 1000 done"].GetInt(), 8);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 8u);
  EXPECT_EQ(requests[0], "GET /subscribe?wantedCollections=app.bsky.* HTTP/1.1");
  EXPECT_NE(run.err.find("verification  OK"), std::string::npos) << run.err;
}

TEST(LoadgenEndToEnd, ReportsAClientWhoseEventsCameOutOfOrder) {
  const std::int64_t base = wall_clock_us();
  TinyServer server({[&](std::size_t client) {
                       if (client != 2) return text_events(base, 20);
                       return text_events(base, 10) + text_frame(event_json(base + 11)) +
                              text_frame(event_json(base + 10)) + text_events(base + 12, 8);
                     },
                     true, false});
  const auto run = run_tool(
      {"--url", server.url(), "--clients", "4", "--duration", "20s", "--expect-events", "20"});
  EXPECT_EQ(run.exit_code, 1) << run.err << run.out;
  ASSERT_FALSE(run.json.HasParseError()) << run.out;
  EXPECT_EQ(run.json["deliveries"].GetUint64(), 80u);
  const std::string failure = run.json["verification"]["failures"][0].GetString();
  EXPECT_NE(failure.find("1 clients saw time_us not strictly increasing"), std::string::npos)
      << failure;
  EXPECT_NE(
      failure.find("first " + std::to_string(base + 10) + " after " + std::to_string(base + 11)),
      std::string::npos)
      << failure;
}

TEST(LoadgenEndToEnd, ExpectSameCatchesAClientWithADifferentSequence) {
  const std::int64_t base = wall_clock_us();
  TinyServer server({[&](std::size_t client) {
                       return client == 1 ? text_events(base + 1, 20) : text_events(base, 20);
                     },
                     true, false});
  const auto run = run_tool({"--url", server.url(), "--clients", "3", "--duration", "20s",
                             "--expect-events", "20", "--expect-same"});
  EXPECT_EQ(run.exit_code, 1) << run.err << run.out;
  ASSERT_FALSE(run.json.HasParseError()) << run.out;
  EXPECT_NE(std::string(run.json["verification"]["failures"][0].GetString())
                .find("2 different event sequences among 3 clients"),
            std::string::npos);
}

TEST(LoadgenEndToEnd, UntilEventsStopsOnItsOwnAndAnswersPings) {
  const std::int64_t base = wall_clock_us();
  // The server keeps the connection open after 30 events (a ping among them): only
  // --until-events can end the run before --duration.
  TinyServer server({[&](std::size_t) {
                       return text_events(base, 10) + server_frame(0x89, "are you there") +
                              text_events(base + 10, 20);
                     },
                     false, false});
  const auto started = std::chrono::steady_clock::now();
  const auto run = run_tool({"--url", server.url(), "--clients", "5", "--duration", "60s",
                             "--until-events", "25", "--expect-events", "25", "--expect-same"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_EQ(run.exit_code, 0) << run.err << run.out;
  ASSERT_FALSE(run.json.HasParseError()) << run.out;
  EXPECT_EQ(run.json["deliveries"].GetUint64(), 125u);
  EXPECT_EQ(run.json["closed"].MemberCount(), 0u) << run.out;
  // Give the sessions a moment to read what the clients sent last.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int pongs = 0;
  int closes = 0;
  for (const std::string& frame : server.client_frames()) {
    if (frame == "10:are you there") ++pongs;
    if (frame.rfind("8:", 0) == 0) ++closes;
  }
  EXPECT_EQ(pongs, 5);
  EXPECT_EQ(closes, 5);
}

TEST(LoadgenEndToEnd, FailsWhenClientsCannotConnectOrTheHandshakeIsWrong) {
  {
    TinyServer server({[](std::size_t) { return std::string(); }, true, true});
    const auto run = run_tool({"--url", server.url(), "--clients", "2", "--duration", "20s"});
    EXPECT_EQ(run.exit_code, 1) << run.err << run.out;
    ASSERT_FALSE(run.json.HasParseError()) << run.out;
    EXPECT_EQ(run.json["connected"].GetUint(), 0u);
    EXPECT_NE(std::string(run.json["verification"]["failures"][0].GetString())
                  .find("Sec-WebSocket-Accept mismatch"),
              std::string::npos);
  }
  // A port nobody listens on: bind one, note it, close it.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  const auto run = run_tool({"--url", "ws://127.0.0.1:" + std::to_string(ntohs(address.sin_port)),
                             "--clients", "3", "--duration", "20s"});
  EXPECT_EQ(run.exit_code, 1) << run.err << run.out;
  ASSERT_FALSE(run.json.HasParseError()) << run.out;
  EXPECT_EQ(run.json["closed"]["connect: Connection refused"].GetInt(), 3) << run.out;
}

TEST(LoadgenEndToEnd, ReadsTimeUsFromZstdFramesMadeWithTheV1Dictionary) {
  JETSTREAM_REQUIRE_SHARED_FILE(dictionary_path, "zstd/jetstream-v1.zdict");
  std::string error;
  const auto dictionary = zstd::Dictionary::load(dictionary_path.string(), error);
  ASSERT_TRUE(dictionary) << error;
  zstd::Compressor compressor(dictionary);
  const std::int64_t base = wall_clock_us();
  std::string frames;
  std::string compressed;
  for (int i = 0; i < 40; ++i) {
    compressor.compress(event_json(base + i), compressed);
    frames += server_frame(0x82, compressed);
  }
  TinyServer server({[&](std::size_t) { return frames; }, true, false});
  const auto run = run_tool({"--url", server.url(), "--clients", "3", "--duration", "20s",
                             "--compress", "--zstd-dictionary-path", dictionary_path.string(),
                             "--expect-events", "40", "--expect-same"});
  EXPECT_EQ(run.exit_code, 0) << run.err << run.out;
  ASSERT_FALSE(run.json.HasParseError()) << run.out;
  EXPECT_EQ(run.json["latency_us"]["count"].GetUint64(), 120u);
  EXPECT_EQ(server.requests().at(0), "GET /subscribe?compress=true HTTP/1.1");

  // Sampling: every 8th message of each client is decompressed, all are counted.
  TinyServer sampled({[&](std::size_t) { return frames; }, true, false});
  const auto sparse =
      run_tool({"--url", sampled.url(), "--clients", "2", "--duration", "20s", "--compress",
                "--zstd-dictionary-path", dictionary_path.string(), "--decompress-every", "8",
                "--expect-events", "40", "--expect-same"});
  EXPECT_EQ(sparse.exit_code, 0) << sparse.err << sparse.out;
  EXPECT_EQ(sparse.json["latency_us"]["count"].GetUint64(), 10u);
  EXPECT_EQ(sparse.json["deliveries"].GetUint64(), 80u);
}

TEST(LoadgenEndToEnd, SourceAddressesSpreadClientsOverLoopbackPeers) {
  const std::int64_t base = wall_clock_us();
  TinyServer server({[&](std::size_t) { return text_events(base, 5); }, true, false});
  const auto run = run_tool({"--url", server.url(), "--clients", "7", "--source-addresses", "3",
                             "--duration", "20s", "--expect-events", "5"});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  const std::set<std::uint32_t> expected = {0x7f000101, 0x7f000102, 0x7f000103};
  EXPECT_EQ(server.peers(), expected);
  TinyServer other({[&](std::size_t) { return text_events(base, 5); }, true, false});
  const auto second =
      run_tool({"--url", other.url(), "--clients", "2", "--source-addresses", "2",
                "--source-network", "7", "--duration", "20s", "--expect-events", "5"});
  ASSERT_EQ(second.exit_code, 0) << second.err << second.out;
  EXPECT_EQ(other.peers(), (std::set<std::uint32_t>{0x7f000701, 0x7f000702}));
}

TEST(LoadgenEndToEnd, RejectsBadFlags) {
  EXPECT_EQ(run_tool({"--source-addresses", "255"}).exit_code, 2);
  EXPECT_EQ(run_tool({"--url", "ws://localhost6:1/subscribe", "--source-addresses", "2"}).exit_code,
            2);
  EXPECT_EQ(run_tool({"--clients", "0"}).exit_code, 2);
  EXPECT_EQ(run_tool({"--url", "wss://example.com/subscribe"}).exit_code, 2);
  EXPECT_EQ(run_tool({"--compress"}).exit_code, 2);  // no dictionary to read time_us with
  EXPECT_EQ(run_tool({"--duration", "0s"}).exit_code, 2);
  EXPECT_EQ(run_tool({"--bogus"}).exit_code, 2);
}

}  // namespace
}  // namespace jetstream::loadgen
