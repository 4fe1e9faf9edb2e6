// Fanout's shared event blocks and the window of recent blocks: frame layout, the position
// search, coverage answers and the memory bound. Pure (no sockets, no actors).
#include "services/fanout/event_window.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "services/fanout/event_block.hpp"

namespace {

using jetstream::fanout::BlockPtr;
using jetstream::fanout::EventBlock;
using jetstream::fanout::EventWindow;
using Coverage = jetstream::fanout::EventWindow::Coverage;

/// Owns the bytes an EventView points at.
struct OwnedEvent {
  std::int64_t time_us = 0;
  std::int64_t prev_time_us = 0;
  std::string did = "did:plc:abc";
  std::string collection = "app.bsky.feed.post";
  std::string json;
  std::vector<std::uint8_t> zstd;
};

BlockPtr block_of(const std::vector<OwnedEvent>& events) {
  std::vector<jetstream::proto::EventView> views;
  for (const auto& e : events) {
    jetstream::proto::EventView view;
    view.time_us = e.time_us;
    view.prev_time_us = e.prev_time_us;
    view.did = e.did;
    view.collection = e.collection;
    view.json = e.json;
    view.zstd = e.zstd;
    views.push_back(view);
  }
  return EventBlock::build(views);
}

/// Events with time_us first, first+10, ... chained from `prev`.
std::vector<OwnedEvent> events(std::int64_t prev, std::int64_t first, int count,
                               std::size_t json_bytes = 20, bool zstd = true) {
  std::vector<OwnedEvent> out;
  for (int i = 0; i < count; ++i) {
    const std::int64_t t = first + 10 * i;
    OwnedEvent e;
    e.time_us = t;
    e.prev_time_us = i == 0 ? prev : t - 10;
    e.json = "{\"time_us\":" + std::to_string(t) + "}" + std::string(json_bytes, ' ');
    if (zstd) e.zstd.assign(5 + static_cast<std::size_t>(i), static_cast<std::uint8_t>(i));
    out.push_back(e);
  }
  return out;
}

std::string payload_of(std::span<const std::uint8_t> frame, std::uint8_t opcode) {
  EXPECT_GE(frame.size(), 2u);
  EXPECT_EQ(frame[0], 0x80 | opcode);
  std::size_t header = 2;
  std::size_t length = frame[1];
  if (length == 126) {
    header = 4;
    length = (std::size_t{frame[2]} << 8) | frame[3];
  } else if (length == 127) {
    header = 10;
    length = 0;
    for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | frame[i];
  }
  EXPECT_EQ(frame.size(), header + length);
  return std::string(reinterpret_cast<const char*>(frame.data()) + header, length);
}

TEST(EventBlock, EachEventHasItsTextAndBinaryFrameAndItsFilterFields) {
  auto source = events(0, 100, 3);
  source[1].json += std::string(200, 'x');     // 16-bit length
  source[2].json += std::string(70'000, 'y');  // 64-bit length
  const BlockPtr block = block_of(source);
  ASSERT_EQ(block->events().size(), 3u);
  EXPECT_EQ(block->first_prev_time_us(), 0);
  EXPECT_EQ(block->first_time_us(), 100);
  EXPECT_EQ(block->last_time_us(), 120);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& event = block->events()[i];
    EXPECT_EQ(payload_of(event.text_frame, 0x1), source[i].json);
    EXPECT_EQ(payload_of(event.binary_frame, 0x2),
              std::string(source[i].zstd.begin(), source[i].zstd.end()));
    EXPECT_EQ(event.json_size, source[i].json.size());
    EXPECT_EQ(event.zstd_size, source[i].zstd.size());
    EXPECT_EQ(event.did, source[i].did);
    EXPECT_EQ(event.collection, source[i].collection);
  }
}

TEST(EventBlock, ConsecutiveFramesOfOneEncodingAreContiguous) {
  const BlockPtr block = block_of(events(0, 100, 5));
  const auto all = block->events();
  for (std::size_t i = 1; i < all.size(); ++i) {
    EXPECT_EQ(all[i - 1].text_frame.data() + all[i - 1].text_frame.size(), all[i].text_frame.data())
        << "text frames " << i - 1 << " and " << i << " are not back to back";
    EXPECT_EQ(all[i - 1].binary_frame.data() + all[i - 1].binary_frame.size(),
              all[i].binary_frame.data())
        << "binary frames " << i - 1 << " and " << i << " are not back to back";
  }
}

TEST(EventBlock, WithoutZstdTheBinaryFramesAreEmpty) {
  const BlockPtr block = block_of(events(0, 100, 2, 20, false));
  for (const auto& event : block->events()) {
    EXPECT_TRUE(event.binary_frame.empty());
    EXPECT_EQ(event.zstd_size, 0u);
  }
}

TEST(EventBlock, FirstAfterFindsTheFirstEventNewerThanAPosition) {
  const BlockPtr block = block_of(events(0, 100, 4));  // 100, 110, 120, 130
  EXPECT_EQ(block->first_after(0), 0u);
  EXPECT_EQ(block->first_after(100), 1u);
  EXPECT_EQ(block->first_after(105), 1u);
  EXPECT_EQ(block->first_after(129), 3u);
  EXPECT_EQ(block->first_after(130), 4u);
}

/// Appends `blocks` blocks of 2 events each, chained from 990: 1000, 1010 | 1020, 1030 | ...
void fill(EventWindow& window, int blocks) {
  std::int64_t prev = 990;
  for (int b = 0; b < blocks; ++b) {
    const std::int64_t first = 1000 + 20 * b;
    window.append(block_of(events(prev, first, 2)));
    prev = first + 10;
  }
}

TEST(EventWindow, AfterFindsTheBlockHoldingTheNextEventWhereverItIs) {
  constexpr int kBlocks = 500;  // far more than the look-back from the head
  EventWindow window(std::size_t{1} << 30);
  fill(window, kBlocks);
  EXPECT_EQ(window.oldest_position(), 990);
  EXPECT_EQ(window.newest(), 1000 + 20 * (kBlocks - 1) + 10);
  std::vector<BlockPtr> out;
  for (std::int64_t position = 990; position < window.newest(); position += 7) {
    ASSERT_EQ(window.after(position, 3, out), Coverage::covered) << position;
    ASSERT_FALSE(out.empty());
    // The first block returned holds the first event after the position...
    EXPECT_GT(out.front()->last_time_us(), position) << position;
    EXPECT_LE(out.front()->first_prev_time_us(), position) << position;
    // ...and the rest continue the chain.
    for (std::size_t i = 1; i < out.size(); ++i) {
      EXPECT_EQ(out[i]->first_prev_time_us(), out[i - 1]->last_time_us());
    }
    EXPECT_LE(out.size(), 3u);
  }
}

TEST(EventWindow, AtTheHeadItIsCaughtUpAndBeforeItsStartTooOld) {
  EventWindow window(std::size_t{1} << 30);
  fill(window, 40);
  std::vector<BlockPtr> out;
  EXPECT_EQ(window.after(window.newest(), 8, out), Coverage::caught_up);
  EXPECT_EQ(window.after(window.newest() + 5, 8, out), Coverage::caught_up);
  EXPECT_EQ(window.after(989, 8, out), Coverage::too_old);
  EXPECT_EQ(window.after(990, 8, out), Coverage::covered);
}

TEST(EventWindow, TheMemoryBoundEvictsTheOldestBlocksButKeepsTheNewest) {
  const std::size_t one_block = block_of(events(0, 1, 2))->memory_bytes();
  EventWindow window(one_block * 10);
  fill(window, 100);
  EXPECT_LE(window.bytes(), one_block * 10 + one_block);
  EXPECT_LT(window.block_count(), 100u);
  EXPECT_GE(window.block_count(), 1u);
  std::vector<BlockPtr> out;
  EXPECT_EQ(window.after(990, 8, out), Coverage::too_old);
  EXPECT_EQ(window.after(window.oldest_position(), 8, out), Coverage::covered);

  EventWindow tiny(1);  // smaller than any block: one block stays
  fill(tiny, 5);
  EXPECT_EQ(tiny.block_count(), 1u);
  EXPECT_EQ(tiny.after(tiny.oldest_position(), 8, out), Coverage::covered);
}

TEST(EventWindow, ResetEmptiesItAtAGivenHead) {
  EventWindow window(std::size_t{1} << 30);
  fill(window, 10);
  window.reset(5000);
  EXPECT_EQ(window.block_count(), 0u);
  EXPECT_EQ(window.newest(), 5000);
  std::vector<BlockPtr> out;
  EXPECT_EQ(window.after(5000, 8, out), Coverage::caught_up);
  EXPECT_EQ(window.after(4000, 8, out), Coverage::too_old);
  window.append(block_of(events(9000, 9010, 2)));  // an empty window starts a new chain
  EXPECT_EQ(window.oldest_position(), 9000);
}

TEST(EventWindowDeathTest, ABrokenChainIsABugAndAborts) {
  EventWindow window(std::size_t{1} << 30);
  fill(window, 2);
  EXPECT_DEATH(window.append(block_of(events(1, 5000, 1))), "chain broken");
}

}  // namespace
