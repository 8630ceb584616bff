#pragma once
// Runs the server's batches: leases up to `concurrency` batches that are not final from the store and
// runs each on a thread of its own (RunBatch), so several batches share the models at bulk priority.
// A batch whose run stops (drain, a store or disk error) keeps its checkpoint and its lease, which
// expires, and is taken up again. Thread-safe.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "jobs/batch_run.h"

namespace ferry {

// Makes the executor of one batch (it knows the format and the model). kNotFound / kInvalidArgument
// fail the batch; kUnavailable (a model still loading) is tried again later.
using RecordExecutorFactory = std::function<Result<std::unique_ptr<RecordExecutor>>(const Batch&)>;

struct BatchSchedulerOptions {
  std::string owner;                          // lease owner; default "batches-<hex>"
  size_t concurrency = 2;                     // batches running at once
  std::chrono::milliseconds poll_every{500};
  std::chrono::milliseconds retry_every{1000};  // a batch whose model is not ready yet
  BatchRunOptions run;
};

struct BatchSchedulerObserver {
  std::function<void(int64_t completed, int64_t failed)> records;  // from the batches' threads
  // A run ended: the state it left the batch in and how long it ran.
  std::function<void(const BatchRunResult& result, std::chrono::duration<double> run)> ended;
  std::function<void(size_t running)> running;  // from the scheduler's thread, when it changed
};

class BatchScheduler {
 public:
  BatchScheduler(BatchStore* store, RecordExecutorFactory factory, BatchSchedulerOptions options,
                 BatchSchedulerObserver observer = {});
  ~BatchScheduler();  // Stop()

  void Start();
  void Wake();  // a batch was created or cancelled
  // Stops every run at its next record (each commits a checkpoint first) and joins them.
  void Stop();
  size_t running() const;

 private:
  struct Running {
    std::thread thread;
    std::shared_ptr<CancelToken> stop;
    bool done = false;
  };
  void Loop();
  void RunOne(Batch batch, std::shared_ptr<CancelToken> stop);
  void Finished(const std::string& id);

  BatchStore* store_;
  RecordExecutorFactory factory_;
  BatchSchedulerOptions options_;
  BatchSchedulerObserver observer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Running> running_;
  bool wake_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ferry
