#pragma once
// The embedded JobStore: one SQLite file in WAL mode.
//
// Durability: `durable` (synchronous=FULL, the default) fsyncs the WAL at every commit, so a committed
// job survives power loss; `fast` (synchronous=NORMAL) survives a crash of the process but may lose
// the last commits on power loss.
//
// Group commit: every write goes through one writer thread, which takes the writes waiting (up to
// max_group_size), runs each in its own savepoint inside one transaction and commits once, so many
// submits share one fsync; each caller is answered only after that commit returned. The queue of
// waiting writes is bounded (max_pending_writes): beyond it a write answers kUnavailable at once.
// Reads use a second connection and see every committed write.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "jobs/job_store.h"
#include "jobs/sqlite_db.h"

namespace ferry {

struct SqliteJobStoreOptions {
  enum class Durability { kDurable, kFast };
  std::filesystem::path path;                 // the database file; its folder is created
  Durability durability = Durability::kDurable;
  int64_t max_active_jobs = 100'000;          // queued + running; a submit beyond answers kUnavailable
  size_t max_pending_writes = 4096;
  size_t max_group_size = 256;
  std::function<int64_t()> now_ms;            // Unix milliseconds; default: the system clock
  // Tests only: called by the writer thread when writes are waiting, before it takes them as a group.
  std::function<void()> before_group;
};

class SqliteJobStore final : public JobStore {
 public:
  static Result<std::unique_ptr<SqliteJobStore>> Open(SqliteJobStoreOptions options);
  ~SqliteJobStore() override;

  Result<SubmitOutcome> Submit(const NewJob& job) override;
  Result<std::optional<Job>> Get(const std::string& id) override;
  Result<std::string> GetResult(const std::string& id) override;
  Result<JobPage> List(const JobFilter& filter, int64_t page_size, const std::string& page_token) override;
  Result<JobCounts> Counts() override;
  Result<std::vector<Job>> Lease(const std::string& owner, int64_t max_jobs, std::chrono::milliseconds lease) override;
  Status Heartbeat(const std::string& id, const std::string& owner, std::chrono::milliseconds lease) override;
  Status Complete(const std::string& id, const std::string& owner, const std::string& result) override;
  Status Fail(const std::string& id, const std::string& owner, const std::string& error, bool retry) override;
  Status Defer(const std::string& id, const std::string& owner, const std::string& why,
               std::chrono::milliseconds delay) override;
  Result<JobState> Cancel(const std::string& id) override;
  Result<int64_t> ReapExpiredLeases() override;
  Result<std::vector<WebhookDelivery>> LeaseDeliveries(int64_t max_deliveries, std::chrono::milliseconds lease) override;
  Status RecordDeliveryAttempt(const std::string& delivery_id, const DeliveryAttempt& attempt) override;
  Result<std::optional<WebhookDelivery>> GetDelivery(const std::string& job_id) override;
  Result<std::optional<int64_t>> NextDeliveryDue() override;
  Status AddNotice(const std::string& notice_id, const std::string& url, const std::string& secret,
                   const std::string& event, const std::string& payload) override;
  Result<int64_t> DeleteFinishedBefore(std::chrono::milliseconds retention) override;

  // Commits so far (for tests and metrics: fewer commits than writes means grouping happened).
  int64_t commit_count() const;
  size_t pending_writes() const;

 private:
  using WriteOp = std::function<Status(SqliteDb&)>;
  struct PendingWrite;

  explicit SqliteJobStore(SqliteJobStoreOptions options) : options_(std::move(options)) {}
  // Queues `op` for the writer thread and waits until its transaction committed (or failed).
  Status Write(WriteOp op);
  void WriterLoop();
  void CommitGroup(std::deque<PendingWrite*>& group);
  int64_t Now() const { return options_.now_ms(); }

  SqliteJobStoreOptions options_;
  std::unique_ptr<SqliteDb> writer_db_;  // writer thread only
  std::unique_ptr<SqliteDb> reader_db_;
  std::mutex reader_mu_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingWrite*> queue_;
  bool stopping_ = false;
  int64_t commits_ = 0;
  std::thread writer_;
};

}  // namespace ferry
