#pragma once
// What schedules and triggers must remember across restarts, in one SQLite file (<data-dir>/schedules.db,
// WAL, synchronous=FULL): each schedule's last decided slot and counts (and, for those made through the
// API, their definition), and each file a trigger took with the batch it started. Every write returns
// after its commit. One connection behind a mutex: these write once per slot or file. Thread-safe.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "jobs/sqlite_db.h"

namespace ferry {

struct ScheduleRecord {
  std::string name;
  std::string source;           // "file" (a definition file) or "api"
  std::string definition_yaml;  // the fields, as YAML (DefinitionYaml); api schedules are read back from it
  int64_t created_ms = 0;
  int64_t last_slot = 0;        // Unix seconds of the last decided slot (its creation, before any)
  std::string last_batches;     // ids the last fired slot started, comma-separated (SplitBatches)
  int64_t last_fired_slot = 0;  // 0 until one fired
  int64_t fires = 0, misses = 0, skips = 0;
  std::string last_error;       // why the last fire started nothing, or empty

  static std::vector<std::string> SplitBatches(const std::string& ids);
};

// How a trigger's file ended up: started (its batch runs or ran), refused (the batch could not be made
// from it: not valid input), completed or failed (its batch's final state, once seen).
struct TriggerFileRecord {
  std::string trigger;
  std::string name;
  std::string batch_id;
  std::string outcome;
  std::string error;
  int64_t seen_ms = 0;
};

struct ScheduleTick {
  int64_t last_slot = 0;
  std::optional<int64_t> fired_slot;
  std::string batches;
  int64_t fires = 0, misses = 0, skips = 0;  // added to the counts
  std::string error;
};

class SqliteScheduleStore {
 public:
  static Result<std::unique_ptr<SqliteScheduleStore>> Open(const std::filesystem::path& path,
                                                           std::function<int64_t()> now_ms = {});

  // Registers a schedule, or updates its definition and source; a new one starts with last_slot =
  // `first_slot` (now, so slots before it were never due). Returns the record.
  Result<ScheduleRecord> Upsert(const std::string& name, const std::string& source, const std::string& definition_yaml,
                                int64_t first_slot);
  // Only a new name: kAlreadyExists otherwise.
  Result<ScheduleRecord> Insert(const std::string& name, const std::string& source, const std::string& definition_yaml,
                                int64_t first_slot);
  Result<std::optional<ScheduleRecord>> Get(const std::string& name);
  Result<std::vector<ScheduleRecord>> List();
  Status Delete(const std::string& name);  // kNotFound without it
  // Commits a decided slot: last_slot moves forward only (a tick decided twice is a no-op).
  Status RecordTick(const std::string& name, const ScheduleTick& tick);

  // Adds a file taken by a trigger; kAlreadyExists when that name was taken before.
  Status AddTriggerFile(const TriggerFileRecord& file);
  Result<std::optional<TriggerFileRecord>> GetTriggerFile(const std::string& trigger, const std::string& name);
  Status SetTriggerOutcome(const std::string& trigger, const std::string& name, const std::string& outcome,
                           const std::string& error);
  // Newest first (or oldest); `outcome` empty for all.
  Result<std::vector<TriggerFileRecord>> ListTriggerFiles(const std::string& trigger, const std::string& outcome,
                                                          int64_t limit, bool oldest_first = false);
  // Every name the trigger took.
  Result<std::vector<std::string>> TriggerFileNames(const std::string& trigger);
  // Files per outcome.
  Result<std::vector<std::pair<std::string, int64_t>>> CountTriggerFiles(const std::string& trigger);

 private:
  SqliteScheduleStore() = default;
  Result<ScheduleRecord> InsertLocked(const std::string& name, const std::string& source,
                                      const std::string& definition_yaml, int64_t first_slot);
  Result<std::optional<ScheduleRecord>> GetLocked(const std::string& name);

  std::function<int64_t()> now_ms_;
  std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace ferry
