#include "hybrid/response_cache.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

Tensor Input(std::vector<float> values) {
  Tensor t;
  t.name = "x";
  t.dtype = DataType::kFp32;
  t.shape = {1, static_cast<int64_t>(values.size())};
  t.data = Buffer::Copy(values.data(), values.size() * sizeof(float));
  return t;
}

std::shared_ptr<const CachedAnswer> Answer(std::shared_ptr<int> servable, size_t floats = 4) {
  std::vector<float> values(floats, 1.0f);
  return std::make_shared<const CachedAnswer>(CachedAnswer{"1", {Input(values)}, servable});
}

TEST(ResponseCacheKeyTest, DependsOnWhatDecidesAnAnswerOnly) {
  int servable = 0;
  const std::string base = ResponseCacheKey("m", 1, &servable, {Input({1, 2})}, {}, {});
  EXPECT_EQ(base, ResponseCacheKey("m", 1, &servable, {Input({1, 2})}, {}, {{"timeout", int64_t{5}}, {"key", "u"}}));
  EXPECT_NE(base, ResponseCacheKey("m", 1, &servable, {Input({1, 3})}, {}, {}));
  EXPECT_NE(base, ResponseCacheKey("m", 2, &servable, {Input({1, 2})}, {}, {}));
  EXPECT_NE(base, ResponseCacheKey("n", 1, &servable, {Input({1, 2})}, {}, {}));
  int other = 0;
  EXPECT_NE(base, ResponseCacheKey("m", 1, &other, {Input({1, 2})}, {}, {}));
  RequestedOutput out;
  out.name = "y";
  EXPECT_NE(base, ResponseCacheKey("m", 1, &servable, {Input({1, 2})}, {out}, {}));
  EXPECT_NE(base, ResponseCacheKey("m", 1, &servable, {Input({1, 2})}, {}, {{"temperature", 0.5}}));
  Tensor reshaped = Input({1, 2});
  reshaped.shape = {2, 1};
  EXPECT_NE(base, ResponseCacheKey("m", 1, &servable, {reshaped}, {}, {}));
}

TEST(ResponseCacheTest, TheFirstMissLeadsAndIdenticalMissesWaitForIt) {
  ResponseCache cache(1 << 20);
  auto servable = std::make_shared<int>(0);
  EXPECT_EQ(cache.Begin("k", nullptr).role, ResponseCache::Role::kLeader);
  std::vector<std::shared_ptr<const CachedAnswer>> seen;
  for (int i = 0; i < 5; ++i) {
    ResponseCache::Start s = cache.Begin("k", [&seen](std::shared_ptr<const CachedAnswer> a) { seen.push_back(a); });
    EXPECT_EQ(s.role, ResponseCache::Role::kJoined);
  }
  EXPECT_TRUE(seen.empty());
  auto answer = Answer(servable);
  cache.Finish("k", answer);
  ASSERT_EQ(seen.size(), 5u);
  for (const auto& a : seen) EXPECT_EQ(a, answer);
  ResponseCache::Start hit = cache.Begin("k", nullptr);
  EXPECT_EQ(hit.role, ResponseCache::Role::kHit);
  EXPECT_EQ(hit.hit, answer);
}

TEST(ResponseCacheTest, AFailedLeaderCachesNothingAndReleasesItsWaiters) {
  ResponseCache cache(1 << 20);
  ASSERT_EQ(cache.Begin("k", nullptr).role, ResponseCache::Role::kLeader);
  int released = 0;
  cache.Begin("k", [&released](std::shared_ptr<const CachedAnswer> a) { released += a == nullptr ? 1 : 100; });
  cache.Finish("k", nullptr);
  EXPECT_EQ(released, 1);
  EXPECT_EQ(cache.Begin("k", nullptr).role, ResponseCache::Role::kLeader);  // nothing was stored
  EXPECT_EQ(cache.Stats().entries, 0);
}

TEST(ResponseCacheTest, AnAnswerOfAnUnloadedVersionIsStale) {
  ResponseCache cache(1 << 20);
  auto servable = std::make_shared<int>(0);
  ASSERT_EQ(cache.Begin("k", nullptr).role, ResponseCache::Role::kLeader);
  cache.Finish("k", Answer(servable));
  EXPECT_EQ(cache.Begin("k", nullptr).role, ResponseCache::Role::kHit);
  servable.reset();
  EXPECT_EQ(cache.Begin("k", nullptr).role, ResponseCache::Role::kLeader);
}

TEST(ResponseCacheTest, AFloodOfDistinctAnswersStaysWithinTheBudget) {
  const size_t budget = 64 * 1024;
  ResponseCache cache(budget);
  auto servable = std::make_shared<int>(0);
  for (int i = 0; i < 10'000; ++i) {
    const std::string key = "k" + std::to_string(i);
    ASSERT_EQ(cache.Begin(key, nullptr).role, ResponseCache::Role::kLeader);
    cache.Finish(key, Answer(servable, 64));
    ASSERT_LE(cache.Stats().bytes, static_cast<int64_t>(budget));
  }
  EXPECT_GT(cache.Stats().evictions, 9000);
  EXPECT_EQ(cache.Begin("k9999", nullptr).role, ResponseCache::Role::kHit);
}

TEST(ResponseCacheTest, WaitersAreBoundedPerKey) {
  ResponseCache cache(1 << 20, /*max_waiters_per_key=*/2);
  ASSERT_EQ(cache.Begin("k", nullptr).role, ResponseCache::Role::kLeader);
  auto ignore = [](std::shared_ptr<const CachedAnswer>) {};
  EXPECT_EQ(cache.Begin("k", ignore).role, ResponseCache::Role::kJoined);
  EXPECT_EQ(cache.Begin("k", ignore).role, ResponseCache::Role::kJoined);
  EXPECT_EQ(cache.Begin("k", ignore).role, ResponseCache::Role::kAlone);
  cache.Finish("k", nullptr);
}

}  // namespace
}  // namespace ferry
