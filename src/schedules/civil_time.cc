#include "schedules/civil_time.h"

#include <fmt/format.h>

namespace ferry {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

// Eras of 400 years (146097 days) starting on March 1st, so the leap day ends each era's year.
int64_t DaysFromCivil(const CivilDate& date) {
  const int64_t y = date.year - (date.month <= 2 ? 1 : 0);
  const int64_t era = FloorDiv(y, 400);
  const int64_t year_of_era = y - era * 400;                                      // 0..399
  const int64_t month_from_march = (date.month + 9) % 12;                         // March = 0
  const int64_t day_of_year = (153 * month_from_march + 2) / 5 + date.day - 1;    // 0..365
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;  // 719468: days from 0000-03-01 to 1970-01-01
}

CivilDate CivilFromDays(int64_t days) {
  const int64_t z = days + 719468;
  const int64_t era = FloorDiv(z, 146097);
  const int64_t day_of_era = z - era * 146097;                                               // 0..146096
  const int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t month_from_march = (5 * day_of_year + 2) / 153;
  CivilDate d;
  d.day = static_cast<int>(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  d.month = static_cast<int>(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
  d.year = year_of_era + era * 400 + (d.month <= 2 ? 1 : 0);
  return d;
}

int WeekdayFromDays(int64_t days) {
  // 1970-01-01 was a Thursday (4).
  return static_cast<int>(((days % 7) + 7 + 4) % 7);
}

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return kDays[month - 1];
}

CivilMinute CivilMinute::FromSeconds(int64_t local_seconds) {
  const int64_t minutes = FloorDiv(local_seconds, 60);
  CivilMinute m;
  m.days = FloorDiv(minutes, 1440);
  m.minute_of_day = static_cast<int>(minutes - m.days * 1440);
  return m;
}

std::string FormatCivilMinute(const CivilMinute& m) {
  return fmt::format("{}T{:02}:{:02}", FormatCivilDate(m.days), m.minute_of_day / 60, m.minute_of_day % 60);
}

std::string FormatCivilDate(int64_t days) {
  const CivilDate d = CivilFromDays(days);
  return fmt::format("{:04}-{:02}-{:02}", d.year, d.month, d.day);
}

}  // namespace ferry
