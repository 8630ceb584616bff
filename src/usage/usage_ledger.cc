#include "usage/usage_ledger.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <functional>

namespace ferry {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS usage(
  day TEXT NOT NULL,
  caller TEXT NOT NULL,
  model TEXT NOT NULL,
  requests INTEGER NOT NULL,
  compute_us INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  PRIMARY KEY(day, caller, model));
CREATE TABLE IF NOT EXISTS alerts(
  budget TEXT NOT NULL,
  period TEXT NOT NULL,
  percent INTEGER NOT NULL,
  id TEXT NOT NULL,
  spent REAL NOT NULL,
  fired_ms INTEGER NOT NULL,
  PRIMARY KEY(budget, period, percent));
CREATE TABLE IF NOT EXISTS mail(
  id TEXT PRIMARY KEY,
  sender TEXT NOT NULL,
  recipients TEXT NOT NULL,
  subject TEXT NOT NULL,
  body TEXT NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  sent_ms INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS mail_due ON mail(state, next_attempt_ms);
)sql";

using std::chrono::days;
using std::chrono::milliseconds;
using std::chrono::sys_days;

std::string MonthOf(int64_t unix_ms) { return DayOf(unix_ms).substr(0, 7); }

int64_t MsOf(sys_days d) { return std::chrono::duration_cast<milliseconds>(d.time_since_epoch()).count(); }

// Runs `body` in one transaction: all of it is stored, or none.
Status InTransaction(SqliteDb& db, const std::function<Status()>& body) {
  FERRY_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  Status s = body();
  if (s.ok()) s = db.Exec("COMMIT");
  if (!s.ok()) (void)db.Exec("ROLLBACK");
  return s;
}

std::string JoinLines(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : "\n") + s;
  return out;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t nl = text.find('\n', start);
    out.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

std::string Describe(const Budget& b) {
  std::string who = b.key.empty() ? "every caller" : fmt::format("key '{}'", b.key);
  if (!b.model.empty()) who += fmt::format(", model '{}'", b.model);
  return who;
}

std::pair<std::string, std::string> MailText(const BudgetAlert& a) {
  std::string subject = fmt::format("Ferry budget '{}': {}% of {:.2f} {} a {} spent", a.budget.name, a.percent,
                                    a.budget.limit, a.currency, BudgetPeriodName(a.budget.period));
  std::string body = fmt::format(
      "Budget '{}' ({}) has reached {}% of its limit for {}.\r\n\r\n"
      "Spent: {:.6f} {}\r\nLimit: {:.6f} {} a {}\r\nCap: {}\r\nResets: {}\r\n",
      a.budget.name, Describe(a.budget), a.percent, a.period, a.spent, a.currency, a.budget.limit, a.currency,
      BudgetPeriodName(a.budget.period),
      a.budget.cap == BudgetCap::kHard ? "hard (requests are refused once it is spent)" : "soft (alerts only)",
      IsoTimeOf(a.resets_at_ms));
  return {std::move(subject), std::move(body)};
}

}  // namespace

std::string DayOf(int64_t unix_ms) {
  const auto d = std::chrono::floor<days>(std::chrono::sys_time<milliseconds>(milliseconds(unix_ms)));
  const std::chrono::year_month_day ymd{d};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

std::string IsoTimeOf(int64_t unix_ms) {
  const int64_t of_day = ((unix_ms / 1000) % 86400 + 86400) % 86400;
  return fmt::format("{}T{:02}:{:02}:{:02}Z", DayOf(unix_ms), of_day / 3600, of_day / 60 % 60, of_day % 60);
}

BudgetWindow WindowOf(BudgetPeriod period, int64_t unix_ms) {
  const sys_days d = std::chrono::floor<days>(std::chrono::sys_time<milliseconds>(milliseconds(unix_ms)));
  if (period == BudgetPeriod::kDay) return {DayOf(unix_ms), MsOf(d), MsOf(d + days(1))};
  const std::chrono::year_month_day ymd{d};
  const sys_days first{ymd.year() / ymd.month() / 1};
  const sys_days next{(ymd.year() / ymd.month() + std::chrono::months(1)) / 1};
  return {MonthOf(unix_ms), MsOf(first), MsOf(next)};
}

Result<std::unique_ptr<UsageLedger>> UsageLedger::Open(UsageLedgerOptions options, CostConfig config) {
  std::error_code ec;
  if (options.path.has_parent_path()) std::filesystem::create_directories(options.path.parent_path(), ec);
  std::unique_ptr<UsageLedger> ledger(new UsageLedger(std::move(options)));
  FERRY_ASSIGN_OR_RETURN(ledger->db_, SqliteDb::Open(ledger->options_.path, /*read_only=*/false));
  FERRY_RETURN_IF_ERROR(ledger->db_->Exec("PRAGMA journal_mode=WAL"));
  FERRY_RETURN_IF_ERROR(ledger->db_->Exec("PRAGMA synchronous=FULL"));
  FERRY_RETURN_IF_ERROR(ledger->db_->Exec(kSchema));
  ledger->config_ = std::move(config);
  FERRY_RETURN_IF_ERROR(ledger->Load());
  std::vector<BudgetAlert> due;
  {
    std::lock_guard lock(ledger->mu_);
    due = ledger->RejudgeLocked(ledger->options_.wall_clock->NowUnixMs());
  }
  ledger->Fire(due);  // thresholds crossed before a crash whose alerts were never stored
  if (ledger->options_.flush_every.count() > 0) ledger->flusher_ = std::thread([l = ledger.get()] { l->FlushLoop(); });
  return ledger;
}

UsageLedger::~UsageLedger() {
  {
    std::lock_guard lock(flush_mu_);
    stopping_ = true;
  }
  flush_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  // Flush() below fires what is still due.
  if (Status s = Flush(); !s.ok()) spdlog::error("usage: the last charges could not be written: {}", s.message());
}

Status UsageLedger::Load() {
  const int64_t now = options_.wall_clock->NowUnixMs();
  const std::string month = MonthOf(now);
  std::lock_guard db_lock(db_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement cells, db_->Prepare(
      "SELECT day, caller, model, requests, compute_us, prompt_tokens, completion_tokens FROM usage WHERE day >= ?"));
  cells.BindText(1, month);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement alerts, db_->Prepare("SELECT budget, period, percent FROM alerts WHERE period >= ?"));
  alerts.BindText(1, month);
  std::lock_guard lock(mu_);
  month_ = month;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, cells.Step());
    if (!row) break;
    month_cells_[{cells.Text(0), cells.Text(1), cells.Text(2)}] = {cells.Int(3), cells.Int(4), cells.Int(5), cells.Int(6)};
  }
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, alerts.Step());
    if (!row) break;
    fired_.insert({alerts.Text(0), alerts.Text(1), static_cast<int>(alerts.Int(2))});
  }
  return Status::Ok();
}

double UsageLedger::SpendLocked(const Budget& b, const BudgetWindow& w) const {
  double spent = 0;
  for (const auto& [cell, units] : month_cells_) {
    const auto& [day, caller, model] = cell;
    if (b.period == BudgetPeriod::kDay ? day != w.id : !day.starts_with(w.id)) continue;
    if (b.Covers(caller, model)) spent += config_.Cost(model, units);
  }
  return spent;
}

void UsageLedger::CollectAlertsLocked(BudgetState& s, int64_t now, std::vector<BudgetAlert>* out) {
  for (int percent : s.budget.alerts) {
    // A small tolerance so that 100 % of a limit reached in float sums still counts.
    if (s.spent + 1e-12 < s.budget.limit * percent / 100.0) break;
    if (!fired_.insert({s.budget.name, s.window.id, percent}).second) continue;
    s.alerts_sent.push_back(percent);
    BudgetAlert a;
    a.id = fmt::format("alert_{}_{}_{}", s.budget.name, s.window.id, percent);
    a.budget = s.budget;
    a.period = s.window.id;
    a.percent = percent;
    a.spent = s.spent;
    a.currency = config_.currency;
    a.at_ms = now;
    a.resets_at_ms = s.window.end_ms;
    a.webhook = config_.webhook;
    out->push_back(std::move(a));
  }
}

std::vector<BudgetAlert> UsageLedger::RejudgeLocked(int64_t now) {
  std::vector<BudgetAlert> due;
  states_.clear();
  for (const Budget& b : config_.budgets) {
    BudgetState s;
    s.budget = b;
    s.window = WindowOf(b.period, now);
    s.spent = SpendLocked(b, s.window);
    for (int percent : b.alerts) {
      if (fired_.count({b.name, s.window.id, percent}) > 0) s.alerts_sent.push_back(percent);
    }
    CollectAlertsLocked(s, now, &due);
    states_.push_back(std::move(s));
  }
  return due;
}

Status UsageLedger::Admit(const std::string& caller, const std::string& model) const {
  const int64_t now = options_.wall_clock->NowUnixMs();
  std::lock_guard lock(mu_);
  for (const BudgetState& s : states_) {
    if (!s.budget.Covers(caller, model) || !s.capped() || now >= s.window.end_ms) continue;
    const int64_t wait_s = (s.window.end_ms - now + 999) / 1000;
    return ResourceExhausted(fmt::format("budget '{}' ({}) is spent: {:.4f} of {:.4f} {} this {}; requests are "
                                         "refused until {}",
                                         s.budget.name, Describe(s.budget), s.spent, s.budget.limit, config_.currency,
                                         BudgetPeriodName(s.budget.period), IsoTimeOf(s.window.end_ms)))
        .WithRetryAfter(std::max<int64_t>(1, wait_s));
  }
  return Status::Ok();
}

void UsageLedger::Charge(const UsageCharge& charge) {
  const int64_t now = options_.wall_clock->NowUnixMs();
  const std::string day = DayOf(now);
  std::vector<BudgetAlert> due;
  {
    std::lock_guard lock(mu_);
    if (!day.starts_with(month_)) {  // a new month: the old one is written (or pending) already
      month_cells_.clear();
      month_ = MonthOf(now);
    }
    const CellKey cell{day, charge.caller, charge.model};
    month_cells_[cell] += charge.units;
    pending_[cell] += charge.units;
    const double cost = config_.Cost(charge.model, charge.units);
    for (BudgetState& s : states_) {
      if (!s.budget.Covers(charge.caller, charge.model)) continue;
      if (now >= s.window.end_ms || now < s.window.start_ms) {  // a new period (or the clock went back)
        s.window = WindowOf(s.budget.period, now);
        s.spent = SpendLocked(s.budget, s.window);
        s.alerts_sent.clear();
        for (int percent : s.budget.alerts) {
          if (fired_.count({s.budget.name, s.window.id, percent}) > 0) s.alerts_sent.push_back(percent);
        }
      } else {
        s.spent += cost;
      }
      CollectAlertsLocked(s, now, &due);
    }
  }
  if (due.empty()) return;
  if (options_.flush_every.count() == 0) return Fire(due);  // no flusher: at once
  {
    std::lock_guard lock(flush_mu_);
    due_.insert(due_.end(), std::make_move_iterator(due.begin()), std::make_move_iterator(due.end()));
  }
  flush_cv_.notify_all();
}

void UsageLedger::FireDue() {
  std::vector<BudgetAlert> due;
  {
    std::lock_guard lock(flush_mu_);
    due.swap(due_);
  }
  Fire(due);
}

void UsageLedger::Fire(const std::vector<BudgetAlert>& alerts) {
  if (alerts.empty()) return;
  const std::optional<EmailAlertTarget> email = config().email;
  bool mailed = false;
  for (const BudgetAlert& a : alerts) {
    spdlog::warn("usage: budget '{}' ({}) at {}% for {}: {:.6f} of {:.6f} {}", a.budget.name, Describe(a.budget),
                 a.percent, a.period, a.spent, a.budget.limit, a.currency);
    // The webhook notice first: if the process dies before the alert is stored, it is made again at
    // the next start and the (idempotent) add changes nothing.
    if (a.webhook && options_.notify) {
      if (Status s = options_.notify(a); !s.ok()) spdlog::error("usage: alert '{}' webhook: {}", a.id, s.message());
    }
    if (Status s = StoreAlert(a, email); !s.ok()) {
      // Not stored: the next charge past the threshold fires it again (the webhook add is idempotent).
      spdlog::error("usage: alert '{}' could not be stored (tried again later): {}", a.id, s.message());
      std::lock_guard lock(mu_);
      fired_.erase({a.budget.name, a.period, a.percent});
      for (BudgetState& st : states_) {
        if (st.budget.name == a.budget.name && st.window.id == a.period) std::erase(st.alerts_sent, a.percent);
      }
      continue;
    }
    mailed = mailed || email.has_value();
  }
  if (mailed && options_.mail_queued) options_.mail_queued();
}

Status UsageLedger::StoreAlert(const BudgetAlert& a, const std::optional<EmailAlertTarget>& email) {
  std::lock_guard db_lock(db_mu_);
  return InTransaction(*db_, [&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
        "INSERT OR IGNORE INTO alerts(budget, period, percent, id, spent, fired_ms) VALUES (?, ?, ?, ?, ?, ?)"));
    st.BindText(1, a.budget.name).BindText(2, a.period).Bind(3, a.percent).BindText(4, a.id);
    st.BindDouble(5, a.spent).Bind(6, a.at_ms);
    FERRY_RETURN_IF_ERROR(st.Run());
    if (!email) return Status::Ok();
    const auto [subject, body] = MailText(a);
    FERRY_ASSIGN_OR_RETURN(SqliteStatement mail, db_->Prepare(
        "INSERT OR IGNORE INTO mail(id, sender, recipients, subject, body, next_attempt_ms, created_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"));
    mail.BindText(1, a.id).BindText(2, email->from).BindText(3, JoinLines(email->to)).BindText(4, subject);
    mail.BindText(5, body).Bind(6, a.at_ms);
    return mail.Run();
  });
}

Status UsageLedger::Flush() {
  FireDue();
  std::map<CellKey, UsageUnits> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) return Status::Ok();
  std::lock_guard db_lock(db_mu_);
  Status s = InTransaction(*db_, [&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
        "INSERT INTO usage(day, caller, model, requests, compute_us, prompt_tokens, completion_tokens) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(day, caller, model) DO UPDATE SET "
        "requests = requests + excluded.requests, compute_us = compute_us + excluded.compute_us, "
        "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = completion_tokens + excluded.completion_tokens"));
    for (const auto& [cell, u] : batch) {
      const auto& [day, caller, model] = cell;
      st.BindText(1, day).BindText(2, caller).BindText(3, model);
      st.Bind(4, u.requests).Bind(5, u.compute_us).Bind(6, u.prompt_tokens).Bind(7, u.completion_tokens);
      FERRY_RETURN_IF_ERROR(st.Run());
      FERRY_RETURN_IF_ERROR(st.Reset());
    }
    return Status::Ok();
  });
  if (!s.ok()) {  // kept for the next write: nothing charged is dropped
    std::lock_guard lock(mu_);
    for (const auto& [cell, u] : batch) pending_[cell] += u;
  }
  return s;
}

void UsageLedger::FlushLoop() {
  std::unique_lock lock(flush_mu_);
  while (!stopping_) {
    flush_cv_.wait_for(lock, options_.flush_every, [&] { return stopping_ || !due_.empty(); });
    if (stopping_) break;
    lock.unlock();
    if (Status s = Flush(); !s.ok()) spdlog::error("usage: writing charges failed (kept for the next try): {}", s.message());
    lock.lock();
  }
}

void UsageLedger::SetConfig(CostConfig config) {
  std::vector<BudgetAlert> due;
  {
    std::lock_guard lock(mu_);
    config_ = std::move(config);
    due = RejudgeLocked(options_.wall_clock->NowUnixMs());
  }
  Fire(due);
}

CostConfig UsageLedger::config() const {
  std::lock_guard lock(mu_);
  return config_;
}

std::vector<BudgetState> UsageLedger::Budgets() const {
  std::lock_guard lock(mu_);
  return states_;
}

Result<std::vector<UsageRow>> UsageLedger::Rows(const std::string& from_day, const std::string& to_day,
                                                const std::optional<std::string>& caller, bool by_day,
                                                bool by_caller) {
  FERRY_RETURN_IF_ERROR(Flush());
  std::lock_guard db_lock(db_mu_);
  // Summed here, by model always (prices are per model) and by day and caller when asked.
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "SELECT CASE WHEN ?4 THEN day ELSE '' END AS d, CASE WHEN ?5 THEN caller ELSE '' END AS c, model, "
      "SUM(requests), SUM(compute_us), SUM(prompt_tokens), SUM(completion_tokens) FROM usage "
      "WHERE day >= ?1 AND day <= ?2 AND (?3 IS NULL OR caller = ?3) GROUP BY d, c, model "
      "ORDER BY d, c, model LIMIT ?6"));
  st.BindText(1, from_day).BindText(2, to_day);
  if (caller) st.BindText(3, *caller);
  st.Bind(4, by_day ? 1 : 0).Bind(5, by_caller ? 1 : 0).Bind(6, kMaxRows + 1);
  std::vector<UsageRow> rows;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    rows.push_back({st.Text(0), st.Text(1), st.Text(2), {st.Int(3), st.Int(4), st.Int(5), st.Int(6)}});
  }
  if (static_cast<int64_t>(rows.size()) > kMaxRows) {
    return FailedPrecondition(fmt::format("more than {} rows: ask for fewer days or a coarser group_by", kMaxRows));
  }
  return rows;
}

Result<std::vector<AlertMail>> UsageLedger::DueMail(int64_t now_ms, size_t max) {
  std::lock_guard db_lock(db_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "SELECT id, sender, recipients, subject, body, attempts FROM mail WHERE state = 0 AND next_attempt_ms <= ? "
      "ORDER BY next_attempt_ms LIMIT ?"));
  st.Bind(1, now_ms).Bind(2, static_cast<int64_t>(max));
  std::vector<AlertMail> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back({st.Text(0), st.Text(1), SplitLines(st.Text(2)), st.Text(3), st.Text(4), st.Int(5)});
  }
  return out;
}

Status UsageLedger::RecordMailAttempt(const std::string& id, bool sent, bool give_up, const std::string& error,
                                      int64_t next_attempt_ms) {
  std::lock_guard db_lock(db_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "UPDATE mail SET state = ?1, attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3, "
      "sent_ms = ?4 WHERE id = ?5 AND state = 0"));
  st.Bind(1, sent ? 1 : give_up ? 2 : 0).Bind(2, next_attempt_ms).BindText(3, error.substr(0, 500));
  st.Bind(4, sent ? options_.wall_clock->NowUnixMs() : 0).BindText(5, id);
  return st.Run();
}

Result<std::string> UsageLedger::MailState(const std::string& id) {
  std::lock_guard db_lock(db_mu_);
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare("SELECT state FROM mail WHERE id = ?"));
  st.BindText(1, id);
  FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::string();
  const int64_t state = st.Int(0);
  return std::string(state == 0 ? "queued" : state == 1 ? "sent" : "failed");
}

}  // namespace ferry
