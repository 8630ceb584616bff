#include "schedules/schedule.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

constexpr int64_t kDec2Midnight = 1796169600;  // 2026-12-02T00:00Z, a Wednesday
constexpr int64_t kHour = 3600;

ScheduleSpec Spec(const char* cron, MissedPolicy missed = MissedPolicy::kSkip, const char* zone = "UTC") {
  DefinitionFields f{{"name", "s"}, {"cron", cron}, {"model", "m"}, {"input", "in/{date}.csv"}, {"time_zone", zone},
                     {"missed", missed == MissedPolicy::kSkip ? "skip" : "run_once"}};
  auto s = ParseSchedule(f, "/usr/share/zoneinfo");
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : ScheduleSpec{};
}

TEST(DecideSlotsTest, ASlotOnTimeFiresOnceAndNeverAgain) {
  const ScheduleSpec hourly = Spec("0 * * * *");
  const int64_t last = kDec2Midnight;
  EXPECT_FALSE(DecideSlots(hourly, last, kDec2Midnight + kHour - 1).latest_due);
  SlotDecision d = DecideSlots(hourly, last, kDec2Midnight + kHour + 2);
  ASSERT_TRUE(d.fire);
  EXPECT_EQ(*d.fire, kDec2Midnight + kHour);
  EXPECT_EQ(d.missed, 0);
  // With that slot decided, the same instant decides nothing.
  EXPECT_FALSE(DecideSlots(hourly, *d.latest_due, kDec2Midnight + kHour + 2).latest_due);
}

TEST(DecideSlotsTest, AClockStepBackAroundATickFiresNothingTwice) {
  const ScheduleSpec hourly = Spec("0 * * * *");
  // The 01:00 slot fired at 01:00:05; the clock then steps back ten minutes, to 00:50:05.
  const int64_t fired = kDec2Midnight + kHour;
  EXPECT_FALSE(DecideSlots(hourly, fired, fired + 5 - 600).latest_due);
  EXPECT_FALSE(DecideSlots(hourly, fired, fired + 5).latest_due);
  // Time runs on to 02:00: that slot is the next.
  SlotDecision d = DecideSlots(hourly, fired, fired + kHour);
  ASSERT_TRUE(d.fire);
  EXPECT_EQ(*d.fire, fired + kHour);
}

TEST(DecideSlotsTest, AClockStepForwardMissesTheSlotsItJumpsOver) {
  const ScheduleSpec quarter = Spec("*/15 * * * *");
  // From 00:50 the clock jumps an hour to 01:50: 01:00, 01:15 and 01:30 are late past the grace, 01:45
  // is five minutes old, within it.
  const SlotDecision d = DecideSlots(quarter, kDec2Midnight + 45 * 60, kDec2Midnight + kHour + 50 * 60);
  ASSERT_TRUE(d.fire);
  EXPECT_EQ(*d.fire, kDec2Midnight + kHour + 45 * 60);
  EXPECT_EQ(d.missed, 3);
}

TEST(DecideSlotsTest, SlotsMissedWhileDownFollowThePolicy) {
  // Down from 01:30 to 05:10: the 02:00 03:00 04:00 and 05:00 slots passed, the last ten minutes ago.
  const int64_t last = kDec2Midnight + kHour, now = kDec2Midnight + 5 * kHour + 600;
  const SlotDecision skip = DecideSlots(Spec("0 * * * *", MissedPolicy::kSkip), last, now);
  EXPECT_FALSE(skip.fire);
  EXPECT_EQ(skip.missed, 4);
  EXPECT_EQ(*skip.latest_due, kDec2Midnight + 5 * kHour);
  const SlotDecision once = DecideSlots(Spec("0 * * * *", MissedPolicy::kRunOnce), last, now);
  ASSERT_TRUE(once.fire);
  EXPECT_EQ(*once.fire, kDec2Midnight + 5 * kHour);
  EXPECT_EQ(once.missed, 3);
}

TEST(DecideSlotsTest, AMinutelyScheduleLeftForAYearStaysCheap) {
  const SlotDecision d = DecideSlots(Spec("* * * * *"), kDec2Midnight - 365 * 86400, kDec2Midnight);
  EXPECT_FALSE(d.fire.has_value() && *d.fire != kDec2Midnight);
  EXPECT_EQ(*d.latest_due, kDec2Midnight);
  EXPECT_GE(d.missed, 20'000);
}

TEST(NextSlotTest, DaylightSavingGapsAndFoldsFireOnce) {
  const ScheduleSpec s = Spec("30 2 * * *", MissedPolicy::kSkip, "Europe/Berlin");
  // 2026-03-29 02:30 does not exist in Berlin: the slot is the gap's end, 03:00 CEST (01:00Z).
  EXPECT_EQ(NextSlot(s.cron, s.zone, 1774746000 - 3 * kHour), 1774746000);
  // 2026-10-25 02:30 happens twice: only the first (00:30Z) is a slot; the next is a day later.
  const int64_t first = 1792888200;
  EXPECT_EQ(NextSlot(s.cron, s.zone, first - 60), first);
  EXPECT_EQ(NextSlot(s.cron, s.zone, first), first + 86400 + 3600);
  // An hourly schedule through the fold: 02:00 CEST, 02:00 CET is not again, then 03:00 CET.
  const ScheduleSpec hourly = Spec("0 * * * *", MissedPolicy::kSkip, "Europe/Berlin");
  const int64_t two_cest = 1792886400;  // 2026-10-25T00:00Z
  EXPECT_EQ(NextSlot(hourly.cron, hourly.zone, two_cest - 1), two_cest);
  EXPECT_EQ(NextSlot(hourly.cron, hourly.zone, two_cest), two_cest + 2 * kHour);
}

TEST(ParseScheduleTest, RefusesBadDefinitionsNamingTheField) {
  const DefinitionFields good{{"name", "nightly"}, {"cron", "0 2 * * *"}, {"model", "m"}, {"input", "in/{date}.csv"}};
  ASSERT_TRUE(ParseSchedule(good, "/usr/share/zoneinfo").ok());
  struct Case {
    const char* key;
    const char* value;
    const char* says;
  } cases[] = {
      {"cron", "0 25 * * *", "hour 25"},
      {"time_zone", "Mars/Olympus", "unknown time zone"},
      {"input", "../secrets/{date}.csv", "'..'"},
      {"input", "in/{day}.csv", "unknown placeholder {day}"},
      {"missed", "later", "'missed' must be skip or run_once"},
      {"overlap", "queue", "'overlap' must be skip or allow"},
      {"format", "parquet", "format must be"},
      {"name", "a/b", "'name' may hold"},
      {"colour", "blue", "unknown key 'colour'"},
      {"grace_seconds", "-1", "'grace_seconds'"},
  };
  for (const Case& c : cases) {
    DefinitionFields f = good;
    f[c.key] = c.value;
    auto s = ParseSchedule(f, "/usr/share/zoneinfo");
    ASSERT_FALSE(s.ok()) << c.key;
    EXPECT_NE(s.status().message().find(c.says), std::string::npos) << c.key << ": " << s.status().message();
  }
  DefinitionFields glob = good;
  glob["input"] = "in/{date}/*.csv";
  glob["output"] = "out/{date}.csv";
  EXPECT_FALSE(ParseSchedule(glob, "/usr/share/zoneinfo").ok());
  glob["output"] = "out/{date}-{stem}.csv";
  EXPECT_TRUE(ParseSchedule(glob, "/usr/share/zoneinfo").ok());
}

TEST(ExpandPatternTest, FillsPlaceholders) {
  const PatternValues v = SlotValues(TimeZone::Utc(), kDec2Midnight + 2 * kHour);
  EXPECT_EQ(v.date, "2026-12-02");
  EXPECT_EQ(v.time, "0200");
  auto out = ExpandPattern("a/{date}/b-{time}.csv", v, false);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "a/2026-12-02/b-0200.csv");
  EXPECT_FALSE(ExpandPattern("a/{name}", v, false).ok());
  EXPECT_FALSE(ExpandPattern("a/{date", v, false).ok());
  EXPECT_TRUE(ExpandPattern("a/{stem}.jsonl", v, true).ok());
}

TEST(DerivedBatchIdTest, SameOrderSameId) {
  const std::string a = DerivedBatchId({"schedule", "s", "1"});
  EXPECT_EQ(a, DerivedBatchId({"schedule", "s", "1"}));
  EXPECT_NE(a, DerivedBatchId({"schedule", "s1", ""}));  // parts are separated
  EXPECT_EQ(a.size(), 6u + 24u);
  EXPECT_TRUE(a.starts_with("batch_"));
}

}  // namespace
}  // namespace ferry
