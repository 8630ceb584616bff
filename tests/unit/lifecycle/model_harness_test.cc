#include "lifecycle/model_harness.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using S = VersionState;

TEST(ModelHarnessTest, StartsNew) { EXPECT_EQ(ModelHarness().state(), S::kNew); }

// One test per legal transition, each reached through legal steps.
ModelHarness At(std::initializer_list<S> path) {
  ModelHarness h;
  for (S s : path) EXPECT_TRUE(h.TransitionTo(s).ok());
  return h;
}

TEST(ModelHarnessTest, NewToLoading) { EXPECT_EQ(At({S::kLoading}).state(), S::kLoading); }
TEST(ModelHarnessTest, LoadingToReady) { EXPECT_EQ(At({S::kLoading, S::kReady}).state(), S::kReady); }
TEST(ModelHarnessTest, LoadingToErrorKeepsTheReason) {
  ModelHarness h = At({S::kLoading});
  ASSERT_TRUE(h.TransitionTo(S::kError, "bad onnx").ok());
  EXPECT_EQ(h.reason(), "bad onnx");
}
TEST(ModelHarnessTest, ReadyToDraining) { EXPECT_EQ(At({S::kLoading, S::kReady, S::kDraining}).state(), S::kDraining); }
TEST(ModelHarnessTest, DrainingToUnloaded) {
  EXPECT_EQ(At({S::kLoading, S::kReady, S::kDraining, S::kUnloaded}).state(), S::kUnloaded);
}
TEST(ModelHarnessTest, UnloadedToLoading) {
  EXPECT_EQ(At({S::kLoading, S::kReady, S::kDraining, S::kUnloaded, S::kLoading}).state(), S::kLoading);
}
TEST(ModelHarnessTest, DrainingToAsleepWhenIdle) {
  EXPECT_EQ(At({S::kLoading, S::kReady, S::kDraining, S::kAsleep}).state(), S::kAsleep);
}
TEST(ModelHarnessTest, AsleepToLoadingWhenWoken) {
  EXPECT_EQ(At({S::kLoading, S::kReady, S::kDraining, S::kAsleep, S::kLoading}).state(), S::kLoading);
  EXPECT_FALSE(At({S::kLoading, S::kReady, S::kDraining, S::kAsleep}).TransitionTo(S::kReady).ok());
  // A wake that fails goes back to sleep.
  EXPECT_EQ(At({S::kLoading, S::kReady, S::kDraining, S::kAsleep, S::kLoading, S::kAsleep}).state(), S::kAsleep);
}
TEST(ModelHarnessTest, ErrorToLoadingRetries) { EXPECT_EQ(At({S::kLoading, S::kError, S::kLoading}).state(), S::kLoading); }

TEST(ModelHarnessTest, IllegalTransitionsAreRefusedAndStatePreserved) {
  const S all[] = {S::kNew, S::kLoading, S::kReady, S::kDraining, S::kUnloaded, S::kError, S::kAsleep};
  int legal = 0;
  for (S from : all) {
    for (S to : all) {
      if (IsLegalTransition(from, to)) {
        ++legal;
        continue;
      }
      EXPECT_FALSE(IsLegalTransition(from, to));
    }
  }
  EXPECT_EQ(legal, 10);  // exactly the edges drawn in the header
  ModelHarness h = At({S::kLoading, S::kReady});
  Status s = h.TransitionTo(S::kLoading);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(h.state(), S::kReady);
  EXPECT_FALSE(ModelHarness().TransitionTo(S::kReady).ok());
  EXPECT_FALSE(At({S::kLoading, S::kReady, S::kDraining}).TransitionTo(S::kReady).ok());
}

TEST(ModelHarnessTest, StateNamesFollowTheRepositoryExtension) {
  EXPECT_EQ(VersionStateName(S::kReady), "READY");
  EXPECT_EQ(VersionStateName(S::kLoading), "LOADING");
  EXPECT_EQ(VersionStateName(S::kError), "UNAVAILABLE");
  EXPECT_EQ(VersionStateName(S::kDraining), "UNLOADING");
  EXPECT_EQ(VersionStateName(S::kAsleep), "READY");  // it answers requests, waiting for its load
}

}  // namespace
}  // namespace ferry
