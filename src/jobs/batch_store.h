#pragma once
// Where batches, their checkpoints and stored files live. Every write returns only after it is
// committed, so a checkpoint the runner was told is stored survives a crash. Thread-safe.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "jobs/batch.h"

namespace ferry {

struct BatchPage {
  std::vector<Batch> batches;   // newest first
  bool has_more = false;
};

class BatchStore {
 public:
  virtual ~BatchStore() = default;

  // Commits a new batch in state validating (with `id` when given, else a new one).
  virtual Result<Batch> Create(const BatchSpec& spec, const std::string& id = "") = 0;
  virtual Result<std::optional<Batch>> Get(const std::string& id) = 0;
  // Newest first, starting after the batch `after` (OpenAI's cursor); at most `limit`.
  virtual Result<BatchPage> List(const std::string& after, int64_t limit) = 0;

  // Hands out up to `max` batches that are not final and not leased (or whose lease expired), highest
  // priority then oldest, to `owner` until now + `lease`.
  virtual Result<std::vector<Batch>> Lease(const std::string& owner, int64_t max, std::chrono::milliseconds lease) = 0;
  // Takes one batch whatever its lease (the offline command resuming its own run).
  virtual Result<Batch> TakeOver(const std::string& id, const std::string& owner, std::chrono::milliseconds lease) = 0;
  // Extends the lease and returns the batch's state (a cancel shows as cancelling);
  // kFailedPrecondition when `owner` no longer holds it.
  virtual Result<BatchState> Heartbeat(const std::string& id, const std::string& owner,
                                       std::chrono::milliseconds lease) = 0;
  // Commits progress; kFailedPrecondition when the lease was lost.
  virtual Status Checkpoint(const std::string& id, const std::string& owner, const BatchProgress& progress) = 0;
  // Records that a run resumed from the stored checkpoint and how many records it found answered past
  // it (they are run again).
  virtual Status RecordResume(const std::string& id, const std::string& owner, int64_t redone) = 0;
  // Moves the batch to `to` (a legal transition, else kFailedPrecondition), setting that stage's time;
  // `error` for failed. A final state releases the lease.
  virtual Status Transition(const std::string& id, const std::string& owner, BatchState to,
                            const std::string& error = "") = 0;
  // A final batch's output and error files (registered in the same commit as `to`).
  virtual Status Finish(const std::string& id, const std::string& owner, BatchState to, const StoredFile& output,
                        const StoredFile& errors) = 0;
  // validating or in_progress -> cancelling; returns the batch afterwards (a batch in any other state is
  // left as it is). kNotFound without it.
  virtual Result<Batch> RequestCancel(const std::string& id) = 0;
  // Gives back every lease (the data folder belongs to one server: one starting finds no live owner).
  virtual Status ReleaseAllLeases() = 0;

  virtual Status AddFile(const StoredFile& file) = 0;
  virtual Result<std::optional<StoredFile>> GetFile(const std::string& id) = 0;
  virtual Result<std::vector<StoredFile>> ListFiles(const std::string& purpose, int64_t limit) = 0;
  // Removes the record; kNotFound without it.
  virtual Status DeleteFile(const std::string& id) = 0;
};

// "batch_" / "file-" + 96 random bits in hex.
std::string NewBatchId();
std::string NewFileId();

}  // namespace ferry
