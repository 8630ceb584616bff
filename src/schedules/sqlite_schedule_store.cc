#include "schedules/sqlite_schedule_store.h"

#include <fmt/format.h>

#include <chrono>

namespace ferry {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS schedules(
  name TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  definition TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  last_slot INTEGER NOT NULL,
  last_batches TEXT NOT NULL DEFAULT '',
  last_fired_slot INTEGER NOT NULL DEFAULT 0,
  fires INTEGER NOT NULL DEFAULT 0,
  misses INTEGER NOT NULL DEFAULT 0,
  skips INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS trigger_files(
  trigger TEXT NOT NULL,
  name TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  seen_ms INTEGER NOT NULL,
  PRIMARY KEY(trigger, name));
CREATE INDEX IF NOT EXISTS trigger_files_by_outcome ON trigger_files(trigger, outcome, seen_ms);
)sql";

constexpr const char* kScheduleColumns =
    "name, source, definition, created_ms, last_slot, last_batches, last_fired_slot, fires, misses, skips, last_error";

ScheduleRecord ReadSchedule(const SqliteStatement& r) {
  ScheduleRecord s;
  s.name = r.Text(0);
  s.source = r.Text(1);
  s.definition_yaml = r.Text(2);
  s.created_ms = r.Int(3);
  s.last_slot = r.Int(4);
  s.last_batches = r.Text(5);
  s.last_fired_slot = r.Int(6);
  s.fires = r.Int(7);
  s.misses = r.Int(8);
  s.skips = r.Int(9);
  s.last_error = r.Text(10);
  return s;
}

TriggerFileRecord ReadTriggerFile(const SqliteStatement& r) {
  return TriggerFileRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4), r.Int(5)};
}

}  // namespace

std::vector<std::string> ScheduleRecord::SplitBatches(const std::string& ids) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < ids.size()) {
    const size_t comma = ids.find(',', start);
    out.push_back(ids.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<std::unique_ptr<SqliteScheduleStore>> SqliteScheduleStore::Open(const std::filesystem::path& path,
                                                                       std::function<int64_t()> now_ms) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return Unavailable(fmt::format("schedule store: cannot create '{}': {}", path.parent_path().string(), ec.message()));
  std::unique_ptr<SqliteScheduleStore> store(new SqliteScheduleStore());
  store->now_ms_ = now_ms ? std::move(now_ms) : [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  FERRY_ASSIGN_OR_RETURN(store->db_, SqliteDb::Open(path, /*read_only=*/false));
  FERRY_RETURN_IF_ERROR(store->db_->Exec("PRAGMA journal_mode=WAL"));
  FERRY_RETURN_IF_ERROR(store->db_->Exec("PRAGMA synchronous=FULL"));
  FERRY_RETURN_IF_ERROR(store->db_->Exec(kSchema));
  return store;
}

Result<std::optional<ScheduleRecord>> SqliteScheduleStore::GetLocked(const std::string& name) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st,
                         db_->Prepare(fmt::format("SELECT {} FROM schedules WHERE name = ?", kScheduleColumns)));
  st.BindText(1, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<ScheduleRecord>();
  return std::optional<ScheduleRecord>(ReadSchedule(st));
}

Result<ScheduleRecord> SqliteScheduleStore::InsertLocked(const std::string& name, const std::string& source,
                                                         const std::string& definition_yaml, int64_t first_slot) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "INSERT INTO schedules(name, source, definition, created_ms, last_slot) VALUES(?1, ?2, ?3, ?4, ?5)"));
  st.BindText(1, name).BindText(2, source).BindText(3, definition_yaml).Bind(4, now_ms_()).Bind(5, first_slot);
  FERRY_RETURN_IF_ERROR(st.Run());
  FERRY_ASSIGN_OR_RETURN(std::optional<ScheduleRecord> r, GetLocked(name));
  if (!r) return Internal("schedule store: a schedule just written cannot be read back");
  return *r;
}

Result<ScheduleRecord> SqliteScheduleStore::Insert(const std::string& name, const std::string& source,
                                                   const std::string& definition_yaml, int64_t first_slot) {
  std::lock_guard lock(mu_);
  Result<ScheduleRecord> r = InsertLocked(name, source, definition_yaml, first_slot);
  if (r.status().code() == StatusCode::kAlreadyExists) {
    return Status(StatusCode::kAlreadyExists, fmt::format("a schedule named '{}' exists already", name));
  }
  return r;
}

Result<ScheduleRecord> SqliteScheduleStore::Upsert(const std::string& name, const std::string& source,
                                                   const std::string& definition_yaml, int64_t first_slot) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(std::optional<ScheduleRecord> existing, GetLocked(name));
  if (!existing) return InsertLocked(name, source, definition_yaml, first_slot);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st,
                         db_->Prepare("UPDATE schedules SET source = ?2, definition = ?3 WHERE name = ?1"));
  st.BindText(1, name).BindText(2, source).BindText(3, definition_yaml);
  FERRY_RETURN_IF_ERROR(st.Run());
  existing->source = source;
  existing->definition_yaml = definition_yaml;
  return *existing;
}

Result<std::optional<ScheduleRecord>> SqliteScheduleStore::Get(const std::string& name) {
  std::lock_guard lock(mu_);
  return GetLocked(name);
}

Result<std::vector<ScheduleRecord>> SqliteScheduleStore::List() {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st,
                         db_->Prepare(fmt::format("SELECT {} FROM schedules ORDER BY name", kScheduleColumns)));
  std::vector<ScheduleRecord> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back(ReadSchedule(st));
  }
}

Status SqliteScheduleStore::Delete(const std::string& name) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare("DELETE FROM schedules WHERE name = ?"));
  st.BindText(1, name);
  FERRY_RETURN_IF_ERROR(st.Run());
  if (db_->Changes() == 0) return NotFound(fmt::format("no schedule '{}'", name.substr(0, 64)));
  return Status::Ok();
}

Status SqliteScheduleStore::RecordTick(const std::string& name, const ScheduleTick& t) {
  std::lock_guard lock(mu_);
  // The WHERE keeps last_slot from moving back: a tick decided twice changes nothing.
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(R"sql(
UPDATE schedules SET last_slot = ?2,
  last_batches = CASE WHEN ?3 THEN ?4 ELSE last_batches END,
  last_fired_slot = CASE WHEN ?3 THEN ?5 ELSE last_fired_slot END,
  fires = fires + ?6, misses = misses + ?7, skips = skips + ?8,
  last_error = CASE WHEN ?3 THEN ?9 ELSE last_error END
WHERE name = ?1 AND last_slot < ?2)sql"));
  st.BindText(1, name).Bind(2, t.last_slot).Bind(3, t.fired_slot ? 1 : 0).BindText(4, t.batches);
  st.Bind(5, t.fired_slot.value_or(0)).Bind(6, t.fires).Bind(7, t.misses).Bind(8, t.skips).BindText(9, t.error);
  return st.Run();
}

Status SqliteScheduleStore::AddTriggerFile(const TriggerFileRecord& f) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "INSERT INTO trigger_files(trigger, name, batch_id, outcome, error, seen_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"));
  st.BindText(1, f.trigger).BindText(2, f.name).BindText(3, f.batch_id).BindText(4, f.outcome).BindText(5, f.error);
  st.Bind(6, f.seen_ms != 0 ? f.seen_ms : now_ms_());
  return st.Run();
}

Result<std::optional<TriggerFileRecord>> SqliteScheduleStore::GetTriggerFile(const std::string& trigger,
                                                                              const std::string& name) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "SELECT trigger, name, batch_id, outcome, error, seen_ms FROM trigger_files WHERE trigger = ?1 AND name = ?2"));
  st.BindText(1, trigger).BindText(2, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<TriggerFileRecord>();
  return std::optional<TriggerFileRecord>(ReadTriggerFile(st));
}

Status SqliteScheduleStore::SetTriggerOutcome(const std::string& trigger, const std::string& name,
                                              const std::string& outcome, const std::string& error) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "UPDATE trigger_files SET outcome = ?3, error = ?4 WHERE trigger = ?1 AND name = ?2"));
  st.BindText(1, trigger).BindText(2, name).BindText(3, outcome).BindText(4, error);
  return st.Run();
}

Result<std::vector<TriggerFileRecord>> SqliteScheduleStore::ListTriggerFiles(const std::string& trigger,
                                                                             const std::string& outcome, int64_t limit,
                                                                             bool oldest_first) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(fmt::format(
      "SELECT trigger, name, batch_id, outcome, error, seen_ms FROM trigger_files WHERE trigger = ?1 "
      "AND (?2 = '' OR outcome = ?2) ORDER BY seen_ms {0}, name {0} LIMIT ?3", oldest_first ? "ASC" : "DESC")));
  st.BindText(1, trigger).BindText(2, outcome).Bind(3, limit);
  std::vector<TriggerFileRecord> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back(ReadTriggerFile(st));
  }
}

Result<std::vector<std::string>> SqliteScheduleStore::TriggerFileNames(const std::string& trigger) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare("SELECT name FROM trigger_files WHERE trigger = ?"));
  st.BindText(1, trigger);
  std::vector<std::string> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back(st.Text(0));
  }
}

Result<std::vector<std::pair<std::string, int64_t>>> SqliteScheduleStore::CountTriggerFiles(const std::string& trigger) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "SELECT outcome, COUNT(*) FROM trigger_files WHERE trigger = ? GROUP BY outcome ORDER BY outcome"));
  st.BindText(1, trigger);
  std::vector<std::pair<std::string, int64_t>> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.emplace_back(st.Text(0), st.Int(1));
  }
}

}  // namespace ferry
