// fanout's WriteQueue without a socket: ordering of data and control frames, partial writes,
// gathering into iovecs, discarding on close, and the ownership rule of SharedFrame that a
// discard must keep (the use-after-free it once broke).
#include "services/fanout/write_queue.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace jetstream::fanout {
namespace {

using Kind = WriteQueue::Kind;

SharedFrame owned(const std::string& bytes) { return SharedFrame::copy_of(bytes); }

/// The bytes `gather` would write, as one string.
std::string gathered(const WriteQueue& queue, std::size_t max_frames = 1000,
                     std::size_t max_bytes = 1 << 20) {
  std::array<iovec, 16> iov{};
  const auto g = queue.gather(iov, max_frames, max_bytes);
  std::string out;
  for (std::size_t i = 0; i < g.iov_count; ++i) {
    out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  EXPECT_EQ(out.size(), g.bytes);
  return out;
}

const std::function<void(std::chrono::steady_clock::duration)> kNoTiming;

TEST(WriteQueue, DataIsWrittenInOrderAndAPartialWriteResumesMidFrame) {
  WriteQueue queue;
  queue.push_back(Kind::kData, owned("aaa"));
  queue.push_back(Kind::kData, owned("bbbb"));
  EXPECT_EQ(gathered(queue), "aaabbbb");
  auto done = queue.consume(5, kNoTiming);
  EXPECT_EQ(done.data_bytes, 5u);
  EXPECT_EQ(done.data_frames, 1u);
  EXPECT_EQ(queue.front_offset(), 2u);
  EXPECT_EQ(gathered(queue), "bb");
  done = queue.consume(2, kNoTiming);
  EXPECT_EQ(done.data_frames, 1u);
  EXPECT_TRUE(queue.empty());
}

TEST(WriteQueue, FramesAdjacentInOneBufferShareOneIovec) {
  auto buffer = std::make_shared<const std::string>("0123456789");
  WriteQueue queue;
  queue.push_back(Kind::kData, SharedFrame::slice(buffer, 0, 3));
  queue.push_back(Kind::kData, SharedFrame::slice(buffer, 3, 3));
  queue.push_back(Kind::kData, SharedFrame::slice(buffer, 7, 3));  // a gap: a new iovec
  std::array<iovec, 4> iov{};
  const auto g = queue.gather(iov, 100, 100);
  EXPECT_EQ(g.iov_count, 2u);
  EXPECT_EQ(g.frames, 3u);
  EXPECT_EQ(g.bytes, 9u);
  EXPECT_EQ(iov[0].iov_len, 6u);
}

TEST(WriteQueue, GatherStopsAtTheFrameByteAndIovecLimitsWithoutSplittingAFrame) {
  WriteQueue queue;
  for (const char* text : {"aa", "bb", "cc", "dd"}) queue.push_back(Kind::kData, owned(text));
  EXPECT_EQ(gathered(queue, 2), "aabb");
  EXPECT_EQ(gathered(queue, 100, 3), "aabb") << "the frame that crosses the bound is whole";
  std::array<iovec, 3> small{};
  EXPECT_EQ(queue.gather(small, 100, 100).frames, 3u) << "no more iovecs than given";
}

TEST(WriteQueue, EmptyFramesAreNotQueued) {
  WriteQueue queue;
  queue.push_back(Kind::kData, owned(""));
  EXPECT_TRUE(queue.empty());
}

TEST(WriteQueue, ControlFramesGoAheadOfDataButBehindAPartlyWrittenFrameAndTheHandshake) {
  WriteQueue queue;
  queue.push_back(Kind::kHandshake, owned("H"));
  queue.push_back(Kind::kData, owned("d1"));
  queue.push_back(Kind::kData, owned("d2"));
  queue.push_control(Kind::kPing, owned("P"));
  EXPECT_EQ(gathered(queue), "HPd1d2");
  queue.consume(3, kNoTiming);  // H, P and the first byte of d1
  queue.push_control(Kind::kPong, owned("o"));
  EXPECT_EQ(gathered(queue), "1od2") << "never inside the frame being written";
}

TEST(WriteQueue, AnUnsentPongIsReplacedByTheNewerOne) {
  WriteQueue queue;
  queue.push_back(Kind::kData, owned("data"));
  for (const char* pong : {"p1", "p2", "p3"}) queue.push_control(Kind::kPong, owned(pong));
  EXPECT_EQ(queue.size(), 2u) << "a ping flood cannot grow the queue";
  EXPECT_EQ(gathered(queue), "p3data");
}

TEST(WriteQueue, ConsumeReportsPingAndCloseAndTimesMeasuredFrames) {
  WriteQueue queue;
  SharedFrame measured = owned("m");
  measured.measure_from = std::chrono::steady_clock::now();
  queue.push_control(Kind::kPing, owned("P"));
  queue.push_back(Kind::kData, measured);
  queue.push_back(Kind::kData, owned("u"));
  queue.push_back(Kind::kClose, owned("C"));
  int timed = 0;
  const auto done = queue.consume(4, [&](std::chrono::steady_clock::duration since) {
    ++timed;
    EXPECT_GE(since.count(), 0);
  });
  EXPECT_TRUE(done.ping_written);
  EXPECT_TRUE(done.close_written);
  EXPECT_EQ(done.data_frames, 2u);
  EXPECT_EQ(done.data_bytes, 2u) << "control bytes are not data";
  EXPECT_EQ(timed, 1) << "only the frame with measure_from";
}

TEST(WriteQueue, DiscardKeepsThePartlyWrittenFrameTheHandshakeAndPongsAndDropsDataAndPing) {
  WriteQueue queue;
  queue.push_back(Kind::kData, owned("partial"));
  queue.consume(3, kNoTiming);
  queue.push_back(Kind::kData, owned("unsent"));
  queue.push_control(Kind::kPing, owned("P"));
  queue.push_control(Kind::kPong, owned("o"));
  const auto discarded = queue.discard_unsent();
  EXPECT_EQ(discarded.data_bytes, 6u);
  EXPECT_TRUE(discarded.ping_dropped);
  EXPECT_EQ(gathered(queue), "tialo");
  queue.push_back(Kind::kClose, owned("C"));
  EXPECT_EQ(gathered(queue), "tialoC") << "the close frame goes after what was kept";
}

TEST(WriteQueue, DiscardHandsTheOwnerToAPartlyWrittenFrameThatBorrowedIt) {
  // Two frames of one block: the first borrows its bytes' owner from the second (SharedFrame's
  // rule). Dropping the second must not free the bytes the first is still being written from.
  std::weak_ptr<const std::string> watch;
  WriteQueue queue;
  {
    auto block = std::make_shared<const std::string>("first-second");
    watch = block;
    SharedFrame first = SharedFrame::slice(block, 0, 6);
    first.owner.reset();  // borrowed
    queue.push_back(Kind::kData, std::move(first));
    queue.push_back(Kind::kData, SharedFrame::slice(block, 6, 6));
  }
  queue.consume(2, kNoTiming);
  queue.discard_unsent();
  ASSERT_FALSE(watch.expired()) << "the partly written frame's bytes were freed";
  EXPECT_EQ(gathered(queue), "rst-");
  queue.consume(4, kNoTiming);
  EXPECT_TRUE(watch.expired()) << "and released once written";
}

TEST(WriteQueue, ClearReturnsTheDataBytesNotYetWritten) {
  WriteQueue queue;
  queue.push_back(Kind::kData, owned("12345"));
  queue.push_back(Kind::kClose, owned("C"));
  queue.push_back(Kind::kData, owned("678"));
  queue.consume(2, kNoTiming);
  EXPECT_EQ(queue.clear(), 6u);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.front_offset(), 0u);
}

}  // namespace
}  // namespace jetstream::fanout
