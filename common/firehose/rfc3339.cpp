#include "common/firehose/rfc3339.hpp"

namespace jetstream::firehose {
namespace {

bool digits(std::string_view text, std::size_t offset, std::size_t count, int& value) {
  value = 0;
  if (offset + count > text.size()) return false;
  for (std::size_t i = offset; i < offset + count; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  return true;
}

int days_in_month(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339_us(std::string_view text) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (text.size() < 20) return std::nullopt;
  if (!digits(text, 0, 4, year) || text[4] != '-' || !digits(text, 5, 2, month) || text[7] != '-' ||
      !digits(text, 8, 2, day) || text[10] != 'T' || !digits(text, 11, 2, hour) ||
      text[13] != ':' || !digits(text, 14, 2, minute) || text[16] != ':' ||
      !digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 59) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t micros = 0;
  if (text[pos] == '.') {
    const std::size_t start = ++pos;
    std::int64_t scale = 100000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      micros += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos >= text.size()) return std::nullopt;
  std::int64_t offset_seconds = 0;
  if (text[pos] == 'Z') {
    if (pos + 1 != text.size()) return std::nullopt;
  } else {
    if (text[pos] != '+' && text[pos] != '-') return std::nullopt;
    int zone_hour = 0, zone_minute = 0;
    if (pos + 6 != text.size() || !digits(text, pos + 1, 2, zone_hour) || text[pos + 3] != ':' ||
        !digits(text, pos + 4, 2, zone_minute) || zone_hour > 23 || zone_minute > 59) {
      return std::nullopt;
    }
    offset_seconds = (zone_hour * 3600 + zone_minute * 60) * (text[pos] == '+' ? 1 : -1);
  }
  // Days since 1970-01-01 (civil calendar, proleptic Gregorian).
  const int y = month <= 2 ? year - 1 : year;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = std::int64_t{era} * 146097 + doe - 719468;
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return seconds * 1000000 + micros;
}

bool is_rfc3339(std::string_view text) { return parse_rfc3339_us(text).has_value(); }

}  // namespace jetstream::firehose
