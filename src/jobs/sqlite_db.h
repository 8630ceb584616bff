#pragma once
// Thin RAII over SQLite's C API: a connection and a prepared statement, with every error a Status.
// Disk full, I/O errors and a busy database are kUnavailable (the caller may retry later and must not
// report success); anything else is kInternal. Thread-compatible: one thread at a time per object.
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

class SqliteStatement {
 public:
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  SqliteStatement(SqliteStatement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }
  ~SqliteStatement() { sqlite3_finalize(stmt_); }

  // Parameters are 1-based, as in SQLite.
  SqliteStatement& Bind(int i, int64_t v);
  SqliteStatement& BindDouble(int i, double v);
  SqliteStatement& BindText(int i, std::string_view v);
  SqliteStatement& BindBlob(int i, std::string_view v);
  SqliteStatement& BindNullableText(int i, std::string_view v);  // empty -> NULL
  // Next row: true with a row, false when done.
  Result<bool> Step();
  // Runs a statement that returns no rows.
  Status Run();
  // Makes the statement ready to run again, with no parameters bound.
  Status Reset();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int ColumnCount() const { return sqlite3_column_count(stmt_); }

 private:
  friend class SqliteDb;
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteDb {
 public:
  // Opens (creating) the database file; the folder must exist.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::filesystem::path& path, bool read_only);
  ~SqliteDb() { sqlite3_close_v2(db_); }
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  Status Exec(std::string_view sql);
  Result<SqliteStatement> Prepare(std::string_view sql);
  // Adds `column` (with its type and default, `definition`) to `table` unless it is there: how a
  // store made by an older Ferry gets the columns added since. The names are the caller's literals.
  Status AddColumnIfMissing(std::string_view table, std::string_view column, std::string_view definition);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  sqlite3* handle() const { return db_; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace ferry
