#include "jobs/batch_scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <random>

namespace ferry {

BatchScheduler::BatchScheduler(BatchStore* store, RecordExecutorFactory factory, BatchSchedulerOptions options,
                               BatchSchedulerObserver observer)
    : store_(store), factory_(std::move(factory)), options_(std::move(options)), observer_(std::move(observer)) {
  if (options_.owner.empty()) {
    std::mt19937_64 rng{std::random_device{}()};
    options_.owner = fmt::format("batches-{:012x}", rng() & 0xffffffffffffULL);
  }
}

BatchScheduler::~BatchScheduler() { Stop(); }

void BatchScheduler::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void BatchScheduler::Wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

size_t BatchScheduler::running() const {
  std::lock_guard lock(mu_);
  return running_.size();
}

void BatchScheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, r] : running_) r.stop->Cancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::map<std::string, Running> left;
  {
    std::lock_guard lock(mu_);
    left = std::move(running_);
    running_.clear();
  }
  for (auto& [id, r] : left) {
    if (r.thread.joinable()) r.thread.join();
  }
}

void BatchScheduler::Finished(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = running_.find(id); it != running_.end()) it->second.done = true;
  }
  cv_.notify_all();
}

void BatchScheduler::RunOne(Batch batch, std::shared_ptr<CancelToken> stop) {
  const auto started = std::chrono::steady_clock::now();
  Result<std::unique_ptr<RecordExecutor>> executor = factory_(batch);
  while (!executor.ok() && executor.status().code() == StatusCode::kUnavailable && !stop->cancelled()) {
    // The model may still be loading: keep the lease and look again.
    if (!store_->Heartbeat(batch.id, options_.owner, options_.run.lease).ok()) return Finished(batch.id);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.retry_every, [&] { return stopping_; });
    lock.unlock();
    executor = factory_(batch);
  }
  if (!executor.ok()) {
    if (executor.status().code() != StatusCode::kUnavailable) {
      const BatchState to = batch.state == BatchState::kCancelling ? BatchState::kCancelled : BatchState::kFailed;
      Status s = store_->Transition(batch.id, options_.owner, to, executor.status().message());
      if (!s.ok()) spdlog::warn("batch {}: {}", batch.id, s.message());
    }
    return Finished(batch.id);
  }
  BatchRunObserver observer;
  observer.records = observer_.records;
  Result<BatchRunResult> result = RunBatch(batch, options_.owner, store_, executor->get(), options_.run, stop,
                                           std::move(observer));
  if (!result.ok()) {
    spdlog::warn("batch {} stopped: {} (it resumes from its last checkpoint)", batch.id, result.status().message());
  } else {
    if (result->resumed) {
      spdlog::info("batch {} resumed at record {}; {} records past that checkpoint were run again", batch.id,
                   batch.progress.records_done, result->redone);
    }
    if (observer_.ended) observer_.ended(*result, std::chrono::steady_clock::now() - started);
  }
  Finished(batch.id);
}

void BatchScheduler::Loop() {
  std::unique_lock lock(mu_);
  size_t reported = 0;
  while (!stopping_) {
    for (auto it = running_.begin(); it != running_.end();) {
      if (it->second.done) {
        it->second.thread.join();
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    const size_t free = options_.concurrency > running_.size() ? options_.concurrency - running_.size() : 0;
    if (free > 0) {
      lock.unlock();
      Result<std::vector<Batch>> leased =
          store_->Lease(options_.owner, static_cast<int64_t>(free), options_.run.lease);
      lock.lock();
      if (!leased.ok()) {
        spdlog::warn("batch store: {}", leased.status().message());
      } else {
        for (Batch& b : *leased) {
          if (stopping_) break;  // its lease expires and it is taken up after the restart
          auto stop = CancelToken::Create();
          Running& r = running_[b.id];
          r.stop = stop;
          r.thread = std::thread([this, b = std::move(b), stop]() mutable { RunOne(std::move(b), stop); });
        }
      }
    }
    if (observer_.running && running_.size() != reported) {
      reported = running_.size();
      observer_.running(reported);
    }
    cv_.wait_for(lock, options_.poll_every, [&] {
      if (stopping_ || wake_) return true;
      for (auto& [id, r] : running_) {
        if (r.done) return true;
      }
      return false;
    });
    wake_ = false;
  }
}

}  // namespace ferry
