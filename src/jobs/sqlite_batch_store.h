#pragma once
// The embedded BatchStore: one SQLite file in WAL mode with synchronous=FULL, so a committed checkpoint
// survives power loss. Batches write rarely (a checkpoint every few thousand records or seconds), so
// one connection behind a mutex is enough; no group commit. Used by the server (<data-dir>/batches.db)
// and by `ferry batch` (a checkpoint file beside its output). Thread-safe.
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>

#include "jobs/batch_store.h"
#include "jobs/sqlite_db.h"

namespace ferry {

struct SqliteBatchStoreOptions {
  std::filesystem::path path;      // the database file; its folder is created
  std::function<int64_t()> now_ms;  // Unix milliseconds; default: the system clock
};

class SqliteBatchStore final : public BatchStore {
 public:
  static Result<std::unique_ptr<SqliteBatchStore>> Open(SqliteBatchStoreOptions options);

  Result<Batch> Create(const BatchSpec& spec, const std::string& id = "") override;
  Result<std::optional<Batch>> Get(const std::string& id) override;
  Result<BatchPage> List(const std::string& after, int64_t limit) override;
  Result<std::vector<Batch>> Lease(const std::string& owner, int64_t max, std::chrono::milliseconds lease) override;
  Result<Batch> TakeOver(const std::string& id, const std::string& owner, std::chrono::milliseconds lease) override;
  Result<BatchState> Heartbeat(const std::string& id, const std::string& owner,
                               std::chrono::milliseconds lease) override;
  Status Checkpoint(const std::string& id, const std::string& owner, const BatchProgress& progress) override;
  Status RecordResume(const std::string& id, const std::string& owner, int64_t redone) override;
  Status Transition(const std::string& id, const std::string& owner, BatchState to,
                    const std::string& error = "") override;
  Status Finish(const std::string& id, const std::string& owner, BatchState to, const StoredFile& output,
                const StoredFile& errors) override;
  Result<Batch> RequestCancel(const std::string& id) override;
  Status ReleaseAllLeases() override;
  Status AddFile(const StoredFile& file) override;
  Result<std::optional<StoredFile>> GetFile(const std::string& id) override;
  Result<std::vector<StoredFile>> ListFiles(const std::string& purpose, int64_t limit) override;
  Status DeleteFile(const std::string& id) override;

 private:
  explicit SqliteBatchStore(SqliteBatchStoreOptions options) : options_(std::move(options)) {}
  Result<std::optional<Batch>> GetLocked(const std::string& id);
  Status AddMissingColumns();
  // Runs `body` in one transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error).
  Status InTransaction(const std::function<Status()>& body);
  Status CheckOwnerLocked(const std::string& id, const std::string& owner, BatchState* state);
  Status InsertFileLocked(const StoredFile& file);
  int64_t Now() const { return options_.now_ms(); }

  SqliteBatchStoreOptions options_;
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace ferry
