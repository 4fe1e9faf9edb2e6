// backfill's RepoReader on the real repository export (../shared/corpus/repo.car): every record
// of the compacted collections reaches decode's batches exactly once whatever the chunk size,
// the `last` batch comes after every other, and a CAR that is cut, forged or another DID's is
// refused by name.
#include "services/backfill/repo_reader.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/codec/cid.hpp"
#include "proto/backfill.hpp"
#include "tests/support/shared_data.hpp"

namespace jetstream::backfill {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::string_view kDid = "did:plc:53iucmf5ldftgqyf2ac7hmhd";

/// The expected (path → record CID) pairs of the export, from car_expected_records.tsv.
std::map<std::string, std::string> expected_records(std::string_view prefix) {
  std::map<std::string, std::string> out;
  const auto path = testing::shared_file("corpus/car_expected_records.tsv");
  if (!path) return out;
  std::istringstream lines(testing::read_text_file(*path));
  std::string line;
  while (std::getline(lines, line)) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    const std::string record_path = line.substr(0, tab);
    if (record_path.starts_with(prefix)) out[record_path] = line.substr(tab + 1);
  }
  return out;
}

struct ReadBack {
  std::vector<OutgoingBatch> batches;
  std::optional<RepoFailure> failure;
  std::string rev;
};

ReadBack read(const Bytes& car, std::size_t chunk, std::string_view collections,
              std::string did = std::string(kDid)) {
  std::string error;
  RepoReader::Options options;
  options.did = std::move(did);
  options.collections = *syntax::CollectionSet::parse(collections, error);
  options.batch_records = 4;
  std::uint64_t next_id = 0;
  options.next_batch_id = [&next_id] { return ++next_id; };
  ReadBack out;
  RepoReader reader(options, [&](OutgoingBatch batch) { out.batches.push_back(std::move(batch)); });
  bool ok = true;
  for (std::size_t at = 0; ok && at < car.size(); at += chunk) {
    ok = reader.feed(std::span(car).subspan(at, std::min(chunk, car.size() - at)));
  }
  if (ok) reader.finish();
  out.failure = reader.failure();
  out.rev = reader.rev();
  return out;
}

TEST(RepoReader, EveryWantedRecordReachesABatchOnceAndTheLastBatchComesLast) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const Bytes car = testing::read_binary_file(car_path);
  const auto expected = expected_records("app.bsky.feed.");
  ASSERT_EQ(expected.size(), 19u);
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, car.size()}) {
    const ReadBack got = read(car, chunk, "app.bsky.feed.*");
    ASSERT_EQ(got.failure, std::nullopt) << "chunk " << chunk;
    EXPECT_EQ(got.rev, "3migo7fijwi2k");
    ASSERT_GE(got.batches.size(), 2u);
    std::map<std::string, std::string> seen;
    std::set<std::uint64_t> ids;
    for (std::size_t i = 0; i < got.batches.size(); ++i) {
      const OutgoingBatch& batch = got.batches[i];
      EXPECT_EQ(batch.last, i + 1 == got.batches.size());
      EXPECT_TRUE(ids.insert(batch.id).second);
      const auto view = proto::decode_repo_batch(batch.bytes);
      ASSERT_TRUE(view.ok());
      EXPECT_EQ(view->batch_id, batch.id);
      EXPECT_EQ(view->did, kDid);
      EXPECT_EQ(view->rev, "3migo7fijwi2k");
      EXPECT_EQ(view->collections, "app.bsky.feed.*");
      EXPECT_LE(view->records.size(), 4u);
      EXPECT_EQ(view->records.size(), batch.records);
      if (batch.last) {
        EXPECT_TRUE(view->records.empty());
      }
      for (const auto& record : view->records) {
        const std::string path = std::string(record.collection) + "/" + std::string(record.rkey);
        std::string cid;
        codec::append_cid_string(cid, record.cid);
        EXPECT_TRUE(seen.emplace(path, cid).second) << path << " twice";
        EXPECT_TRUE(codec::cid_matches(*codec::parse_cid(record.cid), record.record)) << path;
      }
    }
    EXPECT_EQ(seen, expected) << "chunk " << chunk;
  }
}

TEST(RepoReader, ARepositoryWithNoWantedRecordStillEndsWithItsLastBatch) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const ReadBack got = read(testing::read_binary_file(car_path), 1000, "com.example.nothing");
  ASSERT_EQ(got.failure, std::nullopt);
  ASSERT_EQ(got.batches.size(), 1u);
  EXPECT_TRUE(got.batches.front().last);
}

TEST(RepoReader, CutForgedAndForeignRepositoriesAreRefusedByName) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const Bytes car = testing::read_binary_file(car_path);
  const Bytes cut(car.begin(), car.begin() + static_cast<std::ptrdiff_t>(car.size() / 2));
  EXPECT_EQ(read(cut, 512, "app.bsky.*").failure, RepoFailure::truncated);
  Bytes forged = car;
  forged[forged.size() - 10] ^= 0x01;  // inside the last block
  EXPECT_EQ(read(forged, 512, "app.bsky.*").failure, RepoFailure::cid_mismatch);
  const ReadBack foreign = read(car, 512, "app.bsky.*", "did:plc:someoneelse");
  EXPECT_EQ(foreign.failure, RepoFailure::wrong_repo);
  for (const auto& batch : foreign.batches) EXPECT_FALSE(batch.last) << "no last batch";
  EXPECT_EQ(read(Bytes{0x01, 0x02, 0x03}, 2, "app.bsky.*").failure, RepoFailure::bad_car);
  EXPECT_EQ(to_string(RepoFailure::wrong_repo), "wrong_repo");
}

}  // namespace
}  // namespace jetstream::backfill
