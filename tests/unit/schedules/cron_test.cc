#include "schedules/cron.h"

#include <gtest/gtest.h>

#include "schedules/civil_time.h"

namespace ferry {
namespace {

CivilMinute At(int64_t y, int mo, int d, int h, int mi) { return CivilMinute{DaysFromCivil({y, mo, d}), h * 60 + mi}; }

std::string Next(const char* cron, const CivilMinute& after) {
  auto e = CronExpression::Parse(cron);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  if (!e.ok()) return "";
  std::optional<CivilMinute> n = e->NextAfter(after);
  return n ? FormatCivilMinute(*n) : "none";
}

TEST(CivilTimeTest, DaysRoundTripAcrossCenturiesAndLeapDays) {
  EXPECT_EQ(DaysFromCivil({1970, 1, 1}), 0);
  EXPECT_EQ(DaysFromCivil({2000, 3, 1}), 11017);
  EXPECT_EQ(DaysFromCivil({1969, 12, 31}), -1);
  for (int64_t days = -800'000; days < 800'000; days += 37) {
    const CivilDate d = CivilFromDays(days);
    ASSERT_EQ(DaysFromCivil(d), days) << d.year << "-" << d.month << "-" << d.day;
    ASSERT_GE(d.day, 1);
    ASSERT_LE(d.day, DaysInMonth(d.year, d.month));
  }
  EXPECT_EQ(WeekdayFromDays(0), 4);  // a Thursday
  EXPECT_EQ(WeekdayFromDays(DaysFromCivil({2026, 12, 2})), 3);
  EXPECT_EQ(DaysInMonth(2100, 2), 28);
  EXPECT_EQ(DaysInMonth(2000, 2), 29);
  EXPECT_EQ(CivilMinute::FromSeconds(-1).minute_of_day, 1439);
}

TEST(CronExpressionTest, RefusesMalformedExpressionsNamingTheField) {
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"61 * * * *", "minute 61 is outside 0..59"},
      {"* 24 * * *", "hour 24"},
      {"* * 0 * *", "day of month 0"},
      {"* * * 13 *", "month 13"},
      {"* * * * 8", "day of week 8"},
      {"* * * *", "expected 5 fields"},
      {"* * * * * *", "expected 5 fields"},
      {"*/0 * * * *", "step"},
      {"5-3 * * * *", "runs backwards"},
      {"1,,2 * * * *", "is not a number"},
      {"* * * FOO *", "is not a number or a name"},
      {"@reboot", "unknown macro"},
      {"", "expected 5 fields"},
      {"?/5 * * * *", "takes no step"},
  };
  for (const Case& c : cases) {
    auto e = CronExpression::Parse(c.text);
    ASSERT_FALSE(e.ok()) << c.text;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find(c.says), std::string::npos) << c.text << ": " << e.status().message();
  }
}

TEST(CronExpressionTest, FindsTheNextMinuteAcrossHoursDaysAndYears) {
  EXPECT_EQ(Next("*/15 * * * *", At(2026, 12, 2, 10, 7)), "2026-12-02T10:15");
  EXPECT_EQ(Next("*/15 * * * *", At(2026, 12, 2, 10, 45)), "2026-12-02T11:00");
  EXPECT_EQ(Next("0 2 * * *", At(2026, 12, 2, 2, 0)), "2026-12-03T02:00");  // strictly after
  EXPECT_EQ(Next("@daily", At(2026, 12, 31, 23, 59)), "2027-01-01T00:00");
  EXPECT_EQ(Next("0 0 29 2 *", At(2026, 3, 1, 0, 0)), "2028-02-29T00:00");
  EXPECT_EQ(Next("0 0 31 * *", At(2026, 4, 1, 0, 0)), "2026-05-31T00:00");
  EXPECT_EQ(Next("0 0 30 2 *", At(2026, 1, 1, 0, 0)), "none");
  EXPECT_EQ(Next("5/20 * * * *", At(2026, 1, 1, 0, 26)), "2026-01-01T00:45");
  EXPECT_EQ(Next("1-10/3 * * * *", At(2026, 1, 1, 0, 7)), "2026-01-01T00:10");
}

TEST(CronExpressionTest, NamesAndSundayAsSeven) {
  // 2026-12-02 is a Wednesday.
  EXPECT_EQ(Next("0 9 * * mon-fri", At(2026, 12, 4, 9, 0)), "2026-12-07T09:00");
  EXPECT_EQ(Next("0 9 * * 7", At(2026, 12, 2, 0, 0)), "2026-12-06T09:00");
  EXPECT_EQ(Next("0 9 * * SUN", At(2026, 12, 2, 0, 0)), "2026-12-06T09:00");
  EXPECT_EQ(Next("0 0 1 jan,Jul *", At(2026, 2, 1, 0, 0)), "2026-07-01T00:00");
  EXPECT_EQ(Next("@weekly", At(2026, 12, 2, 0, 0)), "2026-12-06T00:00");
}

TEST(CronExpressionTest, BothDayFieldsRestrictedMatchEither) {
  auto e = CronExpression::Parse("0 0 13 * 5");  // the 13th, or any Friday
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->MatchesDay(DaysFromCivil({2026, 12, 4})));   // a Friday
  EXPECT_TRUE(e->MatchesDay(DaysFromCivil({2026, 12, 13})));  // a Sunday, the 13th
  EXPECT_FALSE(e->MatchesDay(DaysFromCivil({2026, 12, 2})));
  // Only one restricted: both must hold.
  auto weekday_only = CronExpression::Parse("0 0 * * 5");
  ASSERT_TRUE(weekday_only.ok());
  EXPECT_FALSE(weekday_only->MatchesDay(DaysFromCivil({2026, 12, 13})));
  auto star_step = CronExpression::Parse("0 0 */2 * 5");  // */2 restricts the day of month
  ASSERT_TRUE(star_step.ok());
  EXPECT_TRUE(star_step->MatchesDay(DaysFromCivil({2026, 12, 4})));
  EXPECT_TRUE(star_step->MatchesDay(DaysFromCivil({2026, 12, 3})));
}

}  // namespace
}  // namespace ferry
