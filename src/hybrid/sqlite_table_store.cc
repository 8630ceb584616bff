#include "hybrid/sqlite_table_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <limits>

namespace ferry {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS tables(
  name TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  generation INTEGER NOT NULL,
  entries INTEGER NOT NULL,
  published_ms INTEGER NOT NULL,
  oldest_ms INTEGER NOT NULL,
  source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries(
  tbl TEXT NOT NULL,
  generation INTEGER NOT NULL,
  key TEXT NOT NULL,
  version TEXT NOT NULL,
  produced_ms INTEGER NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY(tbl, generation, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS generations(id INTEGER PRIMARY KEY CHECK(id = 1), last INTEGER NOT NULL);
INSERT OR IGNORE INTO generations(id, last) VALUES(1, 0);
)sql";

constexpr const char* kTableColumns = "name, model, generation, entries, published_ms, oldest_ms, source";

TableInfo ReadInfo(const SqliteStatement& r) {
  return TableInfo{r.Text(0), r.Text(1), r.Int(2), r.Int(3), r.Int(4), r.Int(5), r.Text(6)};
}

std::string MemoryKey(const std::string& table, int64_t generation, const std::string& key) {
  return fmt::format("{}\n{}\n{}", table, generation, key);
}

int64_t SteadyNanos(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.Now().time_since_epoch()).count();
}

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(SqliteDb* db) : db_(db) {}
  ~Transaction() {
    if (open_) (void)db_->Exec("ROLLBACK");
  }
  Status Begin() {
    FERRY_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    FERRY_RETURN_IF_ERROR(db_->Exec("COMMIT"));
    open_ = false;
    return Status::Ok();
  }

 private:
  SqliteDb* db_;
  bool open_ = false;
};

class StatementSink : public TableSink {
 public:
  StatementSink(SqliteStatement insert, std::string table, int64_t generation)
      : insert_(std::move(insert)), table_(std::move(table)), generation_(generation) {}
  Status Add(const TableEntry& e) override {
    FERRY_RETURN_IF_ERROR(CheckTableKey(e.key));
    insert_.BindText(1, table_).Bind(2, generation_).BindText(3, e.key).BindText(4, e.model_version);
    insert_.Bind(5, e.produced_ms).BindBlob(6, EncodeEntryOutputs(e.outputs));
    FERRY_RETURN_IF_ERROR(insert_.Run());
    FERRY_RETURN_IF_ERROR(insert_.Reset());
    oldest_ms_ = std::min(oldest_ms_, e.produced_ms);
    return Status::Ok();
  }
  int64_t oldest_ms() const { return oldest_ms_ == std::numeric_limits<int64_t>::max() ? 0 : oldest_ms_; }

 private:
  SqliteStatement insert_;
  std::string table_;
  int64_t generation_;
  int64_t oldest_ms_ = std::numeric_limits<int64_t>::max();
};

}  // namespace

Result<std::unique_ptr<SqliteTableStore>> SqliteTableStore::Open(const std::filesystem::path& path,
                                                                 SqliteTableStoreOptions options) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return Unavailable(fmt::format("table store: cannot create '{}': {}", path.parent_path().string(), ec.message()));
  std::unique_ptr<SqliteTableStore> store(new SqliteTableStore(path, options));
  FERRY_ASSIGN_OR_RETURN(store->writer_, store->Connect());
  FERRY_RETURN_IF_ERROR(store->writer_->Exec(kSchema));
  FERRY_RETURN_IF_ERROR(store->Refresh());
  if (options.start_writer) store->writer_thread_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

SqliteTableStore::~SqliteTableStore() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_thread_.joinable()) writer_thread_.join();
}

Result<std::unique_ptr<SqliteDb>> SqliteTableStore::Connect() const {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path_, /*read_only=*/false));
  FERRY_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  FERRY_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  return db;
}

std::unique_ptr<SqliteTableStore::Reader> SqliteTableStore::TakeReader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!readers_.empty()) {
      std::unique_ptr<Reader> reader = std::move(readers_.back());
      readers_.pop_back();
      return reader;
    }
  }
  Result<std::unique_ptr<SqliteDb>> db = Connect();
  if (!db.ok()) {
    spdlog::warn("table store: {}", db.status().message());
    return nullptr;
  }
  auto reader = std::make_unique<Reader>();
  reader->db = std::move(db).value();
  return reader;
}

void SqliteTableStore::ReturnReader(std::unique_ptr<Reader> reader) {
  std::lock_guard lock(readers_mu_);
  if (readers_.size() < 16) readers_.push_back(std::move(reader));
}

Status SqliteTableStore::Refresh() {
  const int64_t epoch = epoch_.load();
  std::unique_ptr<Reader> reader = TakeReader();
  if (!reader) return Unavailable("table store: no connection");
  std::map<std::string, TableInfo> tables;
  {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, reader->db->Prepare(fmt::format("SELECT {} FROM tables", kTableColumns)));
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      TableInfo info = ReadInfo(st);
      tables.emplace(info.name, std::move(info));
    }
  }
  ReturnReader(std::move(reader));
  std::unique_lock lock(tables_mu_);
  last_refresh_ = SteadyNanos(*options_.clock);
  // A publish, drop or write-back of this process since the read: what was read may be older than the
  // map, which that change already brought up to date. The next refresh reads again.
  if (epoch_.load() != epoch) return Status::Ok();
  tables_ = std::move(tables);
  return Status::Ok();
}

void SqliteTableStore::MaybeRefresh() {
  const int64_t now = SteadyNanos(*options_.clock);
  const int64_t interval = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.refresh_interval).count();
  if (now - last_refresh_.load() < interval) return;
  std::unique_lock lock(refresh_mu_, std::try_to_lock);
  if (!lock.owns_lock() || now - last_refresh_.load() < interval) return;  // another thread is at it
  if (Status s = Refresh(); !s.ok()) spdlog::warn("table store: refresh: {}", s.message());
}

std::optional<TableInfo> SqliteTableStore::Current(const std::string& table) {
  MaybeRefresh();
  std::shared_lock lock(tables_mu_);
  auto it = tables_.find(table);
  if (it == tables_.end()) return std::nullopt;
  return it->second;
}

Result<std::optional<TableEntry>> SqliteTableStore::Lookup(const std::string& table, const std::string& key) {
  // What the memory holds for a key its generation lacks.
  static const std::shared_ptr<const TableEntry> kAbsent = std::make_shared<const TableEntry>();
  std::optional<TableInfo> info = Current(table);
  if (!info) return std::optional<TableEntry>();
  {
    std::lock_guard lock(memory_mu_);
    if (std::shared_ptr<const TableEntry> hit = memory_.Get(MemoryKey(table, info->generation, key))) {
      if (hit == kAbsent) return std::optional<TableEntry>();
      std::optional<TableEntry> found(*hit);
      found->model = info->model;
      return found;
    }
  }
  int64_t generation = info->generation;
  const int64_t epoch = epoch_.load();
  FERRY_ASSIGN_OR_RETURN(std::optional<TableEntry> entry, ReadEntry(*info, key, &generation));
  if (entry) entry->model = info->model;
  std::shared_lock tables_lock(tables_mu_);  // no commit between the check and the store
  if (epoch_.load() != epoch) return entry;  // written meanwhile: what was read may be gone already
  auto shared = entry ? std::make_shared<const TableEntry>(*entry) : kAbsent;
  std::lock_guard lock(memory_mu_);
  memory_.Put(MemoryKey(table, generation, key), shared, entry ? EntryBytes(*shared) : key.size());
  return entry;
}

Result<std::optional<TableEntry>> SqliteTableStore::ReadEntry(const TableInfo& info, const std::string& key,
                                                             int64_t* generation) {
  std::unique_ptr<Reader> reader = TakeReader();
  if (!reader) return Unavailable("table store: no connection");
  if (!reader->lookup) {
    // One statement, one snapshot: the entry of the generation current when it runs, whichever that is
    // (a publish may have switched since `info` was read, and removed an older generation).
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, reader->db->Prepare(
        "SELECT e.version, e.produced_ms, e.value, t.generation FROM tables t JOIN entries e "
        "ON e.tbl = t.name AND e.generation = t.generation WHERE t.name = ?1 AND e.key = ?2"));
    reader->lookup.emplace(std::move(st));
  }
  SqliteStatement& st = *reader->lookup;
  st.BindText(1, info.name).BindText(2, key);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  std::optional<TableEntry> entry;
  if (row) {
    *generation = st.Int(3);
    TableEntry e;
    e.key = key;
    e.model_version = st.Text(0);
    e.produced_ms = st.Int(1);
    FERRY_ASSIGN_OR_RETURN(e.outputs, DecodeEntryOutputs(st.Text(2)));
    entry = std::move(e);
  }
  FERRY_RETURN_IF_ERROR(st.Reset());  // ends the read: the next lookup sees newer commits
  ReturnReader(std::move(reader));
  return entry;
}

Result<TableInfo> SqliteTableStore::Publish(const std::string& table, const std::string& model,
                                            const std::string& source, const std::function<Status(TableSink&)>& produce) {
  FERRY_RETURN_IF_ERROR(CheckTableName(table));
  Result<TableInfo> info = [&] {
    std::lock_guard lock(write_mu_);
    return PublishLocked(table, model, source, produce);
  }();
  return info;
}

Result<TableInfo> SqliteTableStore::PublishLocked(const std::string& table, const std::string& model,
                                                  const std::string& source,
                                                  const std::function<Status(TableSink&)>& produce) {
  SqliteDb* db = writer_.get();
  Transaction tx(db);
  FERRY_RETURN_IF_ERROR(tx.Begin());
  FERRY_RETURN_IF_ERROR(db->Exec("UPDATE generations SET last = last + 1 WHERE id = 1"));
  int64_t generation = 0;
  {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db->Prepare("SELECT last FROM generations WHERE id = 1"));
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Internal("table store: the generation counter is missing");
    generation = st.Int(0);
  }
  int64_t previous = 0;
  {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db->Prepare("SELECT generation, model FROM tables WHERE name = ?1"));
    st.BindText(1, table);
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && st.Text(1) != model) {
      return FailedPrecondition(fmt::format("table '{}' holds model '{}''s answers; drop it before publishing '{}''s",
                                            table, st.Text(1), model));
    }
    if (row) previous = st.Int(0);
  }
  FERRY_ASSIGN_OR_RETURN(SqliteStatement insert, db->Prepare(
      "INSERT OR REPLACE INTO entries(tbl, generation, key, version, produced_ms, value) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"));
  StatementSink sink(std::move(insert), table, generation);
  FERRY_RETURN_IF_ERROR(produce(sink));
  TableInfo info{table, model, generation, 0, options_.wall_clock->NowUnixMs(), sink.oldest_ms(), source};
  {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db->Prepare("SELECT COUNT(*) FROM entries WHERE tbl = ?1 AND generation = ?2"));
    st.BindText(1, table).Bind(2, generation);
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) info.entries = st.Int(0);
  }
  {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db->Prepare(
        "INSERT OR REPLACE INTO tables(name, model, generation, entries, published_ms, oldest_ms, source) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    st.BindText(1, table).BindText(2, model).Bind(3, generation).Bind(4, info.entries).Bind(5, info.published_ms);
    st.Bind(6, info.oldest_ms).BindText(7, source);
    FERRY_RETURN_IF_ERROR(st.Run());
  }
  {
    // Older than the one being replaced: nobody can hold their generation number any more.
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st,
                           db->Prepare("DELETE FROM entries WHERE tbl = ?1 AND generation < ?2 AND generation <> ?3"));
    st.BindText(1, table).Bind(2, previous).Bind(3, generation);
    FERRY_RETURN_IF_ERROR(st.Run());
  }
  // The switch: lookups that read the current generation after this see the new one, and none of
  // them runs while the commit is in progress.
  std::unique_lock lock(tables_mu_);
  FERRY_RETURN_IF_ERROR(tx.Commit());
  ++epoch_;
  tables_[table] = info;
  return info;
}

void SqliteTableStore::WriteBack(const std::string& table, TableEntry entry) {
  {
    std::lock_guard lock(queue_mu_);
    if (queue_.size() >= options_.write_back_queue) {
      ++write_backs_dropped_;
      return;
    }
    queue_.emplace_back(table, std::move(entry));
  }
  queue_cv_.notify_one();
}

Status SqliteTableStore::FlushWriteBacks() {
  std::vector<std::pair<std::string, TableEntry>> items;
  {
    std::lock_guard lock(queue_mu_);
    while (!queue_.empty() && items.size() < 256) {
      items.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  if (items.empty()) return Status::Ok();
  Status s = [&] {
    std::lock_guard lock(write_mu_);
    return WriteBackLocked(items);
  }();
  if (!s.ok()) {
    write_backs_dropped_ += static_cast<int64_t>(items.size());
    return s;
  }
  write_backs_ += static_cast<int64_t>(items.size());
  return Status::Ok();
}

Status SqliteTableStore::WriteBackLocked(const std::vector<std::pair<std::string, TableEntry>>& items) {
  SqliteDb* db = writer_.get();
  Transaction tx(db);
  FERRY_RETURN_IF_ERROR(tx.Begin());
  FERRY_ASSIGN_OR_RETURN(SqliteStatement current, db->Prepare("SELECT generation FROM tables WHERE name = ?1"));
  FERRY_ASSIGN_OR_RETURN(SqliteStatement exists, db->Prepare(
      "SELECT 1 FROM entries WHERE tbl = ?1 AND generation = ?2 AND key = ?3"));
  FERRY_ASSIGN_OR_RETURN(SqliteStatement insert, db->Prepare(
      "INSERT OR REPLACE INTO entries(tbl, generation, key, version, produced_ms, value) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"));
  FERRY_ASSIGN_OR_RETURN(SqliteStatement count, db->Prepare("UPDATE tables SET entries = entries + 1 WHERE name = ?1"));
  std::map<std::string, int64_t> added;  // new keys per table
  std::vector<std::string> forget;       // memory keys to drop once committed
  for (const auto& [table, entry] : items) {
    current.BindText(1, table);
    FERRY_ASSIGN_OR_RETURN(bool known, current.Step());
    const int64_t generation = known ? current.Int(0) : 0;
    FERRY_RETURN_IF_ERROR(current.Reset());
    if (!known) continue;  // dropped, or never published: nothing to write into
    exists.BindText(1, table).Bind(2, generation).BindText(3, entry.key);
    FERRY_ASSIGN_OR_RETURN(bool replaced, exists.Step());
    FERRY_RETURN_IF_ERROR(exists.Reset());
    insert.BindText(1, table).Bind(2, generation).BindText(3, entry.key).BindText(4, entry.model_version);
    insert.Bind(5, entry.produced_ms).BindBlob(6, EncodeEntryOutputs(entry.outputs));
    FERRY_RETURN_IF_ERROR(insert.Run());
    FERRY_RETURN_IF_ERROR(insert.Reset());
    if (!replaced) {
      count.BindText(1, table);
      FERRY_RETURN_IF_ERROR(count.Run());
      FERRY_RETURN_IF_ERROR(count.Reset());
      ++added[table];
    }
    forget.push_back(MemoryKey(table, generation, entry.key));
  }
  std::unique_lock lock(tables_mu_);
  FERRY_RETURN_IF_ERROR(tx.Commit());
  ++epoch_;  // a lookup that read before this commit must not store what it read
  for (const auto& [table, n] : added) {
    if (auto it = tables_.find(table); it != tables_.end()) it->second.entries += n;
  }
  std::lock_guard memory_lock(memory_mu_);
  for (const std::string& key : forget) memory_.Erase(key);
  return Status::Ok();
}

void SqliteTableStore::WriterLoop() {
  while (true) {
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_ && queue_.empty()) return;
    }
    if (Status s = FlushWriteBacks(); !s.ok()) spdlog::warn("table store: write-back: {}", s.message());
  }
}

std::vector<TableInfo> SqliteTableStore::List() {
  MaybeRefresh();
  std::shared_lock lock(tables_mu_);
  std::vector<TableInfo> out;
  for (const auto& [name, info] : tables_) out.push_back(info);
  return out;
}

Result<TableInfo> SqliteTableStore::Get(const std::string& table) {
  std::optional<TableInfo> info = Current(table);
  if (!info) return NotFound(fmt::format("no table named '{}'", table.substr(0, 80)));
  return *info;
}

Status SqliteTableStore::Drop(const std::string& table) {
  {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_.get());
    FERRY_RETURN_IF_ERROR(tx.Begin());
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, writer_->Prepare("DELETE FROM tables WHERE name = ?1"));
    st.BindText(1, table);
    FERRY_RETURN_IF_ERROR(st.Run());
    if (writer_->Changes() == 0) return NotFound(fmt::format("no table named '{}'", table.substr(0, 80)));
    FERRY_ASSIGN_OR_RETURN(SqliteStatement entries, writer_->Prepare("DELETE FROM entries WHERE tbl = ?1"));
    entries.BindText(1, table);
    FERRY_RETURN_IF_ERROR(entries.Run());
    std::unique_lock tables_lock(tables_mu_);
    FERRY_RETURN_IF_ERROR(tx.Commit());
    ++epoch_;
    tables_.erase(table);
  }
  return Status::Ok();
}

TableStats SqliteTableStore::Stats() const {
  TableStats s;
  {
    std::lock_guard lock(memory_mu_);
    s.memory_bytes = static_cast<int64_t>(memory_.bytes());
    s.memory_entries = static_cast<int64_t>(memory_.size());
    s.memory_evictions = memory_.evictions();
  }
  s.write_backs = write_backs_.load();
  s.write_backs_dropped = write_backs_dropped_.load();
  return s;
}

}  // namespace ferry
