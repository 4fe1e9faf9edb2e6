// Backfill's three figures (issue "Backfill"), with the real decode binary of this build:
//
//   build/release/tests/bench/backfill_bench [--records N] [--accounts A] [--per-account R]
//                                            [--parse-only]   (section 1 alone, e.g. under perf)
//
//   1. getRepo parsing: a 12.5 MiB repository CAR (50,000 posts, blocks sorted by CID as the
//      reference PDS sends them) through RepoReader in 64 KiB chunks, as backfill reads a body:
//      blocks CID-checked, records found through the tree, packed into decode's batches. MiB/s on
//      one core, and its ratio to 100 MiB/s.
//   2. decode applying: live frames at ~2,000/s from a scripted ingest (the real relay corpus),
//      alone, then with N backfilled records (500 per batch, through DecodeLink, acknowledged) at
//      the same time: records applied per second (ratio to 50,000/s) and decode's receive →
//      stored p99 of the live frames both times (limit: +20 %).
//   3. time to full state: a PDS with A accounts × R records (played in this process: listRepos,
//      getRepo of each account's generated repository, a PLC directory) backfilled by the real
//      service into the same decode; wall time from start to "backfill complete".
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/codec/cid.hpp"
#include "proto/backfill.hpp"
#include "services/backfill/backfill_service.hpp"
#include "services/backfill/decode_link.hpp"
#include "services/backfill/repo_reader.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/repo_car.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/test_http_server.hpp"

namespace {

namespace backfill = jetstream::backfill;
namespace proto = jetstream::proto;
namespace support = jetstream::testing::support;
namespace testing = jetstream::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- 1. parsing

double parse_mib_per_second() {
  const auto car =
      testing::make_repository_car("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "3mabcdefghij2", 50000);
  std::string error;
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    backfill::RepoReader::Options options;
    options.did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    options.collections = *jetstream::syntax::CollectionSet::parse("app.bsky.feed.*", error);
    std::uint64_t id = 0;
    options.next_batch_id = [&id] { return ++id; };
    std::size_t records = 0;
    backfill::RepoReader reader(
        options, [&records](backfill::OutgoingBatch batch) { records += batch.records; });
    const auto start = Clock::now();
    constexpr std::size_t kChunk = 64 * 1024;
    for (std::size_t at = 0; at < car.size(); at += kChunk) {
      if (!reader.feed(std::span(car).subspan(at, std::min(kChunk, car.size() - at)))) break;
    }
    if (!reader.finish() || records != 50000) {
      std::fprintf(stderr, "backfill_bench: the repository did not read back (%zu records)\n",
                   records);
      return 0;
    }
    best = std::max(best, static_cast<double>(car.size()) / 1048576.0 / seconds_since(start));
  }
  std::printf(
      "1. getRepo parsing: %.1f MiB repository, 50,000 records, best of 5: %.0f MiB/s on one "
      "core, %.2fx the 100 MiB/s per core target\n",
      static_cast<double>(car.size()) / 1048576.0, best, best / 100.0);
  return best;
}

// ---- 2. decode applying beside live frames

struct Record {
  std::string rkey;
  std::vector<std::uint8_t> cid;
  std::vector<std::uint8_t> bytes;
};

std::vector<Record> make_records(int count) {
  std::vector<Record> out;
  out.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    testing::CborBuilder record;
    record.map(3).text("text").text("backfilled post " + std::to_string(i) +
                                    " with a few more words");
    record.text("$type")
        .text("app.bsky.feed.post")
        .text("createdAt")
        .text("2024-01-01T00:00:00.000Z");
    Record r{"3k" + std::to_string(1000000 + i), {}, record.take()};
    r.cid = testing::cid_of(0x71, r.bytes);
    out.push_back(std::move(r));
  }
  return out;
}

/// decode's receive → stored p99 (ms) over `during`, and its RocksDB write p99 (ms) beside it.
std::pair<double, double> live_p99_ms(const support::DecodeUnderTest& decode,
                                      const std::function<void()>& during) {
  const auto before = testing::http_get(decode.metrics_port, "/metrics").body;
  during();
  const auto after = testing::http_get(decode.metrics_port, "/metrics").body;
  return {1000.0 * testing::histogram_quantile(before, after,
                                               "consumer_event_processing_duration_seconds", 0.99),
          1000.0 * testing::histogram_quantile(before, after,
                                               "jetstream_decode_store_write_seconds", 0.99)};
}

}  // namespace

int main(int argc, char** argv) {
  int records = 200'000;
  int accounts = 1000;
  int per_account = 100;
  bool parse_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--parse-only") == 0) parse_only = true;
  }
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--records") == 0) records = std::stoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--accounts") == 0) accounts = std::stoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--per-account") == 0) per_account = std::stoi(argv[i + 1]);
  }
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  double load[1] = {0};
  ::getloadavg(load, 1);
#ifdef NDEBUG
  const char* build = "optimised (NDEBUG)";
#else
  const char* build = "debug (assertions on)";
#endif
  std::printf("==> machine: %ld cores; build %s; load average %.2f before the start\n", cores,
              build, load[0]);

  parse_mib_per_second();  // prints its own line
  if (parse_only) return 0;

  const auto corpus = testing::shared_file("corpus/dev.frames");
  if (!corpus) {
    std::fprintf(stderr, "backfill_bench: ../shared/corpus/dev.frames is missing\n");
    return 1;
  }
  zmq::context_t context(1);
  // ~2,000 frames/s (the corpus's 75 real frames under fresh seqs) for the ~30 s of section 2.
  support::FakeIngest ingest(context, support::load_frames(*corpus, 800), 500us);
  ingest.stamp_receive_time = true;
  support::DecodeUnderTest decode(
      ingest, "backfill-bench",
      {"--compact-collections", "app.bsky.feed.*", "--min-free-bytes", "0"});
  if (!decode.start()) {
    std::fprintf(stderr, "backfill_bench: decode did not start\n");
    return 1;
  }
  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::uint64_t, backfill::FetchTotals> done;
  backfill::DecodeLink::Options link_options;
  link_options.backfill_endpoint = decode.backfill_endpoint;
  link_options.events_endpoint = decode.events_endpoint;
  link_options.max_unacked = 8;
  backfill::DecodeLink link(context, link_options,
                            [&](std::uint64_t fetch, const backfill::FetchTotals& totals) {
                              std::lock_guard lock(mutex);
                              done[fetch] = totals;
                              cv.notify_all();
                            });
  if (!support::eventually([&] { return link.compacted().has_value(); }, 60s)) {
    std::fprintf(stderr, "backfill_bench: no state info from decode\n%s\n",
                 decode.process.log().c_str());
    return 1;
  }
  std::this_thread::sleep_for(2s);  // the live stream settles
  const auto [live_alone, write_alone] =
      live_p99_ms(decode, [] { std::this_thread::sleep_for(8s); });

  const std::vector<Record> pool = make_records(500);
  const int repositories = std::max(1, records / 500);
  double applied_per_second = 0;
  std::uint64_t applied = 0;
  const auto [live_beside, write_beside] = live_p99_ms(decode, [&] {
    const auto start = Clock::now();
    std::thread sender([&] {
      std::uint64_t batch_id = 0;
      for (int repo = 0; repo < repositories; ++repo) {
        const std::string did = "did:plc:bench" + std::to_string(100000 + repo);
        proto::RepoBatchView view;
        view.did = did;
        view.rev = "3mabcdefghij2";
        view.collections = "app.bsky.feed.*";
        for (const auto& r : pool)
          view.records.push_back({"app.bsky.feed.post", r.rkey, r.cid, r.bytes});
        for (const bool last : {false, true}) {
          view.batch_id = ++batch_id;
          view.last = last;
          if (last) view.records.clear();
          backfill::OutgoingBatch batch{view.batch_id, last, view.records.size(),
                                        proto::encode_repo_batch(view)};
          link.submit(static_cast<std::uint64_t>(repo + 1), std::move(batch));
        }
      }
    });
    std::unique_lock lock(mutex);
    cv.wait_for(lock, 600s, [&] { return done.size() >= static_cast<std::size_t>(repositories); });
    const double seconds = seconds_since(start);
    for (const auto& [fetch, totals] : done) applied += totals.applied;
    applied_per_second = static_cast<double>(applied) / seconds;
    lock.unlock();
    sender.join();
  });
  std::printf(
      "2. decode applying %llu backfilled records (%d repositories of 500) beside ~2,000 live "
      "frames/s: %.0f records/s, %.2fx the 50,000/s target; live receive -> stored p99 %.1f ms "
      "alone, %.1f ms beside it (%+.0f %%, limit +20 %%); RocksDB write p99 %.1f ms alone, %.1f ms "
      "beside\n",
      static_cast<unsigned long long>(applied), repositories, applied_per_second,
      applied_per_second / 50000.0, live_alone, live_beside,
      live_alone > 0 ? 100.0 * (live_beside - live_alone) / live_alone : 0.0, write_alone,
      write_beside);

  // ---- 3. time to full state: a PDS of `accounts` × `per_account` records
  std::vector<std::string> cars(static_cast<std::size_t>(accounts));
  std::map<std::string, std::size_t> index;
  const auto generate = Clock::now();
  for (int i = 0; i < accounts; ++i) {
    // did:plc identifiers are 24 characters of base32 (a-z, 2-7).
    std::string did = "did:plc:";
    for (int digit = 0, rest = i; digit < 24; ++digit, rest /= 32) {
      did.push_back("abcdefghijklmnopqrstuvwxyz234567"[rest % 32]);
    }
    const auto car = testing::make_repository_car(did, "3mabcdefghij2", per_account);
    cars[static_cast<std::size_t>(i)].assign(car.begin(), car.end());
    index[did] = static_cast<std::size_t>(i);
  }
  std::printf("   (generated %d repositories of %d records in %.1f s)\n", accounts, per_account,
              seconds_since(generate));
  std::atomic<int> requests{0};
  std::string pds_url;
  testing::TestHttpServer pds([&](const testing::TestHttpServer::Request& request)
                                  -> std::optional<std::string> {
    ++requests;
    if (request.target.starts_with("/xrpc/com.atproto.sync.listRepos")) {
      if (request.target.find("cursor=") != std::string::npos) {
        return testing::TestHttpServer::response(200, R"({"repos":[]})");
      }
      std::string body = R"({"cursor":"end","repos":[)";
      bool first = true;
      for (const auto& [did, i] : index) {
        body +=
            (first ? "" : ",") + std::string(R"({"did":")") + did + R"(","head":"x","rev":"x"})";
        first = false;
      }
      return testing::TestHttpServer::response(200, body + "]}");
    }
    if (request.target.starts_with("/xrpc/com.atproto.sync.getRepo?did=")) {
      std::string did = request.target.substr(std::strlen("/xrpc/com.atproto.sync.getRepo?did="));
      for (std::size_t at; (at = did.find("%3A")) != std::string::npos;) did.replace(at, 3, ":");
      const auto found = index.find(did);
      if (found == index.end())
        return testing::TestHttpServer::response(400, R"({"error":"RepoNotFound"})");
      return testing::TestHttpServer::response(200, cars[found->second]);
    }
    if (request.target.starts_with("/did:")) {
      return testing::TestHttpServer::response(
          200,
          R"({"id":")" + request.target.substr(1) +
              R"(","service":[{"id":"#atproto_pds","type":"AtprotoPersonalDataServer","serviceEndpoint":")" +
              pds_url + R"("}]})");
    }
    return testing::TestHttpServer::response(404, "{}");
  });
  pds_url = "http://127.0.0.1:" + std::to_string(pds.port());
  const auto data_dir = std::filesystem::temp_directory_path() /
                        ("jetstream-backfill-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(data_dir);
  backfill::BackfillOptions options;
  options.pds = pds_url;
  options.plc_url = pds_url;
  options.data_dir = data_dir.string();
  options.decode_backfill_endpoint = decode.backfill_endpoint;
  options.decode_events_endpoint = decode.events_endpoint;
  options.metrics_listen_addr = jetstream::config::ListenAddress{"127.0.0.1", 0};
  options.max_fetches = 16;
  options.max_fetches_per_host = 16;
  options.host_request_rate = 10000;
  options.progress_interval = 1h;
  std::string error;
  const auto start = Clock::now();
  auto service = backfill::BackfillService::start(options, error);
  if (!service) {
    std::fprintf(stderr, "backfill_bench: %s\n", error.c_str());
    return 1;
  }
  const bool complete = service->wait_done(std::chrono::minutes(30));
  const double seconds = seconds_since(start);
  const auto figures = testing::http_get(service->metrics_port(), "/metrics").body;
  service->stop();
  std::filesystem::remove_all(data_dir);
  const double applied_state =
      testing::metric_value(figures, R"(jetstream_backfill_records_total{result="applied"})");
  std::printf(
      "3. time to full state: a PDS of %d accounts x %d records (played in this process, "
      "%d HTTP requests): %s in %.1f s, %.0f records applied (%.0f records/s)\n",
      accounts, per_account, requests.load(), complete ? "complete" : "NOT complete", seconds,
      applied_state, applied_state / seconds);
  return complete ? 0 : 1;
}
