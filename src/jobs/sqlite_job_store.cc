#include "jobs/sqlite_job_store.h"

#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <future>
#include <random>

namespace ferry {
namespace {

using std::chrono::milliseconds;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  id TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  kind TEXT NOT NULL,
  request BLOB NOT NULL,
  idempotency_key TEXT UNIQUE,
  webhook_url TEXT,
  priority INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  updated_ms INTEGER NOT NULL,
  lease_owner TEXT,
  lease_expires_ms INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  result BLOB);
CREATE INDEX IF NOT EXISTS jobs_by_queue ON jobs(state, priority DESC, created_ms);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs(state, lease_expires_ms);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs(created_ms DESC, id DESC);
CREATE TABLE IF NOT EXISTS webhook_deliveries(
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL UNIQUE,
  url TEXT NOT NULL,
  secret TEXT NOT NULL,
  event TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  lease_expires_ms INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  delivered_ms INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  payload BLOB);
CREATE INDEX IF NOT EXISTS deliveries_due ON webhook_deliveries(state, next_attempt_ms);
CREATE TABLE IF NOT EXISTS webhook_endpoints(
  url TEXT PRIMARY KEY,
  disabled_ms INTEGER NOT NULL,
  reason TEXT NOT NULL);
)sql";

constexpr const char* kDeliveryColumns =
    "id, job_id, event, url, secret, state, attempts, next_attempt_ms, last_status, last_error, delivered_ms, "
    "COALESCE(payload, '')";

WebhookDelivery ReadDelivery(const SqliteStatement& row) {
  WebhookDelivery d;
  d.id = row.Text(0);
  d.job_id = row.Text(1);
  d.event = row.Text(2);
  d.url = row.Text(3);
  d.secret = row.Text(4);
  d.state = static_cast<DeliveryState>(row.Int(5));
  d.attempts = row.Int(6);
  d.next_attempt_ms = row.Int(7);
  d.last_status = row.Int(8);
  d.last_error = row.Text(9);
  d.delivered_ms = row.Int(10);
  d.payload = row.Text(11);
  return d;
}

constexpr const char* kDisabledEndpointError = "the endpoint is disabled: it answered 410 Gone";

// Makes the waiting deliveries of final jobs pending (or disabled, for an endpoint that answered 410),
// in the transaction that made the job final. ?1 is now; ?2, when bound, limits it to one job.
Status ArmDeliveries(SqliteDb& db, int64_t now, const std::string* job_id) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(fmt::format(R"sql(
UPDATE webhook_deliveries SET
  state = CASE WHEN url IN (SELECT url FROM webhook_endpoints) THEN 4 ELSE 1 END,
  last_error = CASE WHEN url IN (SELECT url FROM webhook_endpoints) THEN '{}' ELSE '' END,
  event = (SELECT CASE j.state WHEN 2 THEN 'job.succeeded' WHEN 3 THEN 'job.failed' ELSE 'job.cancelled' END
           FROM jobs j WHERE j.id = webhook_deliveries.job_id),
  next_attempt_ms = ?1, updated_ms = ?1
WHERE state = 0 AND job_id IN (SELECT id FROM jobs WHERE state IN (2, 3, 4){})
)sql", kDisabledEndpointError, job_id ? " AND id = ?2" : "")));
  st.Bind(1, now);
  if (job_id) st.BindText(2, *job_id);
  return st.Run();
}

// Every column but request and result, in this order, for ReadJob; a query may add `request` last.
constexpr const char* kJobColumns =
    "id, model, kind, idempotency_key, webhook_url, priority, max_attempts, state, attempts, created_ms, "
    "started_ms, finished_ms, updated_ms, lease_owner, lease_expires_ms, error, result IS NOT NULL, caller";

Job ReadJob(const SqliteStatement& row) {
  Job j;
  j.id = row.Text(0);
  j.spec.model = row.Text(1);
  j.spec.kind = row.Text(2);
  j.spec.idempotency_key = row.Text(3);
  j.spec.webhook_url = row.Text(4);
  j.spec.priority = row.Int(5);
  j.spec.max_attempts = row.Int(6);
  j.state = static_cast<JobState>(row.Int(7));
  j.attempts = row.Int(8);
  j.created_ms = row.Int(9);
  j.started_ms = row.Int(10);
  j.finished_ms = row.Int(11);
  j.updated_ms = row.Int(12);
  j.lease_owner = row.Text(13);
  j.lease_expires_ms = row.Int(14);
  j.error = row.Text(15);
  j.has_result = row.Int(16) != 0;
  j.spec.caller = row.Text(17);
  if (row.ColumnCount() > 18) j.spec.request = row.Text(18);
  return j;
}

// 128 random bits as 32 hex digits.
std::string NewJobId() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32)};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

// `with_request`: also the request body (the runner needs it; listings and status views do not).
Result<std::optional<Job>> SelectJob(SqliteDb& db, const std::string& id, bool with_request = false) {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(fmt::format("SELECT {}{} FROM jobs WHERE id = ?", kJobColumns,
                                                                    with_request ? ", request" : "")));
  st.BindText(1, id);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<Job>();
  return std::optional<Job>(ReadJob(st));
}

// The state an ended attempt leaves a job in: queued again while attempts remain and ?5 (retry) is 1,
// failed (the dead letter) otherwise. ?1 is now, ?2 the error; callers add the WHERE clause.
constexpr const char* kEndAttempt = R"sql(
UPDATE jobs SET
  state = CASE WHEN ?5 = 0 OR attempts >= max_attempts THEN 3 ELSE 0 END,
  finished_ms = CASE WHEN ?5 = 0 OR attempts >= max_attempts THEN ?1 ELSE 0 END,
  error = ?2, lease_owner = NULL, lease_expires_ms = 0, updated_ms = ?1
)sql";

}  // namespace

struct SqliteJobStore::PendingWrite {
  WriteOp op;
  Status status;
  std::promise<void> done;
};

Result<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(SqliteJobStoreOptions options) {
  if (!options.now_ms) {
    options.now_ms = [] {
      return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  }
  std::error_code ec;
  if (options.path.has_parent_path()) std::filesystem::create_directories(options.path.parent_path(), ec);
  if (ec) return Unavailable(fmt::format("job store: cannot create '{}': {}", options.path.parent_path().string(), ec.message()));

  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(std::move(options)));
  FERRY_ASSIGN_OR_RETURN(store->writer_db_, SqliteDb::Open(store->options_.path, /*read_only=*/false));
  SqliteDb& w = *store->writer_db_;
  FERRY_RETURN_IF_ERROR(w.Exec("PRAGMA journal_mode=WAL"));
  const bool durable = store->options_.durability == SqliteJobStoreOptions::Durability::kDurable;
  FERRY_RETURN_IF_ERROR(w.Exec(durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  FERRY_RETURN_IF_ERROR(w.Exec(kSchema));
  // Stores made before jobs were charged to their caller get the column (their jobs: "(none)"), and
  // before jobs could be put off, theirs (every job due now).
  FERRY_RETURN_IF_ERROR(w.AddColumnIfMissing("jobs", "caller", "TEXT NOT NULL DEFAULT '(none)'"));
  FERRY_RETURN_IF_ERROR(w.AddColumnIfMissing("jobs", "not_before_ms", "INTEGER NOT NULL DEFAULT 0"));
  FERRY_ASSIGN_OR_RETURN(store->reader_db_, SqliteDb::Open(store->options_.path, /*read_only=*/true));
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

SqliteJobStore::~SqliteJobStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

int64_t SqliteJobStore::commit_count() const {
  std::lock_guard lock(mu_);
  return commits_;
}

size_t SqliteJobStore::pending_writes() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

Status SqliteJobStore::Write(WriteOp op) {
  PendingWrite pending{std::move(op), Status::Ok(), {}};
  std::future<void> done = pending.done.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Unavailable("job store: shutting down");
    if (queue_.size() >= options_.max_pending_writes) return Unavailable("job store: too many writes waiting");
    queue_.push_back(&pending);
  }
  cv_.notify_one();
  done.wait();
  return pending.status;
}

void SqliteJobStore::WriterLoop() {
  for (;;) {
    std::deque<PendingWrite*> group;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every write answered
      if (options_.before_group) {
        lock.unlock();
        options_.before_group();
        lock.lock();
      }
      while (!queue_.empty() && group.size() < options_.max_group_size) {
        group.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    CommitGroup(group);
    for (PendingWrite* p : group) p->done.set_value();
  }
}

void SqliteJobStore::CommitGroup(std::deque<PendingWrite*>& group) {
  SqliteDb& db = *writer_db_;
  Status begin = db.Exec("BEGIN IMMEDIATE");
  if (!begin.ok()) {
    for (PendingWrite* p : group) p->status = begin;
    return;
  }
  for (PendingWrite* p : group) {
    // A savepoint each, so one write's failure rolls back that write alone.
    Status s = db.Exec("SAVEPOINT write");
    if (s.ok()) {
      s = p->op(db);
      if (!s.ok()) (void)db.Exec("ROLLBACK TO write");
      Status released = db.Exec("RELEASE write");
      if (s.ok()) s = released;
    }
    p->status = s;
  }
  Status commit = db.Exec("COMMIT");
  if (!commit.ok()) {
    (void)db.Exec("ROLLBACK");
    for (PendingWrite* p : group) {
      if (p->status.ok()) p->status = commit;
    }
    return;
  }
  std::lock_guard lock(mu_);
  ++commits_;
}

Result<SubmitOutcome> SqliteJobStore::Submit(const NewJob& job) {
  if (job.model.empty()) return InvalidArgument("a job needs a model");
  if (job.max_attempts < 1) return InvalidArgument("max_attempts must be at least 1");
  SubmitOutcome out;
  Status s = Write([&](SqliteDb& db) -> Status {
    if (!job.idempotency_key.empty()) {
      FERRY_ASSIGN_OR_RETURN(SqliteStatement find, db.Prepare("SELECT id FROM jobs WHERE idempotency_key = ?"));
      find.BindText(1, job.idempotency_key);
      FERRY_ASSIGN_OR_RETURN(bool found, find.Step());
      if (found) {
        out = {find.Text(0), false};
        return Status::Ok();
      }
    }
    FERRY_ASSIGN_OR_RETURN(SqliteStatement count, db.Prepare("SELECT COUNT(*) FROM jobs WHERE state IN (0, 1)"));
    FERRY_RETURN_IF_ERROR(count.Step().status());
    if (count.Int(0) >= options_.max_active_jobs) {
      return Unavailable(fmt::format("the job queue is full ({} jobs queued or running)", count.Int(0)));
    }
    out = {NewJobId(), true};
    FERRY_ASSIGN_OR_RETURN(SqliteStatement insert, db.Prepare(
        "INSERT INTO jobs(id, model, kind, request, idempotency_key, webhook_url, priority, max_attempts, "
        "state, created_ms, updated_ms, caller) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"));
    const int64_t now = Now();
    insert.BindText(1, out.id).BindText(2, job.model).BindText(3, job.kind).BindBlob(4, job.request);
    insert.BindNullableText(5, job.idempotency_key).BindNullableText(6, job.webhook_url);
    insert.Bind(7, job.priority).Bind(8, job.max_attempts).Bind(9, now).Bind(10, now).BindText(11, job.caller);
    FERRY_RETURN_IF_ERROR(insert.Run());
    if (job.webhook_url.empty()) return Status::Ok();
    FERRY_ASSIGN_OR_RETURN(SqliteStatement delivery, db.Prepare(
        "INSERT INTO webhook_deliveries(id, job_id, url, secret, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?)"));
    delivery.BindText(1, "msg_" + out.id).BindText(2, out.id).BindText(3, job.webhook_url);
    delivery.BindText(4, job.webhook_secret).Bind(5, now).Bind(6, now);
    return delivery.Run();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::optional<Job>> SqliteJobStore::Get(const std::string& id) {
  std::lock_guard lock(reader_mu_);
  return SelectJob(*reader_db_, id);
}

Result<std::string> SqliteJobStore::GetResult(const std::string& id) {
  std::lock_guard lock(reader_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, reader_db_->Prepare("SELECT state, result FROM jobs WHERE id = ?"));
  st.BindText(1, id);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NotFound(fmt::format("no job '{}'", id));
  const auto state = static_cast<JobState>(st.Int(0));
  if (state != JobState::kSucceeded) {
    return FailedPrecondition(fmt::format("job '{}' is {}; it has no result", id, JobStateName(state)));
  }
  return st.Text(1);
}

Result<JobPage> SqliteJobStore::List(const JobFilter& filter, int64_t page_size, const std::string& page_token) {
  if (page_size < 1 || page_size > 1000) return InvalidArgument("page size must be within 1..1000");
  int64_t after_created = INT64_MAX;
  std::string after_id;
  if (!page_token.empty()) {
    const size_t colon = page_token.find(':');
    char* end = nullptr;
    after_created = colon == std::string::npos ? -1 : std::strtoll(page_token.c_str(), &end, 10);
    if (colon == std::string::npos || end != page_token.c_str() + colon || after_created < 0) {
      return InvalidArgument("invalid page token");
    }
    after_id = page_token.substr(colon + 1);
  }
  std::string sql = fmt::format("SELECT {} FROM jobs WHERE (created_ms < ?1 OR (created_ms = ?1 AND id < ?2))",
                                kJobColumns);
  if (filter.state) sql += " AND state = ?3";
  if (!filter.model.empty()) sql += " AND model = ?4";
  sql += " ORDER BY created_ms DESC, id DESC LIMIT ?5";
  std::lock_guard lock(reader_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, reader_db_->Prepare(sql));
  st.Bind(1, after_created).BindText(2, after_id);
  if (filter.state) st.Bind(3, static_cast<int64_t>(*filter.state));
  if (!filter.model.empty()) st.BindText(4, filter.model);
  st.Bind(5, page_size + 1);
  JobPage page;
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    page.jobs.push_back(ReadJob(st));
  }
  if (static_cast<int64_t>(page.jobs.size()) > page_size) {
    page.jobs.pop_back();
    page.next_page_token = fmt::format("{}:{}", page.jobs.back().created_ms, page.jobs.back().id);
  }
  return page;
}

Result<JobCounts> SqliteJobStore::Counts() {
  std::lock_guard lock(reader_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, reader_db_->Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
  JobCounts c;
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    const int64_t n = st.Int(1);
    switch (static_cast<JobState>(st.Int(0))) {
      case JobState::kQueued: c.queued = n; break;
      case JobState::kRunning: c.running = n; break;
      case JobState::kSucceeded: c.succeeded = n; break;
      case JobState::kFailed: c.failed = n; break;
      case JobState::kCancelled: c.cancelled = n; break;
    }
  }
  return c;
}

Result<std::vector<Job>> SqliteJobStore::Lease(const std::string& owner, int64_t max_jobs, milliseconds lease) {
  if (owner.empty()) return InvalidArgument("a lease needs an owner");
  std::vector<Job> leased;
  Status s = Write([&](SqliteDb& db) -> Status {
    leased.clear();
    FERRY_ASSIGN_OR_RETURN(SqliteStatement pick, db.Prepare(
        "SELECT id FROM jobs WHERE state = 0 AND not_before_ms <= ? ORDER BY priority DESC, created_ms, id "
        "LIMIT ?"));
    pick.Bind(1, Now()).Bind(2, max_jobs);
    std::vector<std::string> ids;
    for (;;) {
      FERRY_ASSIGN_OR_RETURN(bool row, pick.Step());
      if (!row) break;
      ids.push_back(pick.Text(0));
    }
    const int64_t now = Now();
    for (const std::string& id : ids) {
      FERRY_ASSIGN_OR_RETURN(SqliteStatement take, db.Prepare(
          "UPDATE jobs SET state = 1, attempts = attempts + 1, lease_owner = ?, lease_expires_ms = ?, "
          "started_ms = CASE WHEN started_ms = 0 THEN ? ELSE started_ms END, updated_ms = ? WHERE id = ?"));
      take.BindText(1, owner).Bind(2, now + lease.count()).Bind(3, now).Bind(4, now).BindText(5, id);
      FERRY_RETURN_IF_ERROR(take.Run());
      FERRY_ASSIGN_OR_RETURN(std::optional<Job> job, SelectJob(db, id, /*with_request=*/true));
      if (job) leased.push_back(std::move(*job));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return leased;
}

Status SqliteJobStore::Heartbeat(const std::string& id, const std::string& owner, milliseconds lease) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        "UPDATE jobs SET lease_expires_ms = ?, updated_ms = ? WHERE id = ? AND state = 1 AND lease_owner = ?"));
    const int64_t now = Now();
    st.Bind(1, now + lease.count()).Bind(2, now).BindText(3, id).BindText(4, owner);
    FERRY_RETURN_IF_ERROR(st.Run());
    if (db.Changes() == 0) return FailedPrecondition(fmt::format("'{}' no longer holds job '{}'", owner, id));
    return Status::Ok();
  });
}

Status SqliteJobStore::Complete(const std::string& id, const std::string& owner, const std::string& result) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        "UPDATE jobs SET state = 2, result = ?, error = '', finished_ms = ?, updated_ms = ?, lease_owner = NULL, "
        "lease_expires_ms = 0 WHERE id = ? AND state = 1 AND lease_owner = ?"));
    const int64_t now = Now();
    st.BindBlob(1, result).Bind(2, now).Bind(3, now).BindText(4, id).BindText(5, owner);
    FERRY_RETURN_IF_ERROR(st.Run());
    if (db.Changes() == 0) return FailedPrecondition(fmt::format("'{}' no longer holds job '{}'", owner, id));
    return ArmDeliveries(db, now, &id);
  });
}

Status SqliteJobStore::Defer(const std::string& id, const std::string& owner, const std::string& why,
                             milliseconds delay) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        "UPDATE jobs SET state = 0, attempts = MAX(attempts - 1, 0), not_before_ms = ?1, error = ?2, "
        "lease_owner = NULL, lease_expires_ms = 0, updated_ms = ?3 WHERE id = ?4 AND state = 1 AND lease_owner = ?5"));
    const int64_t now = Now();
    st.Bind(1, now + std::max<int64_t>(0, delay.count())).BindText(2, why).Bind(3, now).BindText(4, id);
    st.BindText(5, owner);
    FERRY_RETURN_IF_ERROR(st.Run());
    if (db.Changes() == 0) return FailedPrecondition(fmt::format("'{}' no longer holds job '{}'", owner, id));
    return Status::Ok();
  });
}

Status SqliteJobStore::Fail(const std::string& id, const std::string& owner, const std::string& error, bool retry) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        std::string(kEndAttempt) + " WHERE id = ?3 AND state = 1 AND lease_owner = ?4"));
    const int64_t now = Now();
    st.Bind(1, now).BindText(2, error).BindText(3, id).BindText(4, owner).Bind(5, retry ? 1 : 0);
    FERRY_RETURN_IF_ERROR(st.Run());
    if (db.Changes() == 0) return FailedPrecondition(fmt::format("'{}' no longer holds job '{}'", owner, id));
    return ArmDeliveries(db, now, &id);
  });
}

Result<JobState> SqliteJobStore::Cancel(const std::string& id) {
  JobState state = JobState::kCancelled;
  Status s = Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        "UPDATE jobs SET state = 4, error = 'cancelled', finished_ms = ?1, updated_ms = ?1, lease_owner = NULL, "
        "lease_expires_ms = 0 WHERE id = ?2 AND state IN (0, 1)"));
    const int64_t now = Now();
    st.Bind(1, now).BindText(2, id);
    FERRY_RETURN_IF_ERROR(st.Run());
    FERRY_RETURN_IF_ERROR(ArmDeliveries(db, now, &id));
    FERRY_ASSIGN_OR_RETURN(std::optional<Job> job, SelectJob(db, id));
    if (!job) return NotFound(fmt::format("no job '{}'", id));
    state = job->state;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return state;
}

Result<int64_t> SqliteJobStore::ReapExpiredLeases() {
  int64_t reaped = 0;
  Status s = Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        std::string(kEndAttempt) + " WHERE state = 1 AND lease_expires_ms < ?1"));
    const int64_t now = Now();
    st.Bind(1, now).BindText(2, "the worker's lease expired (it stopped or crashed mid-attempt)").Bind(5, 1);
    FERRY_RETURN_IF_ERROR(st.Run());
    reaped = db.Changes();
    return reaped > 0 ? ArmDeliveries(db, now, nullptr) : Status::Ok();
  });
  if (!s.ok()) return s;
  return reaped;
}

Result<int64_t> SqliteJobStore::DeleteFinishedBefore(milliseconds retention) {
  int64_t deleted = 0;
  Status s = Write([&](SqliteDb& db) -> Status {
    const int64_t before = Now() - retention.count();
    FERRY_ASSIGN_OR_RETURN(SqliteStatement deliveries, db.Prepare(
        "DELETE FROM webhook_deliveries WHERE job_id IN "
        "(SELECT id FROM jobs WHERE state IN (2, 3, 4) AND finished_ms < ?)"));
    deliveries.Bind(1, before);
    FERRY_RETURN_IF_ERROR(deliveries.Run());
    // Notices (AddNotice) belong to no job: removed once settled (delivered, failed, disabled) as long ago.
    FERRY_ASSIGN_OR_RETURN(SqliteStatement notices, db.Prepare(
        "DELETE FROM webhook_deliveries WHERE state IN (2, 3, 4) AND updated_ms < ? AND "
        "job_id NOT IN (SELECT id FROM jobs)"));
    notices.Bind(1, before);
    FERRY_RETURN_IF_ERROR(notices.Run());
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        "DELETE FROM jobs WHERE state IN (2, 3, 4) AND finished_ms < ?"));
    st.Bind(1, before);
    FERRY_RETURN_IF_ERROR(st.Run());
    deleted = db.Changes();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return deleted;
}

Result<std::vector<WebhookDelivery>> SqliteJobStore::LeaseDeliveries(int64_t max_deliveries, milliseconds lease) {
  std::vector<WebhookDelivery> leased;
  Status s = Write([&](SqliteDb& db) -> Status {
    leased.clear();
    const int64_t now = Now();
    FERRY_ASSIGN_OR_RETURN(SqliteStatement disable, db.Prepare(fmt::format(
        "UPDATE webhook_deliveries SET state = 4, last_error = '{}', updated_ms = ? "
        "WHERE state = 1 AND url IN (SELECT url FROM webhook_endpoints)", kDisabledEndpointError)));
    disable.Bind(1, now);
    FERRY_RETURN_IF_ERROR(disable.Run());
    FERRY_ASSIGN_OR_RETURN(SqliteStatement pick, db.Prepare(fmt::format(
        "SELECT {} FROM webhook_deliveries WHERE state = 1 AND next_attempt_ms <= ?1 AND lease_expires_ms <= ?1 "
        "ORDER BY next_attempt_ms LIMIT ?2", kDeliveryColumns)));
    pick.Bind(1, now).Bind(2, max_deliveries);
    for (;;) {
      FERRY_ASSIGN_OR_RETURN(bool row, pick.Step());
      if (!row) break;
      leased.push_back(ReadDelivery(pick));
    }
    for (const WebhookDelivery& d : leased) {
      FERRY_ASSIGN_OR_RETURN(SqliteStatement take, db.Prepare(
          "UPDATE webhook_deliveries SET lease_expires_ms = ?, updated_ms = ? WHERE id = ?"));
      take.Bind(1, now + lease.count()).Bind(2, now).BindText(3, d.id);
      FERRY_RETURN_IF_ERROR(take.Run());
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return leased;
}

Status SqliteJobStore::RecordDeliveryAttempt(const std::string& delivery_id, const DeliveryAttempt& attempt) {
  using Outcome = DeliveryAttempt::Outcome;
  return Write([&](SqliteDb& db) -> Status {
    const int64_t now = Now();
    const DeliveryState state = attempt.outcome == Outcome::kDelivered ? DeliveryState::kDelivered
                                : attempt.outcome == Outcome::kRetry   ? DeliveryState::kPending
                                : attempt.outcome == Outcome::kFailed  ? DeliveryState::kFailed
                                                                       : DeliveryState::kDisabled;
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(R"sql(
UPDATE webhook_deliveries SET state = ?1, attempts = attempts + 1, next_attempt_ms = ?2, lease_expires_ms = 0,
  last_status = ?3, last_error = ?4, delivered_ms = ?5, payload = COALESCE(payload, ?6), updated_ms = ?7
WHERE id = ?8 AND state = 1)sql"));
    st.Bind(1, static_cast<int64_t>(state)).Bind(2, attempt.next_attempt_ms).Bind(3, attempt.http_status);
    st.BindText(4, attempt.error).Bind(5, state == DeliveryState::kDelivered ? now : 0).BindBlob(6, attempt.payload);
    st.Bind(7, now).BindText(8, delivery_id);
    FERRY_RETURN_IF_ERROR(st.Run());
    if (db.Changes() == 0) return FailedPrecondition(fmt::format("delivery '{}' is no longer pending", delivery_id));
    if (attempt.outcome != Outcome::kGone) return Status::Ok();
    FERRY_ASSIGN_OR_RETURN(SqliteStatement endpoint, db.Prepare(
        "INSERT OR REPLACE INTO webhook_endpoints(url, disabled_ms, reason) "
        "SELECT url, ?1, ?2 FROM webhook_deliveries WHERE id = ?3"));
    endpoint.Bind(1, now).BindText(2, fmt::format("answered 410 Gone to {}", delivery_id)).BindText(3, delivery_id);
    FERRY_RETURN_IF_ERROR(endpoint.Run());
    FERRY_ASSIGN_OR_RETURN(SqliteStatement others, db.Prepare(fmt::format(
        "UPDATE webhook_deliveries SET state = 4, last_error = '{}', updated_ms = ?1 "
        "WHERE state = 1 AND url = (SELECT url FROM webhook_deliveries WHERE id = ?2)", kDisabledEndpointError)));
    others.Bind(1, now).BindText(2, delivery_id);
    return others.Run();
  });
}

Result<std::optional<WebhookDelivery>> SqliteJobStore::GetDelivery(const std::string& job_id) {
  std::lock_guard lock(reader_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, reader_db_->Prepare(fmt::format(
      "SELECT {} FROM webhook_deliveries WHERE job_id = ?", kDeliveryColumns)));
  st.BindText(1, job_id);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<WebhookDelivery>();
  WebhookDelivery d = ReadDelivery(st);
  d.secret.clear();
  d.payload.clear();
  return std::optional<WebhookDelivery>(std::move(d));
}

Result<std::optional<int64_t>> SqliteJobStore::NextDeliveryDue() {
  std::lock_guard lock(reader_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, reader_db_->Prepare(
      "SELECT MIN(next_attempt_ms) FROM webhook_deliveries WHERE state = 1 AND lease_expires_ms <= ?"));
  st.Bind(1, Now());
  FERRY_RETURN_IF_ERROR(st.Step().status());
  if (st.IsNull(0)) return std::optional<int64_t>();
  return std::optional<int64_t>(st.Int(0));
}

Status SqliteJobStore::AddNotice(const std::string& notice_id, const std::string& url, const std::string& secret,
                                 const std::string& event, const std::string& payload) {
  return Write([&](SqliteDb& db) -> Status {
    // job_id holds the notice's id (no job has it: job ids are "job_..."); state 1 is pending.
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db.Prepare(
        "INSERT OR IGNORE INTO webhook_deliveries(id, job_id, url, secret, event, state, next_attempt_ms, "
        "created_ms, updated_ms, payload) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6, ?6, ?7)"));
    st.BindText(1, "msg_" + notice_id).BindText(2, notice_id).BindText(3, url).BindText(4, secret);
    st.BindText(5, event).Bind(6, Now()).BindBlob(7, payload);
    return st.Run();
  });
}

}  // namespace ferry
