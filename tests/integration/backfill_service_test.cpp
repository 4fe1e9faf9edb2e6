// jetstream-backfill end to end on loopback, with the real decode binary: a PDS and a PLC
// directory played by TestHttpServer (listRepos pages, getRepo serving the real repository
// export, DID documents), the service embedded. What a user sees: the repository's records in
// decode's compacted twin, nothing fetched again after a restart, a PDS that answers 429 or 500
// waited for, accounts that are gone given up by name, and DID documents that point at
// addresses the operator did not name refused with nothing fetched.
#include "services/backfill/backfill_service.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "services/backfill/backfill_store.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/replay_client.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/signed_frames.hpp"
#include "tests/support/test_http_server.hpp"
#include "tests/support/test_signing_key.hpp"

namespace jetstream::backfill {
namespace {

using namespace std::chrono_literals;
using testing::TestHttpServer;

constexpr std::string_view kRepoDid = "did:plc:53iucmf5ldftgqyf2ac7hmhd";
constexpr std::string_view kGone = "did:plc:gggggggggggggggggggggggg";      // RepoNotFound
constexpr std::string_view kInactive = "did:plc:iiiiiiiiiiiiiiiiiiiiiiii";  // listed inactive
constexpr std::string_view kEvilLoopback = "did:plc:llllllllllllllllllllllll";
constexpr std::string_view kEvilPrivate = "did:plc:pppppppppppppppppppppppp";
constexpr std::string_view kEvilName = "did:plc:nnnnnnnnnnnnnnnnnnnnnnnn";

/// A DID document naming `pds`, and (when given) `key` as its #atproto signing key.
std::string document(std::string_view did, const std::string& pds,
                     const testing::TestSigningKey* key = nullptr) {
  std::string methods;
  if (key != nullptr) {
    methods = R"("verificationMethod":[{"id":"#atproto","type":"Multikey","controller":")" +
              std::string(did) + R"(","publicKeyMultibase":")" + key->did_key().substr(8) +
              R"("}],)";
  }
  return std::string(R"({"id":")") + std::string(did) + R"(",)" + methods +
         R"("service":[{"id":"#atproto_pds","type":"AtprotoPersonalDataServer",)"
         R"("serviceEndpoint":")" +
         pds + R"("}]})";
}

/// A PDS on 127.0.0.1: one page of listRepos, then an empty one; getRepo of the export.
class FakePds {
 public:
  explicit FakePds(std::vector<std::uint8_t> car)
      : car_(std::move(car)),
        server_([this](const TestHttpServer::Request& request) { return answer(request); }) {}

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  int get_repos() const { return get_repos_.load(); }
  /// The next `n` getRepo answers are 429 (Retry-After: 1), then `m` are 500.
  void busy(int n, int m) {
    busy_429_ = n;
    busy_500_ = m;
  }

 private:
  std::optional<std::string> answer(const TestHttpServer::Request& request) {
    if (request.target.starts_with("/xrpc/com.atproto.sync.listRepos")) {
      if (request.target.find("cursor=") != std::string::npos) {
        return TestHttpServer::response(200, R"({"repos":[]})");
      }
      return TestHttpServer::response(
          200, std::string(R"({"cursor":"p1","repos":[{"did":")") + std::string(kRepoDid) +
                   R"(","head":"x","rev":"3migo7fijwi2k","active":true},{"did":")" +
                   std::string(kGone) + R"(","head":"x","rev":"x"},{"did":")" +
                   std::string(kInactive) +
                   R"(","head":"x","rev":"x","active":false,"status":"deactivated"}]})");
    }
    if (request.target.starts_with("/xrpc/com.atproto.sync.getRepo")) {
      ++get_repos_;
      if (busy_429_ > 0) {
        --busy_429_;
        return TestHttpServer::response(429, R"({"error":"RateLimitExceeded"})",
                                        "Retry-After: 1\r\n");
      }
      if (busy_500_ > 0) {
        --busy_500_;
        return TestHttpServer::response(500, R"({"error":"InternalServerError"})");
      }
      if (request.target.find(std::string("did%3Aplc%3A") + std::string(kRepoDid.substr(8))) !=
          std::string::npos) {
        return TestHttpServer::response(200, std::string(car_.begin(), car_.end()),
                                        "Content-Type: application/vnd.ipld.car\r\n");
      }
      return TestHttpServer::response(400, R"({"error":"RepoNotFound","message":"no repo"})");
    }
    return TestHttpServer::response(404, "{}");
  }

  std::vector<std::uint8_t> car_;
  std::atomic<int> get_repos_{0};
  std::atomic<int> busy_429_{0};
  std::atomic<int> busy_500_{0};
  TestHttpServer server_;
};

class BackfillServiceTest : public ::testing::Test {
 protected:
  BackfillServiceTest()
      : data_dir_(std::filesystem::temp_directory_path() /
                  ("jetstream-backfill-test-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(data_dir_);
  }
  ~BackfillServiceTest() override { std::filesystem::remove_all(data_dir_); }

  BackfillOptions options_for(const testing::support::DecodeUnderTest& decode,
                              const std::string& plc) {
    BackfillOptions options;
    options.plc_url = plc;
    options.data_dir = data_dir_.string();
    options.decode_backfill_endpoint = decode.backfill_endpoint;
    options.decode_events_endpoint = decode.events_endpoint;
    options.metrics_listen_addr = config::ListenAddress{"127.0.0.1", 0};
    options.progress_interval = 1s;
    options.fetch_threads = 1;
    options.log_level = "warn";
    return options;
  }

  static std::string metrics(const BackfillService& service) {
    return testing::http_get(service.metrics_port(), "/metrics").body;
  }

  zmq::context_t context_{1};
  std::filesystem::path data_dir_;
};

TEST_F(BackfillServiceTest, APdsIsBackfilledIntoTheTwinOnceAndBusyAnswersAreWaitedFor) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  FakePds pds(testing::read_binary_file(car_path));
  pds.busy(1, 1);  // the first getRepo: 429 with Retry-After, the second: 500
  TestHttpServer plc([&pds](const TestHttpServer::Request& request) -> std::optional<std::string> {
    return TestHttpServer::response(200, document(request.target.substr(1), pds.url()));
  });
  testing::support::FakeIngest ingest(context_, {}, 2ms);
  testing::support::DecodeUnderTest decode(ingest, "backfill-service",
                                           {"--compact-collections", "app.bsky.feed.*"});
  ASSERT_TRUE(decode.start());

  BackfillOptions options = options_for(decode, "http://127.0.0.1:" + std::to_string(plc.port()));
  options.pds = pds.url();
  std::string error;
  auto service = BackfillService::start(options, error);
  ASSERT_TRUE(service) << error;
  ASSERT_TRUE(service->wait_done(180s)) << metrics(*service) << decode.process.log();
  const std::string figures = metrics(*service);
  EXPECT_EQ(testing::metric_value(figures, R"(jetstream_backfill_repos{state="done"})"), 1)
      << figures;
  EXPECT_EQ(testing::metric_value(figures,
                                  R"(jetstream_backfill_repos_failed_total{reason="not_found"})"),
            1)
      << figures;
  EXPECT_EQ(
      testing::metric_value(figures, R"(jetstream_backfill_fetches_total{outcome="host_busy"})"), 2)
      << figures;
  EXPECT_EQ(testing::metric_value(figures, R"(jetstream_backfill_records_total{result="applied"})"),
            19)
      << figures;
  service->stop();
  service.reset();

  testing::support::ReplayClient replay(context_, decode.replay_endpoint);
  proto::ReplayRequest snapshot;
  snapshot.snapshot = true;
  EXPECT_EQ(replay.read_all(snapshot).size(), 19u);
  EXPECT_TRUE(replay.read_all({}).empty()) << "v1 replay never carries backfilled records";

  {
    auto store = BackfillStore::open(data_dir_.string() + "/store", error);
    ASSERT_TRUE(store) << error;
    const auto row = store->repo(kRepoDid);
    ASSERT_TRUE(row);
    EXPECT_EQ(row->status, RepoStatus::done);
    EXPECT_EQ(row->rev, "3migo7fijwi2k");
    EXPECT_EQ(store->repo(kGone)->status, RepoStatus::failed);
    EXPECT_EQ(store->repo(kGone)->reason, "not_found");
    EXPECT_FALSE(store->repo(kInactive)) << "an account listed inactive is not fetched";
    EXPECT_TRUE(store->listing(pds.url()).complete);
  }

  // Started again on its store: nothing is listed or fetched again.
  const int fetched = pds.get_repos();
  service = BackfillService::start(options, error);
  ASSERT_TRUE(service) << error;
  ASSERT_TRUE(service->wait_done(60s));
  EXPECT_EQ(pds.get_repos(), fetched);
}

TEST_F(BackfillServiceTest, DidDocumentsPointingAtAddressesNobodyNamedAreRefusedUnfetched) {
  // A "PDS" on another loopback address that must never be asked anything.
  std::atomic<int> asked{0};
  TestHttpServer target(
      [&asked](const TestHttpServer::Request&) -> std::optional<std::string> {
        ++asked;
        return TestHttpServer::response(200, "");
      },
      "127.0.0.2");
  const std::string port = std::to_string(target.port());
  TestHttpServer plc([&](const TestHttpServer::Request& request) -> std::optional<std::string> {
    const std::string did = request.target.substr(1);
    if (did == kEvilLoopback)
      return TestHttpServer::response(200, document(did, "https://127.0.0.2:" + port));
    if (did == kEvilPrivate)
      return TestHttpServer::response(200, document(did, "https://10.0.0.1:" + port));
    if (did == kEvilName)
      return TestHttpServer::response(200, document(did, "https://localhost:" + port));
    return TestHttpServer::response(404, "{}");
  });
  testing::support::FakeIngest ingest(context_, {}, 2ms);
  testing::support::DecodeUnderTest decode(ingest, "backfill-refused",
                                           {"--compact-collections", "app.bsky.feed.*"});
  ASSERT_TRUE(decode.start());
  std::filesystem::create_directories(data_dir_);
  const auto dids_file = data_dir_ / "dids.txt";
  {
    std::ofstream file(dids_file);
    file << "# strangers' documents\n"
         << kEvilLoopback << "\n"
         << kEvilPrivate << "\n  " << kEvilName << "  \nnot-a-did\n";
  }
  BackfillOptions options = options_for(decode, "http://127.0.0.1:" + std::to_string(plc.port()));
  options.dids_file = dids_file.string();
  options.max_attempts = 1;
  options.fetch_timeout = 3s;
  std::string error;
  auto service = BackfillService::start(options, error);
  ASSERT_TRUE(service) << error;
  ASSERT_TRUE(service->wait_done(120s)) << metrics(*service);
  const std::string figures = metrics(*service);
  EXPECT_EQ(testing::metric_value(
                figures, R"(jetstream_backfill_repos_failed_total{reason="forbidden_address"})"),
            3)
      << figures;
  EXPECT_GE(testing::metric_value(
                figures, R"(jetstream_http_client_refused_addresses_total{class="loopback"})"),
            1);
  EXPECT_EQ(asked.load(), 0) << "nothing may be fetched from an address nobody named";
  service->stop();
}

TEST_F(BackfillServiceTest, WithVerifyOnlyRepositoriesSignedByTheirDidsKeyReachDecode) {
  // Two repositories signed by one key; the second DID's document lists another key (a forger's
  // repository, or a stale document after a rotation that was never published).
  const auto signer = testing::TestSigningKey::from_seed(crypto::Curve::k256, 7);
  const auto other = testing::TestSigningKey::from_seed(crypto::Curve::p256, 8);
  constexpr std::string_view kHonest = "did:plc:hhhhhhhhhhhhhhhhhhhhhhhh";
  constexpr std::string_view kForged = "did:plc:ffffffffffffffffffffffff";
  std::map<std::string, std::string> cars;
  for (const auto did : {kHonest, kForged}) {
    testing::TestRepo repo{std::string(did), signer};
    repo.commit(
        1, "3mabcdefghi22",
        {{"create", "app.bsky.feed.post/3k1", "one"}, {"create", "app.bsky.feed.post/3k2", "two"}});
    const auto car = repo.export_car("3mabcdefghi22");
    cars[std::string(did)] = std::string(car.begin(), car.end());
  }
  std::atomic<int> forged_documents{0};
  std::string pds_url;
  TestHttpServer server([&](const TestHttpServer::Request& request) -> std::optional<std::string> {
    if (request.target.starts_with("/did:")) {
      const std::string did = request.target.substr(1);
      if (did == kForged) ++forged_documents;
      return TestHttpServer::response(200,
                                      document(did, pds_url, did == kForged ? &other : &signer));
    }
    for (const auto& [did, car] : cars) {
      if (request.target.find(did.substr(8)) != std::string::npos) {
        return TestHttpServer::response(200, car);
      }
    }
    return TestHttpServer::response(400, R"({"error":"RepoNotFound"})");
  });
  pds_url = "http://127.0.0.1:" + std::to_string(server.port());
  testing::support::FakeIngest ingest(context_, {}, 2ms);
  testing::support::DecodeUnderTest decode(ingest, "backfill-verify",
                                           {"--compact-collections", "app.bsky.feed.*"});
  ASSERT_TRUE(decode.start());
  std::filesystem::create_directories(data_dir_);
  const auto dids_file = data_dir_ / "dids.txt";
  std::ofstream(dids_file) << kHonest << "\n" << kForged << "\n";
  BackfillOptions options = options_for(decode, pds_url);
  options.dids_file = dids_file.string();
  options.verify = "signatures";
  options.max_attempts = 2;  // the second attempt resolves the document again (keys rotate)
  std::string error;
  auto service = BackfillService::start(options, error);
  ASSERT_TRUE(service) << error;
  ASSERT_TRUE(service->wait_done(120s)) << metrics(*service);
  const std::string figures = metrics(*service);
  EXPECT_EQ(testing::metric_value(
                figures, R"(jetstream_backfill_repos_failed_total{reason="bad_signature"})"),
            1)
      << figures;
  EXPECT_EQ(testing::metric_value(figures, R"(jetstream_backfill_records_total{result="applied"})"),
            2)
      << figures;
  EXPECT_GE(forged_documents.load(), 2)
      << "the forged DID's document was fetched again before giving up";
  service->stop();
  testing::support::ReplayClient replay(context_, decode.replay_endpoint);
  proto::ReplayRequest snapshot;
  snapshot.snapshot = true;
  const auto state = replay.read_all(snapshot);
  ASSERT_EQ(state.size(), 2u);
  for (const auto& event : state) EXPECT_EQ(event.did, kHonest);
}

TEST_F(BackfillServiceTest, FaultsAreCountedByReasonAndAStuckHostHoldsNobodyElse) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const auto car_bytes = testing::read_binary_file(car_path);
  const std::string car(car_bytes.begin(), car_bytes.end());
  constexpr std::string_view kUnknown = "did:plc:uuuuuuuuuuuuuuuuuuuuuuuu";  // PLC: 404
  constexpr std::string_view kDown = "did:plc:dddddddddddddddddddddddd";     // PDS not listening
  constexpr std::string_view kHuge = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";     // over the cap
  constexpr std::string_view kDeactivated = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
  constexpr std::string_view kStuck = "did:plc:ssssssssssssssssssssssss";  // a silent host
  // A host that accepts and never answers.
  TestHttpServer stuck(
      [](const TestHttpServer::Request&) -> std::optional<std::string> { return std::nullopt; });
  // A port nothing listens on: bind one, then close it.
  std::uint16_t down_port = 0;
  {
    TestHttpServer probe(
        [](const TestHttpServer::Request&) { return std::optional<std::string>(""); });
    down_port = probe.port();
  }
  std::string pds_url;
  TestHttpServer server([&](const TestHttpServer::Request& request) -> std::optional<std::string> {
    if (request.target.starts_with("/did:")) {
      const std::string did = request.target.substr(1);
      if (did == kUnknown)
        return TestHttpServer::response(404, R"({"message":"DID not registered"})");
      std::string endpoint = pds_url;
      if (did == kDown) endpoint = "http://127.0.0.1:" + std::to_string(down_port);
      if (did == kStuck) endpoint = "http://127.0.0.1:" + std::to_string(stuck.port());
      return TestHttpServer::response(200, document(did, endpoint));
    }
    if (request.target.find(std::string(kHuge.substr(8))) != std::string::npos) {
      return TestHttpServer::response(200, std::string(200'000, 'x'));
    }
    if (request.target.find(std::string(kDeactivated.substr(8))) != std::string::npos) {
      return TestHttpServer::response(400, R"({"error":"RepoDeactivated"})");
    }
    if (request.target.find(std::string(kRepoDid.substr(8))) != std::string::npos) {
      return TestHttpServer::response(200, car);
    }
    return TestHttpServer::response(400, R"({"error":"RepoNotFound"})");
  });
  pds_url = "http://127.0.0.1:" + std::to_string(server.port());
  testing::support::FakeIngest ingest(context_, {}, 2ms);
  testing::support::DecodeUnderTest decode(ingest, "backfill-faults",
                                           {"--compact-collections", "app.bsky.feed.*"});
  ASSERT_TRUE(decode.start());
  std::filesystem::create_directories(data_dir_);
  const auto dids_file = data_dir_ / "dids.txt";
  std::ofstream(dids_file) << kStuck << "\n"
                           << kUnknown << "\n"
                           << kDown << "\n"
                           << kHuge << "\n"
                           << kDeactivated << "\n"
                           << kRepoDid << "\n";
  BackfillOptions options = options_for(decode, pds_url);
  options.dids_file = dids_file.string();
  options.max_attempts = 1;
  options.max_repo_bytes = 100'000;
  options.fetch_timeout = 60s;  // the stuck host holds its fetch this long
  std::string error;
  auto service = BackfillService::start(options, error);
  ASSERT_TRUE(service) << error;
  // Everything else ends while the stuck host still holds its one fetch.
  const auto failed = [&](const char* reason) {
    return testing::metric_value(
        metrics(*service),
        std::string(R"(jetstream_backfill_repos_failed_total{reason=")") + reason + "\"}");
  };
  ASSERT_TRUE(testing::support::eventually(
      [&] {
        return testing::metric_value(metrics(*service),
                                     R"(jetstream_backfill_repos{state="done"})") == 1 &&
               failed("unresolvable_did") == 1 && failed("connect") == 1 &&
               failed("too_large") == 1 && failed("deactivated") == 1;
      },
      120s))
      << metrics(*service);
  EXPECT_EQ(
      testing::metric_value(metrics(*service), R"(jetstream_backfill_repos{state="fetching"})"), 1)
      << "the stuck host's fetch is still waiting, and held nobody else";
  EXPECT_LT(failed("timeout"), 1) << "absent (-1) or 0: the stuck fetch has not timed out";
  EXPECT_FALSE(service->wait_done(0ms));
  service->stop();
}

}  // namespace
}  // namespace jetstream::backfill

namespace jetstream::backfill {
namespace {

/// A relay on 127.0.0.1: listReposByCollection (one page naming the repository, then an empty
/// one) unless `by_collection` is false, when it answers 501 like a relay without it; listHosts
/// names no host. Records the collections and methods asked for.
class FakeRelay {
 public:
  explicit FakeRelay(bool by_collection)
      : by_collection_(by_collection),
        server_([this](const TestHttpServer::Request& request) { return answer(request); }) {}

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  std::vector<std::string> targets() const {
    std::lock_guard lock(mutex_);
    return targets_;
  }

 private:
  std::optional<std::string> answer(const TestHttpServer::Request& request) {
    {
      std::lock_guard lock(mutex_);
      targets_.push_back(request.target);
    }
    if (request.target.starts_with("/xrpc/com.atproto.sync.listReposByCollection")) {
      if (!by_collection_) {
        return TestHttpServer::response(501, R"({"error":"MethodNotImplemented"})");
      }
      if (request.target.find("cursor=") != std::string::npos) {
        return TestHttpServer::response(200, R"({"repos":[]})");
      }
      return TestHttpServer::response(200, std::string(R"({"cursor":"c1","repos":[{"did":")") +
                                               std::string(kRepoDid) + R"("}]})");
    }
    if (request.target.starts_with("/xrpc/com.atproto.sync.listHosts")) {
      return TestHttpServer::response(200, R"({"hosts":[]})");
    }
    return TestHttpServer::response(404, "{}");
  }

  bool by_collection_;
  mutable std::mutex mutex_;
  std::vector<std::string> targets_;
  TestHttpServer server_;
};

std::size_t count_starting(const std::vector<std::string>& targets, std::string_view prefix) {
  return static_cast<std::size_t>(std::count_if(
      targets.begin(), targets.end(), [&](const std::string& t) { return t.starts_with(prefix); }));
}

TEST_F(BackfillServiceTest, ARelayIsListedByCollectionWhenEveryPatternIsExactElseByItsHosts) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  FakePds pds(testing::read_binary_file(car_path));
  TestHttpServer plc([&pds](const TestHttpServer::Request& request) -> std::optional<std::string> {
    return TestHttpServer::response(200, document(request.target.substr(1), pds.url()));
  });
  testing::support::FakeIngest ingest(context_, {}, 2ms);
  testing::support::DecodeUnderTest decode(
      ingest, "backfill-relay", {"--compact-collections", "app.bsky.feed.post,app.bsky.feed.like"});
  ASSERT_TRUE(decode.start());
  {
    FakeRelay relay(/*by_collection=*/true);
    BackfillOptions options = options_for(decode, "http://127.0.0.1:" + std::to_string(plc.port()));
    options.relay = relay.url();
    std::string error;
    auto service = BackfillService::start(options, error);
    ASSERT_TRUE(service) << error;
    ASSERT_TRUE(service->wait_done(120s)) << metrics(*service) << decode.process.log();
    const std::string figures = metrics(*service);
    EXPECT_EQ(testing::metric_value(figures, R"(jetstream_backfill_repos{state="done"})"), 1)
        << figures;
    EXPECT_GT(
        testing::metric_value(figures, R"(jetstream_backfill_records_total{result="applied"})"), 0)
        << figures;
    const auto targets = relay.targets();
    EXPECT_EQ(count_starting(targets, "/xrpc/com.atproto.sync.listHosts"), 0U);
    for (const std::string nsid : {"app.bsky.feed.like", "app.bsky.feed.post"}) {
      EXPECT_TRUE(std::any_of(targets.begin(), targets.end(), [&](const std::string& t) {
        return t.find("listReposByCollection") != std::string::npos &&
               t.find("collection=" + nsid) != std::string::npos;
      })) << nsid;
    }
    service->stop();
  }
  std::filesystem::remove_all(data_dir_);
  {
    // A relay without listReposByCollection: its hosts are listed instead.
    FakeRelay relay(/*by_collection=*/false);
    BackfillOptions options = options_for(decode, "http://127.0.0.1:" + std::to_string(plc.port()));
    options.relay = relay.url();
    std::string error;
    auto service = BackfillService::start(options, error);
    ASSERT_TRUE(service) << error;
    ASSERT_TRUE(service->wait_done(120s)) << metrics(*service);
    const auto targets = relay.targets();
    EXPECT_GE(count_starting(targets, "/xrpc/com.atproto.sync.listReposByCollection"), 1U);
    EXPECT_EQ(count_starting(targets, "/xrpc/com.atproto.sync.listHosts"), 1U);
    service->stop();
  }
}

}  // namespace
}  // namespace jetstream::backfill
