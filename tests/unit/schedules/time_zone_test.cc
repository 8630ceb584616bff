#include "schedules/time_zone.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

// Instants from Python's zoneinfo over the same tzdata.
constexpr int64_t kBerlinSpringForward = 1774746000;  // 2026-03-29T01:00Z: 02:00 CET -> 03:00 CEST
constexpr int64_t kBerlinFallBack = 1792891800 - 1800;  // 2026-10-25T01:00Z: 03:00 CEST -> 02:00 CET
constexpr int64_t kLocal = 0;  // local seconds are given as if UTC

int64_t LocalSeconds(int64_t utc_midnight_days, int h, int m) { return utc_midnight_days * 86400 + h * 3600 + m * 60 + kLocal; }

TimeZone Load(const char* name) {
  auto z = TimeZone::Load(name);
  EXPECT_TRUE(z.ok()) << z.status().ToString();
  return z.ok() ? *z : TimeZone::Utc();
}

TEST(TimeZoneTest, OffsetsFollowTheTransitions) {
  const TimeZone berlin = Load("Europe/Berlin");
  EXPECT_EQ(berlin.OffsetAt(kBerlinSpringForward - 1), 3600);
  EXPECT_EQ(berlin.OffsetAt(kBerlinSpringForward), 7200);
  EXPECT_EQ(berlin.OffsetAt(kBerlinFallBack - 1), 7200);
  EXPECT_EQ(berlin.OffsetAt(kBerlinFallBack), 3600);
  EXPECT_EQ(TimeZone::Utc().OffsetAt(kBerlinSpringForward), 0);
  EXPECT_EQ(Load("Asia/Kolkata").OffsetAt(kBerlinSpringForward), 19800);
}

TEST(TimeZoneTest, PastTheLastTransitionTheFooterRuleApplies) {
  const TimeZone berlin = Load("Europe/Berlin");
  EXPECT_EQ(berlin.OffsetAt(2531955600 - 1), 3600);  // 2050-03-27T01:00Z
  EXPECT_EQ(berlin.OffsetAt(2531955600), 7200);
  EXPECT_EQ(berlin.OffsetAt(2540246400), 7200);      // 2050-07-01
  // The southern hemisphere: daylight time spans the new year.
  const TimeZone sydney = Load("Australia/Sydney");
  EXPECT_EQ(sydney.OffsetAt(2548339200 + 3600), 39600);  // 2050-10-02, after 02:00 local
  EXPECT_EQ(sydney.OffsetAt(2532528000 + 3600), 36000);  // 2050-04-03 after 03:00 local
}

TEST(TimeZoneTest, WallClockTimesResolveAcrossGapsAndFolds) {
  const TimeZone berlin = Load("Europe/Berlin");
  const int64_t spring_day = 20541;  // 2026-03-29
  // 02:30 does not exist: the first instant at or past it is the transition.
  TimeZone::Resolved gap = berlin.FromLocal(LocalSeconds(spring_day, 2, 30));
  EXPECT_EQ(gap.kind, TimeZone::Resolved::kGap);
  EXPECT_EQ(gap.first, kBerlinSpringForward);
  TimeZone::Resolved plain = berlin.FromLocal(LocalSeconds(spring_day, 3, 30));
  EXPECT_EQ(plain.kind, TimeZone::Resolved::kUnique);
  EXPECT_EQ(plain.first, kBerlinSpringForward + 1800);
  // 02:30 on 2026-10-25 happens twice.
  TimeZone::Resolved fold = berlin.FromLocal(LocalSeconds(20751, 2, 30));
  EXPECT_EQ(fold.kind, TimeZone::Resolved::kAmbiguous);
  EXPECT_EQ(fold.first, 1792888200);
  EXPECT_EQ(fold.second, 1792891800);
}

TEST(TimeZoneTest, RefusesNamesThatAreNotZones) {
  for (const char* name : {"Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "Europe/Berlin\n", "Europe"}) {
    auto z = TimeZone::Load(name);
    EXPECT_FALSE(z.ok()) << name;
    if (!z.ok()) {
      EXPECT_EQ(z.status().code(), StatusCode::kInvalidArgument) << name;
    }
  }
  EXPECT_TRUE(TimeZone::Load("UTC").ok());
  EXPECT_TRUE(TimeZone::Load("Etc/UTC").ok());
}

TEST(TimeZoneTest, RefusesBrokenTzifBytes) {
  EXPECT_FALSE(TimeZone::FromTzif("x", "").ok());
  EXPECT_FALSE(TimeZone::FromTzif("x", "TZif2").ok());
  std::string header = "TZif2" + std::string(15, '\0') + std::string(24, '\xff');
  EXPECT_FALSE(TimeZone::FromTzif("x", header).ok());
}

TEST(PosixTzTest, ParsesRulesAndOffsets) {
  auto kolkata = ParsePosixTz("IST-5:30");
  ASSERT_TRUE(kolkata.ok());
  EXPECT_EQ(kolkata->std_offset, 19800);
  EXPECT_FALSE(kolkata->has_dst);
  auto quoted = ParsePosixTz("<+0545>-5:45");
  ASSERT_TRUE(quoted.ok());
  EXPECT_EQ(quoted->std_offset, 20700);
  auto sydney = ParsePosixTz("AEST-10AEDT,M10.1.0,M4.1.0/3");
  ASSERT_TRUE(sydney.ok());
  EXPECT_EQ(sydney->dst_offset, 39600);
  EXPECT_EQ(sydney->end.time, 3 * 3600);
  auto julian = ParsePosixTz("XST3XDT,J60/2,300");
  ASSERT_TRUE(julian.ok());
  EXPECT_EQ(julian->start.kind, 'J');
  EXPECT_EQ(julian->end.kind, 'n');
  for (const char* bad : {"", "C", "CET", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0", "CET-1CEST,M3.5.0,M10.5.0/3x",
                          "<+05", "CET-99"}) {
    EXPECT_FALSE(ParsePosixTz(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace ferry
