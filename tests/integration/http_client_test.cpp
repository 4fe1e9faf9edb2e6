// Contracts of common/http: the address rules (pure), and the one HTTP client against real
// servers on loopback: operator-named hosts are reached, every other host is checked after DNS
// and after each redirect, timeouts and caps hold, gzip and chunked bodies are decoded, https
// verifies the peer.
#include "common/http/http_client.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "common/http/address_policy.hpp"
#include "common/websocket/frame_server.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_http_server.hpp"
#include "tests/support/tls_certificate.hpp"

namespace jetstream::http {
namespace {

using testing::TestHttpServer;

// ---- address rules ---------------------------------------------------------------------------

TEST(AddressRules, EachNonPublicRangeHasItsClass) {
  const std::vector<std::pair<std::string, AddressClass>> cases = {
      {"8.8.8.8", AddressClass::public_unicast},
      {"1.1.1.1", AddressClass::public_unicast},
      {"127.0.0.1", AddressClass::loopback},
      {"127.255.0.9", AddressClass::loopback},
      {"10.1.2.3", AddressClass::private_use},
      {"172.16.0.1", AddressClass::private_use},
      {"172.31.255.255", AddressClass::private_use},
      {"172.32.0.1", AddressClass::public_unicast},
      {"192.168.1.1", AddressClass::private_use},
      {"169.254.169.254", AddressClass::link_local},
      {"100.64.0.1", AddressClass::cgnat},
      {"100.127.255.255", AddressClass::cgnat},
      {"100.128.0.1", AddressClass::public_unicast},
      {"224.0.0.1", AddressClass::multicast},
      {"0.0.0.0", AddressClass::unspecified},
      {"0.1.2.3", AddressClass::unspecified},
      {"255.255.255.255", AddressClass::reserved},
      {"240.0.0.1", AddressClass::reserved},
      {"192.0.2.1", AddressClass::reserved},
      {"198.18.0.1", AddressClass::reserved},
      {"2606:4700::1111", AddressClass::public_unicast},
      {"::1", AddressClass::loopback},
      {"::", AddressClass::unspecified},
      {"fe80::1", AddressClass::link_local},
      {"fd00::1", AddressClass::private_use},
      {"fc00::1", AddressClass::private_use},
      {"ff02::1", AddressClass::multicast},
      {"2001:db8::1", AddressClass::reserved},
      {"2001::1", AddressClass::reserved},
      {"::ffff:127.0.0.1", AddressClass::loopback},
      {"::ffff:169.254.169.254", AddressClass::link_local},
      {"::ffff:8.8.8.8", AddressClass::public_unicast},
      {"64:ff9b::10.0.0.1", AddressClass::private_use},
      {"2002:7f00:0001::1", AddressClass::loopback},
      {"3000::1", AddressClass::public_unicast},
      {"4000::1", AddressClass::reserved},
  };
  for (const auto& [literal, expected] : cases) {
    const auto actual = classify_address(literal);
    ASSERT_TRUE(actual.has_value()) << literal;
    EXPECT_EQ(*actual, expected) << literal << " is " << to_string(*actual);
  }
  EXPECT_FALSE(classify_address("localhost").has_value());
  EXPECT_FALSE(classify_address("1.2.3").has_value());
}

TEST(AddressRules, OnlyOperatorNamedHostsReachNonPublicAddressesOrPlainHttp) {
  AddressPolicy policy;
  policy.allow_host("PLC.local");
  EXPECT_TRUE(policy.permits("plc.local", AddressClass::loopback));
  EXPECT_TRUE(policy.permits_plain_http("plc.LOCAL"));
  EXPECT_FALSE(policy.permits("other.local", AddressClass::loopback));
  EXPECT_FALSE(policy.permits_plain_http("other.local"));
  EXPECT_TRUE(policy.permits("other.local", AddressClass::public_unicast));
}

// ---- the client on loopback ------------------------------------------------------------------

HttpClient::Options named(std::initializer_list<std::string> hosts) {
  HttpClient::Options options;
  for (const auto& host : hosts) options.policy.allow_host(host);
  return options;
}

FetchResult fetch(HttpClient& client, const std::string& url, FetchLimits limits = {}) {
  std::promise<FetchResult> promise;
  client.get(url, limits, [&promise](FetchResult result) { promise.set_value(std::move(result)); });
  return promise.get_future().get();
}

std::string error_name(const FetchResult& result) {
  return result.error ? std::string(to_string(*result.error)) : "none";
}

std::string gzip(const std::string& text) {
  z_stream stream{};
  deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, text.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

TEST(HttpClient, FetchesFromAnOperatorNamedLoopbackHostWithPolitenessHeaders) {
  TestHttpServer server([](const TestHttpServer::Request& request) {
    return TestHttpServer::response(
        200, "hello " + request.target,
        "Content-Type: application/json\r\nRetry-After: 7\r\nRateLimit-Remaining: 99\r\n"
        "RateLimit-Reset: 1700000000\r\n");
  });
  HttpClient client(named({"127.0.0.1"}));
  const auto result =
      fetch(client, "http://127.0.0.1:" + std::to_string(server.port()) + "/did:plc:abc");
  ASSERT_FALSE(result.error) << error_name(result) << " " << result.detail;
  EXPECT_EQ(result.status, 200u);
  EXPECT_EQ(result.body, "hello /did:plc:abc");
  EXPECT_EQ(result.content_type, "application/json");
  EXPECT_EQ(result.retry_after, "7");
  EXPECT_EQ(result.ratelimit_remaining, "99");
  EXPECT_EQ(result.ratelimit_reset, "1700000000");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_NE(requests[0].head.find("User-Agent: jetstream-cpp"), std::string::npos);
  EXPECT_EQ(client.counters().in_flight.load(), 0u);
}

TEST(HttpClient, NonPublicAddressesOfHostsTheOperatorDidNotNameAreRefusedBeforeConnecting) {
  TestHttpServer server(
      [](const TestHttpServer::Request&) { return TestHttpServer::response(200, "secret"); });
  const std::string port = std::to_string(server.port());
  HttpClient client(named({}));
  struct Case {
    std::string url;
    FetchError error;
    std::optional<AddressClass> refused;
  };
  const std::vector<Case> cases = {
      {"https://127.0.0.1:" + port + "/", FetchError::forbidden_address, AddressClass::loopback},
      // a host name that resolves to loopback: checked after DNS
      {"https://localhost:" + port + "/", FetchError::forbidden_address, AddressClass::loopback},
      {"https://10.0.0.1:" + port + "/", FetchError::forbidden_address, AddressClass::private_use},
      {"https://169.254.169.254/latest/meta-data/", FetchError::forbidden_address,
       AddressClass::link_local},
      {"https://[::1]:" + port + "/", FetchError::forbidden_address, AddressClass::loopback},
      {"http://127.0.0.1:" + port + "/", FetchError::plain_http_refused, std::nullopt},
      {"ftp://127.0.0.1/", FetchError::bad_url, std::nullopt},
  };
  for (const auto& each : cases) {
    const auto result = fetch(client, each.url);
    EXPECT_EQ(result.error, each.error) << each.url << ": " << error_name(result);
    EXPECT_EQ(result.refused_class, each.refused) << each.url;
    EXPECT_TRUE(result.body.empty());
  }
  EXPECT_EQ(server.connections(), 0);
  EXPECT_GE(
      client.counters().refused_addresses[static_cast<std::size_t>(AddressClass::loopback)].load(),
      3u);
}

TEST(HttpClient, ARedirectIsCheckedLikeTheFirstRequestAndChainsAreBounded) {
  TestHttpServer inner(
      [](const TestHttpServer::Request&) { return TestHttpServer::response(200, "inner"); },
      "127.0.0.2");
  const std::string inner_port = std::to_string(inner.port());
  TestHttpServer outer([&inner_port](const TestHttpServer::Request& request) -> std::string {
    auto redirect = [](const std::string& location) {
      return "HTTP/1.1 302 Found\r\nLocation: " + location +
             "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    };
    if (request.target == "/to-https-loopback") {
      return redirect("https://127.0.0.2:" + inner_port + "/");
    }
    if (request.target == "/to-http-loopback")
      return redirect("http://127.0.0.2:" + inner_port + "/");
    if (request.target == "/to-metadata") return redirect("https://169.254.169.254/");
    if (request.target == "/relative") return redirect("/final");
    if (request.target == "/final") return TestHttpServer::response(200, "final");
    if (request.target.rfind("/loop", 0) == 0) return redirect(request.target + "x");
    return TestHttpServer::response(404, "");
  });
  const std::string base = "http://127.0.0.1:" + std::to_string(outer.port());
  HttpClient client(named({"127.0.0.1"}));

  auto result = fetch(client, base + "/to-https-loopback");
  EXPECT_EQ(result.error, FetchError::forbidden_address) << error_name(result);
  result = fetch(client, base + "/to-http-loopback");
  EXPECT_EQ(result.error, FetchError::plain_http_refused) << error_name(result);
  result = fetch(client, base + "/to-metadata");
  EXPECT_EQ(result.error, FetchError::forbidden_address) << error_name(result);
  EXPECT_EQ(result.refused_class, AddressClass::link_local);
  EXPECT_EQ(inner.connections(), 0);

  result = fetch(client, base + "/relative");
  ASSERT_FALSE(result.error) << error_name(result);
  EXPECT_EQ(result.body, "final");
  EXPECT_EQ(result.final_url, base + "/final");

  result = fetch(client, base + "/loop");
  EXPECT_EQ(result.error, FetchError::too_many_redirects) << error_name(result);
  // The first request and exactly max_redirects (3) more.
  EXPECT_EQ(outer.requests().back().target, "/loopxxx");
}

TEST(HttpClient, BodiesOverTheCapAndGzipBombsAreTooLarge) {
  const std::string big(100'000, 'a');
  TestHttpServer server([&big](const TestHttpServer::Request& request) -> std::string {
    if (request.target == "/big") return TestHttpServer::response(200, big);
    if (request.target == "/gzip") {
      return TestHttpServer::response(200, gzip("{\"id\":\"x\"}"), "Content-Encoding: gzip\r\n");
    }
    if (request.target == "/bomb") {
      return TestHttpServer::response(200, gzip(std::string(50'000'000, '0')),
                                      "Content-Encoding: gzip\r\n");
    }
    if (request.target == "/corrupt-gzip") {
      return TestHttpServer::response(200, "not gzip at all", "Content-Encoding: gzip\r\n");
    }
    if (request.target == "/br") {
      return TestHttpServer::response(200, "x", "Content-Encoding: br\r\n");
    }
    if (request.target == "/chunked") {
      return std::string(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    }
    if (request.target == "/huge-head") {
      return "HTTP/1.1 200 OK\r\nX: " + std::string(40'000, 'h') + "\r\n\r\n";
    }
    return TestHttpServer::response(404, "");
  });
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  HttpClient client(named({"127.0.0.1"}));
  FetchLimits limits;
  limits.max_body_bytes = 64 * 1024;

  EXPECT_EQ(fetch(client, base + "/big", limits).error, FetchError::too_large);
  auto result = fetch(client, base + "/gzip", limits);
  ASSERT_FALSE(result.error) << error_name(result);
  EXPECT_EQ(result.body, "{\"id\":\"x\"}");
  EXPECT_EQ(fetch(client, base + "/bomb", limits).error, FetchError::too_large);
  EXPECT_EQ(fetch(client, base + "/corrupt-gzip", limits).error, FetchError::bad_response);
  EXPECT_EQ(fetch(client, base + "/br", limits).error, FetchError::bad_response);
  EXPECT_EQ(fetch(client, base + "/huge-head", limits).error, FetchError::too_large);
  result = fetch(client, base + "/chunked", limits);
  ASSERT_FALSE(result.error) << error_name(result);
  EXPECT_EQ(result.body, "hello world");
  result = fetch(client, base + "/missing", limits);
  EXPECT_FALSE(result.error);
  EXPECT_EQ(result.status, 404u);
}

// The timeout is the contract here; the silent server never answers, so any bound works.
TEST(HttpClient, AServerThatNeverAnswersTimesOutAndAClosedPortFailsToConnect) {
  TestHttpServer silent([](const TestHttpServer::Request&) { return std::nullopt; });
  HttpClient client(named({"127.0.0.1"}));
  FetchLimits limits;
  limits.header_timeout = std::chrono::milliseconds(300);
  auto result = fetch(client, "http://127.0.0.1:" + std::to_string(silent.port()) + "/", limits);
  EXPECT_EQ(result.error, FetchError::timeout) << error_name(result);

  std::uint16_t closed_port = 0;
  {
    TestHttpServer gone([](const TestHttpServer::Request&) { return std::nullopt; });
    closed_port = gone.port();
  }
  result = fetch(client, "http://127.0.0.1:" + std::to_string(closed_port) + "/");
  EXPECT_EQ(result.error, FetchError::connect) << error_name(result);
}

TEST(HttpClient, HttpsVerifiesThePeerCertificate) {
  const auto certificate = testing::make_localhost_certificate();
  websocket::FrameServerOptions options;
  options.tls_certificate_pem = certificate.certificate_pem;
  options.tls_private_key_pem = certificate.private_key_pem;
  websocket::FrameServer server({}, options);
  const std::string url = "https://localhost:" + std::to_string(server.port()) + "/";

  // Not trusted: the handshake fails, nothing is read.
  HttpClient untrusting(named({"localhost"}));
  auto result = fetch(untrusting, url);
  EXPECT_EQ(result.error, FetchError::tls) << error_name(result) << " " << result.detail;

  // Trusted through an extra CA file: the TLS exchange completes and the server's answer is read.
  testing::TempDir dir("http-tls");
  const auto ca_file = dir.path() / "ca.pem";
  std::ofstream(ca_file) << certificate.certificate_pem;
  auto trusting_options = named({"localhost"});
  trusting_options.extra_ca_file = ca_file.string();
  HttpClient trusting(std::move(trusting_options));
  result = fetch(trusting, url);
  EXPECT_NE(result.error, FetchError::tls) << result.detail;
  EXPECT_NE(result.error, FetchError::connect) << result.detail;
  EXPECT_GT(result.status, 0u) << error_name(result) << " " << result.detail;
}

}  // namespace
}  // namespace jetstream::http

namespace jetstream::http {
namespace {

struct Streamed {
  FetchResult result;
  std::string body;
  std::size_t chunks = 0;
};

Streamed fetch_streamed(HttpClient& client, const std::string& url, FetchLimits limits = {},
                        std::size_t stop_after = 0) {
  std::promise<FetchResult> promise;
  Streamed out;
  HttpClient::Stream stream;
  stream.on_chunk = [&out, stop_after](std::span<const std::uint8_t> chunk) {
    out.body.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    ++out.chunks;
    return stop_after == 0 || out.body.size() < stop_after;
  };
  stream.done = [&promise](FetchResult result) { promise.set_value(std::move(result)); };
  client.get_stream(url, limits, std::move(stream));
  out.result = promise.get_future().get();
  return out;
}

TEST(HttpClientStream, ABodyArrivesInChunksAsItComesWhateverItsFramingOrCoding) {
  std::string big(3'000'000, 'x');
  for (std::size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  TestHttpServer server([&big](const TestHttpServer::Request& request) -> std::string {
    if (request.target == "/big") return TestHttpServer::response(200, big);
    if (request.target == "/gzip") {
      return TestHttpServer::response(200, gzip(big), "Content-Encoding: gzip\r\n");
    }
    if (request.target == "/chunked") {
      return std::string(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    }
    if (request.target == "/missing") {
      return TestHttpServer::response(404, R"({"error":"RepoNotFound"})", "Retry-After: 3\r\n");
    }
    return TestHttpServer::response(500, "no");
  });
  HttpClient client(named({"127.0.0.1"}));
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  FetchLimits limits;
  limits.max_body_bytes = 10'000'000;

  auto got = fetch_streamed(client, base + "/big", limits);
  EXPECT_EQ(got.result.error, std::nullopt) << error_name(got.result);
  EXPECT_EQ(got.result.status, 200u);
  EXPECT_TRUE(got.result.body.empty()) << "a streamed body is not kept";
  EXPECT_EQ(got.body, big);
  EXPECT_GT(got.chunks, 1u);
  EXPECT_NE(server.requests().back().head.find("ccept-Encoding: identity"), std::string::npos);

  got = fetch_streamed(client, base + "/gzip", limits);
  EXPECT_EQ(got.result.error, std::nullopt) << error_name(got.result);
  EXPECT_EQ(got.body, big);

  got = fetch_streamed(client, base + "/chunked", limits);
  EXPECT_EQ(got.body, "hello world");

  // An error status is not streamed: its text is in the result for the log line.
  got = fetch_streamed(client, base + "/missing", limits);
  EXPECT_EQ(got.result.error, std::nullopt);
  EXPECT_EQ(got.result.status, 404u);
  EXPECT_TRUE(got.body.empty());
  EXPECT_EQ(got.result.body, R"({"error":"RepoNotFound"})");
  EXPECT_EQ(got.result.retry_after, "3");
}

TEST(HttpClientStream, TheCapCountsTheStreamedBytesAndTheConsumerCanStopIt) {
  const std::string big(2'000'000, 'y');
  TestHttpServer server([&big](const TestHttpServer::Request& request) -> std::string {
    if (request.target == "/bomb") {
      return TestHttpServer::response(200, gzip(std::string(50'000'000, '0')),
                                      "Content-Encoding: gzip\r\n");
    }
    return TestHttpServer::response(200, big);
  });
  HttpClient client(named({"127.0.0.1"}));
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  FetchLimits limits;
  limits.max_body_bytes = 1'000'000;
  auto got = fetch_streamed(client, base + "/big", limits);
  EXPECT_EQ(got.result.error, FetchError::too_large) << error_name(got.result);
  EXPECT_LE(got.body.size(), limits.max_body_bytes);
  got = fetch_streamed(client, base + "/bomb", limits);
  EXPECT_EQ(got.result.error, FetchError::too_large) << error_name(got.result);
  EXPECT_LE(got.body.size(), limits.max_body_bytes);
  limits.max_body_bytes = 10'000'000;
  got = fetch_streamed(client, base + "/big", limits, /*stop_after=*/100'000);
  EXPECT_EQ(got.result.error, FetchError::aborted) << error_name(got.result);
  EXPECT_LT(got.body.size(), big.size());
}

}  // namespace
}  // namespace jetstream::http
