// Contracts of common/identity's DidResolver against a directory on loopback (a raw-socket server
// standing in for plc.directory; the e2e suite uses the real @did-plc/server): documents are
// fetched once and cached, concurrent requests share one fetch, failures are cached briefly,
// `refresh` refetches, did:web is fetched from its host.
#include "common/identity/did_resolver.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>

#include "tests/support/test_http_server.hpp"
#include "tests/support/test_signing_key.hpp"

namespace jetstream::identity {
namespace {

using testing::TestHttpServer;

constexpr std::string_view kAlice = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
constexpr std::string_view kBob = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";

std::string document_for(std::string_view did, const crypto::PublicKey& key) {
  return std::string(R"({"id":")") + std::string(did) +
         R"(","verificationMethod":[{"id":"#atproto","type":"Multikey","controller":")" +
         std::string(did) + R"(","publicKeyMultibase":")" + key.did_key().substr(8) +
         R"("}],"service":[{"id":"#atproto_pds","type":"AtprotoPersonalDataServer",)"
         R"("serviceEndpoint":"https://pds.example.com"}]})";
}

struct Fixture {
  std::int64_t now = 1'000'000;
  crypto::PublicKey key = testing::TestSigningKey::from_seed(crypto::Curve::k256, 7).public_key();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> hold{false};
  TestHttpServer server{[this](const TestHttpServer::Request& request) -> std::string {
    if (hold) released.wait();
    if (request.target == "/" + std::string(kAlice)) {
      return TestHttpServer::response(200, document_for(kAlice, key));
    }
    if (request.target == "/" + std::string(kBob)) {
      return TestHttpServer::response(200, document_for(kAlice, key));  // the wrong id
    }
    if (request.target == "/.well-known/did.json") {
      return TestHttpServer::response(
          200, document_for("did:web:localhost%3A" + std::to_string(server.port()), key));
    }
    return TestHttpServer::response(404, "DID not registered");
  }};
  http::HttpClient client{[] {
    http::HttpClient::Options options;
    options.policy.allow_host("127.0.0.1");
    options.policy.allow_host("localhost");
    return options;
  }()};
  IdentityCache cache{100};
  DidResolver resolver{[this] {
                         DidResolver::Options options;
                         options.plc_url = "http://127.0.0.1:" + std::to_string(server.port());
                         options.did_web_insecure = true;
                         options.document_ttl = std::chrono::seconds(3600);
                         options.failure_ttl = std::chrono::seconds(60);
                         return options;
                       }(),
                       client, cache, [this] { return now; }};

  ResolutionPtr resolve(std::string_view did, bool refresh = false) {
    std::promise<ResolutionPtr> done;
    resolver.resolve(did, refresh, [&done](ResolutionPtr r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }
};

TEST(DidResolver, FetchesADocumentOnceAndAnswersFromTheCacheUntilItExpires) {
  Fixture f;
  auto resolution = f.resolve(kAlice);
  ASSERT_TRUE(resolution->document.has_value()) << resolution->failure;
  ASSERT_TRUE(resolution->document->signing_key.has_value());
  EXPECT_TRUE(*resolution->document->signing_key == f.key);
  EXPECT_EQ(resolution->document->pds_endpoint, "https://pds.example.com");
  f.resolve(kAlice);
  EXPECT_EQ(f.server.requests().size(), 1u);
  f.now += 3601LL * 1'000'000;
  f.resolve(kAlice);
  EXPECT_EQ(f.server.requests().size(), 2u);
  f.resolve(kAlice, true);  // refresh: a key that failed to verify
  EXPECT_EQ(f.server.requests().size(), 3u);
  EXPECT_EQ(f.resolver.counters().resolved.load(), 3u);
}

TEST(DidResolver, ARefreshIsFetchedAtMostOncePerDidPerInterval) {
  // Forged commits for one DID each ask for a refresh: only the first reaches the directory.
  Fixture f;
  f.resolve(kAlice);
  f.resolve(kAlice, true);
  EXPECT_EQ(f.server.requests().size(), 2u) << "the first refresh is fetched (keys rotate)";
  for (int i = 0; i < 5; ++i) f.resolve(kAlice, true);
  EXPECT_EQ(f.server.requests().size(), 2u);
  EXPECT_EQ(f.resolver.counters().refresh_limited.load(), 5u);
  f.now += 61LL * 1'000'000;  // past min_refresh_interval (60 s)
  f.resolve(kAlice, true);
  EXPECT_EQ(f.server.requests().size(), 3u);
}

TEST(DidResolver, ConcurrentRequestsForOneDidShareOneFetch) {
  Fixture f;
  f.hold = true;
  std::vector<std::promise<ResolutionPtr>> answers(10);
  for (auto& answer : answers) {
    f.resolver.resolve(kAlice, false, [&answer](ResolutionPtr r) { answer.set_value(r); });
  }
  f.release.set_value();
  for (auto& answer : answers) EXPECT_TRUE(answer.get_future().get()->document.has_value());
  EXPECT_EQ(f.server.requests().size(), 1u);
  EXPECT_EQ(f.resolver.counters().coalesced.load(), 9u);
}

TEST(DidResolver, FailuresCarryTheirReasonAndAreCachedForTheFailureTtl) {
  Fixture f;
  auto missing = f.resolve("did:plc:cccccccccccccccccccccccc");
  EXPECT_FALSE(missing->document.has_value());
  EXPECT_EQ(missing->failure, "not_found");
  EXPECT_EQ(f.resolve(kBob)->failure, "document_wrong_id");
  EXPECT_EQ(f.resolve("did:plc:short")->failure, "bad_did_bad_plc_identifier");
  EXPECT_EQ(f.resolve("did:web:10.0.0.1")->failure, "bad_did_bad_web_host");
  const auto fetched = f.server.requests().size();
  EXPECT_EQ(fetched, 2u);  // the malformed DIDs were never fetched
  f.resolve("did:plc:cccccccccccccccccccccccc");
  EXPECT_EQ(f.server.requests().size(), fetched);
  f.now += 61LL * 1'000'000;
  f.resolve("did:plc:cccccccccccccccccccccccc");
  EXPECT_EQ(f.server.requests().size(), fetched + 1);
}

TEST(DidResolver, DidWebDocumentsComeFromTheirHost) {
  Fixture f;
  const std::string did = "did:web:localhost%3A" + std::to_string(f.server.port());
  const auto resolution = f.resolve(did);
  ASSERT_TRUE(resolution->document.has_value()) << resolution->failure;
  EXPECT_TRUE(*resolution->document->signing_key == f.key);
  EXPECT_EQ(f.server.requests().back().target, "/.well-known/did.json");
}

TEST(DidResolver, ADirectoryThatIsDownIsAFailureNotAHang) {
  std::uint16_t closed_port = 0;
  {
    TestHttpServer gone([](const TestHttpServer::Request&) { return std::nullopt; });
    closed_port = gone.port();
  }
  http::HttpClient::Options client_options;
  client_options.policy.allow_host("127.0.0.1");
  http::HttpClient client(std::move(client_options));
  IdentityCache cache(10);
  DidResolver::Options options;
  options.plc_url = "http://127.0.0.1:" + std::to_string(closed_port);
  DidResolver resolver(options, client, cache, [] { return std::int64_t{0}; });
  std::promise<ResolutionPtr> done;
  resolver.resolve(kAlice, false, [&done](ResolutionPtr r) { done.set_value(std::move(r)); });
  EXPECT_EQ(done.get_future().get()->failure, "connect");
}

TEST(DidResolver, AtMostMaxInFlightFetchesRunAtOnceAndTheRestFollowInOrder) {
  // The directory answers nothing until released: the first fetches stay open, so what waits
  // behind them is exact.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  TestHttpServer directory([released](const TestHttpServer::Request& request) {
    released.wait();
    return TestHttpServer::response(200,
                                    std::string(R"({"id":")") + request.target.substr(1) + R"("})");
  });
  http::HttpClient::Options client_options;
  client_options.policy.allow_host("127.0.0.1");
  http::HttpClient client(std::move(client_options));
  IdentityCache cache(1000);
  DidResolver::Options options;
  options.plc_url = "http://127.0.0.1:" + std::to_string(directory.port());
  options.max_in_flight = 2;
  DidResolver resolver(options, client, cache, [] { return std::int64_t{0}; });
  std::vector<std::promise<ResolutionPtr>> answers(50);
  for (std::size_t i = 0; i < answers.size(); ++i) {
    std::string did = "did:plc:" + std::string(22, 'a') + static_cast<char>('a' + i / 26) +
                      static_cast<char>('a' + i % 26);
    resolver.resolve(did, false, [&answer = answers[i]](ResolutionPtr r) { answer.set_value(r); });
  }
  EXPECT_EQ(resolver.counters().queued.load(), 48u);
  EXPECT_EQ(resolver.counters().fetches.load(), 2u);
  release.set_value();
  for (auto& answer : answers) {
    EXPECT_TRUE(answer.get_future().get()->document.has_value());
  }
  EXPECT_EQ(resolver.counters().fetches.load(), 50u);
  EXPECT_EQ(resolver.counters().queued.load(), 0u);
  EXPECT_EQ(directory.requests().size(), 50u);
}

}  // namespace
}  // namespace jetstream::identity
