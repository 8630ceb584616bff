#include "scheduling/batch_planner.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using std::chrono::microseconds;

class BatchPlannerTest : public ::testing::Test {
 protected:
  std::vector<PendingTask> Queue(std::vector<int64_t> rows, SteadyTime t) {
    std::vector<PendingTask> q;
    for (int64_t r : rows) q.push_back(PendingTask{r, t, &key_});
    return q;
  }
  FakeClock clock_;
  std::string key_ = "3,4;";
};

TEST_F(BatchPlannerTest, EmptyQueueWaitsForWork) {
  BatchPlanner planner({8, true, microseconds(500), {}});
  BatchDecision d = planner.Decide({}, clock_.Now());
  EXPECT_EQ(d.task_count, 0u);
  EXPECT_FALSE(d.wait_until.has_value());
}

TEST_F(BatchPlannerTest, BatchingDisabledRunsOneTaskAtATime) {
  BatchPlanner planner({8, false, microseconds(500), {}});
  EXPECT_EQ(planner.Decide(Queue({1, 1, 1}, clock_.Now()), clock_.Now()).task_count, 1u);
}

TEST_F(BatchPlannerTest, WaitsUntilOldestTasksDelayThenRunsAll) {
  BatchPlanner planner({8, true, microseconds(500), {}});
  const SteadyTime t0 = clock_.Now();
  auto q = Queue({1, 1, 1}, t0);
  BatchDecision d = planner.Decide(q, clock_.Now());
  ASSERT_EQ(d.task_count, 0u);
  EXPECT_EQ(*d.wait_until, t0 + microseconds(500));
  clock_.Advance(microseconds(499));
  EXPECT_EQ(planner.Decide(q, clock_.Now()).task_count, 0u);
  clock_.Advance(microseconds(1));
  EXPECT_EQ(planner.Decide(q, clock_.Now()).task_count, 3u);
}

TEST_F(BatchPlannerTest, FullBatchRunsWithoutWaiting) {
  BatchPlanner planner({4, true, microseconds(10'000), {}});
  EXPECT_EQ(planner.Decide(Queue({1, 1, 1, 1, 1}, clock_.Now()), clock_.Now()).task_count, 4u);
  EXPECT_EQ(planner.Decide(Queue({2, 2}, clock_.Now()), clock_.Now()).task_count, 2u);
}

TEST_F(BatchPlannerTest, TaskThatDoesNotFitClosesTheBatch) {
  BatchPlanner planner({4, true, microseconds(10'000), {}});
  // 3 rows, then a 2-row task that would overflow: run the 3 now rather than wait.
  EXPECT_EQ(planner.Decide(Queue({3, 2}, clock_.Now()), clock_.Now()).task_count, 1u);
}

TEST_F(BatchPlannerTest, ZeroDelayRunsWhatIsThere) {
  BatchPlanner planner({8, true, microseconds(0), {}});
  EXPECT_EQ(planner.Decide(Queue({1, 1}, clock_.Now()), clock_.Now()).task_count, 2u);
}

TEST_F(BatchPlannerTest, DifferentShapesAreNotBatchedTogether) {
  BatchPlanner planner({8, true, microseconds(0), {}});
  std::string other = "5,4;";
  auto q = Queue({1, 1}, clock_.Now());
  q.push_back(PendingTask{1, clock_.Now(), &other});
  q.push_back(PendingTask{1, clock_.Now(), &key_});
  EXPECT_EQ(planner.Decide(q, clock_.Now()).task_count, 2u);
}

TEST_F(BatchPlannerTest, PreferredSizeReachedRunsBeforeTheDelay) {
  BatchPlanner planner({8, true, microseconds(10'000), {2, 4}});
  EXPECT_EQ(planner.Decide(Queue({1, 1, 1}, clock_.Now()), clock_.Now()).task_count, 0u);
  EXPECT_EQ(planner.Decide(Queue({1, 1, 1, 1}, clock_.Now()), clock_.Now()).task_count, 4u);
  // 5 rows queued: the largest preferred prefix (4) runs.
  EXPECT_EQ(planner.Decide(Queue({1, 1, 1, 1, 1}, clock_.Now()), clock_.Now()).task_count, 4u);
}

TEST_F(BatchPlannerTest, OversizedFirstTaskStillRunsAlone) {
  BatchPlanner planner({2, true, microseconds(100), {}});
  EXPECT_EQ(planner.Decide(Queue({5, 1}, clock_.Now()), clock_.Now()).task_count, 1u);
}

}  // namespace
}  // namespace ferry
