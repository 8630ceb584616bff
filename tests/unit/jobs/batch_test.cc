#include "jobs/batch.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace ferry {
namespace {

using S = BatchState;
constexpr S kAll[] = {S::kValidating, S::kInProgress, S::kFinalizing, S::kCompleted,
                      S::kFailed,     S::kCancelling, S::kCancelled};

// The legal transitions, as batch.h lists them.
const std::set<std::pair<S, S>> kLegal = {
    {S::kValidating, S::kInProgress}, {S::kValidating, S::kFailed},   {S::kValidating, S::kCancelling},
    {S::kInProgress, S::kFinalizing}, {S::kInProgress, S::kFailed},   {S::kInProgress, S::kCancelling},
    {S::kFinalizing, S::kCompleted},  {S::kFinalizing, S::kFailed},   {S::kCancelling, S::kCancelled},
};

TEST(BatchStateTest, ValidatingToInProgress) { EXPECT_TRUE(IsLegalBatchTransition(S::kValidating, S::kInProgress)); }
TEST(BatchStateTest, ValidatingToFailed) { EXPECT_TRUE(IsLegalBatchTransition(S::kValidating, S::kFailed)); }
TEST(BatchStateTest, ValidatingToCancelling) { EXPECT_TRUE(IsLegalBatchTransition(S::kValidating, S::kCancelling)); }
TEST(BatchStateTest, InProgressToFinalizing) { EXPECT_TRUE(IsLegalBatchTransition(S::kInProgress, S::kFinalizing)); }
TEST(BatchStateTest, InProgressToFailed) { EXPECT_TRUE(IsLegalBatchTransition(S::kInProgress, S::kFailed)); }
TEST(BatchStateTest, InProgressToCancelling) { EXPECT_TRUE(IsLegalBatchTransition(S::kInProgress, S::kCancelling)); }
TEST(BatchStateTest, FinalizingToCompleted) { EXPECT_TRUE(IsLegalBatchTransition(S::kFinalizing, S::kCompleted)); }
TEST(BatchStateTest, FinalizingToFailed) { EXPECT_TRUE(IsLegalBatchTransition(S::kFinalizing, S::kFailed)); }
TEST(BatchStateTest, CancellingToCancelled) { EXPECT_TRUE(IsLegalBatchTransition(S::kCancelling, S::kCancelled)); }

TEST(BatchStateTest, EveryOtherTransitionIsIllegal) {
  for (S from : kAll) {
    for (S to : kAll) {
      EXPECT_EQ(IsLegalBatchTransition(from, to), kLegal.count({from, to}) == 1)
          << BatchStateName(from) << " -> " << BatchStateName(to);
    }
  }
}

TEST(BatchStateTest, FinalStatesAreTheThreeEnds) {
  for (S s : kAll) EXPECT_EQ(IsFinal(s), s == S::kCompleted || s == S::kFailed || s == S::kCancelled);
}

TEST(BatchStateTest, NamesAreOpenAisAndRoundTrip) {
  EXPECT_EQ(BatchStateName(S::kInProgress), "in_progress");
  for (S s : kAll) EXPECT_EQ(BatchStateFromName(BatchStateName(s)), s);
  EXPECT_FALSE(BatchStateFromName("expired").has_value());
}

TEST(BatchFormatTest, NamesRoundTrip) {
  for (BatchFormat f : {BatchFormat::kOip, BatchFormat::kOpenAi, BatchFormat::kCsv}) {
    EXPECT_EQ(BatchFormatFromName(BatchFormatName(f)), f);
  }
  EXPECT_FALSE(BatchFormatFromName("parquet").has_value());
}

}  // namespace
}  // namespace ferry
