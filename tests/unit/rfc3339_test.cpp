// Contracts of common/firehose/rfc3339: the RFC 3339 timestamp check v1 applied to upstream `time`
// fields (Go's time.Parse with time.RFC3339): real calendar dates, no leap seconds, a zone.
#include "common/firehose/rfc3339.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace jetstream::firehose {
namespace {

TEST(Rfc3339, AcceptsUtcWithZ) {
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05Z"));
  EXPECT_TRUE(is_rfc3339("2026-07-04T14:38:08Z"));
  EXPECT_TRUE(is_rfc3339("1970-01-01T00:00:00Z"));
  EXPECT_TRUE(is_rfc3339("9999-12-31T23:59:59Z"));
  EXPECT_TRUE(is_rfc3339("0001-01-01T00:00:00Z"));
}

TEST(Rfc3339, AcceptsNumericOffsets) {
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05+00:00"));
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05-00:00"));
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05+05:30"));
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05-12:45"));
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05+23:59"));
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05-23:59"));
}

TEST(Rfc3339, AcceptsFractionsOfOneToNineDigits) {
  const std::string base = "2024-01-02T03:04:05.";
  std::string digits;
  for (int n = 1; n <= 9; ++n) {
    digits.push_back(static_cast<char>('0' + n));
    EXPECT_TRUE(is_rfc3339(base + digits + "Z")) << base + digits + "Z";
    EXPECT_TRUE(is_rfc3339(base + digits + "+01:00")) << base + digits + "+01:00";
  }
  EXPECT_TRUE(is_rfc3339("2026-07-04T14:38:08.999Z"));  // the firehose's usual form
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05.000000Z"));
}

TEST(Rfc3339, AcceptsMoreThanNineFractionDigitsAsGoDoes) {
  // Go's RFC 3339 parser reads any number of fraction digits (and truncates to nanoseconds).
  EXPECT_TRUE(is_rfc3339("2024-01-02T03:04:05.1234567891234Z"));
}

TEST(Rfc3339, AcceptsTheLastDayOfEveryMonth) {
  for (const std::string_view date :
       {"2023-01-31", "2023-02-28", "2023-03-31", "2023-04-30", "2023-05-31", "2023-06-30",
        "2023-07-31", "2023-08-31", "2023-09-30", "2023-10-31", "2023-11-30", "2023-12-31"}) {
    EXPECT_TRUE(is_rfc3339(std::string(date) + "T12:00:00Z")) << date;
  }
}

TEST(Rfc3339, RejectsTheDayAfterTheLastDayOfEveryMonth) {
  for (const std::string_view date :
       {"2023-01-32", "2023-02-29", "2023-03-32", "2023-04-31", "2023-05-32", "2023-06-31",
        "2023-07-32", "2023-08-32", "2023-09-31", "2023-10-32", "2023-11-31", "2023-12-32"}) {
    EXPECT_FALSE(is_rfc3339(std::string(date) + "T12:00:00Z")) << date;
  }
}

TEST(Rfc3339, AcceptsFebruary29OnlyInLeapYears) {
  EXPECT_TRUE(is_rfc3339("2024-02-29T00:00:00Z"));   // divisible by 4
  EXPECT_TRUE(is_rfc3339("2000-02-29T00:00:00Z"));   // divisible by 400
  EXPECT_FALSE(is_rfc3339("2023-02-29T00:00:00Z"));  // not divisible by 4
  EXPECT_FALSE(is_rfc3339("1900-02-29T00:00:00Z"));  // divisible by 100, not 400
  EXPECT_FALSE(is_rfc3339("2100-02-29T00:00:00Z"));
  EXPECT_FALSE(is_rfc3339("2024-02-30T00:00:00Z"));
}

TEST(Rfc3339, RejectsOutOfRangeDateFields) {
  EXPECT_FALSE(is_rfc3339("2024-13-01T00:00:00Z"));
  EXPECT_FALSE(is_rfc3339("2024-00-01T00:00:00Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-00T00:00:00Z"));
  EXPECT_FALSE(is_rfc3339("2024-99-99T00:00:00Z"));
}

TEST(Rfc3339, RejectsOutOfRangeTimeFields) {
  EXPECT_FALSE(is_rfc3339("2024-01-02T24:00:00Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T25:00:00Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T23:60:00Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T23:59:60Z"));  // no leap seconds, as in Go
  EXPECT_FALSE(is_rfc3339("2024-12-31T23:59:60Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T23:59:99Z"));
}

TEST(Rfc3339, RequiresUppercaseTAndZ) {
  EXPECT_FALSE(is_rfc3339("2024-01-02t03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02 03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-0203:04:05Z"));
}

TEST(Rfc3339, RequiresAZone) {
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05.123"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05.123456789"));
}

TEST(Rfc3339, RejectsMalformedOffsets) {
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+24:00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+01:60"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+0100"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+01"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+1:00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+01:00:00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05 +01:00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05*01:00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+01;00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+aa:bb"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05Z+01:00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05UTC"));
}

TEST(Rfc3339, RejectsAnEmptyFraction) {
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05.Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05.+01:00"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05."));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05.1.2Z"));
}

TEST(Rfc3339, RejectsEmptyAndGarbage) {
  EXPECT_FALSE(is_rfc3339(""));
  EXPECT_FALSE(is_rfc3339("Z"));
  EXPECT_FALSE(is_rfc3339("not a timestamp at all"));
  EXPECT_FALSE(is_rfc3339("2024-01-02"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04Z"));
  EXPECT_FALSE(is_rfc3339("03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("1704164645"));
  EXPECT_FALSE(is_rfc3339(std::string_view("2024-01-02T03:04:05Z\0", 21)));
}

TEST(Rfc3339, RejectsTrailingOrLeadingCharacters) {
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05Zx"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05Z "));
  EXPECT_FALSE(is_rfc3339(" 2024-01-02T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05+01:00x"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05ZZ"));
}

TEST(Rfc3339, RejectsFieldsOfTheWrongWidth) {
  EXPECT_FALSE(is_rfc3339("24-01-02T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("20240-01-02T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-1-02T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-2T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:4:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:5Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:004:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:005Z"));
  EXPECT_FALSE(is_rfc3339("+024-01-02T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("-024-01-02T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024/01/02T03:04:05Z"));
}

TEST(Rfc3339, RejectsNonAsciiDigits) {
  // Fullwidth digits and Arabic-Indic digits are not [0-9].
  EXPECT_FALSE(is_rfc3339("\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x94-01-02T03:04:05Z"));
  EXPECT_FALSE(is_rfc3339("2024-01-02T03:04:05.\xd9\xa1Z"));
}

}  // namespace
}  // namespace jetstream::firehose

namespace {

using jetstream::firehose::parse_rfc3339_us;

TEST(Rfc3339Instant, ParsesToUnixMicrosecondsWithZonesAndFractions) {
  EXPECT_EQ(parse_rfc3339_us("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339_us("2026-07-04T14:38:08.999Z"), 1783175888999000);
  EXPECT_EQ(parse_rfc3339_us("2026-07-04T16:38:08.999+02:00"), 1783175888999000);
  EXPECT_EQ(parse_rfc3339_us("2026-07-04T14:38:08.123456789Z"), 1783175888123456);
  EXPECT_EQ(parse_rfc3339_us("2000-02-29T00:00:00Z"), 951782400000000);
  EXPECT_EQ(parse_rfc3339_us("1969-12-31T23:59:59Z"), -1000000);
  EXPECT_FALSE(parse_rfc3339_us("2026-02-30T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339_us("yesterday"));
}

}  // namespace
