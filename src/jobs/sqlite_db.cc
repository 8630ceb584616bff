#include "jobs/sqlite_db.h"

#include <fmt/format.h>

namespace ferry {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  const std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string kind = sqlite3_errstr(rc);
  const std::string message =
      detail == kind ? fmt::format("{}: {}", what, detail) : fmt::format("{}: {} ({})", what, detail, kind);
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
    return Status(StatusCode::kAlreadyExists, "store: " + message);
  }
  switch (rc & 0xff) {  // the primary code; extended codes keep it in the low byte
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
      return Unavailable("job store: " + message);
    default:
      return Internal("job store: " + message);
  }
}

SqliteStatement& SqliteStatement::Bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

SqliteStatement& SqliteStatement::BindDouble(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}

SqliteStatement& SqliteStatement::BindText(int i, std::string_view v) {
  sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

SqliteStatement& SqliteStatement::BindBlob(int i, std::string_view v) {
  // A zero-length blob must still be a blob, not NULL: sqlite3_bind_blob64 with a null pointer binds NULL.
  static const char kEmpty = 0;
  sqlite3_bind_blob64(stmt_, i, v.empty() ? &kEmpty : v.data(), v.size(), SQLITE_TRANSIENT);
  return *this;
}

SqliteStatement& SqliteStatement::BindNullableText(int i, std::string_view v) {
  if (v.empty()) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  return BindText(i, v);
}

Result<bool> SqliteStatement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(db_, rc, "step");
}

Status SqliteStatement::Run() {
  FERRY_ASSIGN_OR_RETURN(bool row, Step());
  (void)row;
  return Status::Ok();
}

Status SqliteStatement::Reset() {
  const int rc = sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "reset");
  return Status::Ok();
}

std::string SqliteStatement::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::filesystem::path& path, bool read_only) {
  sqlite3* db = nullptr;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteStatus(db, rc, fmt::format("opening '{}'", path.string()));
    sqlite3_close_v2(db);
    return s;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  return std::unique_ptr<SqliteDb>(new SqliteDb(db));
}

Status SqliteDb::Exec(std::string_view sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, sql.substr(0, 40));
  return Status::Ok();
}

Status SqliteDb::AddColumnIfMissing(std::string_view table, std::string_view column,
                                    std::string_view definition) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement has, Prepare("SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2"));
  has.BindText(1, std::string(table)).BindText(2, std::string(column));
  FERRY_RETURN_IF_ERROR(has.Step().status());
  if (has.Int(0) > 0) return Status::Ok();
  return Exec(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", table, column, definition));
}

Result<SqliteStatement> SqliteDb::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "prepare");
  return SqliteStatement(db_, stmt);
}

}  // namespace ferry
