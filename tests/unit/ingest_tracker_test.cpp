// decode's ingest-stream rules (proto/README.md §5.1): nothing is processed twice, nothing after a
// loss is processed before ingest resumes from the durable cursor.
#include "services/decode/ingest_tracker.hpp"

#include <gtest/gtest.h>

#include <optional>

namespace {

using jetstream::decode::FrameVerdict;
using jetstream::decode::IngestTracker;
using jetstream::proto::FrameHeader;
using jetstream::proto::Resume;
using jetstream::proto::Status;

constexpr std::uint64_t kEpoch = 77;

FrameHeader frame(std::uint64_t resume_id, std::uint64_t ingest_seq, std::int64_t upstream_seq,
                  bool stream_start = false, std::uint64_t epoch = kEpoch) {
  FrameHeader header;
  header.epoch = epoch;
  header.ingest_seq = ingest_seq;
  header.resume_id = resume_id;
  header.upstream_seq = upstream_seq;
  header.stream_start = stream_start;
  return header;
}

Status status(std::uint64_t resume_id, std::uint64_t last_ingest_seq,
              std::uint64_t epoch = kEpoch) {
  Status s;
  s.epoch = epoch;
  s.resume_id = resume_id;
  s.last_ingest_seq = last_ingest_seq;
  return s;
}

/// A tracker that has synced on resume id `R` and received the stream start (ingest seq 1,
/// upstream seq 101).
struct Streaming {
  IngestTracker tracker{100, 5000};
  std::uint64_t resume_id = 0;
  Streaming() {
    std::optional<Resume> resume;
    tracker.on_status(status(0, 0), resume);
    resume_id = resume->resume_id;
    std::optional<Resume> none;
    EXPECT_EQ(tracker.on_frame(frame(resume_id, 1, 101, true), none), FrameVerdict::process);
    EXPECT_FALSE(none);
  }
};

TEST(IngestTracker, ProcessesNothingBeforeTheFirstStatusThenAsksToResumeFromTheDurableCursor) {
  IngestTracker tracker(100, 5000);
  std::optional<Resume> resume;
  EXPECT_EQ(tracker.on_frame(frame(1, 1, 50, true), resume), FrameVerdict::old_stream);
  EXPECT_FALSE(resume);
  tracker.on_status(status(0, 0), resume);
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->resume_id, 5000u);
  EXPECT_EQ(resume->seen_epoch, kEpoch);
  EXPECT_EQ(resume->cursor, 100);
}

TEST(IngestTracker, AsksForALiveStreamWhenNothingIsStored) {
  IngestTracker tracker(-1, 9);
  std::optional<Resume> resume;
  tracker.on_status(status(0, 0), resume);
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->cursor, -1);
}

TEST(IngestTracker, DropsFramesOfOtherStreamsWhileSyncingAndStartsAtTheStreamStart) {
  IngestTracker tracker(100, 5000);
  std::optional<Resume> resume;
  tracker.on_status(status(0, 0), resume);
  std::optional<Resume> none;
  EXPECT_EQ(tracker.on_frame(frame(4999, 10, 90), none), FrameVerdict::old_stream);
  EXPECT_EQ(tracker.on_frame(frame(5000, 11, 101, true), none), FrameVerdict::process);
  EXPECT_EQ(tracker.on_frame(frame(5000, 12, 102), none), FrameVerdict::process);
  EXPECT_FALSE(none);
  EXPECT_TRUE(tracker.streaming());
}

TEST(IngestTracker, AnIngestSeqGapRequestsAResumeFromTheDurableCursorWithANewId) {
  Streaming s;
  s.tracker.set_durable_cursor(101);
  std::optional<Resume> resume;
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 3, 103), resume), FrameVerdict::gap);
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->cursor, 101);
  EXPECT_NE(resume->resume_id, s.resume_id);
  EXPECT_FALSE(s.tracker.streaming());
  // Until the new stream starts, the old stream's frames are not processed.
  std::optional<Resume> none;
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 4, 104), none), FrameVerdict::old_stream);
}

TEST(IngestTracker, AfterAResumeFramesAlreadyAcceptedAreDuplicatesAndNewOnesAreProcessed) {
  Streaming s;
  std::optional<Resume> none;
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 2, 102), none), FrameVerdict::process);
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 3, 103), none), FrameVerdict::process);
  s.tracker.set_durable_cursor(102);  // 103 accepted but not stored yet
  std::optional<Resume> resume;
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 9, 109), resume), FrameVerdict::gap);
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->cursor, 102);
  // The new stream repeats from the durable cursor: 102 is stored and 103 is still in the
  // pipeline (it will be stored), so both are duplicates; 104 is new.
  EXPECT_EQ(s.tracker.on_frame(frame(resume->resume_id, 10, 102, true), none),
            FrameVerdict::duplicate);
  EXPECT_EQ(s.tracker.on_frame(frame(resume->resume_id, 11, 103), none), FrameVerdict::duplicate);
  EXPECT_EQ(s.tracker.on_frame(frame(resume->resume_id, 12, 104), none), FrameVerdict::process);
}

TEST(IngestTracker, AFrameFromANewEpochMeansIngestRestarted) {
  Streaming s;
  std::optional<Resume> resume;
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 2, 102, false, kEpoch + 1), resume),
            FrameVerdict::gap);
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->seen_epoch, kEpoch + 1);
}

TEST(IngestTracker, AStatusOfAnotherEpochMeansIngestRestarted) {
  Streaming s;
  std::optional<Resume> resume;
  s.tracker.on_status(status(0, 0, kEpoch + 1), resume);
  ASSERT_TRUE(resume);
  EXPECT_EQ(resume->seen_epoch, kEpoch + 1);
}

TEST(IngestTracker, AStatusAheadOfTheLastFrameRevealsALostTail) {
  Streaming s;
  std::optional<Resume> none;
  s.tracker.on_status(status(s.resume_id, 1), none);  // everything up to 1 arrived
  EXPECT_FALSE(none);
  std::optional<Resume> resume;
  s.tracker.on_status(status(s.resume_id, 2), resume);  // frame 2 was published, never arrived
  ASSERT_TRUE(resume);
}

TEST(IngestTracker, ResendsTheSameResumeUntilIngestAcceptsIt) {
  IngestTracker tracker(100, 5000);
  std::optional<Resume> first;
  tracker.on_status(status(0, 0), first);
  std::optional<Resume> again;
  tracker.on_status(status(0, 0), again);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(tracker.resumes_requested(), 1u);
}

TEST(IngestTracker, AnAcceptedResumeWhoseStartNeverArrivesIsRequestedAgain) {
  IngestTracker tracker(100, 5000);
  std::optional<Resume> resume;
  tracker.on_status(status(0, 40), resume);
  const auto id = resume->resume_id;
  std::optional<Resume> none;
  tracker.on_status(status(id, 40), none);  // accepted at ingest seq 40
  tracker.on_status(status(id, 40), none);  // quiet upstream: nothing to worry about
  EXPECT_FALSE(none);
  std::optional<Resume> again;
  tracker.on_status(status(id, 42), again);  // frames 41, 42 went out; the start never came
  ASSERT_TRUE(again);
  EXPECT_NE(again->resume_id, id);
}

TEST(IngestTracker, IsSyncedOnceIngestAcceptedTheResumeEvenBeforeAnyFrame) {
  IngestTracker tracker(100, 5000);
  EXPECT_FALSE(tracker.synced());
  std::optional<Resume> resume;
  tracker.on_status(status(0, 0), resume);
  EXPECT_FALSE(tracker.synced()) << "asked, not yet accepted";
  std::optional<Resume> none;
  tracker.on_status(status(resume->resume_id, 0), none);
  EXPECT_TRUE(tracker.synced()) << "a quiet upstream is not a reason to be unready";
}

TEST(IngestTracker, AStreamFrameWithoutItsStartRequestsAgain) {
  IngestTracker tracker(100, 5000);
  std::optional<Resume> resume;
  tracker.on_status(status(0, 0), resume);
  std::optional<Resume> again;
  EXPECT_EQ(tracker.on_frame(frame(resume->resume_id, 2, 102), again), FrameVerdict::gap);
  ASSERT_TRUE(again);
  EXPECT_NE(again->resume_id, resume->resume_id);
}

TEST(IngestTracker, FramesWithoutAnUpstreamSeqAreNeverDuplicates) {
  Streaming s;
  std::optional<Resume> none;
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 2, 0), none), FrameVerdict::process);
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 3, 0), none), FrameVerdict::process);
  EXPECT_EQ(s.tracker.on_frame(frame(s.resume_id, 4, 101), none), FrameVerdict::duplicate);
}

}  // namespace
