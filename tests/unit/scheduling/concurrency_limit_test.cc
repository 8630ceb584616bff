#include "scheduling/concurrency_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace ferry {
namespace {

TEST(ConcurrencyLimitsTest, ACapRefusesPastItsSlotsUntilOneIsReleased) {
  ConcurrencyLimits limits;
  auto a = limits.Enter("m", 2);
  auto b = limits.Enter("m", 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(limits.InUse("m"), 2);
  auto c = limits.Enter("m", 2);
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(c.status().message().find("limit of 2 concurrent requests"), std::string::npos) << c.status().message();
  EXPECT_TRUE(limits.Enter("other", 2).ok()) << "each model has its own slots";
  a->reset();
  EXPECT_EQ(limits.InUse("m"), 1);
  EXPECT_TRUE(limits.Enter("m", 2).ok());  // taken and at once released again
  b->reset();
  EXPECT_EQ(limits.InUse("m"), 0);
}

TEST(ConcurrencyLimitsTest, NoCapGivesAnEmptySlotAndCountsNothing) {
  ConcurrencyLimits limits;
  for (int i = 0; i < 100; ++i) {
    auto slot = limits.Enter("m", 0);
    ASSERT_TRUE(slot.ok());
    EXPECT_EQ(*slot, nullptr);
  }
  EXPECT_EQ(limits.InUse("m"), 0);
}

TEST(ConcurrencyLimitsTest, CopiesOfASlotReleaseItOnceWhenTheLastGoes) {
  ConcurrencyLimits limits;
  ConcurrencyLimits::Slot copy;
  {
    auto slot = limits.Enter("m", 1);
    ASSERT_TRUE(slot.ok());
    copy = *slot;
  }
  EXPECT_EQ(limits.InUse("m"), 1);
  copy.reset();
  EXPECT_EQ(limits.InUse("m"), 0);
  EXPECT_TRUE(limits.Enter("m", 1).ok());
}

TEST(ConcurrencyLimitsTest, ContendedSlotsNeverExceedTheCap) {
  ConcurrencyLimits limits;
  std::atomic<int> held{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto slot = limits.Enter("m", 3);
        if (!slot.ok()) continue;
        const int now = ++held;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --held;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(limits.InUse("m"), 0);
}

}  // namespace
}  // namespace ferry
