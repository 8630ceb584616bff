#pragma once
// Cost accounting for the transports: GET /v1/usage (what was used and what it cost, by day, key and
// model, with every budget's state), GET and PUT /v1/usage/config (the price table, budgets and alert
// targets: a PUT is checked whole, written to the cost file and put in force, or refused with the
// previous settings kept), and the body of a budget alert's webhook. Thread-safe.
#include <filesystem>
#include <optional>
#include <string>

#include "usage/usage_ledger.h"

namespace ferry {

struct UsageQuery {
  std::optional<std::string> from;      // "YYYY-MM-DD"; default: the first day of this month (UTC)
  std::optional<std::string> to;        // default: today
  std::optional<std::string> group_by;  // comma list of day, key, model; default "key,model"
  std::optional<std::string> key;       // one caller's rows only
};

class UsageService {
 public:
  UsageService(UsageLedger* ledger, std::filesystem::path config_path, const WallClock* wall_clock = &WallClock::Real())
      : ledger_(ledger), config_path_(std::move(config_path)), wall_clock_(wall_clock) {}

  // `asker` is the caller asking: "(admin)" and "(none)" (keys off) see everyone; a key sees only its
  // own use and the budgets naming it (asking for another key's is kPermissionDenied).
  Result<std::string> UsageJson(const UsageQuery& query, const std::string& asker);
  std::string ConfigJson() const;
  Status ReplaceConfig(std::string_view body);

  // {"type":"budget.alert","timestamp":...,"data":{budget, key, model, period, window, percent, spent,
  // limit, currency, cap, capped, resets_at}}
  static std::string AlertJson(const BudgetAlert& alert);

 private:
  UsageLedger* ledger_;
  const std::filesystem::path config_path_;
  const WallClock* wall_clock_;
  std::mutex write_mu_;  // one PUT at a time
};

}  // namespace ferry
