#include "jobs/job_runner.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <random>
#include <vector>

namespace ferry {
namespace {


std::string RandomOwner() {
  std::random_device rd;
  return fmt::format("runner-{:08x}{:08x}", rd(), rd());
}

}  // namespace

JobRunner::JobRunner(JobStore* store, JobExecutor executor, JobRunnerOptions options, JobRunnerObserver observer)
    : store_(store), executor_(std::move(executor)), options_(std::move(options)), observer_(std::move(observer)) {
  if (options_.owner.empty()) options_.owner = RandomOwner();
  if (options_.concurrency == 0) options_.concurrency = 1;
}

JobRunner::~JobRunner() { Stop(std::chrono::milliseconds(0)); }

void JobRunner::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void JobRunner::Wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

size_t JobRunner::in_flight() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

void JobRunner::Stop(std::chrono::milliseconds wait) {
  std::vector<std::string> released;
  {
    std::unique_lock lock(mu_);
    if (!started_ || stopping_) {
      stopping_ = true;
      lock.unlock();
      if (thread_.joinable()) thread_.join();
      return;
    }
    stopping_ = true;
    const auto deadline = options_.clock->Now() + wait;
    // The loop keeps storing outcomes while it drains; wait for it to finish them.
    cv_.notify_all();
    cv_.wait_until(lock, deadline, [&] { return running_.empty() && finished_.empty(); });
    for (auto& [id, r] : running_) {
      r.cancel->Cancel();
      released.push_back(id);
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Their leases are given back (and the attempt with them): the next start runs them at once rather
  // than after the lease expires.
  for (const std::string& id : released) {
    if (Status s = store_->Defer(id, options_.owner, "the server stopped while it ran", std::chrono::milliseconds(0));
        !s.ok()) {
      spdlog::warn("job {}: its lease could not be given back ({}); it runs again once the lease expires", id,
                   s.message());
    }
  }
  if (!released.empty()) spdlog::warn("job runner stopped with {} job(s) unfinished; they run again at the next start",
                                       released.size());
}

void JobRunner::StoreOutcomesLocked(std::unique_lock<std::mutex>& lock) {
  while (!finished_.empty()) {
    Finished f = std::move(finished_.front());
    finished_.pop_front();
    auto it = running_.find(f.id);
    const bool lost = it == running_.end() || it->second.cancel->cancelled();
    const std::string model = it == running_.end() ? std::string() : it->second.model;
    const auto run = it == running_.end() ? SteadyTime::duration() : options_.clock->Now() - it->second.started;
    lock.unlock();
    Status stored;
    if (lost) {
      stored = Status::Ok();  // cancelled or lease lost: the store refuses it anyway; nothing to record
    } else if (f.outcome.status.ok()) {
      stored = store_->Complete(f.id, options_.owner, f.outcome.result);
    } else if (f.outcome.busy) {
      stored = store_->Defer(f.id, options_.owner, f.outcome.status.message(), options_.busy_delay);
    } else {
      stored = store_->Fail(f.id, options_.owner, f.outcome.status.message(), f.outcome.retryable);
    }
    if (!stored.ok() && stored.code() != StatusCode::kFailedPrecondition) {
      // The lease stays; it expires and the job runs again (at least once, never lost).
      spdlog::warn("job {}: could not store its outcome: {}", f.id, stored.message());
    }
    if (observer_.ended) {
      const bool dropped = lost || stored.code() == StatusCode::kFailedPrecondition;
      observer_.ended(model, run, dropped           ? "dropped"
                                  : f.outcome.status.ok() ? "succeeded"
                                  : f.outcome.busy       ? "deferred"
                                                          : "error");
    }
    lock.lock();
    running_.erase(f.id);
  }
}

void JobRunner::HeartbeatAll(std::unique_lock<std::mutex>& lock) {
  std::vector<std::pair<std::string, std::shared_ptr<CancelToken>>> held;
  for (const auto& [id, r] : running_) held.emplace_back(id, r.cancel);
  lock.unlock();
  for (auto& [id, token] : held) {
    Status s = store_->Heartbeat(id, options_.owner, options_.lease);
    if (s.code() == StatusCode::kFailedPrecondition) token->Cancel();  // cancelled, or the lease was lost
  }
  lock.lock();
}

void JobRunner::Loop() {
  auto next_reap = options_.clock->Now();
  auto next_cleanup = options_.clock->Now();
  auto next_heartbeat = options_.clock->Now() + options_.heartbeat_every;
  std::unique_lock lock(mu_);
  for (;;) {
    StoreOutcomesLocked(lock);
    if (stopping_) {
      cv_.notify_all();  // Stop waits for running_ to empty
      if (running_.empty()) return;
      cv_.wait_for(lock, options_.poll_every);
      continue;
    }
    const auto now = options_.clock->Now();
    if (now >= next_heartbeat && !running_.empty()) {
      HeartbeatAll(lock);
      next_heartbeat = now + options_.heartbeat_every;
    }
    lock.unlock();
    if (now >= next_reap) {
      if (auto r = store_->ReapExpiredLeases(); r.ok() && *r > 0) {
        spdlog::info("returned {} job(s) with expired leases to the queue", *r);
      }
      if (observer_.counts) {
        if (Result<JobCounts> counts = store_->Counts(); counts.ok()) observer_.counts(*counts);
      }
      next_reap = now + options_.reap_every;
    }
    if (now >= next_cleanup) {
      (void)store_->DeleteFinishedBefore(options_.retention);
      next_cleanup = now + options_.cleanup_every;
    }
    lock.lock();
    const size_t free = options_.concurrency - std::min(options_.concurrency, running_.size());
    if (free > 0 && !stopping_) {
      lock.unlock();
      Result<std::vector<Job>> leased = store_->Lease(options_.owner, static_cast<int64_t>(free), options_.lease);
      lock.lock();
      if (!leased.ok()) {
        spdlog::warn("job runner: leasing failed: {}", leased.status().message());
      } else {
        for (Job& job : *leased) {
          auto token = CancelToken::Create();
          running_[job.id] = Running{token, job.spec.model, options_.clock->Now()};
          lock.unlock();
          if (observer_.started) observer_.started(job);
          executor_(job, token, [this, id = job.id](JobOutcome outcome) {
            {
              std::lock_guard done_lock(mu_);
              finished_.push_back({id, std::move(outcome)});
            }
            cv_.notify_all();
          });
          lock.lock();
        }
        if (!leased->empty()) continue;  // there may be more: look again at once
      }
    }
    cv_.wait_for(lock, options_.poll_every, [&] { return wake_ || stopping_ || !finished_.empty(); });
    wake_ = false;
  }
}

}  // namespace ferry
