#include "scheduling/apportion.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>

namespace ferry {
namespace {

int64_t Sum(const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); }

TEST(ApportionTest, SplitsInProportionToTheWeights) {
  EXPECT_EQ(Apportion(100, {1, 1, 2}), (std::vector<int64_t>{25, 25, 50}));
  EXPECT_EQ(Apportion(7, {7}), (std::vector<int64_t>{7}));
  EXPECT_TRUE(Apportion(5, {}).empty());
}

TEST(ApportionTest, RemaindersGoToTheLargestFractionsSoTheSharesSumToTheWhole) {
  EXPECT_EQ(Apportion(10, {1, 1, 1}), (std::vector<int64_t>{4, 3, 3}));  // ties: the earliest
  EXPECT_EQ(Apportion(10, {1, 2, 3}), (std::vector<int64_t>{2, 3, 5}));  // 1.67, 3.33, 5: 2 for the first
  EXPECT_EQ(Apportion(1, {5, 3}), (std::vector<int64_t>{1, 0}));
}

TEST(ApportionTest, ZeroWeightsShareEquallyAndZeroWeightGetsNothingBesideOthers) {
  EXPECT_EQ(Apportion(9, {0, 0, 0}), (std::vector<int64_t>{3, 3, 3}));
  EXPECT_EQ(Apportion(9, {0, 3}), (std::vector<int64_t>{0, 9}));
  EXPECT_EQ(Apportion(0, {4, 5}), (std::vector<int64_t>{0, 0}));
}

TEST(ApportionTest, AnyTotalAndWeightsSumExactlyWithoutOverflow) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<int64_t> w(1 + rng() % 64);
    for (int64_t& x : w) x = static_cast<int64_t>(rng() % 5000);
    const int64_t total = static_cast<int64_t>(rng() % 10'000'000'000ULL);
    const std::vector<int64_t> shares = Apportion(total, w);
    ASSERT_EQ(Sum(shares), total);
    const int64_t wsum = Sum(w);
    for (size_t i = 0; i < w.size() && wsum > 0; ++i) {
      const double exact = static_cast<double>(total) * static_cast<double>(w[i]) / static_cast<double>(wsum);
      ASSERT_LT(std::abs(static_cast<double>(shares[i]) - exact), 1.0 + 1e-6);
    }
  }
  const std::vector<int64_t> big = Apportion(INT64_MAX / 2, {INT64_MAX / 4, INT64_MAX / 4});
  EXPECT_EQ(big[0] + big[1], INT64_MAX / 2);
}

}  // namespace
}  // namespace ferry
