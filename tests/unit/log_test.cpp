// Logging: one logfmt line per call, values escaped and bounded so untrusted input can neither
// forge a line nor make one unbounded, and per-key rate limiting that reports what it held back.
#include "common/log/log.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace log = jetstream::log;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

/// 2026-11-30T00:00:00.000000Z
const system_clock::time_point kEpoch = system_clock::time_point(seconds(1'795'996'800));

/// Captures lines through the sink, with a fixed wall clock and a steerable steady clock.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::reset_for_testing();
    log::set_sink([this](std::string_view line) {
      const std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
    log::set_clocks_for_testing([] { return kEpoch; }, [this] { return steady_now_; });
  }
  void TearDown() override { log::reset_for_testing(); }

  std::vector<std::string> lines() {
    const std::lock_guard lock(mutex_);
    return lines_;
  }

  steady_clock::time_point steady_now_ = steady_clock::time_point(seconds(1000));

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

std::string format(std::string_view message, std::initializer_list<log::Field> fields,
                   std::string_view service = "decode") {
  return log::format_line(kEpoch, log::Level::kInfo, service, message,
                          std::span<const log::Field>(fields.begin(), fields.size()));
}

TEST_F(LogTest, LineIsLogfmtWithTimestampLevelServiceMessageAndFields) {
  log::set_service("decode");
  log::info("stored batch", {{"events", 64}, {"seq", std::uint64_t{123}}});
  ASSERT_EQ(lines().size(), 1u);
  EXPECT_EQ(lines()[0],
            "ts=2026-11-30T00:00:00.000000Z level=info service=decode msg=\"stored batch\" "
            "events=64 seq=123\n");
}

TEST_F(LogTest, TimestampHasMicrosecondsInUtc) {
  const auto time = kEpoch + std::chrono::hours(13) + std::chrono::microseconds(4'000'321);
  EXPECT_EQ(log::format_line(time, log::Level::kWarn, "", "x", {}),
            "ts=2026-11-30T13:00:04.000321Z level=warn msg=x\n");
}

TEST_F(LogTest, EveryValueTypeIsWrittenPlainly) {
  const std::string owned = "owned";
  EXPECT_EQ(format("m", {{"s", std::string_view("sv")},
                         {"c", "literal"},
                         {"o", owned},
                         {"null", static_cast<const char*>(nullptr)},
                         {"i", -5},
                         {"small", std::int8_t{-1}},
                         {"u", std::numeric_limits<std::uint64_t>::max()},
                         {"min", std::numeric_limits<std::int64_t>::min()},
                         {"d", 0.25},
                         {"f", 1.5f},
                         {"inf", std::numeric_limits<double>::infinity()},
                         {"nan", std::numeric_limits<double>::quiet_NaN()},
                         {"t", true},
                         {"no", false}}),
            "ts=2026-11-30T00:00:00.000000Z level=info service=decode msg=m s=sv c=literal "
            "o=owned null=\"\" i=-5 small=-1 u=18446744073709551615 min=-9223372036854775808 "
            "d=0.25 f=1.5 inf=+Inf nan=NaN t=true no=false\n");
}

TEST_F(LogTest, ValuesAreQuotedOnlyWhenNeeded) {
  EXPECT_EQ(
      format("m", {{"a", "plain-token_1.2"}, {"b", "has space"}, {"c", "k=v"}, {"d", ""}}, ""),
      "ts=2026-11-30T00:00:00.000000Z level=info msg=m a=plain-token_1.2 b=\"has space\" "
      "c=\"k=v\" d=\"\"\n");
}

TEST_F(LogTest, QuotesBackslashesAndControlBytesAreEscaped) {
  EXPECT_EQ(format("m", {{"v", "a\"b\\c\nd\re\tf\x01g\x7fh\x1b[31m"}}, ""),
            "ts=2026-11-30T00:00:00.000000Z level=info msg=m "
            "v=\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh\\u001b[31m\"\n");
}

TEST_F(LogTest, InvalidUtf8AndLineBreakingCodePointsAreEscapedValidUtf8Kept) {
  EXPECT_EQ(format("m", {{"v", "caf\xc3\xa9 \xff\xc3 \xc2\x9b \xe2\x80\xa8 \xed\xa0\x80"}}, ""),
            "ts=2026-11-30T00:00:00.000000Z level=info msg=m "
            "v=\"caf\xc3\xa9 \\ufffd\\ufffd \\u009b \\u2028 \\ufffd\\ufffd\\ufffd\"\n");
}

TEST_F(LogTest, KeysAreRestrictedToSafeCharacters) {
  EXPECT_EQ(format("m", {{"a b=\"c\n", 1}, {"", 2}}, ""),
            "ts=2026-11-30T00:00:00.000000Z level=info msg=m a_b__c_=1 _=2\n");
}

TEST_F(LogTest, HugeHostileValueYieldsOneBoundedLine) {
  std::string hostile;
  while (hostile.size() < 10'000) hostile += "line\n\"quoted\" level=error msg=forged\r\n";
  log::set_service("ingest");
  log::warn(hostile, {{"frame", hostile}, {"after", 1}});
  const auto captured = lines();
  ASSERT_EQ(captured.size(), 1u);
  const std::string& line = captured[0];
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one newline, at the end";
  EXPECT_EQ(line.find('\r'), std::string::npos);
  // Two values (message and field) of at most 256 escaped bytes plus marker and quotes, plus
  // the fixed parts.
  EXPECT_LT(line.size(), 2 * (log::kMaxValueBytes + log::kTruncatedMarker.size() + 2) + 120);
  EXPECT_NE(line.find(std::string(log::kTruncatedMarker) + "\" after=1\n"), std::string::npos)
      << line;
  // The real fields come first; the forged `level=error` stays inside the quoted message.
  EXPECT_EQ(line.rfind("ts=2026-11-30T00:00:00.000000Z level=warn service=ingest msg=\"line\\n", 0),
            0u)
      << line;
}

TEST_F(LogTest, TruncationNeverSplitsAnEscapeOrACharacter) {
  // 255 plain bytes, then a 2-byte character and an escape that no longer fit.
  const std::string value = std::string(255, 'a') + "\xc3\xa9\n";
  const std::string line = format("m", {{"v", value}}, "");
  EXPECT_NE(line.find("v=" + std::string(255, 'a') + std::string(log::kTruncatedMarker) + "\n"),
            std::string::npos)
      << line;
  const std::string escaped = std::string(254, 'a') + "\n";  // "\n" escaped is 2 bytes: 256
  EXPECT_NE(format("m", {{"v", escaped}}, "").find("v=\"" + std::string(254, 'a') + "\\n\"\n"),
            std::string::npos);
}

TEST_F(LogTest, LinesBelowTheLevelAreDropped) {
  log::debug("hidden");
  log::set_level(log::Level::kWarn);
  log::info("hidden");
  log::warn("shown");
  log::error("shown too");
  log::set_level(log::Level::kDebug);
  log::debug("now shown");
  const auto captured = lines();
  ASSERT_EQ(captured.size(), 3u);
  EXPECT_NE(captured[0].find("level=warn msg=shown\n"), std::string::npos);
  EXPECT_NE(captured[1].find("level=error msg=\"shown too\"\n"), std::string::npos);
  EXPECT_NE(captured[2].find("level=debug msg=\"now shown\"\n"), std::string::npos);
}

TEST_F(LogTest, LevelNamesParseBack) {
  for (const auto level :
       {log::Level::kDebug, log::Level::kInfo, log::Level::kWarn, log::Level::kError}) {
    EXPECT_EQ(log::parse_level(log::level_name(level)), level);
  }
  EXPECT_EQ(log::parse_level("warning"), log::Level::kWarn);
  EXPECT_EQ(log::parse_level("INFO"), std::nullopt);
}

TEST_F(LogTest, WarnEveryEmitsOncePerIntervalAndReportsSuppressedCount) {
  for (int i = 0; i < 5; ++i) {
    log::warn_every(seconds(10), "malformed-frame", "malformed frame", {{"seq", i}});
    steady_now_ += seconds(1);
  }
  ASSERT_EQ(lines().size(), 1u);
  EXPECT_NE(lines()[0].find("msg=\"malformed frame\" seq=0\n"), std::string::npos) << lines()[0];

  steady_now_ += seconds(5);  // 10 s after the first line
  log::warn_every(seconds(10), "malformed-frame", "malformed frame", {{"seq", 5}});
  ASSERT_EQ(lines().size(), 2u);
  EXPECT_NE(lines()[1].find("msg=\"malformed frame\" seq=5 suppressed=4\n"), std::string::npos)
      << lines()[1];

  steady_now_ += seconds(10);  // nothing held back since: no suppressed field
  log::warn_every(seconds(10), "malformed-frame", "malformed frame", {{"seq", 6}});
  ASSERT_EQ(lines().size(), 3u);
  EXPECT_NE(lines()[2].find("seq=6\n"), std::string::npos) << lines()[2];
}

TEST_F(LogTest, RateLimitKeysAreIndependent) {
  log::warn_every(seconds(60), "a", "first a");
  log::warn_every(seconds(60), "b", "first b");
  log::warn_every(seconds(60), "a", "second a");
  ASSERT_EQ(lines().size(), 2u);
  EXPECT_NE(lines()[1].find("msg=\"first b\""), std::string::npos);
}

TEST_F(LogTest, RateLimiterBoundsTheNumberOfKeys) {
  log::RateLimiter limiter(2);
  const auto now = steady_clock::time_point(seconds(1));
  EXPECT_EQ(limiter.admit("a", seconds(60), now), 0u);
  EXPECT_EQ(limiter.admit("b", seconds(60), now), 0u);
  // Keys beyond capacity share one bucket: the first is logged, the next ones are suppressed.
  EXPECT_EQ(limiter.admit("c", seconds(60), now), 0u);
  EXPECT_EQ(limiter.admit("d", seconds(60), now), std::nullopt);
  EXPECT_EQ(limiter.admit("e", seconds(60), now + seconds(60)), 1u);
}

TEST_F(LogTest, ConcurrentCallersNeverInterleaveLines) {
  log::set_service("fanout");
  constexpr int kThreads = 4;
  constexpr int kLinesEach = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLinesEach; ++i) {
        log::info("client sent", {{"thread", t}, {"i", i}, {"payload", std::string(100, 'x')}});
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const auto captured = lines();
  ASSERT_EQ(captured.size(), static_cast<std::size_t>(kThreads * kLinesEach));
  for (const auto& line : captured) {
    ASSERT_EQ(line.find('\n'), line.size() - 1);
    ASSERT_EQ(line.rfind("ts=", 0), 0u);
    ASSERT_NE(line.find(" payload=" + std::string(100, 'x') + "\n"), std::string::npos);
  }
}

TEST_F(LogTest, AThrowingSinkDoesNotReachTheCaller) {
  log::set_sink([](std::string_view) { throw std::runtime_error("disk full"); });
  EXPECT_NO_THROW(log::error("still fine"));
}

}  // namespace
