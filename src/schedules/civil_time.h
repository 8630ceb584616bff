#pragma once
// Calendar arithmetic on the proleptic Gregorian calendar: days since 1970-01-01 to and from a
// (year, month, day), weekdays, and a civil minute (what a wall clock shows, in no zone). Pure
// functions, thread-safe.
#include <cstdint>
#include <string>

namespace ferry {

struct CivilDate {
  int64_t year = 1970;
  int month = 1;  // 1..12
  int day = 1;    // 1..31
  bool operator==(const CivilDate&) const = default;
};

// Days since 1970-01-01 (negative before it).
int64_t DaysFromCivil(const CivilDate& date);
CivilDate CivilFromDays(int64_t days);
// 0 = Sunday .. 6 = Saturday.
int WeekdayFromDays(int64_t days);
int DaysInMonth(int64_t year, int month);

// A wall-clock minute: `days` since 1970-01-01 and the minute of that day.
struct CivilMinute {
  int64_t days = 0;
  int minute_of_day = 0;  // 0..1439
  // Seconds since 1970-01-01T00:00 as if the wall clock were UTC.
  int64_t Seconds() const { return days * 86400 + minute_of_day * 60; }
  static CivilMinute FromSeconds(int64_t local_seconds);  // floors to the minute
  auto operator<=>(const CivilMinute&) const = default;
};

// "2026-03-29T02:30"
std::string FormatCivilMinute(const CivilMinute& m);
// "2026-03-29"
std::string FormatCivilDate(int64_t days);

}  // namespace ferry
