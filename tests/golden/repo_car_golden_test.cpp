// Walking the MST of a real repository export finds every record an independent implementation
// listed, with the same CIDs: pins MST walking and CID computation.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "common/codec/car.hpp"
#include "common/codec/cid.hpp"
#include "common/codec/mst.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/shared_data.hpp"

namespace {

namespace codec = jetstream::codec;
namespace support = jetstream::testing;
using jetstream::byte_view;

std::string field_after(const std::string& text, const std::string& label) {
  const auto start = text.find(label);
  if (start == std::string::npos) return {};
  const auto value = start + label.size();
  return text.substr(value, text.find('\n', value) - value);
}

TEST(RepoCarGolden, MstWalkFindsEveryListedRecordWithTheSameCid) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  JETSTREAM_REQUIRE_SHARED_FILE(commit_path, "corpus/car_expected_commit.txt");
  JETSTREAM_REQUIRE_SHARED_FILE(records_path, "corpus/car_expected_records.tsv");
  const auto car_bytes = support::read_binary_file(car_path);
  const std::string commit_text = support::read_text_file(commit_path);

  codec::CarFile car;
  ASSERT_FALSE(car.open(car_bytes));
  car.build_lookup_index();
  ASSERT_EQ(car.roots().size(), 1u);

  codec::RepoCommit commit;
  ASSERT_FALSE(codec::read_repo_commit(car, car.roots()[0].bytes, commit));
  EXPECT_EQ(commit.did, field_after(commit_text, "DID: "));
  EXPECT_EQ(commit.rev, field_after(commit_text, "Revision: "));
  EXPECT_EQ(codec::cid_to_string(commit.data_cid), field_after(commit_text, "Data CID: "));
  EXPECT_EQ(commit.version, 3);

  std::vector<std::string> walked;
  const auto error =
      codec::walk_mst(car, commit.data_cid, [&](std::string_view key, byte_view cid) {
        walked.push_back(std::string(key) + "\t" + codec::cid_to_string(cid));
        // Every record the tree points at is present and hashes to its CID.
        const codec::CarBlock* block = car.find(cid);
        ASSERT_NE(block, nullptr) << key;
        EXPECT_TRUE(codec::cid_matches(block->cid, block->data)) << key;
      });
  ASSERT_FALSE(error) << codec::to_string(*error);

  std::vector<std::string> expected;
  std::istringstream in(support::read_text_file(records_path));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) expected.push_back(line);
  }
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(walked, expected);
}

TEST(RepoCarGolden, MstWalkReportsAMissingNodeInsteadOfSkippingIt) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  auto car_bytes = support::read_binary_file(car_path);
  codec::CarFile full;
  ASSERT_FALSE(full.open(car_bytes));
  codec::RepoCommit commit;
  ASSERT_FALSE(codec::read_repo_commit(full, full.roots()[0].bytes, commit));

  // A CAR holding only the commit block: the MST root is missing.
  const codec::CarBlock* commit_block = full.find(full.roots()[0].bytes);
  ASSERT_NE(commit_block, nullptr);
  std::uint64_t header_size = 0;
  const std::size_t varint_size = codec::read_uvarint(car_bytes, header_size);
  ASSERT_GT(varint_size, 0u);
  support::Bytes rebuilt(car_bytes.begin(), car_bytes.begin() + static_cast<std::ptrdiff_t>(
                                                                    varint_size + header_size));
  support::append_uvarint(rebuilt, commit_block->cid.bytes.size() + commit_block->data.size());
  rebuilt.insert(rebuilt.end(), commit_block->cid.bytes.begin(), commit_block->cid.bytes.end());
  rebuilt.insert(rebuilt.end(), commit_block->data.begin(), commit_block->data.end());
  codec::CarFile only_commit;
  ASSERT_FALSE(only_commit.open(rebuilt));
  ASSERT_EQ(only_commit.blocks().size(), 1u);
  int visited = 0;
  const auto error = codec::walk_mst(only_commit, commit.data_cid,
                                     [&](std::string_view, byte_view) { ++visited; });
  ASSERT_TRUE(error);
  EXPECT_EQ(*error, codec::MstError::missing_block);
  EXPECT_EQ(visited, 0);
}

}  // namespace
