#pragma once
// What compute costs and how much may be spent: the price table, the budgets and where their alerts
// go. Read from YAML (a file named by --costs, or a PUT to /v1/usage/config, in JSON, which YAML
// reads too); any bad entry refuses the whole configuration, naming the entry, so a server keeps the
// settings it had. Value types and pure functions. Thread-compatible.
//
//   currency: USD
//   prices:                              # per model; "*" prices every model not named
//     cnn: {compute_second: 0.002}
//     tiny_llm: {compute_second: 0.01, prompt_tokens_per_million: 0.5, completion_tokens_per_million: 1.5}
//     "*": {compute_second: 0.001}
//   budgets:
//     - name: reporting-daily            # unique; [A-Za-z0-9_.-], 1..64
//       key: reporting                   # the API key's name; omitted: every caller
//       model: cnn                       # omitted: every model
//       period: day                      # day | month (UTC)
//       limit: 5.00                      # in the currency
//       alerts: [50, 80, 100]            # percent of the limit; each sent once a period (default)
//       cap: hard                        # hard: 429 until the period ends; soft (default): alerts only
//   alerts:
//     webhook: {url: "https://ops.example.com/ferry", secret: "whsec_..."}   # signed, retried
//     email:                             # through an SMTP relay
//       smtp_url: "smtp://relay.example.com:587"   # smtp:// or smtps://
//       starttls: true                   # require STARTTLS on smtp:// (default false)
//       from: "ferry@example.com"
//       to: ["ops@example.com"]
//       username: ferry                  # optional, with password_env
//       password_env: FERRY_SMTP_PASSWORD
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ferry {

// What one request used.
struct UsageUnits {
  int64_t requests = 0;
  int64_t compute_us = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  UsageUnits& operator+=(const UsageUnits& o) {
    requests += o.requests;
    compute_us += o.compute_us;
    prompt_tokens += o.prompt_tokens;
    completion_tokens += o.completion_tokens;
    return *this;
  }
};

struct Price {
  double compute_second = 0;
  double prompt_tokens_per_million = 0;
  double completion_tokens_per_million = 0;
};

enum class BudgetPeriod { kDay, kMonth };
enum class BudgetCap { kSoft, kHard };
std::string_view BudgetPeriodName(BudgetPeriod p);

struct Budget {
  std::string name;
  std::string key;    // empty: every caller
  std::string model;  // empty: every model
  BudgetPeriod period = BudgetPeriod::kDay;
  double limit = 0;
  std::vector<int> alerts{50, 80, 100};  // ascending percentages
  BudgetCap cap = BudgetCap::kSoft;
  bool Covers(std::string_view caller, std::string_view model_name) const {
    return (key.empty() || key == caller) && (model.empty() || model == model_name);
  }
};

struct WebhookAlertTarget {
  std::string url;
  std::string secret;  // "whsec_" + base64, as job webhooks
};

struct EmailAlertTarget {
  std::string smtp_url;
  bool starttls = false;
  std::string from;
  std::vector<std::string> to;
  std::string username;
  std::string password_env;
};

struct CostConfig {
  std::string currency = "USD";
  std::map<std::string, Price> prices;
  std::vector<Budget> budgets;
  std::optional<WebhookAlertTarget> webhook;
  std::optional<EmailAlertTarget> email;

  // The model's price, else "*", else free.
  Price PriceOf(std::string_view model) const;
  double Cost(std::string_view model, const UsageUnits& units) const;
};

// kInvalidArgument naming the entry for anything malformed: unknown fields, negative or non-finite
// prices and limits, a period or cap not in the list, percentages outside 1..1000 or not ascending,
// duplicate budget names, an alert target without its parts.
Result<CostConfig> ParseCostConfig(std::string_view yaml);

}  // namespace ferry
