#include "scheduling/dynamic_batcher.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <string>

#include "testing/fake_instance.h"

namespace ferry {
namespace {

using testing::DoublingInstance;
using testing::Floats;
using testing::MakeFloatTensor;

struct Outcome {
  std::promise<Result<std::vector<Tensor>>> promise;
  TaskTimings timings;
};

InferenceTask MakeTask(std::vector<float> values, std::shared_ptr<Outcome> outcome) {
  InferenceTask task;
  const int64_t rows = static_cast<int64_t>(values.size()) / 2;
  task.inputs.push_back(MakeFloatTensor("in", {rows, 2}, values));
  task.batch_size = rows;
  task.on_complete = [outcome](Result<std::vector<Tensor>> r, const TaskTimings& t) {
    outcome->timings = t;
    outcome->promise.set_value(std::move(r));
  };
  return task;
}

// Submits named tasks and records the order they complete in.
class CompletionOrder {
 public:
  explicit CompletionOrder(DynamicBatcher* batcher) : batcher_(batcher) {}
  Status Submit(const std::string& name, Priority priority, int rows = 1) {
    auto finished = std::make_shared<std::promise<void>>();
    InferenceTask task;
    task.inputs.push_back(MakeFloatTensor("in", {rows, 2}, std::vector<float>(2 * rows, 1.0f)));
    task.batch_size = rows;
    task.priority = priority;
    task.on_complete = [this, name, finished](Result<std::vector<Tensor>> r, const TaskTimings&) {
      EXPECT_TRUE(r.ok());
      {
        std::lock_guard lock(mu_);
        order_.push_back(name);
      }
      finished->set_value();
    };
    Status s = batcher_->Submit(std::move(task));
    if (s.ok()) done_.push_back(finished->get_future());
    return s;
  }
  std::vector<std::string> Wait() {
    for (auto& f : done_) f.get();
    std::lock_guard lock(mu_);
    return order_;
  }

 private:
  DynamicBatcher* batcher_;
  std::mutex mu_;
  std::vector<std::string> order_;
  std::vector<std::future<void>> done_;
};

std::unique_ptr<DynamicBatcher> MakeBatcher(DoublingInstance** raw, size_t max_queue = 16, int64_t max_batch = 8) {
  auto instance = std::make_unique<DoublingInstance>();
  *raw = instance.get();
  std::vector<std::unique_ptr<ModelInstance>> instances;
  instances.push_back(std::move(instance));
  DynamicBatcherOptions options;
  options.planner = {max_batch, true, Micros(0), {}};
  options.max_queue_size = max_queue;
  auto batcher = DynamicBatcher::Create(std::move(options), std::move(instances));
  EXPECT_TRUE(batcher.ok());
  return std::move(batcher).value();
}

TEST(ConcatenateRowsTest, JoinsAlongTheFirstDimension) {
  Tensor a = MakeFloatTensor("x", {1, 2}, {1, 2});
  Tensor b = MakeFloatTensor("x", {2, 2}, {3, 4, 5, 6});
  Result<Tensor> joined = ConcatenateRows({&a, &b});
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(joined->shape, (Shape{3, 2}));
  EXPECT_EQ(Floats(*joined), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(ConcatenateRowsTest, RefusesMismatchedTrailingDims) {
  Tensor a = MakeFloatTensor("x", {1, 2}, {1, 2});
  Tensor b = MakeFloatTensor("x", {1, 3}, {3, 4, 5});
  EXPECT_FALSE(ConcatenateRows({&a, &b}).ok());
}

TEST(SplitRowsTest, SplitsFixedSizeTensors) {
  Tensor whole = MakeFloatTensor("y", {3, 2}, {1, 2, 3, 4, 5, 6});
  Result<std::vector<Tensor>> parts = SplitRows(whole, {1, 2});
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0].shape, (Shape{1, 2}));
  EXPECT_EQ(Floats((*parts)[1]), (std::vector<float>{3, 4, 5, 6}));
}

TEST(SplitRowsTest, SplitsBytesTensorsOnElementBoundaries) {
  // Three BYTES elements "a", "bc", "" as 4-byte length prefixes + bytes.
  std::vector<uint8_t> raw = {1, 0, 0, 0, 'a', 2, 0, 0, 0, 'b', 'c', 0, 0, 0, 0};
  Tensor whole;
  whole.name = "s";
  whole.dtype = DataType::kBytes;
  whole.shape = {3};
  whole.data = Buffer::Copy(raw.data(), raw.size());
  Result<std::vector<Tensor>> parts = SplitRows(whole, {2, 1});
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0].data.size(), 11u);
  EXPECT_EQ((*parts)[1].data.size(), 4u);
}

TEST(SplitRowsTest, RejectsRowCountMismatch) {
  Tensor whole = MakeFloatTensor("y", {3, 2}, {1, 2, 3, 4, 5, 6});
  EXPECT_FALSE(SplitRows(whole, {1, 1}).ok());
}

TEST(DynamicBatcherTest, RunsATaskAndReportsTimings) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance);
  auto outcome = std::make_shared<Outcome>();
  auto future = outcome->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({1, 2}, outcome)).ok());
  Result<std::vector<Tensor>> r = future.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Floats(r->front()), (std::vector<float>{2, 4}));
  EXPECT_EQ(outcome->timings.batch_size, 1);
}

TEST(DynamicBatcherTest, QueuedTasksRunAsOneBatchAndSplitBack) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance);
  instance->Hold();
  auto first = std::make_shared<Outcome>();
  auto first_future = first->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({0, 0}, first)).ok());
  instance->WaitRunning();  // the executor is busy, so the next three queue up together
  std::vector<std::shared_ptr<Outcome>> outcomes;
  std::vector<std::future<Result<std::vector<Tensor>>>> futures;
  for (int i = 1; i <= 3; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    futures.push_back(outcomes.back()->promise.get_future());
    ASSERT_TRUE(batcher->Submit(MakeTask({float(i), float(10 * i)}, outcomes.back())).ok());
  }
  instance->Release();
  ASSERT_TRUE(first_future.get().ok());
  for (int i = 1; i <= 3; ++i) {
    Result<std::vector<Tensor>> r = futures[i - 1].get();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->front().shape, (Shape{1, 2}));
    EXPECT_EQ(Floats(r->front()), (std::vector<float>{2.0f * i, 20.0f * i}));
  }
  EXPECT_EQ(instance->batches(), (std::vector<int64_t>{1, 3}));
}

TEST(DynamicBatcherTest, EachTaskIsChargedItsRowsShareOfTheBatchAndTheSharesSumToIt) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance);
  instance->Hold();
  auto first = std::make_shared<Outcome>();
  auto first_future = first->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({0, 0}, first)).ok());
  instance->WaitRunning();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  std::vector<std::future<Result<std::vector<Tensor>>>> futures;
  for (int rows : {1, 2, 3}) {
    outcomes.push_back(std::make_shared<Outcome>());
    futures.push_back(outcomes.back()->promise.get_future());
    ASSERT_TRUE(batcher->Submit(MakeTask(std::vector<float>(2 * rows, 1.0f), outcomes.back())).ok());
  }
  instance->Release();
  ASSERT_TRUE(first_future.get().ok());
  EXPECT_EQ(first->timings.charged_us, first->timings.compute_us);  // alone in its batch: all of it
  int64_t charged = 0;
  for (size_t i = 0; i < futures.size(); ++i) {
    ASSERT_TRUE(futures[i].get().ok());
    EXPECT_EQ(outcomes[i]->timings.batch_size, 6);
    EXPECT_EQ(outcomes[i]->timings.compute_us, outcomes[0]->timings.compute_us);
    EXPECT_LE(outcomes[i]->timings.charged_us, outcomes[i]->timings.compute_us);
    charged += outcomes[i]->timings.charged_us;
  }
  EXPECT_EQ(charged, outcomes[0]->timings.compute_us);
  EXPECT_LE(outcomes[0]->timings.charged_us, outcomes[2]->timings.charged_us);  // 1 row vs 3
}

// Tasks of `priority` keep one instance's queue deep until a second is added; idle, it is retired.
void ScalesUpAndDownUnder(Priority priority) {
  FakeClock clock;
  std::vector<DoublingInstance*> made;
  std::mutex made_mu;
  auto make = [&]() -> Result<std::unique_ptr<ModelInstance>> {
    auto instance = std::make_unique<DoublingInstance>();
    std::lock_guard lock(made_mu);
    made.push_back(instance.get());
    return std::unique_ptr<ModelInstance>(std::move(instance));
  };
  std::vector<std::pair<int, size_t>> changes;
  DynamicBatcherOptions options;
  options.planner = {1, false, Micros(0), {}};
  options.clock = &clock;
  options.scale = {1, 2, Micros(1'000'000), Micros(5'000'000), Micros(0)};
  options.make_instance = make;
  options.on_scale = [&](int delta, size_t n, const std::string&) { changes.emplace_back(delta, n); };
  options.scale_every = Micros(0);  // the test looks, with ScaleOnce
  std::vector<std::unique_ptr<ModelInstance>> first;
  first.push_back(make().value());
  auto batcher = DynamicBatcher::Create(std::move(options), std::move(first)).value();
  made[0]->Hold();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  std::vector<std::future<Result<std::vector<Tensor>>>> futures;
  for (int i = 0; i < 3; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    futures.push_back(outcomes.back()->promise.get_future());
    InferenceTask task = MakeTask({1, 2}, outcomes.back());
    task.priority = priority;
    ASSERT_TRUE(batcher->Submit(std::move(task)).ok());
  }
  made[0]->WaitRunning();  // one running, two queued for one instance: deep
  batcher->ScaleOnce();
  clock.Advance(std::chrono::milliseconds(999));
  batcher->ScaleOnce();
  EXPECT_EQ(batcher->Instances(), 1u);
  clock.Advance(std::chrono::milliseconds(1));
  batcher->ScaleOnce();
  EXPECT_EQ(batcher->Instances(), 2u);
  ASSERT_EQ(changes, (std::vector<std::pair<int, size_t>>{{1, 2}}));
  made[0]->Release();
  for (auto& f : futures) ASSERT_TRUE(f.get().ok());
  // Idle with nothing queued for idle_after: back to the minimum, never below.
  batcher->ScaleOnce();
  clock.Advance(std::chrono::seconds(5));
  batcher->ScaleOnce();
  EXPECT_EQ(batcher->Instances(), 1u);
  clock.Advance(std::chrono::seconds(60));
  batcher->ScaleOnce();
  batcher->ScaleOnce();
  EXPECT_EQ(batcher->Instances(), 1u);
  EXPECT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1], (std::pair<int, size_t>{-1, 1}));
  // The one left still serves.
  auto after = std::make_shared<Outcome>();
  auto after_future = after->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({3, 4}, after)).ok());
  EXPECT_TRUE(after_future.get().ok());
}

TEST(DynamicBatcherTest, AutoscalingAddsAnInstanceWhileTheQueueStaysDeepAndRetiresItWhenIdle) {
  ScalesUpAndDownUnder(Priority::kOnline);
}

TEST(DynamicBatcherTest, BatchWorkQueuedDeepScalesAModelUpToo) { ScalesUpAndDownUnder(Priority::kBulk); }

TEST(DynamicBatcherTest, OnlineRequestsRunBeforeQueuedJobWorkAndNeverShareItsBatch) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance, /*max_queue=*/2);
  instance->Hold();
  auto busy = std::make_shared<Outcome>();
  auto busy_future = busy->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({0, 0}, busy)).ok());
  instance->WaitRunning();
  CompletionOrder order(batcher.get());
  ASSERT_TRUE(order.Submit("job1", Priority::kJob).ok());
  ASSERT_TRUE(order.Submit("job2", Priority::kJob).ok());
  // The job queue is full; online work is bounded on its own and still gets in.
  EXPECT_EQ(order.Submit("job3", Priority::kJob).code(), StatusCode::kUnavailable);
  ASSERT_TRUE(order.Submit("online", Priority::kOnline).ok());
  EXPECT_EQ(batcher->QueueDepth(), 3u);
  instance->Release();
  ASSERT_TRUE(busy_future.get().ok());
  EXPECT_EQ(order.Wait(), (std::vector<std::string>{"online", "job1", "job2"}));
  // busy, then the online request alone, then both jobs together.
  EXPECT_EQ(instance->batches(), (std::vector<int64_t>{1, 1, 2}));
}

TEST(DynamicBatcherTest, BulkWorkRunsOnlyWhenNoOnlineOrJobWorkWaits) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance, /*max_queue=*/1);
  instance->Hold();
  auto busy = std::make_shared<Outcome>();
  auto busy_future = busy->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({0, 0}, busy)).ok());
  instance->WaitRunning();
  CompletionOrder order(batcher.get());
  ASSERT_TRUE(order.Submit("bulk", Priority::kBulk).ok());
  EXPECT_EQ(order.Submit("bulk2", Priority::kBulk).code(), StatusCode::kUnavailable);  // its own bound
  ASSERT_TRUE(order.Submit("job", Priority::kJob).ok());
  ASSERT_TRUE(order.Submit("online", Priority::kOnline).ok());
  EXPECT_EQ(batcher->QueueDepth(), 3u);
  instance->Release();
  ASSERT_TRUE(busy_future.get().ok());
  EXPECT_EQ(order.Wait(), (std::vector<std::string>{"online", "job", "bulk"}));
  EXPECT_EQ(instance->batches(), (std::vector<int64_t>{1, 1, 1, 1}));  // never batched together
}

TEST(DynamicBatcherTest, FullQueueSaysUnavailableAndKeepsTheTask) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance, /*max_queue=*/1);
  instance->Hold();
  auto running = std::make_shared<Outcome>();
  auto running_future = running->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({1, 1}, running)).ok());
  instance->WaitRunning();
  auto queued = std::make_shared<Outcome>();
  auto queued_future = queued->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({2, 2}, queued)).ok());
  auto refused = std::make_shared<Outcome>();
  InferenceTask task = MakeTask({3, 3}, refused);
  Status s = batcher->Submit(std::move(task));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(task.on_complete != nullptr);  // ownership stays with the caller on refusal
  EXPECT_EQ(task.inputs.size(), 1u);
  instance->Release();
  EXPECT_TRUE(running_future.get().ok());
  EXPECT_TRUE(queued_future.get().ok());
}

TEST(DynamicBatcherTest, CancelledAndExpiredTasksDoNotRun) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance);
  instance->Hold();
  auto running = std::make_shared<Outcome>();
  auto running_future = running->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({1, 1}, running)).ok());
  instance->WaitRunning();

  auto cancelled = std::make_shared<Outcome>();
  auto cancelled_future = cancelled->promise.get_future();
  InferenceTask c = MakeTask({2, 2}, cancelled);
  c.cancel = CancelToken::Create();
  auto token = c.cancel;
  ASSERT_TRUE(batcher->Submit(std::move(c)).ok());
  token->Cancel();

  auto expired = std::make_shared<Outcome>();
  auto expired_future = expired->promise.get_future();
  InferenceTask e = MakeTask({3, 3}, expired);
  e.deadline = SteadyTime{};  // long past
  ASSERT_TRUE(batcher->Submit(std::move(e)).ok());

  instance->Release();
  EXPECT_TRUE(running_future.get().ok());
  EXPECT_EQ(cancelled_future.get().status().code(), StatusCode::kCancelled);
  EXPECT_EQ(expired_future.get().status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(instance->batches().size(), 1u);
}

TEST(DynamicBatcherTest, BackendFailureFailsEveryTaskInTheBatch) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance);
  instance->fail_ = true;
  auto outcome = std::make_shared<Outcome>();
  auto future = outcome->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({1, 2}, outcome)).ok());
  EXPECT_EQ(future.get().status().code(), StatusCode::kInternal);
}

TEST(DynamicBatcherTest, DrainFinishesQueuedWorkThenRefuses) {
  DoublingInstance* instance;
  auto batcher = MakeBatcher(&instance);
  auto outcome = std::make_shared<Outcome>();
  auto future = outcome->promise.get_future();
  ASSERT_TRUE(batcher->Submit(MakeTask({1, 2}, outcome)).ok());
  batcher->Drain();
  EXPECT_TRUE(future.get().ok());
  auto late = std::make_shared<Outcome>();
  EXPECT_EQ(batcher->Submit(MakeTask({1, 2}, late)).code(), StatusCode::kUnavailable);
}

TEST(DynamicBatcherTest, CreateNeedsAnInstance) {
  EXPECT_FALSE(DynamicBatcher::Create(DynamicBatcherOptions{}, {}).ok());
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// Takes 10 ms of a fake clock per execution (then behaves as DoublingInstance, holds included).
class ClockedInstance : public DoublingInstance {
 public:
  explicit ClockedInstance(FakeClock* clock) : clock_(clock) {}
  Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    clock_->Advance(std::chrono::milliseconds(10));
    return DoublingInstance::Execute(inputs);
  }

 private:
  FakeClock* clock_;
};

class AdmissionTest : public ::testing::Test {
 protected:
  void Make(Micros max_wait) {
    auto instance = std::make_unique<ClockedInstance>(&clock_);
    instance_ = instance.get();
    std::vector<std::unique_ptr<ModelInstance>> instances;
    instances.push_back(std::move(instance));
    DynamicBatcherOptions options;
    options.planner = {1, false, Micros(0), {}};  // one task per execution
    options.max_queue_size = 64;
    options.max_queue_wait = max_wait;
    options.clock = &clock_;
    batcher_ = std::move(DynamicBatcher::Create(std::move(options), std::move(instances))).value();
    // One execution teaches the batcher its service time (10 ms).
    auto first = std::make_shared<Outcome>();
    auto done = first->promise.get_future();
    EXPECT_TRUE(batcher_->Submit(MakeTask({1, 1}, first)).ok());
    EXPECT_TRUE(done.get().ok());
    // The next one holds the instance busy.
    instance_->Hold();
    EXPECT_TRUE(batcher_->Submit(MakeTask({1, 1}, std::make_shared<Outcome>())).ok());
    instance_->WaitRunning();
  }
  Status Submit(Priority priority = Priority::kOnline, std::optional<SteadyTime> deadline = std::nullopt) {
    InferenceTask task = MakeTask({1, 1}, std::make_shared<Outcome>());
    task.priority = priority;
    task.deadline = deadline;
    return batcher_->Submit(std::move(task));
  }
  void TearDown() override {
    instance_->Release();
    batcher_->Drain();
  }
  FakeClock clock_;
  ClockedInstance* instance_ = nullptr;
  std::unique_ptr<DynamicBatcher> batcher_;
};

TEST_F(AdmissionTest, AnOnlineTaskExpectedToWaitOverTheBoundIsRefusedAtOnce) {
  Make(Micros(25'000));
  EXPECT_TRUE(Submit().ok());  // 5 ms: half of the running execution
  EXPECT_TRUE(Submit().ok());  // 15 ms
  EXPECT_TRUE(Submit().ok());  // 25 ms: at the bound, not over
  Status refused = Submit();   // 35 ms
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.message().find("about 35.0 ms of work is queued ahead, over its max_queue_wait_ms (25)"),
            std::string::npos) << refused.message();
  EXPECT_TRUE(Submit(Priority::kJob).ok());  // jobs and batches wait by design
  EXPECT_EQ(batcher_->QueueDepth(), 4u);
}

TEST_F(AdmissionTest, AnOnlineTaskThatCannotMeetItsDeadlineIsRefusedAtOnce) {
  Make(Micros(0));  // no bound: only deadlines
  EXPECT_TRUE(Submit().ok());                                     // 5 ms wait
  EXPECT_TRUE(Submit().ok());                                     // 15 ms
  EXPECT_TRUE(Submit(Priority::kOnline, clock_.Now() + std::chrono::milliseconds(40)).ok());  // 25 + 10 <= 40
  Status late = Submit(Priority::kOnline, clock_.Now() + std::chrono::milliseconds(40));      // 35 + 10 > 40
  EXPECT_EQ(late.code(), StatusCode::kUnavailable);
  EXPECT_NE(late.message().find("past the request's deadline"), std::string::npos) << late.message();
  EXPECT_TRUE(Submit().ok());  // no deadline, no bound: queued
}

}  // namespace
}  // namespace ferry
