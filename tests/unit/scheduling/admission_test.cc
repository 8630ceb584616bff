#include "scheduling/admission.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using namespace std::chrono_literals;

WaitEstimateInput In(size_t ahead, size_t per_batch, size_t instances, size_t busy, Micros service) {
  WaitEstimateInput in;
  in.tasks_ahead = ahead;
  in.tasks_per_batch = per_batch;
  in.instances = instances;
  in.busy_instances = busy;
  in.service = service;
  return in;
}

TEST(ExpectedWaitTest, NothingKnownOrAFreeInstanceIsNoWait) {
  EXPECT_EQ(ExpectedWait(In(10, 1, 1, 1, 0us)), 0us);
  EXPECT_EQ(ExpectedWait(In(0, 1, 2, 1, 10ms)), 0us);
  EXPECT_EQ(ExpectedWait(In(0, 1, 1, 0, 10ms)), 0us);
}

TEST(ExpectedWaitTest, ABusyInstanceCountsHalfAnExecution) { EXPECT_EQ(ExpectedWait(In(0, 1, 1, 1, 10ms)), 5ms); }

TEST(ExpectedWaitTest, QueuedTasksFillBatchesSharedByInstances) {
  EXPECT_EQ(ExpectedWait(In(3, 1, 1, 1, 10ms)), 35ms);   // three executions ahead, one half done
  EXPECT_EQ(ExpectedWait(In(9, 8, 1, 1, 10ms)), 25ms);   // nine tasks are two batches of eight
  EXPECT_EQ(ExpectedWait(In(4, 1, 2, 2, 10ms)), 25ms);   // (4 + 1) executions over two instances
  EXPECT_EQ(ExpectedWait(In(1, 0, 1, 0, 10ms)), 10ms);   // a batch size of 0 counts as 1
}

TEST(ServiceTimeTest, StartsAtTheFirstSampleThenMovesAnEighthTowardEachNew) {
  ServiceTime t;
  EXPECT_EQ(t.value(), 0us);
  t.Add(800us);
  EXPECT_EQ(t.value(), 800us);
  t.Add(1600us);
  EXPECT_EQ(t.value(), 900us);
  t.Add(Micros(-5));  // a clock that went back counts as 0
  EXPECT_LT(t.value(), 900us);
}

}  // namespace
}  // namespace ferry
