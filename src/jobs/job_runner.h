#pragma once
// Runs the jobs of a JobStore: leases up to `concurrency` at a time, hands each to the executor (which
// submits it to the model's scheduler at job priority), heartbeats the leases it holds, stores each
// outcome, returns expired leases (of runners that died) to the queue and removes finished jobs past
// their retention. Outcomes are stored on the runner's own thread, never on the executor's, so a
// model's executor thread never waits for a disk commit.
//
// Delivery is at least once: a runner that dies mid-job leaves a lease that expires, and the job runs
// again. A job whose lease was lost (cancelled, or expired and re-leased) has its cancel token set and
// its late outcome is dropped. Thread-safe.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/cancel_token.h"
#include "common/clock.h"
#include "jobs/job_store.h"

namespace ferry {

struct JobRunnerOptions {
  std::string owner;                            // lease owner; default: a random "runner-<hex>"
  size_t concurrency = 2;                       // jobs in flight at once
  std::chrono::milliseconds lease{30'000};
  std::chrono::milliseconds heartbeat_every{10'000};
  std::chrono::milliseconds poll_every{200};    // how often an idle runner looks for work
  std::chrono::milliseconds busy_delay{500};    // how long a job the model had no room for waits
  std::chrono::milliseconds reap_every{1'000};
  std::chrono::milliseconds retention{std::chrono::hours(24)};
  std::chrono::milliseconds cleanup_every{std::chrono::minutes(1)};
  // When heartbeats, reaps and clean-ups are due, and run times (the waits between looks are real).
  const Clock* clock = &Clock::Real();
};

// The outcome of one attempt: the result to store, or an error and whether another attempt may help.
struct JobOutcome {
  Status status;          // OK: `result` is stored
  std::string result;
  bool retryable = true;  // for an error: false ends the job as failed at once
  // For an error: the model had no room and the job never ran; it goes back in the queue for the
  // runner's `busy_delay` without spending an attempt.
  bool busy = false;
};

// Runs one job; calls `done` exactly once, from any thread. Must honour `cancel` where it can.
using JobExecutor =
    std::function<void(const Job& job, std::shared_ptr<CancelToken> cancel, std::function<void(JobOutcome)> done)>;

// What the runner reports as it works (for metrics); each may be empty. Called on the runner's thread.
struct JobRunnerObserver {
  std::function<void(const Job& job)> started;  // an attempt begins (job.attempts counts it)
  // An attempt ended: "succeeded", "error" (stored; requeued or failed) or "dropped" (the lease was lost).
  std::function<void(const std::string& model, std::chrono::duration<double> run, const std::string& outcome)> ended;
  std::function<void(const JobCounts& counts)> counts;  // every reap tick
};

class JobRunner {
 public:
  JobRunner(JobStore* store, JobExecutor executor, JobRunnerOptions options, JobRunnerObserver observer = {});
  ~JobRunner();  // Stop(0)

  void Start();
  // Looks for work now (after a submit) instead of at the next poll.
  void Wake();
  // Stops leasing and waits up to `wait` for the jobs in flight; their outcomes are stored. Jobs still
  // running after that are cancelled, their outcomes dropped, and their leases given back with the
  // attempt (JobStore::Defer), so that the next start runs them at once.
  void Stop(std::chrono::milliseconds wait);
  size_t in_flight() const;

 private:
  struct Finished {
    std::string id;
    JobOutcome outcome;
  };
  struct Running {
    std::shared_ptr<CancelToken> cancel;
    std::string model;
    SteadyTime started;
  };
  void Loop();
  void StoreOutcomesLocked(std::unique_lock<std::mutex>& lock);
  void HeartbeatAll(std::unique_lock<std::mutex>& lock);

  JobStore* store_;
  JobExecutor executor_;
  JobRunnerOptions options_;
  JobRunnerObserver observer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Running> running_;
  std::deque<Finished> finished_;
  bool wake_ = false;
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace ferry
