#include "common/status.h"

#include <gtest/gtest.h>

#include "common/result.h"
#include "common/thread_pool.h"

namespace ferry {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  FERRY_ASSIGN_OR_RETURN(int half, Half(x));
  return Half(half);
}

Status Check(int x) {
  FERRY_RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = NotFound("no model 'x'");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no model 'x'");
  EXPECT_EQ(s.WithContext("loading").message(), "loading: no model 'x'");
  EXPECT_EQ(s.WithContext("loading").code(), StatusCode::kNotFound);
}

TEST(ResultTest, PropagatesValuesAndErrors) {
  EXPECT_EQ(Quarter(8).value(), 2);
  EXPECT_EQ(Quarter(6).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Check(2).ok());
  EXPECT_FALSE(Check(3).ok());
  Result<std::string> r = std::string("v");
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(*r, "v");
}

TEST(ThreadPoolTest, RunsJobsAndRefusesBeyondItsBound) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(1, 2);
    std::mutex gate;
    std::unique_lock hold(gate);
    ASSERT_TRUE(pool.Post([&] { std::lock_guard wait(gate); ++ran; }));  // blocks the only thread
    // The worker may or may not have taken the first job yet: fill the queue until it refuses.
    int accepted = 0;
    while (pool.Post([&] { ++ran; })) ++accepted;
    EXPECT_GE(accepted, 1);
    EXPECT_LE(accepted, 2);
    hold.unlock();
    pool.Stop();
    EXPECT_EQ(ran.load(), accepted + 1);
    EXPECT_FALSE(pool.Post([] {}));  // stopped
  }
}

}  // namespace
}  // namespace ferry
