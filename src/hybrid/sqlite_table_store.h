#pragma once
// The embedded TableStore: SQLite (WAL) in the data folder, with the most recently used entries kept
// in memory under a byte budget. Thread-safe.
//
// Every table's entries carry the generation they were published in; `tables` names each table's
// current generation. A publish writes its whole generation in one transaction that also moves the
// table to it, so a lookup (which reads the generation, then its entry) sees one generation or the
// other. Generation numbers come from one counter over all tables and never repeat, so the memory
// front keys entries by (table, generation, key) and needs no invalidation. The generation before the
// current one stays on disk until the next publish. Keys a generation lacks are remembered as absent
// too (a write-back of the key forgets that). A lookup missing the memory reads the table's
// current generation and its entry in one statement, so it never finds a generation half gone. The current generations are re-read every `refresh_interval`, so a publish by another
// process on the same file (`ferry precompute load`) is seen.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "hybrid/byte_lru.h"
#include "hybrid/table_store.h"
#include "jobs/sqlite_db.h"

namespace ferry {

struct SqliteTableStoreOptions {
  size_t memory_budget_bytes = size_t{64} << 20;
  size_t write_back_queue = 1024;
  std::chrono::milliseconds refresh_interval{1000};
  const Clock* clock = &Clock::Real();             // for refreshes
  const WallClock* wall_clock = &WallClock::Real();  // publish times
  bool start_writer = true;  // false: write-backs wait for FlushWriteBacks() (tests)
};

class SqliteTableStore : public TableStore {
 public:
  static Result<std::unique_ptr<SqliteTableStore>> Open(const std::filesystem::path& path,
                                                        SqliteTableStoreOptions options = {});
  ~SqliteTableStore() override;

  Result<TableInfo> Publish(const std::string& table, const std::string& model, const std::string& source,
                            const std::function<Status(TableSink&)>& produce) override;
  Result<std::optional<TableEntry>> Lookup(const std::string& table, const std::string& key) override;
  void WriteBack(const std::string& table, TableEntry entry) override;
  std::vector<TableInfo> List() override;
  Result<TableInfo> Get(const std::string& table) override;
  Status Drop(const std::string& table) override;
  TableStats Stats() const override;
  // Writes every queued write-back now (the writer thread's step, for tests).
  Status FlushWriteBacks();

 private:
  explicit SqliteTableStore(std::filesystem::path path, SqliteTableStoreOptions options)
      : path_(std::move(path)), options_(options), memory_(options.memory_budget_bytes) {}
  // A read connection with its lookup statement, prepared once.
  struct Reader {
    std::unique_ptr<SqliteDb> db;
    std::optional<SqliteStatement> lookup;  // destroyed before db
  };
  Result<std::unique_ptr<SqliteDb>> Connect() const;
  std::unique_ptr<Reader> TakeReader();
  void ReturnReader(std::unique_ptr<Reader> reader);
  Status Refresh();
  void MaybeRefresh();
  std::optional<TableInfo> Current(const std::string& table);
  // `generation`: the one the entry was read from.
  Result<std::optional<TableEntry>> ReadEntry(const TableInfo& info, const std::string& key, int64_t* generation);
  Result<TableInfo> PublishLocked(const std::string& table, const std::string& model, const std::string& source,
                                  const std::function<Status(TableSink&)>& produce);
  Status WriteBackLocked(const std::vector<std::pair<std::string, TableEntry>>& items);
  void WriterLoop();

  const std::filesystem::path path_;
  const SqliteTableStoreOptions options_;

  std::mutex write_mu_;  // the writer connection: publishes, write-backs, drops
  std::unique_ptr<SqliteDb> writer_;

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Reader>> readers_;

  std::shared_mutex tables_mu_;
  std::map<std::string, TableInfo> tables_;
  std::atomic<int64_t> last_refresh_{0};  // steady nanoseconds
  std::atomic<int64_t> epoch_{0};         // +1 at each commit of this process, under tables_mu_
  std::mutex refresh_mu_;

  mutable std::mutex memory_mu_;
  ByteLru<TableEntry> memory_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::pair<std::string, TableEntry>> queue_;
  bool stopping_ = false;
  std::atomic<int64_t> write_backs_{0};
  std::atomic<int64_t> write_backs_dropped_{0};
  std::thread writer_thread_;
};

}  // namespace ferry
