// decode --verify signatures and full, the real processes on this machine:
//
//   build/release/tests/bench/verify_bench [--frames 60000] [--dids 2000] [--cold-dids 10000]
//                                          [--cold-frames 300000] [--records 200]
//
// Signed #commit frames (one small post each, signed like a PDS signs them) are served at full
// speed by `jetstream-frames serve` to `jetstream-ingest` and `jetstream-decode`; a PLC directory
// on loopback (in this process) answers the DIDs' documents.
// 1. Warm cache: one frame per DID first, then --frames frames over those DIDs; the rate over
//    the second part, with --verify off and with --verify signatures, for secp256k1 keys and for
//    P-256 keys: frames/s, frames/s per core, and the ratio to off. The issue's limit: >= 20,000
//    frames/s on 2 cores.
// 2. Cold start: --cold-frames frames of --cold-dids DIDs never seen, round robin: the time until
//    the rate (1 s windows) reaches 90% of the warm secp256k1 figure, and the total time.
// 3. --verify full: Sync 1.1 frames of real repositories (one per DID, --records records in its
//    MST before the first frame; then creates, updates and deletes, each frame carrying the proof
//    blocks a PDS sends), with off, signatures and full on the same capture. The limit: >= 10,000
//    frames/s on 2 cores.
// 4. Memory: the identity cache's bytes per DID (allocator figures around filling a cache with
//    parsed documents), and the rev cache's per repository, with their default caps.
// Events are counted off decode's jetstream_decode_events_stored_total. Exit status 0 unless the
// pipeline failed.
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/firehose/capture.hpp"
#include "common/identity/did_document.hpp"
#include "common/identity/identity_cache.hpp"
#include "services/decode/repo_revisions.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pipeline_fixtures.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/signed_frames.hpp"
#include "tests/support/test_http_server.hpp"

namespace {

namespace support = jetstream::testing;
using Clock = std::chrono::steady_clock;
using jetstream::crypto::Curve;

constexpr double kSignaturesLimit = 20000;
constexpr double kFullLimit = 10000;

std::string did_number(std::size_t n) {
  static constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string id(24, 'a');
  for (std::size_t i = 0; i < 8 && n != 0; ++i, n /= 32) id[23 - i] = kBase32[n % 32];
  return "did:plc:" + id;
}

struct Population {
  std::vector<std::string> dids;
  std::vector<support::TestSigningKey> keys;
  std::map<std::string, std::string> documents;  // "/did" → JSON
};

Population population(std::size_t count, Curve curve, std::size_t offset) {
  Population out;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string did = did_number(offset + i);
    auto key = support::TestSigningKey::from_seed(curve, static_cast<std::uint32_t>(offset + i));
    out.documents["/" + did] = R"({"id":")" + did +
                               R"(","verificationMethod":[{"id":"#atproto","type":"Multikey",)"
                               R"("controller":")" +
                               did + R"(","publicKeyMultibase":")" + key.did_key().substr(8) +
                               R"("}]})";
    out.dids.push_back(did);
    out.keys.push_back(std::move(key));
  }
  return out;
}

/// Writes `warmup` (one frame per DID, when set) then `frames` round robin; returns the count.
std::size_t write_capture(const std::filesystem::path& path, const Population& people, bool warmup,
                          std::size_t frames) {
  std::ofstream out(path, std::ios::binary);
  std::size_t seq = 0;
  auto frame = [&](std::size_t who) {
    ++seq;
    const auto bytes = support::make_signed_commit_frame(
        static_cast<std::int64_t>(seq), people.dids[who], "3kaaaaaa" + std::to_string(100000 + seq),
        people.keys[who], "app.bsky.feed.post", "r" + std::to_string(seq),
        "post number " + std::to_string(seq));
    jetstream::firehose::write_capture_frame(out, bytes);
  };
  if (warmup) {
    for (std::size_t i = 0; i < people.dids.size(); ++i) frame(i);
  }
  for (std::size_t i = 0; i < frames; ++i) frame(i % people.dids.size());
  return seq;
}

/// Sync 1.1 frames of one repository per DID: a warm-up commit per DID (creating `records`
/// records at once), then `frames` round robin: mostly creates, every 5th an update and every
/// 10th a delete of a record made earlier.
std::size_t write_repo_capture(const std::filesystem::path& path, const Population& people,
                               std::size_t records, std::size_t frames) {
  std::ofstream out(path, std::ios::binary);
  std::vector<support::TestRepo> repos;
  repos.reserve(people.dids.size());
  for (std::size_t i = 0; i < people.dids.size(); ++i)
    repos.emplace_back(people.dids[i], people.keys[i]);
  std::vector<std::size_t> made(people.dids.size(), 0);  // records created per repository
  const std::int64_t base_us = 1767225600000000;         // 2026-01-01
  std::size_t seq = 0;
  const auto path_of = [](std::size_t n) { return "app.bsky.feed.post/r" + std::to_string(n); };
  for (std::size_t i = 0; i < people.dids.size(); ++i) {
    std::vector<support::TestRepo::Change> creates;
    for (; made[i] < records; ++made[i]) creates.push_back({"create", path_of(made[i]), "a post"});
    ++seq;
    jetstream::firehose::write_capture_frame(
        out, repos[i].commit(static_cast<std::int64_t>(seq),
                             support::tid_at(base_us + static_cast<std::int64_t>(seq)), creates));
  }
  for (std::size_t n = 0; n < frames; ++n) {
    const std::size_t who = n % people.dids.size();
    const std::size_t round = n / people.dids.size();
    ++seq;
    support::TestRepo::Change change{"create", path_of(made[who]), "post " + std::to_string(seq)};
    if (round % 10 == 9 && round < records) {
      change = {"delete", path_of(round), ""};  // one of the warm-up records, never touched again
    } else if (round % 5 == 4) {
      change = {"update", path_of(made[who] - 1), "edited"};  // the last one created
    } else {
      ++made[who];
    }
    jetstream::firehose::write_capture_frame(
        out,
        repos[who].commit(static_cast<std::int64_t>(seq),
                          support::tid_at(base_us + static_cast<std::int64_t>(seq)), {change}));
  }
  return seq;
}

std::size_t allocated_bytes() { return ::mallinfo2().uordblks; }

/// Bytes per entry of an identity cache filled with the parsed documents of `people`.
double identity_cache_bytes_per_did(const Population& people) {
  const std::size_t before = allocated_bytes();
  {
    jetstream::identity::IdentityCache cache(people.dids.size());
    for (const auto& did : people.dids) {
      auto parsed = jetstream::identity::parse_did_document(did, people.documents.at("/" + did));
      auto resolution = std::make_shared<jetstream::identity::Resolution>();
      resolution->document = std::get<jetstream::identity::DidDocument>(std::move(parsed));
      cache.put(did, std::move(resolution), std::numeric_limits<std::int64_t>::max());
    }
    const std::size_t filled = allocated_bytes();
    return static_cast<double>(filled - before) / static_cast<double>(people.dids.size());
  }
}

/// Bytes per repository of decode's rev cache (--verify full) filled with `people`'s DIDs.
double rev_cache_bytes_per_repo(const Population& people) {
  const std::size_t before = allocated_bytes();
  jetstream::decode::RepoRevisions revisions(people.dids.size(),
                                             [](std::string_view) { return std::nullopt; });
  for (const auto& did : people.dids) revisions.advance(did, "3mabcdefghij2");
  revisions.pending_writes() = {};
  return static_cast<double>(allocated_bytes() - before) / static_cast<double>(people.dids.size());
}

struct Sample {
  double seconds;
  double events;
  double held;
};

struct Run {
  bool ok = false;
  std::vector<Sample> samples;
};

Run run(const std::filesystem::path& dir, const std::filesystem::path& capture, std::size_t total,
        const std::string& plc_url, const std::string& verify) {
  Run result;
  const auto upstream_port = support::free_loopback_port();
  const auto frames_port = support::free_loopback_port();
  const auto control_port = support::free_loopback_port();
  const auto decode_metrics = support::free_loopback_port();
  const auto ingest_metrics = support::free_loopback_port();
  support::ChildProcess serve, ingest, decode;
  serve.start(support::StackUnderTest::binary("tools/frames/jetstream-frames"),
              {"serve", capture.string(), "--listen", "127.0.0.1:" + std::to_string(upstream_port),
               "--keep-open"},
              (dir / "serve.log").string());
  std::vector<std::string> args = {
      "--data-dir",
      (dir / "data").string(),
      "--frames-endpoint",
      "tcp://127.0.0.1:" + std::to_string(frames_port),
      "--control-endpoint",
      "tcp://127.0.0.1:" + std::to_string(control_port),
      "--events-endpoint",
      "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port()),
      "--replay-endpoint",
      "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port()),
      "--backfill-endpoint",
      "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port()),
      "--metrics-listen-addr",
      "127.0.0.1:" + std::to_string(decode_metrics)};
  if (const auto dictionary = support::shared_file("zstd/jetstream-v1.zdict")) {
    args.push_back("--zstd-dictionary-path");
    args.push_back(dictionary->string());
  }
  if (verify != "off") {
    args.insert(args.end(),
                {"--verify", verify, "--plc-url", plc_url, "--verify-resolve-timeout", "60s"});
  }
  std::filesystem::remove_all(dir / "data");
  decode.start(support::StackUnderTest::binary("services/decode/jetstream-decode"), args,
               (dir / "decode.log").string());
  support::start_ingest(ingest, upstream_port, frames_port, control_port, ingest_metrics,
                        dir / "ingest.log");
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::minutes(5);
  while (Clock::now() < deadline) {
    const auto scrape = support::http_get(decode_metrics, "/metrics").body;
    const double events = support::metric_value(scrape, "jetstream_decode_events_stored_total");
    const double held = support::metric_value(scrape, "jetstream_decode_verify_held_frames");
    result.samples.push_back(
        {std::chrono::duration<double>(Clock::now() - start).count(), events, held});
    if (events >= static_cast<double>(total)) {
      result.ok = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!result.ok) {
    std::fprintf(stderr, "verify_bench: decode stored %.0f of %zu events\n%s\n",
                 result.samples.empty() ? 0.0 : result.samples.back().events, total,
                 decode.log().c_str());
  }
  ingest.stop();
  decode.stop();
  serve.stop();
  return result;
}

/// Events/s from the first sample with `from` events stored and nothing held, to the end.
double rate_after(const Run& run, double from) {
  const Sample* first = nullptr;
  for (const auto& sample : run.samples) {
    if (sample.events >= from && sample.held <= 0) {
      first = &sample;
      break;
    }
  }
  const Sample& last = run.samples.back();
  if (first == nullptr || last.seconds <= first->seconds) return 0;
  return (last.events - first->events) / (last.seconds - first->seconds);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t frames = 60000, dids = 2000, cold_dids = 10000, cold_frames = 300000, records = 200;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--frames") == 0) frames = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--dids") == 0) dids = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--cold-dids") == 0) cold_dids = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--cold-frames") == 0) cold_frames = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--records") == 0) records = std::stoul(argv[i + 1]);
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

  const auto dir = std::filesystem::temp_directory_path() /
                   ("jetstream-verify-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  const Population k256 = population(dids, Curve::k256, 0);
  const Population p256 = population(dids, Curve::p256, 100000);
  const Population cold = population(cold_dids, Curve::k256, 200000);
  std::map<std::string, std::string> documents = k256.documents;
  documents.insert(p256.documents.begin(), p256.documents.end());
  documents.insert(cold.documents.begin(), cold.documents.end());
  support::TestHttpServer plc([&documents](const support::TestHttpServer::Request& request) {
    const auto found = documents.find(request.target);
    return found == documents.end() ? support::TestHttpServer::response(404, "")
                                    : support::TestHttpServer::response(200, found->second);
  });
  const std::string plc_url = "http://127.0.0.1:" + std::to_string(plc.port());

  const auto k256_capture = dir / "k256.frames";
  const auto p256_capture = dir / "p256.frames";
  const auto cold_capture = dir / "cold.frames";
  const std::size_t k256_total = write_capture(k256_capture, k256, true, frames);
  const std::size_t p256_total = write_capture(p256_capture, p256, true, frames);
  const std::size_t cold_total = write_capture(cold_capture, cold, false, cold_frames);
  const auto repo_capture = dir / "repos.frames";
  const std::size_t repo_total = write_repo_capture(repo_capture, k256, records, frames);
  std::printf("signed frames: %zu DIDs per curve, one warm-up frame each, then %zu frames\n", dids,
              frames);

  const auto warm_from = static_cast<double>(dids);
  const Run off = run(dir, k256_capture, k256_total, plc_url, "off");
  const Run k = run(dir, k256_capture, k256_total, plc_url, "signatures");
  const Run p = run(dir, p256_capture, p256_total, plc_url, "signatures");
  const Run c = run(dir, cold_capture, cold_total, plc_url, "signatures");
  // Events, not frames, are counted: the warm-up commit of each repository makes `records`.
  const std::size_t repo_events = repo_total + dids * (records - 1);
  const Run repo_off = run(dir, repo_capture, repo_events, plc_url, "off");
  const Run repo_signatures = run(dir, repo_capture, repo_events, plc_url, "signatures");
  const Run repo_full = run(dir, repo_capture, repo_events, plc_url, "full");
  std::filesystem::remove_all(dir);
  if (!off.ok || !k.ok || !p.ok || !c.ok || !repo_off.ok || !repo_signatures.ok || !repo_full.ok) {
    return 1;
  }

  const double off_rate = rate_after(off, warm_from);
  const double k_rate = rate_after(k, warm_from);
  const double p_rate = rate_after(p, warm_from);
  const double per_core = static_cast<double>(cores);
  std::printf("  --verify off:                  %9.0f frames/s\n", off_rate);
  std::printf(
      "  --verify signatures, secp256k1: %9.0f frames/s (%7.0f per core), %.2fx off, "
      "%.2fx the 20,000 limit\n",
      k_rate, k_rate / per_core, k_rate / off_rate, k_rate / kSignaturesLimit);
  std::printf(
      "  --verify signatures, P-256:     %9.0f frames/s (%7.0f per core), %.2fx off, "
      "%.2fx the 20,000 limit\n",
      p_rate, p_rate / per_core, p_rate / off_rate, p_rate / kSignaturesLimit);

  // Cold start: 1 s windows over the samples.
  double reached = -1;
  for (std::size_t end = 0, begin = 0; end < c.samples.size(); ++end) {
    while (c.samples[end].seconds - c.samples[begin].seconds > 1.0) ++begin;
    const double span = c.samples[end].seconds - c.samples[begin].seconds;
    if (span < 0.9) continue;
    const double window = (c.samples[end].events - c.samples[begin].events) / span;
    if (window >= 0.9 * k_rate) {
      reached = c.samples[end].seconds;
      break;
    }
  }
  const double total_seconds = c.samples.back().seconds;
  std::printf(
      "  cold start, %zu DIDs never seen (secp256k1), %zu frames: all stored in %.1f s "
      "(%.0f frames/s overall)\n",
      cold_dids, cold_total, total_seconds, static_cast<double>(cold_total) / total_seconds);
  if (reached >= 0) {
    std::printf("    a 1 s window reached 90%% of the warm rate %.1f s after the start\n", reached);
  } else {
    std::printf("    no 1 s window reached 90%% of the warm rate\n");
  }

  const auto repo_from = static_cast<double>(dids * records);
  const double full_off = rate_after(repo_off, repo_from);
  const double full_signatures = rate_after(repo_signatures, repo_from);
  const double full = rate_after(repo_full, repo_from);
  std::printf(
      "Sync 1.1 frames of %zu repositories (%zu records each before the first measured frame; "
      "creates, updates, deletes with their proof blocks):\n",
      dids, records);
  std::printf("  --verify off:                  %9.0f frames/s\n", full_off);
  std::printf("  --verify signatures:           %9.0f frames/s, %.2fx off\n", full_signatures,
              full_signatures / full_off);
  std::printf(
      "  --verify full, secp256k1:      %9.0f frames/s (%7.0f per core), %.2fx off, "
      "%.2fx the 10,000 limit\n",
      full, full / per_core, full / full_off, full / kFullLimit);

  const double identity_bytes = identity_cache_bytes_per_did(k256);
  const double rev_bytes = rev_cache_bytes_per_repo(cold);
  std::printf(
      "memory: identity cache %.0f bytes per DID (default cap 1,000,000: %.0f MiB); rev cache "
      "(--verify full) %.0f bytes per repository (default cap 250,000: %.0f MiB)\n",
      identity_bytes, identity_bytes * 1e6 / 1048576.0, rev_bytes, rev_bytes * 250000 / 1048576.0);
  return 0;
}
