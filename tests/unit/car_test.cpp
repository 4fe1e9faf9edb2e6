// Contracts of common/codec/car: CAR v1 header roots, the block index, lookup by CID (linear and
// hashed), and clean failure on every truncation and on malformed headers and blocks.
#include "common/codec/car.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/cid.hpp"
#include "tests/support/cbor_builder.hpp"
#include "tests/support/shared_data.hpp"

namespace jetstream::codec {

/// Prints error names in assertion messages (found by GoogleTest through ADL).
[[maybe_unused]] static void PrintTo(CarError error, std::ostream* os) { *os << to_string(error); }

namespace {

using testing::append_uvarint;
using testing::Bytes;
using testing::CborBuilder;
using testing::cid_of;
using testing::make_car;

Bytes to_vector(byte_view view) { return {view.begin(), view.end()}; }

struct Sample {
  Bytes record = CborBuilder().map(1).text("a").uint(1).take();
  Bytes blob = {'h', 'e', 'l', 'l', 'o'};
  Bytes record_cid = cid_of(kCodecDagCbor, record);
  Bytes blob_cid = cid_of(kCodecRaw, blob);
  Bytes car = make_car({record_cid}, {{record_cid, record}, {blob_cid, blob}});
};

/// A CAR whose header is `header` (already encoded) followed by `blocks`.
Bytes car_with_header(const Bytes& header,
                      const std::vector<std::pair<Bytes, Bytes>>& blocks = {}) {
  Bytes car;
  append_uvarint(car, header.size());
  car.insert(car.end(), header.begin(), header.end());
  for (const auto& [cid, data] : blocks) {
    append_uvarint(car, cid.size() + data.size());
    car.insert(car.end(), cid.begin(), cid.end());
    car.insert(car.end(), data.begin(), data.end());
  }
  return car;
}

std::optional<CarError> open_error(const Bytes& car) {
  CarFile file;
  return file.open(car);
}

TEST(Car, ReadsRootsAndBlocks) {
  const Sample s;
  CarFile file;
  ASSERT_EQ(file.open(s.car), std::nullopt);
  ASSERT_EQ(file.roots().size(), 1u);
  EXPECT_EQ(to_vector(file.roots()[0].bytes), s.record_cid);
  EXPECT_EQ(file.roots()[0].codec, kCodecDagCbor);
  ASSERT_EQ(file.blocks().size(), 2u);
  EXPECT_EQ(to_vector(file.blocks()[0].cid.bytes), s.record_cid);
  EXPECT_EQ(to_vector(file.blocks()[0].data), s.record);
  EXPECT_EQ(to_vector(file.blocks()[1].cid.bytes), s.blob_cid);
  EXPECT_EQ(file.blocks()[1].cid.codec, kCodecRaw);
  EXPECT_EQ(to_vector(file.blocks()[1].data), s.blob);
}

TEST(Car, BlockViewsPointIntoTheInput) {
  const Sample s;
  CarFile file;
  ASSERT_EQ(file.open(s.car), std::nullopt);
  const std::uint8_t* begin = s.car.data();
  const std::uint8_t* end = s.car.data() + s.car.size();
  for (const CarBlock& block : file.blocks()) {
    EXPECT_GE(block.data.data(), begin);
    EXPECT_LE(block.data.data() + block.data.size(), end);
    EXPECT_GE(block.cid.bytes.data(), begin);
  }
  EXPECT_EQ(file.blocks()[1].data.data() + file.blocks()[1].data.size(), end);
}

TEST(Car, ReadsSeveralRootsInOrderAndNoRoots) {
  const Sample s;
  CarFile file;
  const Bytes two_roots = make_car({s.blob_cid, s.record_cid}, {{s.record_cid, s.record}});
  ASSERT_EQ(file.open(two_roots), std::nullopt);
  ASSERT_EQ(file.roots().size(), 2u);
  EXPECT_EQ(to_vector(file.roots()[0].bytes), s.blob_cid);
  EXPECT_EQ(to_vector(file.roots()[1].bytes), s.record_cid);
  const Bytes no_roots = make_car({}, {});
  ASSERT_EQ(file.open(no_roots), std::nullopt);
  EXPECT_TRUE(file.roots().empty());
  EXPECT_TRUE(file.blocks().empty());
}

TEST(Car, ReopeningReplacesThePreviousContents) {
  const Sample s;
  CarFile file;
  ASSERT_EQ(file.open(s.car), std::nullopt);
  file.build_lookup_index();
  const Bytes other = make_car({s.blob_cid}, {{s.blob_cid, s.blob}});
  ASSERT_EQ(file.open(other), std::nullopt);
  EXPECT_EQ(file.blocks().size(), 1u);
  EXPECT_EQ(file.roots().size(), 1u);
  EXPECT_EQ(file.find(s.record_cid), nullptr);
  EXPECT_NE(file.find(s.blob_cid), nullptr);
}

TEST(Car, FindsBlocksByCidWithLinearScan) {
  const Sample s;
  CarFile file;
  ASSERT_EQ(file.open(s.car), std::nullopt);
  const CarBlock* record = file.find(s.record_cid);
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(to_vector(record->data), s.record);
  const CarBlock* blob = file.find(s.blob_cid);
  ASSERT_NE(blob, nullptr);
  EXPECT_EQ(to_vector(blob->data), s.blob);
  EXPECT_EQ(file.find(cid_of(kCodecRaw, s.record)), nullptr);  // same digest, other codec
  EXPECT_EQ(file.find(cid_of(kCodecDagCbor, Bytes{0xa0})), nullptr);
  const Bytes prefix(s.record_cid.begin(), s.record_cid.end() - 1);
  EXPECT_EQ(file.find(prefix), nullptr);
}

TEST(Car, FindsBlocksByCidAfterBuildingTheIndex) {
  const Sample s;
  CarFile file;
  ASSERT_EQ(file.open(s.car), std::nullopt);
  file.build_lookup_index();
  const CarBlock* record = file.find(s.record_cid);
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(to_vector(record->data), s.record);
  const CarBlock* blob = file.find(s.blob_cid);
  ASSERT_NE(blob, nullptr);
  EXPECT_EQ(to_vector(blob->data), s.blob);
  EXPECT_EQ(file.find(cid_of(kCodecRaw, s.record)), nullptr);
  EXPECT_EQ(file.find(cid_of(kCodecDagCbor, Bytes{0xa0})), nullptr);
}

TEST(Car, IndexedAndLinearLookupAgreeOnManyBlocks) {
  std::vector<std::pair<Bytes, Bytes>> blocks;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    Bytes data = CborBuilder().map(1).text("i").uint(i).take();
    Bytes cid = cid_of(kCodecDagCbor, data);
    blocks.emplace_back(std::move(cid), std::move(data));
  }
  const Bytes car = make_car({blocks.front().first}, blocks);
  CarFile linear;
  CarFile indexed;
  ASSERT_EQ(linear.open(car), std::nullopt);
  ASSERT_EQ(indexed.open(car), std::nullopt);
  indexed.build_lookup_index();
  ASSERT_EQ(indexed.blocks().size(), 1000u);
  for (const auto& [cid, data] : blocks) {
    const CarBlock* a = linear.find(cid);
    const CarBlock* b = indexed.find(cid);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(a - linear.blocks().data(), b - indexed.blocks().data());
    EXPECT_EQ(to_vector(b->data), data);
  }
  for (std::uint64_t i = 1000; i < 1100; ++i) {
    const Bytes missing = cid_of(kCodecDagCbor, CborBuilder().map(1).text("i").uint(i).take());
    EXPECT_EQ(linear.find(missing), nullptr);
    EXPECT_EQ(indexed.find(missing), nullptr);
  }
}

TEST(Car, DuplicateBlocksResolveToTheFirstInBothLookups) {
  const Sample s;
  const Bytes car = make_car({}, {{s.blob_cid, s.blob}, {s.blob_cid, Bytes{'x'}}});
  CarFile file;
  ASSERT_EQ(file.open(car), std::nullopt);
  ASSERT_EQ(file.blocks().size(), 2u);
  EXPECT_EQ(file.find(s.blob_cid), &file.blocks()[0]);
  file.build_lookup_index();
  EXPECT_EQ(file.find(s.blob_cid), &file.blocks()[0]);
}

TEST(Car, FindOfAnEmptyOrShortCidReturnsNull) {
  const Sample s;
  CarFile file;
  ASSERT_EQ(file.open(s.car), std::nullopt);
  EXPECT_EQ(file.find(byte_view{}), nullptr);
  const Bytes tiny{0x01};
  EXPECT_EQ(file.find(tiny), nullptr);
  file.build_lookup_index();
  EXPECT_EQ(file.find(byte_view{}), nullptr);
  EXPECT_EQ(file.find(tiny), nullptr);
}

TEST(Car, FindOnAnEmptyCarReturnsNull) {
  CarFile file;
  ASSERT_EQ(file.open(make_car({}, {})), std::nullopt);
  EXPECT_EQ(file.find(cid_of(kCodecRaw, Bytes{})), nullptr);
  file.build_lookup_index();
  EXPECT_EQ(file.find(cid_of(kCodecRaw, Bytes{})), nullptr);
}

TEST(Car, OpenDoesNotVerifyBlockHashesButCidMatchesDoes) {
  // A CAR only frames blocks; hash checking is the caller's job (cid_matches).
  const Sample s;
  const Bytes car = make_car({}, {{s.record_cid, s.blob}});
  CarFile file;
  ASSERT_EQ(file.open(car), std::nullopt);
  ASSERT_EQ(file.blocks().size(), 1u);
  EXPECT_FALSE(cid_matches(file.blocks()[0].cid, file.blocks()[0].data));
  CarFile good;
  ASSERT_EQ(good.open(s.car), std::nullopt);
  for (const CarBlock& block : good.blocks()) EXPECT_TRUE(cid_matches(block.cid, block.data));
}

TEST(Car, EveryTruncationFailsCleanlyOrEndsOnABlockBoundary) {
  const Sample s;
  // Section boundaries: after the header and after each block, a prefix is itself a valid CAR.
  std::set<std::size_t> boundaries;
  {
    const Bytes header_only = make_car({s.record_cid}, {});
    boundaries.insert(header_only.size());
    const Bytes one_block = make_car({s.record_cid}, {{s.record_cid, s.record}});
    boundaries.insert(one_block.size());
  }
  for (std::size_t length = 0; length < s.car.size(); ++length) {
    const Bytes prefix(s.car.begin(), s.car.begin() + static_cast<std::ptrdiff_t>(length));
    CarFile file;
    const auto error = file.open(prefix);
    if (boundaries.count(length) != 0) {
      EXPECT_EQ(error, std::nullopt) << "length " << length;
      EXPECT_EQ(file.blocks().size(), length == *boundaries.begin() ? 0u : 1u);
    } else {
      EXPECT_TRUE(error == CarError::truncated || error == CarError::bad_header ||
                  error == CarError::bad_block)
          << "length " << length;
    }
  }
}

TEST(Car, TruncationInsideABlockIsTruncated) {
  const Sample s;
  const Bytes one_block = make_car({s.record_cid}, {{s.record_cid, s.record}});
  for (std::size_t cut = 1; cut < s.car.size() - one_block.size(); ++cut) {
    const Bytes prefix(s.car.begin(), s.car.end() - static_cast<std::ptrdiff_t>(cut));
    EXPECT_EQ(open_error(prefix), CarError::truncated) << "cut " << cut;
  }
}

TEST(Car, TruncationInsideTheHeaderIsTruncated) {
  const Sample s;
  const Bytes header_only = make_car({s.record_cid}, {});
  for (std::size_t length = 0; length < header_only.size(); ++length) {
    const Bytes prefix(s.car.begin(), s.car.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_EQ(open_error(prefix), CarError::truncated) << "length " << length;
  }
}

TEST(Car, RejectsAHeaderThatIsNotAMap) {
  EXPECT_EQ(open_error(car_with_header(CborBuilder().array(2).uint(1).array(0).take())),
            CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header(CborBuilder().uint(1).take())), CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header(CborBuilder().text("version").take())),
            CarError::bad_header);
}

TEST(Car, RejectsAHeaderThatIsNotDagCbor) {
  // Floats, indefinite lengths and trailing bytes inside the declared header length.
  EXPECT_EQ(open_error(car_with_header({0xfb, 0, 0, 0, 0, 0, 0, 0, 0})), CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header({0xbf, 0xff})), CarError::bad_header);
  Bytes trailing = CborBuilder().map(2).text("roots").array(0).text("version").uint(1).take();
  trailing.push_back(0x00);
  EXPECT_EQ(open_error(car_with_header(trailing)), CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header({})), CarError::bad_header);
}

TEST(Car, RejectsVersionTwo) {
  const Bytes header = CborBuilder().map(2).text("roots").array(0).text("version").uint(2).take();
  EXPECT_EQ(open_error(car_with_header(header)), CarError::unsupported_version);
  const Bytes zero = CborBuilder().map(2).text("roots").array(0).text("version").uint(0).take();
  EXPECT_EQ(open_error(car_with_header(zero)), CarError::unsupported_version);
}

TEST(Car, RejectsMissingOrMistypedHeaderFields) {
  EXPECT_EQ(open_error(car_with_header(CborBuilder().map(1).text("roots").array(0).take())),
            CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header(CborBuilder().map(1).text("version").uint(1).take())),
            CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header(
                CborBuilder().map(2).text("roots").array(0).text("version").text("1").take())),
            CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header(
                CborBuilder().map(2).text("roots").array(0).text("version").integer(-1).take())),
            CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header(
                CborBuilder().map(2).text("roots").map(0).text("version").uint(1).take())),
            CarError::bad_header);
  EXPECT_EQ(open_error(car_with_header(
                CborBuilder().map(2).text("roots").null().text("version").uint(1).take())),
            CarError::bad_header);
}

TEST(Car, RejectsRootsThatAreNotLinks) {
  const Sample s;
  const Bytes text_root =
      CborBuilder().map(2).text("roots").array(1).text("bafy").text("version").uint(1).take();
  EXPECT_EQ(open_error(car_with_header(text_root)), CarError::bad_header);
  const Bytes bytes_root = CborBuilder()
                               .map(2)
                               .text("roots")
                               .array(1)
                               .bytes(s.record_cid)
                               .text("version")
                               .uint(1)
                               .take();
  EXPECT_EQ(open_error(car_with_header(bytes_root)), CarError::bad_header);
  const Bytes mixed = CborBuilder()
                          .map(2)
                          .text("roots")
                          .array(2)
                          .link(s.record_cid)
                          .uint(0)
                          .text("version")
                          .uint(1)
                          .take();
  EXPECT_EQ(open_error(car_with_header(mixed)), CarError::bad_header);
}

TEST(Car, RejectsRootsWithABadCid) {
  // Tag 42 around a CIDv0: the header is not valid DAG-CBOR.
  Bytes v0{0x12, 0x20};
  v0.resize(34, 0x11);
  const Bytes header =
      CborBuilder().map(2).text("roots").array(1).link(v0).text("version").uint(1).take();
  EXPECT_EQ(open_error(car_with_header(header)), CarError::bad_header);
}

TEST(Car, RejectsAHeaderLengthBeyondTheInput) {
  Bytes car;
  append_uvarint(car, 1000);
  car.push_back(0xa0);
  EXPECT_EQ(open_error(car), CarError::truncated);
  EXPECT_EQ(open_error({}), CarError::truncated);
  EXPECT_EQ(open_error({0x80}), CarError::truncated);  // unterminated varint
}

TEST(Car, RejectsABlockWithABadCid) {
  const Sample s;
  const Bytes header = CborBuilder().map(2).text("roots").array(0).text("version").uint(1).take();
  // CIDv0 (a bare multihash) as the block's CID.
  Bytes v0{0x12, 0x20};
  v0.insert(v0.end(), s.record_cid.begin() + 4, s.record_cid.end());
  EXPECT_EQ(open_error(car_with_header(header, {{v0, s.record}})), CarError::bad_block);
  // Version 2.
  Bytes v2 = s.record_cid;
  v2[0] = 0x02;
  EXPECT_EQ(open_error(car_with_header(header, {{v2, s.record}})), CarError::bad_block);
  // A section shorter than the CID it starts with.
  const Bytes short_cid(s.record_cid.begin(), s.record_cid.begin() + 10);
  EXPECT_EQ(open_error(car_with_header(header, {{short_cid, {}}})), CarError::bad_block);
  // An empty section.
  EXPECT_EQ(open_error(car_with_header(header, {{{}, {}}})), CarError::bad_block);
  // A good block followed by a bad one still fails.
  EXPECT_EQ(open_error(car_with_header(header, {{s.record_cid, s.record}, {v0, s.record}})),
            CarError::bad_block);
}

TEST(Car, AcceptsABlockWithNoData) {
  const Sample s;
  const Bytes empty_cid = cid_of(kCodecRaw, {});
  const Bytes car = make_car({}, {{empty_cid, {}}});
  CarFile file;
  ASSERT_EQ(file.open(car), std::nullopt);
  ASSERT_EQ(file.blocks().size(), 1u);
  EXPECT_TRUE(file.blocks()[0].data.empty());
  EXPECT_TRUE(cid_matches(file.blocks()[0].cid, file.blocks()[0].data));
}

TEST(Car, RejectsMoreBlocksThanTheLimit) {
  const Sample s;
  CarFile file;
  EXPECT_EQ(file.open(s.car, 1), CarError::too_many_blocks);
  EXPECT_EQ(file.open(s.car, 2), std::nullopt);
  EXPECT_EQ(file.blocks().size(), 2u);
}

TEST(Car, ErrorNamesAreDistinct) {
  std::set<std::string_view> names;
  for (int e = 0; e <= static_cast<int>(CarError::cid_mismatch); ++e) {
    const std::string_view name = to_string(static_cast<CarError>(e));
    EXPECT_NE(name, "unknown");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(CarError::cid_mismatch) + 1);
}

TEST(Car, OpensTheRealRepositoryExportAndFindsEveryRecord) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  JETSTREAM_REQUIRE_SHARED_FILE(records_path, "corpus/car_expected_records.tsv");
  const Bytes car = testing::read_binary_file(car_path);
  CarFile file;
  ASSERT_EQ(file.open(car), std::nullopt);
  ASSERT_EQ(file.roots().size(), 1u);
  ASSERT_NE(file.find(file.roots()[0].bytes), nullptr) << "the commit block is in the CAR";
  for (const CarBlock& block : file.blocks()) {
    EXPECT_TRUE(cid_matches(block.cid, block.data)) << cid_to_string(block.cid.bytes);
  }
  file.build_lookup_index();
  std::ifstream records(records_path);
  std::string line;
  std::size_t checked = 0;
  while (std::getline(records, line)) {
    if (line.empty()) continue;
    const std::size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const auto cid = parse_cid_string(line.substr(tab + 1));
    ASSERT_TRUE(cid.has_value()) << line;
    const CarBlock* block = file.find(*cid);
    ASSERT_NE(block, nullptr) << line;
    EXPECT_EQ(block->cid.codec, kCodecDagCbor) << line;
    ++checked;
  }
  EXPECT_GT(checked, 0u);
}

/// Every block a CarStreamReader hands over when `car` is fed in chunks of `chunk` bytes.
struct Streamed {
  std::vector<std::pair<Bytes, Bytes>> blocks;
  std::optional<CarError> error;
  std::size_t most_buffered = 0;
  std::vector<Bytes> roots;
  std::set<std::uint64_t> ends;  ///< with 1-byte chunks: where the header and each block end
};

Streamed stream(const Bytes& car, std::size_t chunk, CarStreamReader::Limits limits = {}) {
  Streamed out;
  CarStreamReader reader(limits);
  for (std::size_t at = 0; at < car.size() && !out.error; at += chunk) {
    out.error = reader.feed(byte_view(car).subspan(at, std::min(chunk, car.size() - at)),
                            [&](const CidView& cid, byte_view data) {
                              out.blocks.emplace_back(to_vector(cid.bytes), to_vector(data));
                              out.ends.insert(reader.bytes_read());
                            });
    out.most_buffered = std::max(out.most_buffered, reader.buffered_bytes());
    if (out.ends.empty() && !reader.roots().empty()) out.ends.insert(reader.bytes_read());
  }
  if (!out.error) out.error = reader.finish();
  for (const auto& root : reader.roots()) out.roots.push_back(to_vector(root.bytes));
  return out;
}

TEST(CarStream, TheRealRepositoryStreamsInAnyChunkSizeToTheBlocksOfTheWholeFile) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const Bytes car = testing::read_binary_file(car_path);
  CarFile file;
  ASSERT_EQ(file.open(car), std::nullopt);
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, car.size()}) {
    SCOPED_TRACE(chunk);
    const Streamed streamed = stream(car, chunk);
    ASSERT_EQ(streamed.error, std::nullopt);
    ASSERT_EQ(streamed.blocks.size(), file.blocks().size());
    for (std::size_t i = 0; i < streamed.blocks.size(); ++i) {
      EXPECT_EQ(streamed.blocks[i].first, to_vector(file.blocks()[i].cid.bytes));
      EXPECT_EQ(streamed.blocks[i].second, to_vector(file.blocks()[i].data));
    }
    ASSERT_EQ(streamed.roots.size(), 1u);
    EXPECT_EQ(streamed.roots[0], to_vector(file.roots()[0].bytes));
  }
}

TEST(CarStream, EveryTruncationInsideABlockIsReportedAndTheBlocksBeforeItAreWhole) {
  JETSTREAM_REQUIRE_SHARED_FILE(car_path, "corpus/repo.car");
  const Bytes car = testing::read_binary_file(car_path);
  const Streamed whole = stream(car, 1);
  for (std::size_t length = 0; length < car.size(); length += 1 + length / 64) {
    const Bytes cut(car.begin(), car.begin() + static_cast<std::ptrdiff_t>(length));
    const Streamed streamed = stream(cut, 333);
    // A cut between two blocks is a shorter CAR (the format has no count): the MST walk above it
    // finds the blocks missing. Anywhere else it is truncated.
    if (whole.ends.count(length) != 0) {
      EXPECT_EQ(streamed.error, std::nullopt) << length;
    } else {
      EXPECT_EQ(streamed.error, CarError::truncated) << length;
    }
    ASSERT_LE(streamed.blocks.size(), whole.blocks.size());
    for (std::size_t i = 0; i < streamed.blocks.size(); ++i) {
      EXPECT_EQ(streamed.blocks[i], whole.blocks[i]);
    }
  }
}

TEST(CarStream, ABlockUnlikeItsCidOrOverTheLimitStopsTheStreamWithoutBufferingIt) {
  Sample s;
  Bytes forged = s.car;
  forged.back() ^= 0x01;  // the last block's data
  EXPECT_EQ(stream(forged, 5).error, CarError::cid_mismatch);

  // A block announced at 64 MiB: refused when its length is read, nothing of it kept.
  Bytes huge =
      car_with_header(CborBuilder().map(2).text("roots").array(0).text("version").uint(1).take());
  append_uvarint(huge, std::uint64_t{64} << 20);
  huge.resize(huge.size() + 4096, 0x00);
  CarStreamReader::Limits limits;
  limits.max_block_bytes = 1 << 20;
  const Streamed streamed = stream(huge, 1024, limits);
  EXPECT_EQ(streamed.error, CarError::block_too_large);
  EXPECT_LE(streamed.most_buffered, 2048u);

  // Memory stays within one block and one chunk while a long CAR streams by.
  std::vector<std::pair<Bytes, Bytes>> blocks;
  for (int i = 0; i < 2000; ++i) {
    Bytes record = CborBuilder().map(1).text("n").uint(static_cast<std::uint64_t>(i)).take();
    blocks.emplace_back(cid_of(kCodecDagCbor, record), record);
  }
  const Bytes long_car = make_car({blocks.front().first}, blocks);
  const Streamed long_stream = stream(long_car, 512);
  EXPECT_EQ(long_stream.error, std::nullopt);
  EXPECT_EQ(long_stream.blocks.size(), blocks.size());
  EXPECT_LE(long_stream.most_buffered, 512u + 64u);
}

}  // namespace
}  // namespace jetstream::codec
