#include "scheduling/autoscale.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using namespace std::chrono_literals;

ScaleOptions Options() {
  ScaleOptions o;
  o.min = 1;
  o.max = 3;
  o.up_after = 1s;
  o.idle_after = 10s;
  o.cooldown = 5s;
  return o;
}

TEST(ScalePolicyTest, AddsOneWhenTheQueueStaysDeepForUpAfter) {
  ScalePolicy p(Options());
  const SteadyTime t0 = SteadyTime{} + 1h;
  EXPECT_EQ(p.Decide({1, 1, 4}, t0).delta, 0);
  EXPECT_EQ(p.Decide({1, 1, 4}, t0 + 999ms).delta, 0);
  const ScaleDecision d = p.Decide({1, 1, 4}, t0 + 1s);
  EXPECT_EQ(d.delta, 1);
  EXPECT_NE(d.reason.find("4 queued"), std::string::npos) << d.reason;
}

TEST(ScalePolicyTest, ABreakInTheStreakStartsItAgain) {
  ScalePolicy p(Options());
  const SteadyTime t0 = SteadyTime{} + 1h;
  p.Decide({2, 2, 5}, t0);
  p.Decide({2, 1, 5}, t0 + 500ms);  // an instance free: not deep
  EXPECT_EQ(p.Decide({2, 2, 5}, t0 + 1200ms).delta, 0);
  EXPECT_EQ(p.Decide({2, 2, 5}, t0 + 2200ms).delta, 1);
}

TEST(ScalePolicyTest, AShallowQueueIsNotDeep) {
  ScalePolicy p(Options());
  const SteadyTime t0 = SteadyTime{} + 1h;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p.Decide({2, 2, 1}, t0 + i * 1s).delta, 0);  // 1 queued for 2 instances
}

TEST(ScalePolicyTest, NeverAboveMaxNorBelowMin) {
  ScalePolicy p(Options());
  const SteadyTime t0 = SteadyTime{} + 1h;
  p.Decide({3, 3, 9}, t0);
  EXPECT_EQ(p.Decide({3, 3, 9}, t0 + 10s).delta, 0);
  p.Decide({1, 0, 0}, t0 + 11s);
  EXPECT_EQ(p.Decide({1, 0, 0}, t0 + 60s).delta, 0);
}

TEST(ScalePolicyTest, RemovesOneAfterIdleAfterAndWaitsTheCooldownBetweenChanges) {
  ScalePolicy p(Options());
  const SteadyTime t0 = SteadyTime{} + 1h;
  p.Decide({3, 1, 0}, t0);
  EXPECT_EQ(p.Decide({3, 1, 0}, t0 + 9s).delta, 0);
  EXPECT_EQ(p.Decide({3, 1, 0}, t0 + 10s).delta, -1);
  p.Changed(t0 + 10s);
  EXPECT_EQ(p.Decide({2, 0, 0}, t0 + 14s).delta, 0);   // cooling down; the idle streak starts again here
  EXPECT_EQ(p.Decide({2, 0, 0}, t0 + 20s).delta, 0);   // idle for 6 s only
  EXPECT_EQ(p.Decide({2, 0, 0}, t0 + 24s).delta, -1);
  p.Changed(t0 + 24s);
  EXPECT_EQ(p.Decide({2, 2, 6}, t0 + 25s).delta, 0);
  EXPECT_EQ(p.Decide({2, 2, 6}, t0 + 28s).delta, 0);   // deep for 3 s, but the cooldown holds
  EXPECT_EQ(p.Decide({2, 2, 6}, t0 + 29s).delta, 1);
}

TEST(ScalePolicyTest, NoRangeNoScaling) {
  ScaleOptions o = Options();
  o.max = 1;
  ScalePolicy p(o);
  const SteadyTime t0 = SteadyTime{} + 1h;
  p.Decide({1, 1, 50}, t0);
  EXPECT_EQ(p.Decide({1, 1, 50}, t0 + 1h).delta, 0);
}

}  // namespace
}  // namespace ferry
