// Real v1 events (golden_v1.jsonl, dev.expected.jsonl): their records, re-encoded as canonical
// DAG-CBOR, convert back to exactly the bytes v1 served and hash to the CID v1 reported. Pins key
// sorting, blob key order, escaping and CID computation on real data, beyond the dev frames.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <sstream>
#include <string>

#include "common/codec/cid.hpp"
#include "common/codec/record_json.hpp"
#include "tests/support/atproto_json.hpp"
#include "tests/support/shared_data.hpp"

namespace {

namespace codec = jetstream::codec;
namespace support = jetstream::testing;
using jetstream::byte_view;

/// The raw text of the JSON value that follows `"key":` in `line` (balanced braces/brackets,
/// string-aware), or empty when absent.
std::string raw_value_after(const std::string& line, const std::string& key) {
  const auto start = line.find("\"" + key + "\":");
  if (start == std::string::npos) return {};
  std::size_t i = start + key.size() + 3;
  const std::size_t value_start = i;
  int depth = 0;
  bool in_string = false;
  for (; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      ++depth;
    else if (c == '}' || c == ']') {
      if (--depth == 0) return line.substr(value_start, i + 1 - value_start);
    }
  }
  return {};
}

void check_records_of(const std::filesystem::path& path, int& checked) {
  std::istringstream in(support::read_text_file(path));
  codec::RecordConverter converter;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    const std::string raw_record = raw_value_after(line, "record");
    if (raw_record.empty()) continue;  // deletes, identity, account
    rapidjson::Document record;
    record.Parse(raw_record.c_str(), raw_record.size());
    ASSERT_FALSE(record.HasParseError()) << path << ":" << line_number;
    const support::Bytes cbor = support::atproto_json_to_cbor(record);

    std::string converted;
    ASSERT_FALSE(converter.append_json(converted, cbor)) << path << ":" << line_number;
    EXPECT_EQ(converted, raw_record) << path << ":" << line_number;

    const auto cid_start = line.rfind("\"cid\":\"");
    ASSERT_NE(cid_start, std::string::npos);
    const std::string cid =
        line.substr(cid_start + 7, line.find('"', cid_start + 7) - cid_start - 7);
    EXPECT_EQ(codec::cid_to_string(support::cid_of(codec::kCodecDagCbor, cbor)), cid)
        << path << ":" << line_number;
    ++checked;
  }
}

TEST(V1RecordsGolden, GoldenV1RecordsRoundTripToTheExactBytesAndCids) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "corpus/golden_v1.jsonl");
  int checked = 0;
  check_records_of(path, checked);
  EXPECT_GE(checked, 7);  // like, post, repost, follow, profile, non-bsky, block
}

TEST(V1RecordsGolden, DevExpectedRecordsRoundTripToTheExactBytesAndCids) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "corpus/dev.expected.jsonl");
  int checked = 0;
  check_records_of(path, checked);
  EXPECT_EQ(checked, 76);  // 77 events, one of them a delete
}

}  // namespace
