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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/zstd/zstd_dictionary.hpp"
#include "tests/support/shared_data.hpp"
#include "tools/loadgen/engine.hpp"
#include "tools/loadgen/protocol.hpp"
#include "tools/loadgen/report.hpp"

namespace jetstream::loadgen {
namespace {

// ---------------------------------------------------------------------------------------------
// Server frames, as a server writes them (unmasked).

std::string server_frame(std::uint8_t first_byte, std::string_view payload, int length_bytes = -1) {
  std::string out;
  out.push_back(static_cast<char>(first_byte));
  const std::uint64_t size = payload.size();
  if (length_bytes < 0) length_bytes = size < 126 ? 0 : size <= 0xFFFF ? 2 : 8;
  if (length_bytes == 0) {
    out.push_back(static_cast<char>(size));
  } else if (length_bytes == 2) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(size >> 8));
    out.push_back(static_cast<char>(size & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((size >> shift) & 0xFF));
  }
  out += payload;
  return out;
}

std::string text_frame(std::string_view payload) { return server_frame(0x81, payload); }

/// Records every call as one line, so two parses compare with ==.
class Recorder : public FrameHandler {
 public:
  std::size_t text_limit = kTimeUsPrefixBytes;
  std::size_t binary_limit = SIZE_MAX;
  bool stop_on_close = true;
  std::vector<std::string> calls;

  std::size_t capture_limit(Opcode opcode) override {
    return opcode == Opcode::kText ? text_limit : binary_limit;
  }
  void on_message(Opcode opcode, std::string_view kept, std::uint64_t size) override {
    calls.push_back("message " + std::to_string(static_cast<int>(opcode)) + " size " +
                    std::to_string(size) + " kept " + std::string(kept));
  }
  bool on_control(Opcode opcode, std::string_view payload) override {
    calls.push_back("control " + std::to_string(static_cast<int>(opcode)) + " " +
                    std::string(payload));
    return !(stop_on_close && opcode == Opcode::kClose);
  }
};

/// A stream with every length encoding, each opcode, a fragmented message with a ping between
/// its fragments, an empty message, and a close.
std::string mixed_stream() {
  std::string stream;
  stream += text_frame("hello");                              // 7-bit length
  stream += text_frame(std::string(300, 'a'));                // 16-bit length
  stream += server_frame(0x81, std::string(70'000, 'b'));     // 64-bit length, kept prefix only
  stream += server_frame(0x82, std::string(200, '\x01'), 8);  // binary, 64-bit (non-minimal)
  stream += server_frame(0x89, "ping!");                      // ping
  stream += server_frame(0x01, "frag-");                      // text, not FIN
  stream += server_frame(0x89, "");                           // ping between fragments
  stream += server_frame(0x00, "ment-");                      // continuation, not FIN
  stream += server_frame(0x80, "end");                        // continuation, FIN
  stream += server_frame(0x8A, "pong");                       // unsolicited pong
  stream += text_frame("");                                   // empty message
  stream += server_frame(0x88, close_payload(1001, "server shutting down"));
  return stream;
}

std::vector<std::string> parse_whole(const std::string& stream) {
  Recorder recorder;
  FrameParser parser;
  EXPECT_TRUE(parser.feed(stream, recorder)) << parser.error();
  return recorder.calls;
}

TEST(LoadgenFrameParser, ParsesEveryLengthEncodingOpcodeAndFragmentation) {
  const auto calls = parse_whole(mixed_stream());
  ASSERT_EQ(calls.size(), 10u);
  EXPECT_EQ(calls[0], "message 1 size 5 kept hello");
  EXPECT_EQ(calls[1], "message 1 size 300 kept " + std::string(300, 'a'));
  EXPECT_EQ(calls[2], "message 1 size 70000 kept " + std::string(kTimeUsPrefixBytes, 'b'));
  EXPECT_EQ(calls[3], "message 2 size 200 kept " + std::string(200, '\x01'));
  EXPECT_EQ(calls[4], "control 9 ping!");
  EXPECT_EQ(calls[5], "control 9 ");
  EXPECT_EQ(calls[6], "message 1 size 13 kept frag-ment-end");
  EXPECT_EQ(calls[7], "control 10 pong");
  EXPECT_EQ(calls[8], "message 1 size 0 kept ");
  EXPECT_EQ(calls[9], "control 8 " + close_payload(1001, "server shutting down"));
}

TEST(LoadgenFrameParser, GivesTheSameCallsForEverySplitIntoTwoReads) {
  const std::string stream = mixed_stream();
  const auto expected = parse_whole(stream);
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    Recorder recorder;
    FrameParser parser;
    ASSERT_TRUE(parser.feed(std::string_view(stream).substr(0, split), recorder)) << split;
    ASSERT_TRUE(parser.feed(std::string_view(stream).substr(split), recorder)) << split;
    ASSERT_EQ(recorder.calls, expected) << "split at " << split;
  }
}

TEST(LoadgenFrameParser, GivesTheSameCallsFedOneByteAtATimeAndInThreeReads) {
  const std::string stream = mixed_stream();
  const auto expected = parse_whole(stream);
  {
    Recorder recorder;
    FrameParser parser;
    for (const char byte : stream) ASSERT_TRUE(parser.feed(std::string_view(&byte, 1), recorder));
    EXPECT_EQ(recorder.calls, expected);
  }
  // Three reads around the small frames at the end (the big frame makes every pair too slow).
  const std::size_t tail = stream.size() - 80;
  for (std::size_t a = tail; a <= stream.size(); ++a) {
    for (std::size_t b = a; b <= stream.size(); ++b) {
      Recorder recorder;
      FrameParser parser;
      const std::string_view view(stream);
      ASSERT_TRUE(parser.feed(view.substr(0, a), recorder));
      ASSERT_TRUE(parser.feed(view.substr(a, b - a), recorder));
      ASSERT_TRUE(parser.feed(view.substr(b), recorder));
      ASSERT_EQ(recorder.calls, expected) << a << " " << b;
    }
  }
}

TEST(LoadgenFrameParser, StopsAfterACloseFrameWhenTheHandlerSaysSo) {
  const std::string stream = server_frame(0x88, close_payload(1000, "")) + text_frame("after");
  Recorder recorder;
  FrameParser parser;
  EXPECT_TRUE(parser.feed(stream, recorder));
  ASSERT_EQ(recorder.calls.size(), 1u);
}

TEST(LoadgenFrameParser, KeepsOnlyTheAskedPrefixOfLargeMessagesAcrossFragments) {
  Recorder recorder;
  recorder.text_limit = 4;
  FrameParser parser;
  const std::string stream =
      server_frame(0x01, "ab") + server_frame(0x00, "cdef") + server_frame(0x80, "gh");
  for (const char byte : stream) ASSERT_TRUE(parser.feed(std::string_view(&byte, 1), recorder));
  ASSERT_EQ(recorder.calls.size(), 1u);
  EXPECT_EQ(recorder.calls[0], "message 1 size 8 kept abcd");
}

void expect_protocol_error(const std::string& stream, const std::string& error_part) {
  Recorder recorder;
  FrameParser parser(1000);
  EXPECT_FALSE(parser.feed(stream, recorder));
  EXPECT_TRUE(parser.failed());
  EXPECT_NE(parser.error().find(error_part), std::string::npos) << parser.error();
  EXPECT_FALSE(parser.feed("x", recorder)) << "a failed parser stays failed";
}

TEST(LoadgenFrameParser, RejectsWhatAServerMustNotSend) {
  expect_protocol_error(std::string("\x81\x85\x01\x02\x03\x04hello", 11), "masked");
  expect_protocol_error(server_frame(0xC1, "x"), "reserved bits");
  expect_protocol_error(server_frame(0x83, "x"), "unknown opcode 3");
  expect_protocol_error(server_frame(0x8B, "x"), "unknown opcode 11");
  expect_protocol_error(server_frame(0x09, "x"), "fragmented control");
  expect_protocol_error(server_frame(0x89, std::string(126, 'p')), "longer than 125");
  expect_protocol_error(server_frame(0x80, "x"), "continuation frame outside");
  expect_protocol_error(server_frame(0x01, "a") + server_frame(0x81, "b"), "inside a fragmented");
  expect_protocol_error(std::string("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 10),
                        "most significant bit");
  expect_protocol_error(
      server_frame(0x01, std::string(600, 'a')) + server_frame(0x80, std::string(600, 'a')),
      "larger than 1000");
}

TEST(LoadgenClientFrames, AreMaskedAndCarryTheirPayload) {
  std::string frame;
  append_client_frame(frame, Opcode::kPong, "ping!", {0x11, 0x22, 0x33, 0x44});
  ASSERT_EQ(frame.size(), 2u + 4u + 5u);
  EXPECT_EQ(static_cast<std::uint8_t>(frame[0]), 0x8A);
  EXPECT_EQ(static_cast<std::uint8_t>(frame[1]), 0x80 | 5);
  std::string unmasked;
  for (std::size_t i = 0; i < 5; ++i) {
    unmasked.push_back(static_cast<char>(frame[6 + i] ^ frame[2 + i % 4]));
  }
  EXPECT_EQ(unmasked, "ping!");

  std::string big;
  append_client_frame(big, Opcode::kText, std::string(70'000, 'z'), {1, 2, 3, 4});
  EXPECT_EQ(static_cast<std::uint8_t>(big[1]), 0x80 | 127);
  EXPECT_EQ(big.size(), 2u + 8u + 4u + 70'000u);

  const auto close = parse_close_payload(close_payload(1001, "server shutting down"));
  ASSERT_TRUE(close);
  EXPECT_EQ(close->code, 1001);
  EXPECT_EQ(close->reason, "server shutting down");
  EXPECT_EQ(parse_close_payload("")->code, 1005);
  EXPECT_FALSE(parse_close_payload("x"));
  EXPECT_EQ(close_payload(1000, std::string(200, 'r')).size(), 125u);
}

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

TEST(LoadgenHandshake, AcceptKeyMatchesTheRfc6455Example) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const std::array<std::uint8_t, 16> nonce = {'t', 'h', 'e', ' ', 's', 'a', 'm', 'p',
                                              'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'};
  EXPECT_EQ(websocket_client_key(nonce), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

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
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
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
    const std::string accept =
        behaviour_.wrong_accept ? websocket_accept_key("wrong") : websocket_accept_key(key);
    write_all(fd,
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: " +
                  accept + "\r\n\r\n");
    write_all(fd, behaviour_.frames(id));
    if (behaviour_.send_close) write_all(fd, server_frame(0x88, close_payload(1000, "done")));
    // Read the client's masked frames until it closes the connection.
    for (;;) {
      while (in.size() >= 6) {
        const std::size_t size = static_cast<std::uint8_t>(in[1]) & 0x7F;  // clients send < 126
        if (in.size() < 6 + size) break;
        std::string payload;
        for (std::size_t i = 0; i < size; ++i)
          payload.push_back(static_cast<char>(in[6 + i] ^ in[2 + i % 4]));
        {
          std::lock_guard lock(mutex_);
          client_frames_.push_back(std::to_string(static_cast<std::uint8_t>(in[0]) & 0x0F) + ":" +
                                   payload);
        }
        in.erase(0, 6 + size);
      }
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

TEST(LoadgenEndToEnd, RejectsBadFlags) {
  EXPECT_EQ(run_tool({"--clients", "0"}).exit_code, 2);
  EXPECT_EQ(run_tool({"--url", "wss://example.com/subscribe"}).exit_code, 2);
  EXPECT_EQ(run_tool({"--compress"}).exit_code, 2);  // no dictionary to read time_us with
  EXPECT_EQ(run_tool({"--duration", "0s"}).exit_code, 2);
  EXPECT_EQ(run_tool({"--bogus"}).exit_code, 2);
}

}  // namespace
}  // namespace jetstream::loadgen
