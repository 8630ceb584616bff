#include "jobs/sqlite_batch_store.h"

#include <fmt/format.h>

#include <random>

namespace ferry {
namespace {

using std::chrono::milliseconds;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS batches(
  id TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  format INTEGER NOT NULL,
  output_format INTEGER NOT NULL DEFAULT 0,
  publish_table TEXT NOT NULL DEFAULT '',
  caller TEXT NOT NULL DEFAULT '(none)',
  input_path TEXT NOT NULL,
  input_file_id TEXT NOT NULL,
  output_path TEXT NOT NULL,
  errors_path TEXT NOT NULL,
  metadata TEXT NOT NULL,
  completion_window TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state INTEGER NOT NULL,
  records_done INTEGER NOT NULL DEFAULT 0,
  input_offset INTEGER NOT NULL DEFAULT 0,
  input_line INTEGER NOT NULL DEFAULT 0,
  output_bytes INTEGER NOT NULL DEFAULT 0,
  errors_bytes INTEGER NOT NULL DEFAULT 0,
  completed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  total INTEGER NOT NULL DEFAULT -1,
  created_ms INTEGER NOT NULL,
  in_progress_ms INTEGER NOT NULL DEFAULT 0,
  finalizing_ms INTEGER NOT NULL DEFAULT 0,
  completed_ms INTEGER NOT NULL DEFAULT 0,
  failed_ms INTEGER NOT NULL DEFAULT 0,
  cancelling_ms INTEGER NOT NULL DEFAULT 0,
  cancelled_ms INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  output_file_id TEXT NOT NULL DEFAULT '',
  error_file_id TEXT NOT NULL DEFAULT '',
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_expires_ms INTEGER NOT NULL DEFAULT 0,
  checkpoints INTEGER NOT NULL DEFAULT 0,
  resumes INTEGER NOT NULL DEFAULT 0,
  records_redone INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS batches_by_created ON batches(created_ms DESC, id DESC);
CREATE TABLE IF NOT EXISTS files(
  id TEXT PRIMARY KEY,
  filename TEXT NOT NULL,
  purpose TEXT NOT NULL,
  path TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  created_ms INTEGER NOT NULL);
)sql";

constexpr const char* kBatchColumns =
    "id, model, endpoint, format, output_format, publish_table, caller, input_path, input_file_id, output_path, errors_path, metadata, "
    "completion_window, priority, state, records_done, input_offset, input_line, output_bytes, errors_bytes, "
    "completed, failed, total, created_ms, in_progress_ms, finalizing_ms, completed_ms, failed_ms, "
    "cancelling_ms, cancelled_ms, error, output_file_id, error_file_id, lease_owner, lease_expires_ms, "
    "checkpoints, resumes, records_redone";

Batch ReadBatch(const SqliteStatement& r) {
  Batch b;
  int c = 0;
  b.id = r.Text(c++);
  b.spec.model = r.Text(c++);
  b.spec.endpoint = r.Text(c++);
  b.spec.format = static_cast<BatchFormat>(r.Int(c++));
  b.spec.output_format = static_cast<BatchOutputFormat>(r.Int(c++));
  b.spec.publish_table = r.Text(c++);
  b.spec.caller = r.Text(c++);
  b.spec.input_path = r.Text(c++);
  b.spec.input_file_id = r.Text(c++);
  b.spec.output_path = r.Text(c++);
  b.spec.errors_path = r.Text(c++);
  b.spec.metadata_json = r.Text(c++);
  b.spec.completion_window = r.Text(c++);
  b.spec.priority = r.Int(c++);
  b.state = static_cast<BatchState>(r.Int(c++));
  BatchProgress& p = b.progress;
  for (int64_t* field : {&p.records_done, &p.input_offset, &p.input_line, &p.output_bytes, &p.errors_bytes,
                         &p.completed, &p.failed, &p.total, &b.created_ms, &b.in_progress_ms, &b.finalizing_ms,
                         &b.completed_ms, &b.failed_ms, &b.cancelling_ms, &b.cancelled_ms}) {
    *field = r.Int(c++);
  }
  b.error = r.Text(c++);
  b.output_file_id = r.Text(c++);
  b.error_file_id = r.Text(c++);
  b.lease_owner = r.Text(c++);
  b.lease_expires_ms = r.Int(c++);
  b.checkpoints = r.Int(c++);
  b.resumes = r.Int(c++);
  b.records_redone = r.Int(c++);
  return b;
}

StoredFile ReadFile(const SqliteStatement& r) {
  return StoredFile{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Int(4), r.Int(5)};
}

std::string RandomHex24() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32)};
  return fmt::format("{:016x}{:08x}", rng(), static_cast<uint32_t>(rng()));
}

// The column holding the time a state was reached.
const char* StageColumn(BatchState s) {
  switch (s) {
    case BatchState::kValidating: return "created_ms";
    case BatchState::kInProgress: return "in_progress_ms";
    case BatchState::kFinalizing: return "finalizing_ms";
    case BatchState::kCompleted: return "completed_ms";
    case BatchState::kFailed: return "failed_ms";
    case BatchState::kCancelling: return "cancelling_ms";
    case BatchState::kCancelled: return "cancelled_ms";
  }
  return "created_ms";
}

}  // namespace

std::string NewBatchId() { return "batch_" + RandomHex24(); }
std::string NewFileId() { return "file-" + RandomHex24(); }

Result<std::unique_ptr<SqliteBatchStore>> SqliteBatchStore::Open(SqliteBatchStoreOptions options) {
  if (!options.now_ms) {
    options.now_ms = [] {
      return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  }
  std::error_code ec;
  if (options.path.has_parent_path()) std::filesystem::create_directories(options.path.parent_path(), ec);
  if (ec) {
    return Unavailable(fmt::format("batch store: cannot create '{}': {}", options.path.parent_path().string(),
                                   ec.message()));
  }
  std::unique_ptr<SqliteBatchStore> store(new SqliteBatchStore(std::move(options)));
  FERRY_ASSIGN_OR_RETURN(store->db_, SqliteDb::Open(store->options_.path, /*read_only=*/false));
  FERRY_RETURN_IF_ERROR(store->db_->Exec("PRAGMA journal_mode=WAL"));
  FERRY_RETURN_IF_ERROR(store->db_->Exec("PRAGMA synchronous=FULL"));
  FERRY_RETURN_IF_ERROR(store->db_->Exec(kSchema));
  FERRY_RETURN_IF_ERROR(store->AddMissingColumns());
  return store;
}

Status SqliteBatchStore::InTransaction(const std::function<Status()>& body) {
  FERRY_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  Status s = body();
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) (void)db_->Exec("ROLLBACK");
  return s;
}

// A data folder written before a column existed gets it, with its default (batches made before they
// were charged to their caller: "(none)").
Status SqliteBatchStore::AddMissingColumns() {
  FERRY_RETURN_IF_ERROR(db_->AddColumnIfMissing("batches", "publish_table", "TEXT NOT NULL DEFAULT ''"));
  return db_->AddColumnIfMissing("batches", "caller", "TEXT NOT NULL DEFAULT '(none)'");
}

Result<Batch> SqliteBatchStore::Create(const BatchSpec& spec, const std::string& id) {
  std::lock_guard lock(mu_);
  const std::string batch_id = id.empty() ? NewBatchId() : id;
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(R"sql(
INSERT INTO batches(id, model, endpoint, format, input_path, input_file_id, output_path, errors_path, metadata,
                    completion_window, priority, state, created_ms, output_format, publish_table, caller)
VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13, ?14, ?15))sql"));
  st.BindText(1, batch_id).BindText(2, spec.model).BindText(3, spec.endpoint).Bind(4, static_cast<int64_t>(spec.format));
  st.BindText(5, spec.input_path).BindText(6, spec.input_file_id).BindText(7, spec.output_path);
  st.BindText(8, spec.errors_path).BindText(9, spec.metadata_json).BindText(10, spec.completion_window);
  st.Bind(11, spec.priority).Bind(12, Now()).Bind(13, static_cast<int64_t>(spec.output_format));
  st.BindText(14, spec.publish_table).BindText(15, spec.caller);
  FERRY_RETURN_IF_ERROR(st.Run());
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> batch, GetLocked(batch_id));
  if (!batch) return Internal("batch store: a batch just written cannot be read back");
  return *batch;
}

Result<std::optional<Batch>> SqliteBatchStore::GetLocked(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st,
                         db_->Prepare(fmt::format("SELECT {} FROM batches WHERE id = ?", kBatchColumns)));
  st.BindText(1, id);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<Batch>();
  return std::optional<Batch>(ReadBatch(st));
}

Result<std::optional<Batch>> SqliteBatchStore::Get(const std::string& id) {
  std::lock_guard lock(mu_);
  return GetLocked(id);
}

Result<BatchPage> SqliteBatchStore::List(const std::string& after, int64_t limit) {
  std::lock_guard lock(mu_);
  std::string where;
  if (!after.empty()) {
    where = "WHERE (created_ms, id) < (SELECT created_ms, id FROM batches WHERE id = ?2)";
  }
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st,
                         db_->Prepare(fmt::format("SELECT {} FROM batches {} ORDER BY created_ms DESC, id DESC LIMIT ?1",
                                                  kBatchColumns, where)));
  st.Bind(1, limit + 1);
  if (!after.empty()) st.BindText(2, after);
  BatchPage page;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    if (static_cast<int64_t>(page.batches.size()) == limit) {
      page.has_more = true;
      break;
    }
    page.batches.push_back(ReadBatch(st));
  }
  return page;
}

Result<std::vector<Batch>> SqliteBatchStore::Lease(const std::string& owner, int64_t max, milliseconds lease) {
  std::lock_guard lock(mu_);
  std::vector<Batch> out;
  const int64_t now = Now();
  Status s = InTransaction([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement pick, db_->Prepare(fmt::format(R"sql(
SELECT {} FROM batches WHERE state IN (0, 1, 2, 5) AND (lease_owner = '' OR lease_expires_ms <= ?1)
ORDER BY priority DESC, created_ms LIMIT ?2)sql", kBatchColumns)));
    pick.Bind(1, now).Bind(2, max);
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, pick.Step());
      if (!row) break;
      out.push_back(ReadBatch(pick));
    }
    for (Batch& b : out) {
      FERRY_ASSIGN_OR_RETURN(SqliteStatement up,
                             db_->Prepare("UPDATE batches SET lease_owner = ?2, lease_expires_ms = ?3 WHERE id = ?1"));
      up.BindText(1, b.id).BindText(2, owner).Bind(3, now + lease.count());
      FERRY_RETURN_IF_ERROR(up.Run());
      b.lease_owner = owner;
      b.lease_expires_ms = now + lease.count();
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Batch> SqliteBatchStore::TakeOver(const std::string& id, const std::string& owner, milliseconds lease) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement up,
                         db_->Prepare("UPDATE batches SET lease_owner = ?2, lease_expires_ms = ?3 WHERE id = ?1"));
  up.BindText(1, id).BindText(2, owner).Bind(3, Now() + lease.count());
  FERRY_RETURN_IF_ERROR(up.Run());
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> batch, GetLocked(id));
  if (!batch) return NotFound(fmt::format("no batch '{}'", id));
  return *batch;
}

Status SqliteBatchStore::CheckOwnerLocked(const std::string& id, const std::string& owner, BatchState* state) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare("SELECT lease_owner, state FROM batches WHERE id = ?"));
  st.BindText(1, id);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NotFound(fmt::format("no batch '{}'", id));
  if (st.Text(0) != owner) return FailedPrecondition(fmt::format("batch '{}' is no longer leased by {}", id, owner));
  if (state) *state = static_cast<BatchState>(st.Int(1));
  return Status::Ok();
}

Result<BatchState> SqliteBatchStore::Heartbeat(const std::string& id, const std::string& owner, milliseconds lease) {
  std::lock_guard lock(mu_);
  BatchState state = BatchState::kValidating;
  FERRY_RETURN_IF_ERROR(CheckOwnerLocked(id, owner, &state));
  FERRY_ASSIGN_OR_RETURN(SqliteStatement up, db_->Prepare("UPDATE batches SET lease_expires_ms = ?2 WHERE id = ?1"));
  up.BindText(1, id).Bind(2, Now() + lease.count());
  FERRY_RETURN_IF_ERROR(up.Run());
  return state;
}

Status SqliteBatchStore::Checkpoint(const std::string& id, const std::string& owner, const BatchProgress& p) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    FERRY_RETURN_IF_ERROR(CheckOwnerLocked(id, owner, nullptr));
    FERRY_ASSIGN_OR_RETURN(SqliteStatement up, db_->Prepare(R"sql(
UPDATE batches SET records_done = ?2, input_offset = ?3, input_line = ?4, output_bytes = ?5, errors_bytes = ?6,
  completed = ?7, failed = ?8, total = ?9, checkpoints = checkpoints + 1 WHERE id = ?1)sql"));
    up.BindText(1, id).Bind(2, p.records_done).Bind(3, p.input_offset).Bind(4, p.input_line);
    up.Bind(5, p.output_bytes).Bind(6, p.errors_bytes).Bind(7, p.completed).Bind(8, p.failed).Bind(9, p.total);
    return up.Run();
  });
}

Status SqliteBatchStore::RecordResume(const std::string& id, const std::string& owner, int64_t redone) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    FERRY_RETURN_IF_ERROR(CheckOwnerLocked(id, owner, nullptr));
    FERRY_ASSIGN_OR_RETURN(SqliteStatement up, db_->Prepare(
        "UPDATE batches SET resumes = resumes + 1, records_redone = records_redone + ?2 WHERE id = ?1"));
    up.BindText(1, id).Bind(2, redone);
    return up.Run();
  });
}

Status SqliteBatchStore::Transition(const std::string& id, const std::string& owner, BatchState to,
                                    const std::string& error) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    BatchState from = BatchState::kValidating;
    FERRY_RETURN_IF_ERROR(CheckOwnerLocked(id, owner, &from));
    if (from == to) return Status::Ok();
    if (!IsLegalBatchTransition(from, to)) {
      return FailedPrecondition(fmt::format("batch '{}' cannot go from {} to {}", id, BatchStateName(from),
                                            BatchStateName(to)));
    }
    FERRY_ASSIGN_OR_RETURN(SqliteStatement up, db_->Prepare(fmt::format(
        "UPDATE batches SET state = ?2, {} = ?3, error = CASE WHEN ?4 = '' THEN error ELSE ?4 END{} WHERE id = ?1",
        StageColumn(to), IsFinal(to) ? ", lease_owner = '', lease_expires_ms = 0" : "")));
    up.BindText(1, id).Bind(2, static_cast<int64_t>(to)).Bind(3, Now()).BindText(4, error);
    return up.Run();
  });
}

Status SqliteBatchStore::Finish(const std::string& id, const std::string& owner, BatchState to,
                                const StoredFile& output, const StoredFile& errors) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    BatchState from = BatchState::kValidating;
    FERRY_RETURN_IF_ERROR(CheckOwnerLocked(id, owner, &from));
    if (!IsFinal(to) || !IsLegalBatchTransition(from, to)) {
      return FailedPrecondition(fmt::format("batch '{}' cannot finish from {} as {}", id, BatchStateName(from),
                                            BatchStateName(to)));
    }
    FERRY_RETURN_IF_ERROR(InsertFileLocked(output));
    FERRY_RETURN_IF_ERROR(InsertFileLocked(errors));
    FERRY_ASSIGN_OR_RETURN(SqliteStatement up, db_->Prepare(fmt::format(
        "UPDATE batches SET state = ?2, {} = ?3, output_file_id = ?4, error_file_id = ?5, lease_owner = '', "
        "lease_expires_ms = 0 WHERE id = ?1", StageColumn(to))));
    up.BindText(1, id).Bind(2, static_cast<int64_t>(to)).Bind(3, Now()).BindText(4, output.id).BindText(5, errors.id);
    return up.Run();
  });
}

Result<Batch> SqliteBatchStore::RequestCancel(const std::string& id) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement up, db_->Prepare(
      "UPDATE batches SET state = 5, cancelling_ms = ?2 WHERE id = ?1 AND state IN (0, 1)"));
  up.BindText(1, id).Bind(2, Now());
  FERRY_RETURN_IF_ERROR(up.Run());
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> batch, GetLocked(id));
  if (!batch) return NotFound(fmt::format("no batch '{}'", id));
  return *batch;
}

Status SqliteBatchStore::ReleaseAllLeases() {
  std::lock_guard lock(mu_);
  return db_->Exec("UPDATE batches SET lease_owner = '', lease_expires_ms = 0 WHERE lease_owner != ''");
}

Status SqliteBatchStore::InsertFileLocked(const StoredFile& f) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "INSERT OR REPLACE INTO files(id, filename, purpose, path, bytes, created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"));
  st.BindText(1, f.id).BindText(2, f.filename).BindText(3, f.purpose).BindText(4, f.path).Bind(5, f.bytes);
  st.Bind(6, f.created_ms > 0 ? f.created_ms : Now());
  return st.Run();
}

Status SqliteBatchStore::AddFile(const StoredFile& file) {
  std::lock_guard lock(mu_);
  return InsertFileLocked(file);
}

Result<std::optional<StoredFile>> SqliteBatchStore::GetFile(const std::string& id) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "SELECT id, filename, purpose, path, bytes, created_ms FROM files WHERE id = ?"));
  st.BindText(1, id);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<StoredFile>();
  return std::optional<StoredFile>(ReadFile(st));
}

Result<std::vector<StoredFile>> SqliteBatchStore::ListFiles(const std::string& purpose, int64_t limit) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "SELECT id, filename, purpose, path, bytes, created_ms FROM files WHERE ?1 = '' OR purpose = ?1 "
      "ORDER BY created_ms DESC, id DESC LIMIT ?2"));
  st.BindText(1, purpose).Bind(2, limit);
  std::vector<StoredFile> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ReadFile(st));
  }
  return out;
}

Status SqliteBatchStore::DeleteFile(const std::string& id) {
  std::lock_guard lock(mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare("DELETE FROM files WHERE id = ?"));
  st.BindText(1, id);
  FERRY_RETURN_IF_ERROR(st.Run());
  if (db_->Changes() == 0) return NotFound(fmt::format("no file '{}'", id));
  return Status::Ok();
}

}  // namespace ferry
