// DidSet: the same answers as a set of strings, first-seen order, and one shared table for
// identical lists (what keeps 1,000 clients following the same 10,000 accounts cheap).
#include "services/fanout/did_set.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "services/fanout/subscriber_options.hpp"

namespace jetstream::fanout {
namespace {

std::string did(int i) { return "did:plc:" + std::to_string(1'000'000 + i) + "abcdefghijklmnop"; }

std::vector<std::string> dids(int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) out.push_back(did(i));
  return out;
}

TEST(DidSet, AnswersLikeASetOfStringsSmallAndLarge) {
  for (const int count : {1, 8, 9, 1000, 10'000}) {
    const DidSet set(dids(count));
    ASSERT_EQ(set.size(), static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) EXPECT_TRUE(set.contains(did(i))) << count << " " << i;
    EXPECT_FALSE(set.contains(did(count))) << count;
    EXPECT_FALSE(set.contains("")) << count;
    EXPECT_FALSE(set.contains(did(0).substr(0, 10))) << "a prefix is not the DID";
  }
  EXPECT_FALSE(DidSet().contains(did(0)));
  EXPECT_TRUE(DidSet().empty());
}

TEST(DidSet, KeepsFirstSeenOrderAndDropsRepeats) {
  const DidSet set(std::vector<std::string>{"did:plc:b", "did:plc:a", "did:plc:b", "did:web:c"});
  EXPECT_EQ(set.to_vector(), (std::vector<std::string>{"did:plc:b", "did:plc:a", "did:web:c"}));
  EXPECT_EQ(set[1], "did:plc:a");
}

TEST(DidSet, IdenticalListsShareOneTableAndItGoesWithTheLastSet) {
  const std::size_t before = DidSet::live_tables();
  {
    const DidSet first(dids(10'000));
    const DidSet second(dids(10'000));
    const DidSet other(dids(9'999));
    EXPECT_TRUE(first.shares_table_with(second));
    EXPECT_FALSE(first.shares_table_with(other));
    EXPECT_EQ(first, second);
    EXPECT_FALSE(first == other);
    EXPECT_EQ(DidSet::live_tables(), before + 2);
    // About 45 bytes a DID of 32 bytes: far below strings in a vector and a hash set (~300).
    EXPECT_LT(first.memory_bytes(), 10'000u * 64);
  }
  EXPECT_EQ(DidSet::live_tables(), before);
  const DidSet rebuilt(dids(3));
  EXPECT_EQ(rebuilt.size(), 3u);
}

TEST(DidSet, TheSameDidsInAnotherOrderAreEqualOnlyAsOrderedLists) {
  const DidSet ab(std::vector<std::string>{"did:plc:a", "did:plc:b"});
  const DidSet ba(std::vector<std::string>{"did:plc:b", "did:plc:a"});
  EXPECT_FALSE(ab.shares_table_with(ba));
  EXPECT_FALSE(ab == ba);  // options compare as sent; the filters still answer the same
  EXPECT_TRUE(ba.contains("did:plc:a"));
}

TEST(DidSet, SubscribersSendingTheSameTenThousandDidsShareTheirFilter) {
  std::string query;
  for (int i = 0; i < 10'000; ++i) query += (i ? "&wantedDids=" : "wantedDids=") + did(i);
  const ParseResult a = parse_subscribe_request(query, std::nullopt);
  const ParseResult b = parse_subscribe_request(query, std::nullopt);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a.options->filters.dids.shares_table_with(b.options->filters.dids));
  EXPECT_EQ(a.options->filters.dids.size(), 10'000u);
}

}  // namespace
}  // namespace jetstream::fanout
