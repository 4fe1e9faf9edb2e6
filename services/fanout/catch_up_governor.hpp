// Live first: the catch-up deliveries of a replica (replay and snapshot sessions, which read the
// log or the twin from decode) share one token bucket whose rate follows the live path's health,
// so that catch-up gets what live leaves, however many readers connect.
//
// The signal is the live sends' write lag (an event's arrival at fanout to the kernel taking its
// bytes: what bench-fanout calls fanout's own share), as a p99 over the last second, judged
// every 100 ms interval. What it is compared with is measured, not configured: when live first
// appears and then every 10 s while it lasts, catch-up pauses: until an interval passes with no
// catch-up delivery (pages already paid for drain), then for three intervals whose p99 is live
// alone. The baseline is the lowest of the last three such measurements, as BBR takes the
// minimum RTT over a window: a measurement that caught catch-up still draining can only raise
// one of three, never ratchet the bar up. A p99 above the baseline by more than `live_rise`
// (20%) plus a small absolute slack halves the rate (down to a floor, so catch-up always
// progresses) and starts the second afresh; so does one interval at twice that. A healthy
// interval in which catch-up used much of its share grows it by a quarter; an interval with too
// few live sends to judge (nothing to protect) doubles it.
// It is TCP's AIMD with live latency as the congestion signal. Thread-safe; `observe_live_lag`
// is lock-free.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace jetstream::fanout {

class CatchUpGovernor {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    /// How far above its baseline catch-up may push live's p99 write lag (0.2 = 20%); zero
    /// turns the governor off (catch-up is limited by the per-IP rate only).
    double live_rise = 0.20;
    /// Added to the allowed p99: sub-millisecond baselines are noise at this resolution.
    std::chrono::microseconds slack{250};
    double min_events_per_second = 10'000;  ///< the floor: catch-up never stops
    double start_events_per_second = 100'000;
    double max_events_per_second = 100'000'000;
    std::chrono::milliseconds interval{100};
    /// How often catch-up pauses to measure live alone (1 + measure_intervals intervals).
    std::chrono::milliseconds baseline_every{10'000};
    int measure_intervals = 3;
    /// An interval with fewer live sends than this is not judged (too little live to protect).
    std::uint64_t min_samples = 50;
  };

  explicit CatchUpGovernor(Options options, Clock::time_point now = Clock::now());

  bool enabled() const { return options_.live_rise > 0; }

  /// A live send's write lag (from the I/O threads). Also ends an interval that is over when no
  /// catch-up session asked for tokens (so live alone is measured before catch-up comes).
  void observe_live_lag(Clock::duration lag, Clock::time_point now = Clock::now());
  /// `events` catch-up events handed to a connection (a measurement waits until they stop).
  void observe_catch_up_delivery(std::uint64_t events) {
    catch_up_delivered_.fetch_add(events, std::memory_order_relaxed);
  }

  /// Takes up to `wanted` catch-up events' tokens; returns how many were granted (0..wanted).
  std::uint64_t take(std::uint64_t wanted, Clock::time_point now = Clock::now());
  /// Returns tokens taken but not used.
  void give_back(std::uint64_t unused);

  /// The catch-up rate allowed now, events/s (the metric).
  double events_per_second() const { return rate_.load(std::memory_order_relaxed); }
  /// Live's p99 write lag with catch-up paused, seconds; -1 before the first measurement.
  double baseline_seconds() const { return baseline_seconds_.load(std::memory_order_relaxed); }
  /// Catch-up is paused while live is measured alone.
  bool measuring() const { return measuring_.load(std::memory_order_relaxed); }
  /// Intervals that ended with live congested (the metric).
  std::uint64_t congested_intervals() const {
    return congested_intervals_.load(std::memory_order_relaxed);
  }

  /// The lag histogram's resolution: bucket i holds lags up to 50 µs · 1.1^i.
  static constexpr std::size_t kBuckets = 96;
  static std::size_t bucket_of(Clock::duration lag);
  static Clock::duration bucket_upper(std::size_t bucket);

 private:
  enum class Phase { normal, draining, measuring };

  /// Under mutex_: ends the intervals `now` has passed and adapts the rate.
  void advance(Clock::time_point now);
  using Counts = std::array<std::uint32_t, kBuckets>;
  /// Under mutex_: moves the interval's live-send counts out of the atomics.
  Counts take_interval();
  /// The p99 of `counts` (and their total).
  static Clock::duration p99_of(const Counts& counts, std::uint64_t& samples);
  /// The p99 live may have: the baseline, `live_rise` above it and the slack.
  Clock::duration allowed() const;

  Options options_;
  std::array<std::atomic<std::uint32_t>, kBuckets> lag_buckets_{};
  std::atomic<double> rate_;
  std::atomic<double> baseline_seconds_{-1};
  std::atomic<std::uint64_t> congested_intervals_{0};
  std::atomic<bool> measuring_{false};
  std::atomic<std::uint64_t> catch_up_delivered_{0};  ///< this interval
  int draining_intervals_ = 0;
  std::array<Clock::duration, 3> measurements_{};  ///< the last ones, oldest overwritten
  std::size_t measurement_count_ = 0;
  std::mutex mutex_;
  Phase phase_ = Phase::normal;
  int measured_intervals_ = 0;
  Counts measured_{};                ///< live alone, this measurement so far
  std::array<Counts, 10> recent_{};  ///< the last second, an interval each
  std::size_t recent_next_ = 0;
  double tokens_ = 0;
  double used_ = 0;  ///< tokens granted and not given back this interval
  Clock::duration baseline_{};
  bool has_baseline_ = false;
  Clock::time_point updated_;
  Clock::time_point interval_end_;
  std::atomic<Clock::rep> interval_end_ticks_;  ///< interval_end_, for the lock-free check
  Clock::time_point next_baseline_;
};

}  // namespace jetstream::fanout
