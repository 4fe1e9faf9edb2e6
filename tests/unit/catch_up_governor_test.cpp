// CatchUpGovernor (services/fanout/catch_up_governor.hpp): catch-up gets what live leaves,
// judged against live's own p99 measured with catch-up paused. Time is the `now` passed in; no
// test waits.
#include "services/fanout/catch_up_governor.hpp"

#include <gtest/gtest.h>

namespace jetstream::fanout {
namespace {

using Clock = CatchUpGovernor::Clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

CatchUpGovernor::Options options() {
  CatchUpGovernor::Options o;
  o.live_rise = 0.2;
  o.slack = microseconds(250);
  o.min_events_per_second = 1'000;
  o.start_events_per_second = 100'000;
  o.max_events_per_second = 1'000'000;
  o.interval = milliseconds(100);
  o.baseline_every = milliseconds(10'000);
  o.min_samples = 50;
  return o;
}

/// `count` live sends of `lag` each, at `now`.
void live_sends(CatchUpGovernor& governor, int count, Clock::duration lag, Clock::time_point now) {
  for (int i = 0; i < count; ++i) governor.observe_live_lag(lag, now);
}

/// Drives a governor interval by interval: live sends, then a take at the interval's end.
struct Intervals {
  explicit Intervals(CatchUpGovernor::Options o = options()) : governor(o, now) {}
  /// One interval with `sends` live sends of `lag`; returns what a take of `wanted` got.
  std::uint64_t interval(int sends, Clock::duration lag, std::uint64_t wanted = 0) {
    live_sends(governor, sends, lag, now);
    now += milliseconds(100);
    return governor.take(wanted, now);
  }
  /// Live at `lag` until a measurement of live alone starts (at once when one is due) and ends.
  void measure_baseline(Clock::duration lag) {
    for (int i = 0; i < 3 && !governor.measuring(); ++i) (void)interval(100, lag);
    ASSERT_TRUE(governor.measuring());
    for (int i = 0; i < 10 && governor.measuring(); ++i) (void)interval(100, lag);
    ASSERT_FALSE(governor.measuring());
  }
  Clock::time_point now{};
  CatchUpGovernor governor;
};

TEST(CatchUpGovernor, OffGrantsEverything) {
  auto o = options();
  o.live_rise = 0;
  CatchUpGovernor governor(o, Clock::time_point{});
  EXPECT_FALSE(governor.enabled());
  live_sends(governor, 100, milliseconds(50), Clock::time_point{});
  EXPECT_EQ(governor.take(1'000'000, Clock::time_point{} + milliseconds(1)), 1'000'000u);
}

TEST(CatchUpGovernor, BucketsResolveLagToTenPercent) {
  EXPECT_EQ(CatchUpGovernor::bucket_of(microseconds(10)), 0u);
  for (const auto lag : {microseconds(120), microseconds(2'000), microseconds(45'000)}) {
    const auto bucket = CatchUpGovernor::bucket_of(lag);
    EXPECT_GE(CatchUpGovernor::bucket_upper(bucket), lag);
    EXPECT_LT(CatchUpGovernor::bucket_upper(bucket - 1), lag);
    EXPECT_LE(CatchUpGovernor::bucket_upper(bucket), lag * 1.1 + microseconds(1));
  }
  EXPECT_EQ(CatchUpGovernor::bucket_of(std::chrono::seconds(100)), CatchUpGovernor::kBuckets - 1);
}

TEST(CatchUpGovernor, MeasuresLiveAloneWithCatchUpPausedOnceLiveAppears) {
  Intervals run;
  EXPECT_GT(run.governor.take(1'000, run.now + milliseconds(50)), 0u) << "no live: no pause";
  EXPECT_GT(run.interval(0, {}, 1'000), 0u);
  EXPECT_DOUBLE_EQ(run.governor.baseline_seconds(), -1);
  (void)run.interval(100, milliseconds(2));  // live: a measurement starts
  EXPECT_TRUE(run.governor.measuring());
  int paused = 0;
  while (run.governor.measuring() && paused < 10) {
    EXPECT_EQ(run.governor.take(1'000, run.now + milliseconds(50)), 0u) << "paused";
    (void)run.interval(100, milliseconds(2));
    ++paused;
  }
  EXPECT_EQ(paused, 4) << "one interval draining, three measuring";
  EXPECT_NEAR(run.governor.baseline_seconds(), 0.002, 0.0002);
  EXPECT_GT(run.governor.take(1'000, run.now + milliseconds(10)), 0u) << "then catch-up runs";
}

TEST(CatchUpGovernor, LiveSendsEndIntervalsWhenNoCatchUpAsks) {
  Intervals run;
  Clock::time_point now{};
  // Live alone, no take at all: the live sends themselves end the intervals.
  for (int i = 0; i < 6; ++i) {
    live_sends(run.governor, 100, milliseconds(2), now);
    now += milliseconds(100);
  }
  live_sends(run.governor, 1, milliseconds(2), now);
  EXPECT_NEAR(run.governor.baseline_seconds(), 0.002, 0.0002) << "measured before catch-up came";
  EXPECT_FALSE(run.governor.measuring());
}

TEST(CatchUpGovernor, AMeasurementWaitsUntilCatchUpDeliveriesStop) {
  Intervals run;
  (void)run.interval(100, milliseconds(2));  // live appears: draining starts
  ASSERT_TRUE(run.governor.measuring());
  for (int i = 0; i < 3; ++i) {
    run.governor.observe_catch_up_delivery(500);  // pages paid for earlier, still arriving
    (void)run.interval(100, milliseconds(30));    // live hurt by them: not live alone
  }
  for (int i = 0; i < 4; ++i) (void)run.interval(100, milliseconds(2));  // drained, 3 measured
  EXPECT_FALSE(run.governor.measuring());
  EXPECT_NEAR(run.governor.baseline_seconds(), 0.002, 0.0002);
}

TEST(CatchUpGovernor, HalvesWhenLivesP99RisesAboveItsBaselineDownToTheFloor) {
  Intervals run;
  run.measure_baseline(milliseconds(2));
  const double start = run.governor.events_per_second();
  // 2 ms * 1.2 + 0.25 ms = 2.65 ms allowed (at 10% resolution): 2.3 ms is healthy (and
  // catch-up used nothing).
  (void)run.interval(100, microseconds(2'300));
  EXPECT_DOUBLE_EQ(run.governor.events_per_second(), start);
  EXPECT_EQ(run.governor.congested_intervals(), 0u);
  // 3 of 100 sends at 10 ms put the p99 there: congested.
  live_sends(run.governor, 3, milliseconds(10), run.now);
  (void)run.interval(97, milliseconds(2));
  EXPECT_DOUBLE_EQ(run.governor.events_per_second(), start / 2);
  EXPECT_EQ(run.governor.congested_intervals(), 1u);
  for (int i = 0; i < 20; ++i) (void)run.interval(100, milliseconds(10));
  EXPECT_DOUBLE_EQ(run.governor.events_per_second(), 1'000);  // the floor
  EXPECT_GT(run.governor.take(1'000'000, run.now + milliseconds(50)), 0u) << "catch-up moves";
}

TEST(CatchUpGovernor, GrowsWhileLiveIsHealthyAndCatchUpUsesItsShareDoublesWithoutLive) {
  Intervals run;
  run.measure_baseline(milliseconds(2));
  const double start = run.governor.events_per_second();
  (void)run.interval(100, milliseconds(2), 10);  // healthy, catch-up took little: stays
  (void)run.interval(100, milliseconds(2), 0);
  EXPECT_DOUBLE_EQ(run.governor.events_per_second(), start);
  (void)run.interval(100, milliseconds(2), 10'000'000);  // took everything it was given
  (void)run.interval(100, milliseconds(2), 0);
  EXPECT_DOUBLE_EQ(run.governor.events_per_second(), start * 1.25);
  (void)run.interval(10, milliseconds(50), 0);  // 10 sends: too little live to judge
  EXPECT_DOUBLE_EQ(run.governor.events_per_second(), start * 2.5);
  for (int i = 0; i < 20; ++i) (void)run.interval(0, {}, 0);
  EXPECT_DOUBLE_EQ(run.governor.events_per_second(), 1'000'000);  // the maximum
}

TEST(CatchUpGovernor, GrantsAtItsRateBanksOneIntervalAndTakesBackWhatWasNotUsed) {
  Intervals run;
  run.measure_baseline(milliseconds(2));
  const double rate = run.governor.events_per_second();
  // A long pause banks one interval's worth, not the whole pause.
  const auto later = run.now + milliseconds(5'000);
  const auto granted = run.governor.take(10'000'000, later);
  EXPECT_GE(static_cast<double>(granted), rate * 0.1 * 0.99);
  EXPECT_LE(static_cast<double>(granted), rate * 2 * 0.1);  // it may have doubled (no live)
  EXPECT_EQ(run.governor.take(1, later), 0u);
  run.governor.give_back(granted);
  EXPECT_EQ(run.governor.take(granted, later), granted);
}

TEST(CatchUpGovernor, MeasuresLiveAloneAgainEveryPeriodAndFollowsIt) {
  Intervals run;
  run.measure_baseline(milliseconds(2));
  // Live grows heavier by itself (more clients): 4 ms. Judged against 2 ms it is congested until
  // the next measurement, due 10 s after the last.
  const auto before = run.governor.congested_intervals();
  int intervals = 0;
  for (; intervals < 150 && !run.governor.measuring(); ++intervals) {
    (void)run.interval(100, milliseconds(4));
  }
  EXPECT_GE(intervals, 95);
  EXPECT_LE(intervals, 102);
  EXPECT_GT(run.governor.congested_intervals(), before);
  EXPECT_EQ(run.governor.take(1, run.now), 0u) << "a measurement is under way";
  run.measure_baseline(milliseconds(4));
  EXPECT_NEAR(run.governor.baseline_seconds(), 0.002, 0.0002)
      << "the lowest of the last three: one measurement does not move the bar";
  for (int period = 0; period < 2; ++period) {  // two more: the 2 ms one is the oldest of four
    for (int i = 0; i < 150 && !run.governor.measuring(); ++i) {
      (void)run.interval(100, milliseconds(4));
    }
    run.measure_baseline(milliseconds(4));
  }
  EXPECT_NEAR(run.governor.baseline_seconds(), 0.0042, 0.0003);
  const auto after = run.governor.congested_intervals();
  for (int i = 0; i < 50; ++i) (void)run.interval(100, milliseconds(4));
  EXPECT_EQ(run.governor.congested_intervals(), after) << "4 ms is live's normal now";
}

}  // namespace
}  // namespace jetstream::fanout
