#include "api/json_watcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

namespace ferry {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A stored object the test changes: its JSON is its version; final at `final_at`; gone when removed.
struct Object {
  std::atomic<int> version{1};
  std::atomic<int> final_at{1000};
  std::atomic<bool> gone{false};
  JsonWatcher::Read Reader() {
    return [this](bool* final_state) -> Result<std::optional<std::string>> {
      if (gone) return std::optional<std::string>();
      *final_state = version >= final_at;
      return std::optional<std::string>(std::to_string(version.load()));
    };
  }
};

TEST(JsonWatcherTest, AwaitAnswersAtOnceWhenFinal) {
  JsonWatcher watcher(4, "busy");
  Object o;
  o.final_at = 1;
  std::string got;
  ASSERT_TRUE(watcher.Await(o.Reader(), "none", steady_clock::now() + std::chrono::hours(1),
                            [&](Result<std::string> r) { got = *r; }).ok());
  EXPECT_EQ(got, "1");  // from the calling thread, before Await returned
}

TEST(JsonWatcherTest, AwaitAnswersWhenTheObjectTurnsFinal) {
  JsonWatcher watcher(4, "busy");
  Object o;
  std::promise<Result<std::string>> answer;
  ASSERT_TRUE(watcher.Await(o.Reader(), "none", steady_clock::now() + std::chrono::hours(1),
                            [&](Result<std::string> r) { answer.set_value(std::move(r)); }).ok());
  o.version = 1000;
  auto future = answer.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(*future.get(), "1000");
}

TEST(JsonWatcherTest, AwaitAnswersTheLatestStateAtItsDeadline) {
  JsonWatcher watcher(4, "busy");
  Object o;
  o.version = 7;
  std::promise<Result<std::string>> answer;
  ASSERT_TRUE(watcher.Await(o.Reader(), "none", steady_clock::now() + milliseconds(1),
                            [&](Result<std::string> r) { answer.set_value(std::move(r)); }).ok());
  auto future = answer.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(*future.get(), "7");
}

TEST(JsonWatcherTest, AwaitOfAMissingOrVanishingObjectIsNotFound) {
  JsonWatcher watcher(4, "busy");
  Object o;
  o.gone = true;
  bool called = false;
  EXPECT_EQ(watcher.Await(o.Reader(), "no such thing", steady_clock::now() + std::chrono::hours(1),
                          [&](Result<std::string>) { called = true; }).code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(called);
  o.gone = false;
  std::promise<Result<std::string>> answer;
  ASSERT_TRUE(watcher.Await(o.Reader(), "no such thing", steady_clock::now() + std::chrono::hours(1),
                            [&](Result<std::string> r) { answer.set_value(std::move(r)); }).ok());
  o.gone = true;
  auto future = answer.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(future.get().status().code(), StatusCode::kNotFound);
}

TEST(JsonWatcherTest, WatchSendsEachChangeAndEndsWhenFinal) {
  JsonWatcher watcher(4, "busy");
  Object o;
  o.final_at = 3;
  std::mutex mu;
  std::vector<std::string> sent;
  std::promise<void> ended;
  ASSERT_TRUE(watcher.Watch(o.Reader(), "none", CancelToken::Create(),
                            [&](const std::string& json) {
                              std::lock_guard lock(mu);
                              sent.push_back(json);
                              return true;
                            },
                            [&] { ended.set_value(); }).ok());
  o.version = 3;
  ASSERT_EQ(ended.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  std::lock_guard lock(mu);
  ASSERT_GE(sent.size(), 2u);
  EXPECT_EQ(sent.front(), "1");
  EXPECT_EQ(sent.back(), "3");
}

TEST(JsonWatcherTest, BeyondTheBoundAwaitsAreRefused) {
  JsonWatcher watcher(1, "too many");
  Object o;
  auto far = steady_clock::now() + std::chrono::hours(1);
  ASSERT_TRUE(watcher.Await(o.Reader(), "none", far, [](Result<std::string>) {}).ok());
  Status s = watcher.Await(o.Reader(), "none", far, [](Result<std::string>) {});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "too many");
}

}  // namespace
}  // namespace ferry
