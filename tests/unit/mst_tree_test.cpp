// Contracts of codec::MstTree against atproto's own vectors (../shared/interop): key heights, and
// the commit proofs, where a tree built from keys must reach the published roots before and after
// a commit, and the tree read back from only the blocks the proof lists must invert the commit's
// adds and deletes to the root before. Also: the real repository export rebuilds to its own root,
// the shape depends on the keys only (any insertion order, removal back to the empty tree), and
// an operation that needs a block the CAR lacks fails instead of guessing.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/codec/car.hpp"
#include "common/codec/cid.hpp"
#include "common/codec/mst.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/shared_data.hpp"

namespace jetstream::codec {

[[maybe_unused]] static void PrintTo(MstError error, std::ostream* os) { *os << to_string(error); }

namespace {

using testing::Bytes;

rapidjson::Document read_json(const std::filesystem::path& path) {
  rapidjson::Document document;
  document.Parse(testing::read_text_file(path).c_str());
  EXPECT_FALSE(document.HasParseError()) << path;
  return document;
}

Bytes cid_bytes(std::string_view text) {
  auto cid = parse_cid_string(text);
  EXPECT_TRUE(cid.has_value()) << text;
  return cid.value_or(Bytes{});
}

std::string cid_text(std::string_view binary) { return cid_to_string(as_bytes(binary)); }

/// A CAR of the blocks `tree` encoded, keeping only those whose CID `keep` accepts.
Bytes car_of(const MstTree& tree, const std::string& root,
             const std::function<bool(const std::string&)>& keep) {
  std::vector<std::pair<Bytes, Bytes>> blocks;
  tree.for_each_encoded_node([&](std::string_view cid, byte_view block) {
    if (!keep(std::string(cid))) return;
    blocks.emplace_back(Bytes(cid.begin(), cid.end()), Bytes(block.begin(), block.end()));
  });
  return testing::make_car({Bytes(root.begin(), root.end())}, blocks);
}

/// `tree` as a verifier meets it: its blocks in a CAR, read back lazily from its root.
struct ReadBack {
  Bytes bytes;
  CarFile car;
  MstTree tree;
  std::optional<MstError> error;

  ReadBack(const MstTree& written, const std::string& root)
      : bytes(car_of(written, root, [](const std::string&) { return true; })) {
    if (car.open(bytes)) {
      error = MstError::bad_node;
      return;
    }
    error = tree.load(car, as_bytes(root));
  }
};

TEST(MstTree, KeyHeightsMatchTheInteropVectors) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/mst/key_heights.json");
  const auto vectors = read_json(path);
  ASSERT_TRUE(vectors.IsArray());
  for (const auto& vector : vectors.GetArray()) {
    EXPECT_EQ(mst_key_height(vector["key"].GetString()), vector["height"].GetUint())
        << vector["key"].GetString();
  }
  EXPECT_GT(vectors.Size(), 5u);
}

TEST(MstTree, TheEmptyTreeHasTheWellKnownRoot) {
  MstTree tree;
  EXPECT_EQ(cid_text(tree.root_cid()),
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm");
}

TEST(MstTree, CommitProofFixturesBuildAndInvertThroughTheirProofBlocksOnly) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/firehose/commit-proof-fixtures.json");
  const auto fixtures = read_json(path);
  ASSERT_TRUE(fixtures.IsArray());
  ASSERT_GT(fixtures.Size(), 0u);
  for (const auto& fixture : fixtures.GetArray()) {
    const std::string name = fixture["comment"].GetString();
    SCOPED_TRACE(name);
    const Bytes leaf = cid_bytes(fixture["leafValue"].GetString());

    MstTree tree;
    for (const auto& key : fixture["keys"].GetArray()) {
      ASSERT_EQ(tree.insert(key.GetString(), leaf), std::nullopt) << key.GetString();
    }
    EXPECT_EQ(cid_text(tree.root_cid()), fixture["rootBeforeCommit"].GetString());
    for (const auto& key : fixture["adds"].GetArray()) {
      ASSERT_EQ(tree.insert(key.GetString(), leaf), std::nullopt) << key.GetString();
    }
    for (const auto& key : fixture["dels"].GetArray()) {
      ASSERT_EQ(tree.remove(key.GetString()), std::nullopt) << key.GetString();
    }
    const std::string after = tree.root_cid();
    ASSERT_EQ(cid_text(after), fixture["rootAfterCommit"].GetString());

    // What a Sync 1.1 frame carries: only the proof's blocks.
    std::set<std::string> proof;
    for (const auto& cid : fixture["blocksInProof"].GetArray()) {
      const Bytes binary = cid_bytes(cid.GetString());
      proof.emplace(binary.begin(), binary.end());
    }
    std::size_t carried = 0;
    const Bytes car_bytes = car_of(tree, after, [&](const std::string& cid) {
      const bool in_proof = proof.count(cid) != 0;
      carried += in_proof ? 1 : 0;
      return in_proof;
    });
    EXPECT_EQ(carried, proof.size()) << "every proof block is a node of the tree after";
    CarFile car;
    ASSERT_EQ(car.open(car_bytes), std::nullopt);
    MstTree partial;
    ASSERT_EQ(partial.load(car, as_bytes(after)), std::nullopt);
    for (const auto& key : fixture["adds"].GetArray()) {
      std::optional<std::string> value;
      ASSERT_EQ(partial.get(key.GetString(), value), std::nullopt);
      EXPECT_EQ(value, std::string(as_chars(leaf))) << "the op is what the tree holds";
      ASSERT_EQ(partial.remove(key.GetString()), std::nullopt) << key.GetString();
    }
    for (const auto& key : fixture["dels"].GetArray()) {
      ASSERT_EQ(partial.insert(key.GetString(), leaf), std::nullopt) << key.GetString();
    }
    EXPECT_EQ(cid_text(partial.root_cid()), fixture["rootBeforeCommit"].GetString());
  }
}

TEST(MstTree, TheRealRepositoryExportRebuildsToItsOwnRoot) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  JETSTREAM_REQUIRE_SHARED_FILE(commit_path, "corpus/car_expected_commit.txt");
  const Bytes bytes = testing::read_binary_file(car_path);
  CarFile car;
  ASSERT_EQ(car.open(bytes), std::nullopt);
  car.build_lookup_index();
  RepoCommit commit;
  ASSERT_EQ(read_repo_commit(car, car.roots()[0].bytes, commit), std::nullopt);
  EXPECT_NE(testing::read_text_file(commit_path).find(cid_to_string(commit.data_cid)),
            std::string::npos);

  std::vector<std::pair<std::string, std::string>> records;
  ASSERT_EQ(walk_mst(car, commit.data_cid,
                     [&](std::string_view key, byte_view value) {
                       records.emplace_back(key, as_chars(value));
                     }),
            std::nullopt);
  ASSERT_GT(records.size(), 10u);

  MstTree read;  // every key is found through the tree read lazily from the CAR
  ASSERT_EQ(read.load(car, commit.data_cid), std::nullopt);
  for (const auto& [key, value] : records) {
    std::optional<std::string> found;
    ASSERT_EQ(read.get(key, found), std::nullopt);
    EXPECT_EQ(found, value) << key;
  }
  std::optional<std::string> absent;
  ASSERT_EQ(read.get("app.bsky.feed.post/zzzzzzzzzzzzz", absent), std::nullopt);
  EXPECT_FALSE(absent.has_value());
  EXPECT_EQ(read.root_cid(), std::string(as_chars(commit.data_cid))) << "nothing changed";

  std::mt19937 random(7);  // a fixed order unlike the key order
  std::shuffle(records.begin(), records.end(), random);
  MstTree built;
  for (const auto& [key, value] : records) {
    ASSERT_EQ(built.insert(key, as_bytes(value)), std::nullopt) << key;
  }
  EXPECT_EQ(built.root_cid(), std::string(as_chars(commit.data_cid)));
}

TEST(MstTree, TheShapeDependsOnTheKeysOnly) {
  std::vector<std::string> keys;
  for (int i = 0; i < 600; ++i) keys.push_back("app.bsky.feed.post/k" + std::to_string(i * 7919));
  const Bytes value = testing::cid_of(kCodecDagCbor, {0xa0});
  std::string expected;
  for (unsigned seed = 1; seed <= 4; ++seed) {
    std::mt19937 random(seed);
    std::shuffle(keys.begin(), keys.end(), random);
    MstTree tree;
    for (const auto& key : keys) ASSERT_EQ(tree.insert(key, value), std::nullopt);
    const std::string root = tree.root_cid();
    if (expected.empty()) expected = root;
    EXPECT_EQ(root, expected) << "seed " << seed;
    // Removing half, then putting them back, comes back to the same root.
    for (std::size_t i = 0; i < keys.size(); i += 2) ASSERT_EQ(tree.remove(keys[i]), std::nullopt);
    EXPECT_NE(tree.root_cid(), expected);
    for (std::size_t i = 0; i < keys.size(); i += 2) {
      ASSERT_EQ(tree.insert(keys[i], value), std::nullopt);
    }
    EXPECT_EQ(tree.root_cid(), expected);
    for (const auto& key : keys) ASSERT_EQ(tree.remove(key), std::nullopt);
    EXPECT_EQ(cid_text(tree.root_cid()),
              "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm");
  }
}

/// The first key of the form `prefix` + number on layer `height`.
std::string key_on_layer(const std::string& prefix, std::uint32_t height) {
  for (int i = 0;; ++i) {
    std::string key = prefix + std::to_string(i);
    if (mst_key_height(key) == height) return key;
  }
}

TEST(MstTree, RemovingTheOnlyHighKeyOfAPartialTreeShrinksItThroughLeaflessLayers) {
  // Two keys on layer 0, then one on layer 2: the root (layer 2) holds it and links to a
  // leafless layer-1 node above the layer-0 node. Undoing the insert from the blocks alone must
  // give back the layer-0 node as the root (a real PDS commit found this).
  const Bytes value = testing::cid_of(kCodecDagCbor, {0xa0});
  MstTree tree;
  ASSERT_EQ(tree.insert(key_on_layer("a/", 0), value), std::nullopt);
  ASSERT_EQ(tree.insert(key_on_layer("b/", 0), value), std::nullopt);
  const std::string before = tree.root_cid();
  const std::string high = key_on_layer("c/", 2);
  ASSERT_EQ(tree.insert(high, value), std::nullopt);
  const std::string after = tree.root_cid();
  ReadBack read_back(tree, after);
  ASSERT_EQ(read_back.error, std::nullopt);
  MstTree& partial = read_back.tree;
  ASSERT_EQ(partial.remove(high), std::nullopt);
  EXPECT_EQ(cid_text(partial.root_cid()), cid_text(before));
  EXPECT_EQ(partial.blocks_read().size(), 3u) << "the root, the leafless node, the node below";
}

TEST(MstTree, RandomCommitsInvertThroughATreeReadFromBlocks) {
  // The property Sync 1.1 relies on, over many shapes: a tree read lazily from the blocks of the
  // tree after a commit, with the commit undone, has the root of the tree before it.
  std::mt19937 random(11);
  const Bytes value = testing::cid_of(kCodecDagCbor, {0xa0});
  const Bytes other = testing::cid_of(kCodecDagCbor, {0xa1, 0x61, 0x61, 0x01});
  int next_key = 0;
  for (int trial = 0; trial < 300; ++trial) {
    MstTree tree;
    std::vector<std::string> keys;
    const int size = static_cast<int>(random() % 40);
    for (int i = 0; i < size; ++i) {
      keys.push_back("app.bsky.feed.post/" + std::to_string(next_key++));
      ASSERT_EQ(tree.insert(keys.back(), value), std::nullopt);
    }
    const std::string before = tree.root_cid();
    struct Op {
      int kind;  // 0 create, 1 update, 2 delete
      std::string key;
    };
    std::vector<Op> ops;
    std::set<std::string> touched;
    for (int n = 1 + static_cast<int>(random() % 3); n > 0; --n) {
      const int kind = keys.empty() ? 0 : static_cast<int>(random() % 3);
      std::string key = kind == 0 ? "app.bsky.feed.like/" + std::to_string(next_key++)
                                  : keys[random() % keys.size()];
      if (!touched.insert(key).second) continue;
      ops.push_back({kind, key});
      const auto error = kind == 0   ? tree.insert(key, value)
                         : kind == 1 ? tree.update(key, other)
                                     : tree.remove(key);
      ASSERT_EQ(error, std::nullopt);
    }
    const std::string after = tree.root_cid();
    ReadBack read_back(tree, after);
    ASSERT_EQ(read_back.error, std::nullopt);
    MstTree& partial = read_back.tree;
    for (const Op& op : ops) {
      const auto error = op.kind == 0   ? partial.remove(op.key)
                         : op.kind == 1 ? partial.update(op.key, value)
                                        : partial.insert(op.key, value);
      ASSERT_EQ(error, std::nullopt) << "trial " << trial;
    }
    ASSERT_EQ(cid_text(partial.root_cid()), cid_text(before)) << "trial " << trial;
  }
}

TEST(MstTree, OperationsReportWhatTheyCannotDo) {
  const Bytes value = testing::cid_of(kCodecDagCbor, {0xa0});
  const Bytes other = testing::cid_of(kCodecDagCbor, {0xa1, 0x61, 0x61, 0x01});
  MstTree tree;
  ASSERT_EQ(tree.insert("a/1", value), std::nullopt);
  EXPECT_EQ(tree.insert("a/1", value), MstError::key_exists);
  EXPECT_EQ(tree.remove("a/2"), MstError::key_absent);
  EXPECT_EQ(tree.update("a/2", other), MstError::key_absent);
  EXPECT_EQ(tree.insert("", value), MstError::bad_key);
  ASSERT_EQ(tree.update("a/1", other), std::nullopt);
  std::optional<std::string> found;
  ASSERT_EQ(tree.get("a/1", found), std::nullopt);
  EXPECT_EQ(found, std::string(as_chars(other)));
}

TEST(MstTree, AnOperationThatNeedsAnAbsentBlockFails) {
  // A tree deep enough to have subtrees, shipped with its root block only.
  MstTree tree;
  const Bytes value = testing::cid_of(kCodecDagCbor, {0xa0});
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("c/" + std::to_string(i));
  for (const auto& key : keys) ASSERT_EQ(tree.insert(key, value), std::nullopt);
  const std::string root = tree.root_cid();
  const Bytes car_bytes = car_of(tree, root, [&](const std::string& cid) { return cid == root; });
  CarFile car;
  ASSERT_EQ(car.open(car_bytes), std::nullopt);
  MstTree partial;
  ASSERT_EQ(partial.load(car, as_bytes(root)), std::nullopt);
  std::vector<std::string> unreachable;
  for (const auto& key : keys) {
    std::optional<std::string> found;
    const auto error = partial.get(key, found);
    if (error) {
      EXPECT_EQ(error, MstError::missing_block);
      unreachable.push_back(key);
    } else {
      EXPECT_TRUE(found.has_value()) << key << " is in the root node";
    }
  }
  ASSERT_FALSE(unreachable.empty());
  EXPECT_EQ(partial.remove(unreachable.front()), MstError::missing_block);

  // A block whose bytes are not what its CID names is not read.
  Bytes forged = car_bytes;
  forged[forged.size() - 3] ^= 0x01;
  CarFile forged_car;
  ASSERT_EQ(forged_car.open(forged), std::nullopt);
  EXPECT_EQ(partial.load(forged_car, as_bytes(root)), MstError::missing_block);
}

TEST(MstTree, AKeyOnTheWrongLayerIsNotATree) {
  // A root node holding two keys of different heights.
  std::string low;
  std::string high;
  for (int i = 0; low.empty() || high.empty(); ++i) {
    const std::string key = "k/" + std::to_string(i);
    if (mst_key_height(key) == 0 && low.empty()) low = key;
    if (mst_key_height(key) == 1 && high.empty()) high = key;
  }
  const Bytes value = testing::cid_of(kCodecDagCbor, {0xa0});
  testing::CborBuilder node;
  const auto [first, second] = low < high ? std::pair(low, high) : std::pair(high, low);
  node.map(2).text("e").array(2);
  node.map(4).text("k").bytes(Bytes(first.begin(), first.end())).text("p").uint(0);
  node.text("t").null().text("v").link(value);
  node.map(4).text("k").bytes(Bytes(second.begin(), second.end())).text("p").uint(0);
  node.text("t").null().text("v").link(value);
  node.text("l").null();
  const Bytes block = node.take();
  const Bytes cid = testing::cid_of(kCodecDagCbor, block);
  const Bytes car_bytes = testing::make_car({cid}, {{cid, block}});
  CarFile car;
  ASSERT_EQ(car.open(car_bytes), std::nullopt);
  MstTree tree;
  EXPECT_EQ(tree.load(car, cid), MstError::bad_height);
}

}  // namespace
}  // namespace jetstream::codec

namespace jetstream::codec {
namespace {

/// The (path, record CID) pairs a RepoRecordStream hands over for `car` (blocks streamed in CAR
/// order through a CarStreamReader, 1 KiB chunks), checking each record's bytes against its CID.
struct StreamedRecords {
  std::map<std::string, std::string> records;
  std::optional<MstError> error;
  RepoRecordStream::Counts counts;
};

StreamedRecords stream_records(const Bytes& car, RepoRecordStream::Options options = {}) {
  StreamedRecords out;
  RepoRecordStream repo(std::move(options),
                        [&](std::string_view path, byte_view cid, byte_view record) {
                          const auto parsed = parse_cid(cid);
                          EXPECT_TRUE(parsed && cid_matches(*parsed, record)) << path;
                          EXPECT_TRUE(out.records.emplace(path, as_chars(cid)).second) << path;
                        });
  CarStreamReader reader;
  bool root_set = false;
  for (std::size_t at = 0; at < car.size() && !out.error; at += 1024) {
    const auto error =
        reader.feed(byte_view(car).subspan(at, std::min<std::size_t>(1024, car.size() - at)),
                    [&](const CidView& cid, byte_view data) {
                      if (!root_set) {
                        repo.set_root(reader.roots().at(0).bytes);
                        root_set = true;
                      }
                      if (!out.error) out.error = repo.add_block(cid.bytes, data);
                    });
    if (error) ADD_FAILURE() << to_string(*error);
  }
  if (!out.error) out.error = repo.finish();
  out.counts = repo.counts();
  return out;
}

/// The blocks of `car` in another order (the header kept): `order` permutes them.
Bytes reordered(const Bytes& car,
                const std::function<void(std::vector<std::pair<Bytes, Bytes>>&)>& order) {
  CarFile file;
  EXPECT_EQ(file.open(car), std::nullopt);
  std::vector<std::pair<Bytes, Bytes>> blocks;
  for (const auto& block : file.blocks()) {
    blocks.emplace_back(Bytes(block.cid.bytes.begin(), block.cid.bytes.end()),
                        Bytes(block.data.begin(), block.data.end()));
  }
  order(blocks);
  return testing::make_car({Bytes(file.roots()[0].bytes.begin(), file.roots()[0].bytes.end())},
                           blocks);
}

std::map<std::string, std::string> walked(const Bytes& car) {
  CarFile file;
  EXPECT_EQ(file.open(car), std::nullopt);
  file.build_lookup_index();
  RepoCommit commit;
  EXPECT_EQ(read_repo_commit(file, file.roots()[0].bytes, commit), std::nullopt);
  std::map<std::string, std::string> out;
  EXPECT_EQ(
      walk_mst(file, commit.data_cid,
               [&](std::string_view key, byte_view value) { out.emplace(key, as_chars(value)); }),
      std::nullopt);
  return out;
}

TEST(RepoRecordStream, TheRealRepositoryInAnyBlockOrderGivesEveryRecordOfItsTree) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const Bytes car = testing::read_binary_file(car_path);
  const auto expected = walked(car);
  ASSERT_GT(expected.size(), 10u);

  const StreamedRecords in_order = stream_records(car);
  ASSERT_EQ(in_order.error, std::nullopt);
  EXPECT_EQ(in_order.records, expected);

  // Sorted by CID, as the reference PDS sends getRepo: records come before their nodes.
  const Bytes by_cid =
      reordered(car, [](auto& blocks) { std::sort(blocks.begin(), blocks.end()); });
  const StreamedRecords sorted = stream_records(by_cid);
  ASSERT_EQ(sorted.error, std::nullopt);
  EXPECT_EQ(sorted.records, expected);

  std::mt19937 random(5);
  const Bytes shuffled =
      reordered(car, [&](auto& blocks) { std::shuffle(blocks.begin(), blocks.end(), random); });
  const StreamedRecords mixed = stream_records(shuffled);
  ASSERT_EQ(mixed.error, std::nullopt);
  EXPECT_EQ(mixed.records, expected);
  EXPECT_GT(sorted.counts.spilled_blocks + mixed.counts.spilled_blocks, 0u)
      << "records that came before their node waited on disk";
}

TEST(RepoRecordStream, ARepositoryOfSeveralMiBSortedByCidComesBackWhole) {
  // More spilled bytes than one read window: the read-back crosses windows.
  MstTree tree;
  std::vector<std::pair<Bytes, Bytes>> blocks;
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 12000; ++i) {
    testing::CborBuilder record;
    record.map(2)
        .text("$type")
        .text("app.bsky.feed.post")
        .text("text")
        .text(
            std::string(static_cast<std::size_t>(100 + i % 200), static_cast<char>('a' + i % 26)) +
            std::to_string(i));
    Bytes bytes = record.take();
    Bytes cid = testing::cid_of(kCodecDagCbor, bytes);
    const std::string path = "app.bsky.feed.post/k" + std::to_string(i);
    ASSERT_EQ(tree.insert(path, cid), std::nullopt);
    expected.emplace(path, std::string(cid.begin(), cid.end()));
    blocks.emplace_back(std::move(cid), std::move(bytes));
  }
  const std::string root = tree.root_cid();
  tree.for_each_encoded_node([&](std::string_view cid, byte_view block) {
    blocks.emplace_back(Bytes(cid.begin(), cid.end()), Bytes(block.begin(), block.end()));
  });
  testing::CborBuilder commit;
  commit.map(5)
      .text("did")
      .text("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
      .text("rev")
      .text("3mabcdefghij2");
  commit.text("data")
      .link(Bytes(root.begin(), root.end()))
      .text("prev")
      .null()
      .text("version")
      .uint(3);
  Bytes commit_bytes = commit.take();
  const Bytes commit_cid = testing::cid_of(kCodecDagCbor, commit_bytes);
  blocks.emplace_back(commit_cid, std::move(commit_bytes));
  std::sort(blocks.begin(), blocks.end());
  const StreamedRecords streamed = stream_records(testing::make_car({commit_cid}, blocks));
  ASSERT_EQ(streamed.error, std::nullopt);
  EXPECT_GT(streamed.counts.spilled_bytes, std::uint64_t{2} << 20);
  EXPECT_EQ(streamed.records, expected);
  EXPECT_EQ(streamed.counts.orphan_blocks, 0u);
}

TEST(RepoRecordStream, OnlyWantedCollectionsAreHandedOverAndAMissingBlockIsReported) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const Bytes car = testing::read_binary_file(car_path);
  const auto expected = walked(car);
  RepoRecordStream::Options likes;
  likes.wanted = [](std::string_view collection) { return collection == "app.bsky.feed.like"; };
  const StreamedRecords only_likes = stream_records(car, likes);
  ASSERT_EQ(only_likes.error, std::nullopt);
  std::size_t like_count = 0;
  for (const auto& [path, cid] : expected) like_count += path.starts_with("app.bsky.feed.like/");
  EXPECT_EQ(only_likes.records.size(), like_count);
  EXPECT_EQ(only_likes.counts.records_skipped, expected.size() - like_count);

  // A wanted record's block left out, then a tree node's.
  const std::string lost_record = expected.begin()->second;
  const Bytes without_record = reordered(car, [&](auto& blocks) {
    std::erase_if(blocks, [&](const auto& block) {
      return std::string(block.first.begin(), block.first.end()) == lost_record;
    });
  });
  EXPECT_EQ(stream_records(without_record).error, MstError::missing_block);
  const Bytes without_node = reordered(car, [&](auto& blocks) {
    bool dropped = false;
    std::erase_if(blocks, [&](const auto& block) {
      if (dropped || block.second.size() < 3 || block.second[0] != 0xa2 || block.second[2] != 'e')
        return false;
      return dropped = true;
    });
  });
  EXPECT_EQ(stream_records(without_node).error, MstError::missing_block);
}

}  // namespace
}  // namespace jetstream::codec
