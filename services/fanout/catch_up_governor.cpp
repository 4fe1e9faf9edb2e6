#include "services/fanout/catch_up_governor.hpp"

#include <algorithm>
#include <cmath>

namespace jetstream::fanout {
namespace {

constexpr double kBucketBaseSeconds = 50e-6;
constexpr double kBucketGrowth = 1.1;

}  // namespace

CatchUpGovernor::CatchUpGovernor(Options options, Clock::time_point now)
    : options_(options),
      rate_(std::clamp(options.start_events_per_second, options.min_events_per_second,
                       options.max_events_per_second)),
      updated_(now),
      interval_end_(now + options.interval),
      interval_end_ticks_(interval_end_.time_since_epoch().count()),
      next_baseline_(now + options.baseline_every) {}

std::size_t CatchUpGovernor::bucket_of(Clock::duration lag) {
  const double seconds = std::chrono::duration<double>(lag).count();
  if (seconds <= kBucketBaseSeconds) return 0;
  const double index = std::ceil(std::log(seconds / kBucketBaseSeconds) / std::log(kBucketGrowth));
  return std::min(kBuckets - 1, static_cast<std::size_t>(index));
}

CatchUpGovernor::Clock::duration CatchUpGovernor::bucket_upper(std::size_t bucket) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
      kBucketBaseSeconds * std::pow(kBucketGrowth, static_cast<double>(bucket))));
}

void CatchUpGovernor::observe_live_lag(Clock::duration lag, Clock::time_point now) {
  if (!enabled()) return;
  lag_buckets_[bucket_of(lag)].fetch_add(1, std::memory_order_relaxed);
  if (now.time_since_epoch().count() < interval_end_ticks_.load(std::memory_order_relaxed)) return;
  // Whoever holds the lock (a take, another I/O thread) ends the interval just as well.
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (lock.owns_lock()) advance(now);
}

CatchUpGovernor::Counts CatchUpGovernor::take_interval() {
  Counts counts{};
  for (std::size_t i = 0; i < kBuckets; ++i) {
    counts[i] = lag_buckets_[i].exchange(0, std::memory_order_relaxed);
  }
  return counts;
}

CatchUpGovernor::Clock::duration CatchUpGovernor::p99_of(const Counts& counts,
                                                         std::uint64_t& samples) {
  samples = 0;
  for (const auto count : counts) samples += count;
  // The smallest bucket bound with at least 99% of the samples at or below it.
  const std::uint64_t within = samples - samples / 100;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= within && seen > 0) return bucket_upper(i);
  }
  return {};
}

CatchUpGovernor::Clock::duration CatchUpGovernor::allowed() const {
  return baseline_ + std::chrono::duration_cast<Clock::duration>(baseline_ * options_.live_rise) +
         options_.slack;
}

void CatchUpGovernor::advance(Clock::time_point now) {
  if (now < interval_end_) return;
  const Counts interval = take_interval();
  const std::uint64_t delivered = catch_up_delivered_.exchange(0, std::memory_order_relaxed);
  std::uint64_t samples = 0;
  const Clock::duration interval_p99 = p99_of(interval, samples);
  const double interval_s = std::chrono::duration<double>(options_.interval).count();
  double rate = rate_.load(std::memory_order_relaxed);
  switch (phase_) {
    case Phase::draining:
      // Pages paid for before the pause are still being delivered: wait (up to a second).
      if (delivered != 0 && ++draining_intervals_ < 10) break;
      phase_ = Phase::measuring;
      measured_ = {};
      measured_intervals_ = 0;
      break;
    case Phase::measuring: {
      for (std::size_t i = 0; i < kBuckets; ++i) measured_[i] += interval[i];
      if (++measured_intervals_ < options_.measure_intervals) break;
      std::uint64_t measured_samples = 0;
      const Clock::duration p99 = p99_of(measured_, measured_samples);
      if (measured_samples >= options_.min_samples) {
        measurements_[measurement_count_++ % measurements_.size()] = p99;
        const std::size_t held = std::min(measurement_count_, measurements_.size());
        baseline_ = *std::min_element(measurements_.begin(),
                                      measurements_.begin() + static_cast<std::ptrdiff_t>(held));
        has_baseline_ = true;
        baseline_seconds_.store(std::chrono::duration<double>(baseline_).count(),
                                std::memory_order_relaxed);
      }
      phase_ = Phase::normal;
      recent_ = {};
      next_baseline_ = now + options_.baseline_every;
      break;
    }
    case Phase::normal: {
      recent_[recent_next_] = interval;
      recent_next_ = (recent_next_ + 1) % recent_.size();
      Counts second{};
      for (const auto& counts : recent_) {
        for (std::size_t i = 0; i < kBuckets; ++i) second[i] += counts[i];
      }
      std::uint64_t second_samples = 0;
      const Clock::duration second_p99 = p99_of(second, second_samples);
      if (samples < options_.min_samples) {
        // Too little live to protect: catch-up may take the machine (doubling, so a live burst
        // that starts now meets a rate it halves back within a few intervals).
        rate = std::min(options_.max_events_per_second, rate * 2);
        break;
      }
      if (!has_baseline_ || now >= next_baseline_) {
        phase_ = Phase::draining;  // live is here: measure it alone (first, or again)
        draining_intervals_ = 0;
        break;
      }
      if (second_p99 > allowed() || interval_p99 > 2 * allowed()) {
        rate = std::max(options_.min_events_per_second, rate / 2);
        congested_intervals_.fetch_add(1, std::memory_order_relaxed);
        recent_ = {};  // the next judgement rests on what follows the cut
      } else if (used_ >= 0.5 * rate * interval_s) {
        // Live is healthy and catch-up used much of what it was allowed: it may have more.
        rate = std::min(options_.max_events_per_second, rate * 1.25);
      }
      break;
    }
  }
  rate_.store(rate, std::memory_order_relaxed);
  measuring_.store(phase_ != Phase::normal, std::memory_order_relaxed);
  used_ = 0;
  // An idle stretch counts as one interval: what it saw is in the counts just read.
  interval_end_ += options_.interval;
  if (interval_end_ <= now) interval_end_ = now + options_.interval;
  interval_end_ticks_.store(interval_end_.time_since_epoch().count(), std::memory_order_relaxed);
}

std::uint64_t CatchUpGovernor::take(std::uint64_t wanted, Clock::time_point now) {
  if (!enabled()) return wanted;
  std::lock_guard lock(mutex_);
  advance(now);
  const double rate = rate_.load(std::memory_order_relaxed);
  // At most one interval's worth is banked: a pause must not become a flood.
  const double cap = rate * std::chrono::duration<double>(options_.interval).count();
  const double elapsed = std::chrono::duration<double>(now - updated_).count();
  tokens_ = std::min(cap, tokens_ + std::max(0.0, elapsed) * rate);
  updated_ = std::max(updated_, now);
  if (phase_ != Phase::normal) return 0;  // live is being measured alone
  const auto granted = std::min<std::uint64_t>(wanted, static_cast<std::uint64_t>(tokens_));
  tokens_ -= static_cast<double>(granted);
  used_ += static_cast<double>(granted);
  return granted;
}

void CatchUpGovernor::give_back(std::uint64_t unused) {
  if (!enabled() || unused == 0) return;
  std::lock_guard lock(mutex_);
  tokens_ += static_cast<double>(unused);
  used_ = std::max(0.0, used_ - static_cast<double>(unused));
}

}  // namespace jetstream::fanout
