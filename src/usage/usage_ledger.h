#pragma once
// What each caller used of each model, and what it may still spend. Every answered request is charged
// (Charge) with its own compute time (its share of the batch or decode it ran in) and tokens; the
// totals are kept by UTC day, caller and model in <data-dir>/usage.db, written every `flush_every`
// and at close (a crash loses at most that much), so they survive restarts. Budgets
// (CostConfig::budgets) are judged on the money those units cost at the current prices: each alert
// threshold of a budget fires once per period, stored before its e-mail is queued (the e-mail outbox
// is in the same database, written in the same commit) and after its webhook notice is handed on (an
// idempotent add), so a crash between the two sends it once all the same. A hard-capped budget that is
// spent refuses its callers (Admit) until its period ends. Thread-safe.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/clock.h"
#include "jobs/sqlite_db.h"
#include "usage/cost_config.h"

namespace ferry {

struct UsageCharge {
  std::string caller;  // an API key's name, "(admin)" or "(none)"
  std::string model;
  UsageUnits units;    // requests is usually 1
};

// A calendar period of a budget, in UTC: "2026-12-03" (a day) or "2026-12" (a month).
struct BudgetWindow {
  std::string id;
  int64_t start_ms = 0;
  int64_t end_ms = 0;  // exclusive: when the budget resets
};
BudgetWindow WindowOf(BudgetPeriod period, int64_t unix_ms);
// "2026-12-03" for a Unix time in milliseconds; IsoTimeOf: "2026-12-03T17:05:09Z".
std::string DayOf(int64_t unix_ms);
std::string IsoTimeOf(int64_t unix_ms);

struct BudgetAlert {
  std::string id;  // "alert_<budget>_<period>_<percent>": the same wherever and however often it is made
  Budget budget;
  std::string period;  // the window's id
  int percent = 0;
  double spent = 0;
  std::string currency;
  int64_t at_ms = 0;
  int64_t resets_at_ms = 0;
  std::optional<WebhookAlertTarget> webhook;  // where it goes, from the configuration in force
};

struct BudgetState {
  Budget budget;
  BudgetWindow window;
  double spent = 0;
  std::vector<int> alerts_sent;  // percentages
  bool capped() const { return budget.cap == BudgetCap::kHard && spent >= budget.limit; }
};

struct UsageRow {
  std::string day;
  std::string caller;
  std::string model;
  UsageUnits units;
};

// One queued alert e-mail.
struct AlertMail {
  std::string id;  // the alert's id
  std::string from;
  std::vector<std::string> to;
  std::string subject;
  std::string body;
  int64_t attempts = 0;
};

struct UsageLedgerOptions {
  std::filesystem::path path;  // the SQLite file; its folder is made
  const WallClock* wall_clock = &WallClock::Real();
  // Hands an alert's webhook notice on (to the job store's outbox); must be idempotent by alert id.
  // Called without the ledger's lock; a failure is logged and the alert stored all the same.
  std::function<Status(const BudgetAlert&)> notify;
  // An alert e-mail was queued (to wake the mailer).
  std::function<void()> mail_queued;
  std::chrono::milliseconds flush_every{250};  // 0: only Flush() and close write (tests)
};

class UsageLedger {
 public:
  static Result<std::unique_ptr<UsageLedger>> Open(UsageLedgerOptions options, CostConfig config);
  ~UsageLedger();  // flushes

  // OK, or kResourceExhausted (Retry-After: the end of the period) when a hard-capped budget covering
  // this caller and model is spent.
  Status Admit(const std::string& caller, const std::string& model) const;
  // Counts one request's use. The alerts it takes a budget past are fired by the flusher thread (never
  // on the caller's: it may be a generation or executor thread that must not wait on a disk), or at
  // once when there is no flusher (flush_every 0).
  void Charge(const UsageCharge& charge);
  // Fires the alerts charges made due, then writes what was charged since the last write (kept for
  // the next one if the write fails).
  Status Flush();

  // Replaces prices, budgets and alert targets; budgets are judged again at once.
  void SetConfig(CostConfig config);
  CostConfig config() const;
  std::vector<BudgetState> Budgets() const;
  // The stored totals for days in [from_day, to_day] (both "YYYY-MM-DD"), of one caller when `caller`
  // is set, by model and, when asked, by day and by caller (left empty otherwise). Flushes first, so
  // they include every charge made before. kFailedPrecondition past kMaxRows rows.
  static constexpr int64_t kMaxRows = 100'000;
  Result<std::vector<UsageRow>> Rows(const std::string& from_day, const std::string& to_day,
                                     const std::optional<std::string>& caller, bool by_day = true,
                                     bool by_caller = true);

  // The e-mail outbox: queued messages due at `now_ms`, and what an attempt came to (sent, or failed
  // for good, or to be tried again at `next_attempt_ms`).
  Result<std::vector<AlertMail>> DueMail(int64_t now_ms, size_t max);
  Status RecordMailAttempt(const std::string& id, bool sent, bool give_up, const std::string& error,
                           int64_t next_attempt_ms);
  // A mail's state for tests and the usage view: "queued", "sent" or "failed"; empty when unknown.
  Result<std::string> MailState(const std::string& id);

 private:
  using CellKey = std::tuple<std::string, std::string, std::string>;  // day, caller, model
  explicit UsageLedger(UsageLedgerOptions options) : options_(std::move(options)) {}
  Status Load();
  void FlushLoop();
  // Re-reads every budget's window and spend from the in-memory month; returns alerts now due.
  std::vector<BudgetAlert> RejudgeLocked(int64_t now);
  double SpendLocked(const Budget& b, const BudgetWindow& w) const;
  void CollectAlertsLocked(BudgetState& s, int64_t now, std::vector<BudgetAlert>* out);
  void Fire(const std::vector<BudgetAlert>& alerts);
  void FireDue();
  Status StoreAlert(const BudgetAlert& alert, const std::optional<EmailAlertTarget>& email);

  UsageLedgerOptions options_;
  mutable std::mutex mu_;
  CostConfig config_;
  std::string month_;                        // the month `month_cells_` holds
  std::map<CellKey, UsageUnits> month_cells_;  // this month's totals, written or not
  std::map<CellKey, UsageUnits> pending_;      // not yet written
  std::vector<BudgetState> states_;          // one per config_.budgets entry
  std::set<std::tuple<std::string, std::string, int>> fired_;  // budget, period, percent

  std::mutex db_mu_;  // the connection, one user at a time
  std::unique_ptr<SqliteDb> db_;

  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  std::vector<BudgetAlert> due_;  // fired by charges, for the flusher to hand on (under flush_mu_)
  bool stopping_ = false;
  std::thread flusher_;
};

}  // namespace ferry
