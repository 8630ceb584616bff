#pragma once
// Cron expressions: five fields (minute hour day-of-month month day-of-week) as Vixie cron reads them,
// or a macro (@yearly @annually @monthly @weekly @daily @midnight @hourly). Each field is a list of
// items: `*`, a value, a range `a-b`, each with an optional step (`*/15`, `1-30/2`, `5/10` = 5-max/10).
// Months and weekdays may be named (JAN..DEC, SUN..SAT, case-insensitive); weekday 7 is Sunday too.
// When both day fields are restricted, a day matches either (cron's OR rule). A field is not
// restricted when it is `*` or `?`, or when it names every day and the other field has a `*` in it
// (croniter's reading, the oracle of the tests). Matching is on wall-clock minutes; time zones are TimeZone's job. Value type, thread-safe.
#include <bitset>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "schedules/civil_time.h"

namespace ferry {

class CronExpression {
 public:
  // kInvalidArgument naming the field and why ("cron '61 * * * *': minute 61 is outside 0..59").
  static Result<CronExpression> Parse(std::string_view text);

  bool Matches(const CivilMinute& m) const;
  bool MatchesDay(int64_t days) const;
  // The first matching minute strictly after `after`, looking up to kSearchYears ahead; nullopt when
  // there is none (`0 0 30 2 *`).
  std::optional<CivilMinute> NextAfter(const CivilMinute& after) const;
  const std::string& text() const { return text_; }

  static constexpr int kSearchYears = 30;

 private:
  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;      // 1..31
  std::bitset<13> months_;    // 1..12
  std::bitset<7> weekdays_;   // 0 = Sunday
  bool days_restricted_ = false;
  bool weekdays_restricted_ = false;
};

}  // namespace ferry
