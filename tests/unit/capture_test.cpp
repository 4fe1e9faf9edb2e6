// The capture reader reads in blocks: frames that straddle a block, frames larger than a block,
// a pipe that delivers a little at a time, and the same frames from an istream and a descriptor.
#include "common/firehose/capture.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using jetstream::firehose::CaptureReader;
using jetstream::firehose::CaptureReadStatus;
using jetstream::firehose::kCaptureBlockBytes;
using Frame = std::vector<std::uint8_t>;

// Frames of varied sizes, so some end exactly at a block boundary and one spans several blocks.
std::vector<Frame> sample_frames() {
  std::vector<Frame> frames;
  std::uint8_t fill = 1;
  for (const std::size_t size :
       {std::size_t{0}, std::size_t{1}, std::size_t{5000},
        kCaptureBlockBytes - 5017 /* ends on the first block's last byte */, std::size_t{7},
        3 * kCaptureBlockBytes + 17, std::size_t{100000}}) {
    frames.emplace_back(size, fill++);
  }
  for (int i = 0; i < 500; ++i) frames.emplace_back(static_cast<std::size_t>(i * 37), fill++);
  return frames;
}

std::string capture_of(const std::vector<Frame>& frames) {
  std::ostringstream out;
  for (const auto& frame : frames) jetstream::firehose::write_capture_frame(out, frame);
  return out.str();
}

std::vector<Frame> read_all(CaptureReader& reader, CaptureReadStatus& status) {
  std::vector<Frame> frames;
  while ((status = reader.next()) == CaptureReadStatus::frame) {
    frames.emplace_back(reader.frame().begin(), reader.frame().end());
  }
  return frames;
}

TEST(CaptureReader, AnIstreamGivesEveryFrameBackWhateverItsSize) {
  const auto frames = sample_frames();
  std::istringstream in(capture_of(frames));
  CaptureReader reader(in);
  CaptureReadStatus status{};
  EXPECT_EQ(read_all(reader, status), frames);
  EXPECT_EQ(status, CaptureReadStatus::end);
}

TEST(CaptureReader, APipeFedInSmallPiecesGivesTheSameFramesAndFramesArriveBeforeTheEnd) {
  const auto frames = sample_frames();
  const std::string capture = capture_of(frames);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // The writer sends the first frames, then waits until the reader has them: a reader that
  // waited for a whole block (or the end) before handing out frames would never signal it.
  int ack[2];
  ASSERT_EQ(::pipe(ack), 0);
  std::thread writer([&] {
    const std::string first = capture_of({frames[0], frames[1], frames[2]});
    EXPECT_EQ(::write(fds[1], first.data(), first.size()), static_cast<ssize_t>(first.size()));
    char byte = 0;
    EXPECT_EQ(::read(ack[0], &byte, 1), 1);
    for (std::size_t at = first.size(); at < capture.size(); at += 4093) {
      const std::size_t n = std::min<std::size_t>(4093, capture.size() - at);
      EXPECT_EQ(::write(fds[1], capture.data() + at, n), static_cast<ssize_t>(n));
    }
    ::close(fds[1]);
  });
  CaptureReader reader(fds[0]);
  std::vector<Frame> got;
  CaptureReadStatus status{};
  while ((status = reader.next()) == CaptureReadStatus::frame) {
    got.emplace_back(reader.frame().begin(), reader.frame().end());
    if (got.size() == 3) {
      EXPECT_EQ(::write(ack[1], "x", 1), 1);
    }
  }
  writer.join();
  ::close(fds[0]);
  ::close(ack[0]);
  ::close(ack[1]);
  EXPECT_EQ(got, frames);
  EXPECT_EQ(status, CaptureReadStatus::end);
}

TEST(CaptureReader, HasBufferedFrameSaysWhetherTheNextFrameIsAlreadyRead) {
  std::istringstream in(capture_of({Frame(10, 1), Frame(20, 2)}));
  CaptureReader reader(in);
  EXPECT_FALSE(reader.has_buffered_frame());  // nothing read yet
  ASSERT_EQ(reader.next(), CaptureReadStatus::frame);
  EXPECT_TRUE(reader.has_buffered_frame());
  ASSERT_EQ(reader.next(), CaptureReadStatus::frame);
  EXPECT_FALSE(reader.has_buffered_frame());
  EXPECT_EQ(reader.next(), CaptureReadStatus::end);
}

TEST(CaptureReader, ACaptureCutInsideAPrefixOrAFrameIsTruncated) {
  const std::string capture = capture_of({Frame(100, 1), Frame(100, 2)});
  for (const std::size_t cut : {std::size_t{104 + 2}, capture.size() - 1}) {
    std::istringstream in(capture.substr(0, cut));
    CaptureReader reader(in);
    CaptureReadStatus status{};
    EXPECT_EQ(read_all(reader, status).size(), 1u) << cut;
    EXPECT_EQ(status, CaptureReadStatus::truncated) << cut;
  }
}

}  // namespace
