#include "jobs/job_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "jobs/sqlite_job_store.h"
#include "testing/temp_repository.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using ferry::testing::TempRepository;

// Waits (polling) for `condition`, up to 10 s; false if it never held.
bool Eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return condition();
}

// An executor whose jobs finish when the test says so.
class ManualExecutor {
 public:
  JobExecutor executor() {
    return [this](const Job& job, std::shared_ptr<CancelToken> cancel, std::function<void(JobOutcome)> done) {
      std::lock_guard lock(mu_);
      started_.push_back({job, std::move(cancel), std::move(done)});
      max_parallel_ = std::max(max_parallel_, started_.size() - finished_);
    };
  }
  size_t started() {
    std::lock_guard lock(mu_);
    return started_.size();
  }
  size_t max_parallel() {
    std::lock_guard lock(mu_);
    return max_parallel_;
  }
  std::shared_ptr<CancelToken> token(size_t i) {
    std::lock_guard lock(mu_);
    return started_.at(i).cancel;
  }
  const Job job(size_t i) {
    std::lock_guard lock(mu_);
    return started_.at(i).job;
  }
  void Finish(size_t i, JobOutcome outcome) {
    std::function<void(JobOutcome)> done;
    {
      std::lock_guard lock(mu_);
      done = std::move(started_.at(i).done);
      ++finished_;
    }
    done(std::move(outcome));
  }

 private:
  struct Started {
    Job job;
    std::shared_ptr<CancelToken> cancel;
    std::function<void(JobOutcome)> done;
  };
  std::mutex mu_;
  std::vector<Started> started_;
  size_t finished_ = 0;
  size_t max_parallel_ = 0;
};

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteJobStoreOptions options;
    options.path = dir_.root() / "jobs.db";
    options.durability = SqliteJobStoreOptions::Durability::kFast;
    auto store = SqliteJobStore::Open(std::move(options));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  std::string Submit(std::string request, int64_t max_attempts = 3) {
    NewJob job;
    job.model = "m";
    job.request = std::move(request);
    job.max_attempts = max_attempts;
    return store_->Submit(job)->id;
  }

  JobState StateOf(const std::string& id) { return (**store_->Get(id)).state; }

  static JobRunnerOptions FastOptions(size_t concurrency) {
    JobRunnerOptions o;
    o.concurrency = concurrency;
    o.poll_every = milliseconds(5);
    o.heartbeat_every = milliseconds(10);
    o.reap_every = milliseconds(10);
    return o;
  }

  TempRepository dir_;
  std::unique_ptr<SqliteJobStore> store_;
};

TEST_F(JobRunnerTest, RunsQueuedJobsAndStoresTheirResults) {
  const std::string a = Submit("2+2"), b = Submit("3+3");
  JobRunner runner(store_.get(),
                   [](const Job& job, std::shared_ptr<CancelToken>, std::function<void(JobOutcome)> done) {
                     done({Status::Ok(), "answer to " + job.spec.request, true});
                   },
                   FastOptions(2));
  runner.Start();
  ASSERT_TRUE(Eventually([&] { return StateOf(a) == JobState::kSucceeded && StateOf(b) == JobState::kSucceeded; }));
  EXPECT_EQ(*store_->GetResult(a), "answer to 2+2");
  EXPECT_EQ(*store_->GetResult(b), "answer to 3+3");
  runner.Stop(milliseconds(1000));
  EXPECT_EQ((**store_->Get(a)).attempts, 1);
}

TEST_F(JobRunnerTest, NeverRunsMoreThanItsConcurrency) {
  for (int i = 0; i < 5; ++i) Submit(std::to_string(i));
  ManualExecutor exec;
  JobRunner runner(store_.get(), exec.executor(), FastOptions(2));
  runner.Start();
  ASSERT_TRUE(Eventually([&] { return exec.started() == 2; }));
  std::this_thread::sleep_for(milliseconds(30));  // several polls: still two
  EXPECT_EQ(exec.started(), 2u);
  for (size_t done = 0; done < 5; ++done) {
    ASSERT_TRUE(Eventually([&] { return exec.started() > done; }));
    exec.Finish(done, {Status::Ok(), "r", true});
  }
  ASSERT_TRUE(Eventually([&] { return store_->Counts()->succeeded == 5; }));
  EXPECT_LE(exec.max_parallel(), 2u);
  runner.Stop(milliseconds(1000));
}

TEST_F(JobRunnerTest, RetryableFailuresRunAgainAndHopelessOnesStop) {
  const std::string flaky = Submit("flaky", /*max_attempts=*/2);
  const std::string bad = Submit("bad");
  std::atomic<int> flaky_runs{0};
  JobRunner runner(store_.get(),
                   [&](const Job& job, std::shared_ptr<CancelToken>, std::function<void(JobOutcome)> done) {
                     if (job.spec.request == "bad") return done({InvalidArgument("wrong shape"), "", false});
                     ++flaky_runs;
                     done({Unavailable("queue full"), "", true});
                   },
                   FastOptions(1));
  runner.Start();
  ASSERT_TRUE(Eventually([&] { return StateOf(flaky) == JobState::kFailed && StateOf(bad) == JobState::kFailed; }));
  runner.Stop(milliseconds(1000));
  EXPECT_EQ(flaky_runs.load(), 2);
  EXPECT_EQ((**store_->Get(flaky)).attempts, 2);
  EXPECT_EQ((**store_->Get(bad)).attempts, 1);
  EXPECT_EQ((**store_->Get(bad)).error, "wrong shape");
}

TEST_F(JobRunnerTest, AJobTheModelHadNoRoomForWaitsWithoutSpendingAttempts) {
  const std::string id = Submit("busy", /*max_attempts=*/1);
  std::atomic<int> runs{0};
  JobRunner runner(store_.get(),
                   [&](const Job&, std::shared_ptr<CancelToken>, std::function<void(JobOutcome)> done) {
                     if (++runs <= 3) return done({Unavailable("model 'm' is at its limit"), "", true, true});
                     done({Status::Ok(), "at last", true});
                   },
                   [] {
                     JobRunnerOptions o = FastOptions(1);
                     o.busy_delay = milliseconds(5);
                     return o;
                   }());
  runner.Start();
  ASSERT_TRUE(Eventually([&] { return StateOf(id) == JobState::kSucceeded; }));
  runner.Stop(milliseconds(1000));
  EXPECT_EQ(runs.load(), 4);
  EXPECT_EQ((**store_->Get(id)).attempts, 1) << "three refusals spent none of its single attempt";
  EXPECT_EQ(*store_->GetResult(id), "at last");
}

TEST_F(JobRunnerTest, CancellingARunningJobTripsItsTokenAndDropsItsOutcome) {
  const std::string id = Submit("long");
  ManualExecutor exec;
  JobRunner runner(store_.get(), exec.executor(), FastOptions(1));
  runner.Start();
  ASSERT_TRUE(Eventually([&] { return exec.started() == 1; }));
  ASSERT_EQ(*store_->Cancel(id), JobState::kCancelled);
  ASSERT_TRUE(Eventually([&] { return exec.token(0)->cancelled(); }));  // seen at the next heartbeat
  exec.Finish(0, {Status::Ok(), "too late", true});
  ASSERT_TRUE(Eventually([&] { return runner.in_flight() == 0; }));
  EXPECT_EQ(StateOf(id), JobState::kCancelled);
  EXPECT_EQ(store_->GetResult(id).status().code(), StatusCode::kFailedPrecondition);
  runner.Stop(milliseconds(1000));
}

TEST_F(JobRunnerTest, AJobLeftByADeadRunnerRunsAgainOnceItsLeaseExpires) {
  const std::string id = Submit("orphan");
  ASSERT_EQ(store_->Lease("dead-runner", 1, milliseconds(50))->size(), 1u);  // then it "crashes"
  JobRunner runner(store_.get(),
                   [](const Job& job, std::shared_ptr<CancelToken>, std::function<void(JobOutcome)> done) {
                     done({Status::Ok(), "recovered", true});
                   },
                   FastOptions(1));
  runner.Start();
  ASSERT_TRUE(Eventually([&] { return StateOf(id) == JobState::kSucceeded; }));
  EXPECT_EQ((**store_->Get(id)).attempts, 2);
  EXPECT_EQ(*store_->GetResult(id), "recovered");
  runner.Stop(milliseconds(1000));
}

TEST_F(JobRunnerTest, StopStoresTheOutcomesOfJobsThatFinishInTime) {
  const std::string id = Submit("x");
  ManualExecutor exec;
  JobRunner runner(store_.get(), exec.executor(), FastOptions(1));
  runner.Start();
  ASSERT_TRUE(Eventually([&] { return exec.started() == 1; }));
  std::thread finisher([&] {
    std::this_thread::sleep_for(milliseconds(20));
    exec.Finish(0, {Status::Ok(), "done while stopping", true});
  });
  runner.Stop(milliseconds(5000));
  finisher.join();
  EXPECT_EQ(StateOf(id), JobState::kSucceeded);
  EXPECT_EQ(*store_->GetResult(id), "done while stopping");
}

TEST_F(JobRunnerTest, AJobStillRunningAtStopIsGivenBackForTheNextStart) {
  const std::string id = Submit("long", /*max_attempts=*/1);
  ManualExecutor exec;
  {
    JobRunner runner(store_.get(), exec.executor(), FastOptions(1));
    runner.Start();
    ASSERT_TRUE(Eventually([&] { return exec.started() == 1; }));
    // The task answers its cancellation, as a cancelled inference does.
    std::thread answer([&] {
      Eventually([&] { return exec.token(0)->cancelled(); });
      exec.Finish(0, {Cancelled("stopping"), "", false});
    });
    runner.Stop(milliseconds(0));
    answer.join();
    EXPECT_TRUE(exec.token(0)->cancelled());
  }
  // Queued again at once, its one attempt given back: a drain is not the job's failure.
  EXPECT_EQ(StateOf(id), JobState::kQueued);
  EXPECT_EQ((**store_->Get(id)).attempts, 0);
  JobRunner next(store_.get(),
                 [](const Job&, std::shared_ptr<CancelToken>, std::function<void(JobOutcome)> done) {
                   done({Status::Ok(), "after the restart", true});
                 },
                 FastOptions(1));
  next.Start();
  ASSERT_TRUE(Eventually([&] { return StateOf(id) == JobState::kSucceeded; }));
  next.Stop(milliseconds(1000));
}

TEST_F(JobRunnerTest, ReportsStartsEndsAndCountsToItsObserver) {
  const std::string ok = Submit("fine");
  const std::string bad = Submit("bad", /*max_attempts=*/1);
  std::mutex mu;
  std::vector<std::string> started, ended;
  JobCounts last_counts;
  JobRunnerObserver observer;
  observer.started = [&](const Job& job) {
    std::lock_guard lock(mu);
    started.push_back(job.spec.request);
  };
  observer.ended = [&](const std::string& model, std::chrono::duration<double> run, const std::string& outcome) {
    std::lock_guard lock(mu);
    EXPECT_EQ(model, "m");
    EXPECT_GE(run.count(), 0.0);
    ended.push_back(outcome);
  };
  observer.counts = [&](const JobCounts& c) {
    std::lock_guard lock(mu);
    last_counts = c;
  };
  JobRunner runner(store_.get(),
                   [](const Job& job, std::shared_ptr<CancelToken>, std::function<void(JobOutcome)> done) {
                     if (job.spec.request == "bad") return done({Internal("boom"), "", true});
                     done({Status::Ok(), "r", true});
                   },
                   FastOptions(1), observer);
  runner.Start();
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return last_counts.succeeded == 1 && last_counts.failed == 1;
  }));
  runner.Stop(milliseconds(1000));
  std::lock_guard lock(mu);
  EXPECT_EQ(started.size(), 2u);
  std::sort(ended.begin(), ended.end());
  EXPECT_EQ(ended, (std::vector<std::string>{"error", "succeeded"}));
  EXPECT_EQ(StateOf(ok), JobState::kSucceeded);
  EXPECT_EQ(StateOf(bad), JobState::kFailed);
}

TEST_F(JobRunnerTest, HeartbeatsAndRunTimesFollowTheInjectedClock) {
  const std::string id = Submit("held");
  FakeClock clock;
  JobRunnerOptions options = FastOptions(1);
  options.clock = &clock;
  options.heartbeat_every = std::chrono::seconds(10);
  options.reap_every = std::chrono::hours(1);
  std::mutex mu;
  std::function<void(JobOutcome)> finish;
  std::vector<double> runs;
  JobRunnerObserver observer;
  observer.ended = [&](const std::string&, std::chrono::duration<double> run, const std::string&) {
    std::lock_guard lock(mu);
    runs.push_back(run.count());
  };
  JobRunner runner(store_.get(),
                   [&](const Job&, std::shared_ptr<CancelToken>, std::function<void(JobOutcome)> done) {
                     std::lock_guard lock(mu);
                     finish = std::move(done);
                   },
                   options, observer);
  runner.Start();
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return finish != nullptr;
  }));
  const int64_t leased_until = (**store_->Get(id)).lease_expires_ms;
  // A heartbeat is due 10 s of the runner's clock after the lease, whatever the real time.
  clock.Advance(std::chrono::seconds(11));
  ASSERT_TRUE(Eventually([&] { return (**store_->Get(id)).lease_expires_ms > leased_until; }));
  {
    std::lock_guard lock(mu);
    finish({Status::Ok(), "done", true});
  }
  ASSERT_TRUE(Eventually([&] { return StateOf(id) == JobState::kSucceeded; }));
  runner.Stop(milliseconds(1000));
  std::lock_guard lock(mu);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_DOUBLE_EQ(runs[0], 11.0);  // the run time is the fake clock's, to the nanosecond
}

}  // namespace
}  // namespace ferry
