#pragma once
// Runs one batch to its end from wherever its last checkpoint left it: the same code for the server's
// batches and for `ferry batch`.
//
// Exactly one output per input: records are run many at a time (up to max_in_flight, so the model's
// batcher can pack them) but their answers are written in input order, each as one line of the output
// (succeeded) or of the errors file (failed). A checkpoint first flushes and fsyncs both files, then
// commits {records done, the input offset after them, both files' lengths} to the store. A run that
// starts from a checkpoint truncates both files to the committed lengths (dropping the lines a cut-off
// run wrote after it: they are counted as redone) and reads the input from the committed offset, so
// the final files hold each record exactly once, byte for byte as an uninterrupted run writes them.
// Until the end the files are <output>.partial and <errors>.partial (readable while they grow); the
// last step renames them, so nothing is ever half-written under the final names.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/cancel_token.h"
#include "common/clock.h"
#include "jobs/batch_input.h"
#include "jobs/batch_store.h"

namespace ferry {

// What one record came to: a line for the output (ok) or the errors file (error), or "try again later"
// (retry: the model's queue was full), without its newline.
struct RecordOutcome {
  enum class Kind { kOk, kError, kRetry };
  Kind kind = Kind::kOk;
  std::string line;
};

// Runs the records of one batch; knows the format and the model. Thread-safe: Run is called from the
// batch's thread, `done` from any (a model's executor thread): it must be cheap and must not block.
class RecordExecutor {
 public:
  virtual ~RecordExecutor() = default;
  // Checks the input's shape (a CSV's columns against the model's inputs) before the first record.
  virtual Status Prepare(const std::vector<std::string>& csv_header) { return Status::Ok(); }
  // The output's first line (a CSV header), written once before the first record; empty for none.
  // Valid after Prepare.
  virtual std::string OutputHeader() const { return ""; }
  virtual void Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
                   std::function<void(RecordOutcome)> done) = 0;
  // The errors-file line of a record that failed before it ran (it could not be read).
  virtual std::string ErrorLine(const BatchRecord& record, const Status& error) = 0;
  // Runs once every record is written and the output has its final name, before the batch is
  // committed completed (again after a crash in between: it must be idempotent). kUnavailable leaves
  // the batch finalizing, to be tried again; another error fails it.
  virtual Status Finalize(const Batch& batch) { return Status::Ok(); }
};

struct BatchRunOptions {
  int64_t checkpoint_every_records = 2000;
  std::chrono::milliseconds checkpoint_every{2000};
  size_t max_in_flight = 64;                     // records submitted and not yet written
  std::chrono::milliseconds lease{30'000};
  std::chrono::milliseconds heartbeat_every{5000};
  std::chrono::milliseconds retry_after{5};      // a record answered kRetry is submitted again then
  const Clock* clock = &Clock::Real();
  RecordReaderOptions reader;
};

// Progress as it happens (for a progress bar and metrics), on the batch's thread.
struct BatchRunObserver {
  std::function<void(const BatchProgress&)> progress;           // after each record written, at most
  std::function<void(int64_t completed, int64_t failed)> records;  // records written since the last call
};

struct BatchRunResult {
  BatchState state = BatchState::kCompleted;  // the state the batch was left in
  BatchProgress progress;
  int64_t redone = 0;                        // records this run found written past the checkpoint
  bool resumed = false;
};

// Runs `batch` (leased by `owner`). Returns when it is final, or when `stop` trips (a server draining:
// the batch keeps its checkpoint and its state, and is resumed later), or on an error of the store or of
// the files, which fails the batch when it is the input's or the output's fault.
Result<BatchRunResult> RunBatch(const Batch& batch, const std::string& owner, BatchStore* store,
                                RecordExecutor* executor, const BatchRunOptions& options,
                                std::shared_ptr<CancelToken> stop, BatchRunObserver observer = {});

// The file names a batch writes to until it is final.
std::string PartialPath(const std::string& final_path);

}  // namespace ferry
