#include "usage/cost_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "jobs/webhook_signature.h"

namespace ferry {
namespace {

bool IsName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// A header value (an address, a subject) must not be able to start another header.
bool IsHeaderSafe(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

Result<std::string> GetString(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) return InvalidArgument(where + " must be a string");
  return n.as<std::string>();
}

Result<double> GetAmount(const YAML::Node& n, const std::string& where) {
  double v = 0;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !std::isfinite(v) || v < 0 || v > 1e12) {
    return InvalidArgument(where + " must be a number from 0 to 1e12");
  }
  return v;
}

// Every field of a map node is one of `known`.
Status OnlyFields(const YAML::Node& n, const std::string& where, std::initializer_list<std::string_view> known) {
  if (!n.IsMap()) return InvalidArgument(where + " must be a map");
  for (const auto& field : n) {
    const std::string name = field.first.as<std::string>();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return InvalidArgument(fmt::format("{}: unknown field '{}'", where, name.substr(0, 64)));
    }
  }
  return Status::Ok();
}

Result<Price> ParsePrice(const YAML::Node& n, const std::string& where) {
  FERRY_RETURN_IF_ERROR(OnlyFields(n, where, {"compute_second", "prompt_tokens_per_million",
                                              "completion_tokens_per_million"}));
  Price p;
  if (n["compute_second"]) {
    FERRY_ASSIGN_OR_RETURN(p.compute_second, GetAmount(n["compute_second"], where + ".compute_second"));
  }
  if (n["prompt_tokens_per_million"]) {
    FERRY_ASSIGN_OR_RETURN(p.prompt_tokens_per_million,
                           GetAmount(n["prompt_tokens_per_million"], where + ".prompt_tokens_per_million"));
  }
  if (n["completion_tokens_per_million"]) {
    FERRY_ASSIGN_OR_RETURN(p.completion_tokens_per_million,
                           GetAmount(n["completion_tokens_per_million"], where + ".completion_tokens_per_million"));
  }
  return p;
}

Result<std::vector<int>> ParseAlerts(const YAML::Node& n, const std::string& where) {
  if (!n.IsSequence()) return InvalidArgument(where + " must be a list of percentages");
  std::vector<int> out;
  for (const auto& item : n) {
    int pct = 0;
    if (!item.IsScalar() || !YAML::convert<int>::decode(item, pct) || pct < 1 || pct > 1000) {
      return InvalidArgument(where + ": each percentage must be a whole number from 1 to 1000");
    }
    if (!out.empty() && pct <= out.back()) return InvalidArgument(where + ": percentages must be ascending");
    out.push_back(pct);
  }
  return out;
}

Result<Budget> ParseBudget(const YAML::Node& n, size_t index) {
  std::string where = fmt::format("budgets[{}]", index);
  FERRY_RETURN_IF_ERROR(OnlyFields(n, where, {"name", "key", "model", "period", "limit", "alerts", "cap"}));
  Budget b;
  if (!n["name"]) return InvalidArgument(where + ": a budget needs a name");
  FERRY_ASSIGN_OR_RETURN(b.name, GetString(n["name"], where + ".name"));
  if (!IsName(b.name)) return InvalidArgument(where + ".name must be 1 to 64 of [A-Za-z0-9_.-]");
  where = fmt::format("budget '{}'", b.name);
  if (n["key"]) {
    FERRY_ASSIGN_OR_RETURN(b.key, GetString(n["key"], where + ".key"));
  }
  if (n["model"]) {
    FERRY_ASSIGN_OR_RETURN(b.model, GetString(n["model"], where + ".model"));
  }
  if (n["key"] && !IsName(b.key)) return InvalidArgument(where + ".key must name an API key");
  if (n["model"] && !IsName(b.model)) return InvalidArgument(where + ".model must name a model");
  if (!n["period"]) return InvalidArgument(where + ": a budget needs a period (day or month)");
  FERRY_ASSIGN_OR_RETURN(const std::string period, GetString(n["period"], where + ".period"));
  if (period == "day") {
    b.period = BudgetPeriod::kDay;
  } else if (period == "month") {
    b.period = BudgetPeriod::kMonth;
  } else {
    return InvalidArgument(where + ".period must be day or month");
  }
  if (!n["limit"]) return InvalidArgument(where + ": a budget needs a limit");
  FERRY_ASSIGN_OR_RETURN(b.limit, GetAmount(n["limit"], where + ".limit"));
  if (b.limit <= 0) return InvalidArgument(where + ".limit must be above 0");
  if (n["alerts"]) {
    FERRY_ASSIGN_OR_RETURN(b.alerts, ParseAlerts(n["alerts"], where + ".alerts"));
  }
  if (n["cap"]) {
    FERRY_ASSIGN_OR_RETURN(const std::string cap, GetString(n["cap"], where + ".cap"));
    if (cap != "hard" && cap != "soft") return InvalidArgument(where + ".cap must be hard or soft");
    b.cap = cap == "hard" ? BudgetCap::kHard : BudgetCap::kSoft;
  }
  return b;
}

Result<WebhookAlertTarget> ParseWebhook(const YAML::Node& n) {
  FERRY_RETURN_IF_ERROR(OnlyFields(n, "alerts.webhook", {"url", "secret"}));
  WebhookAlertTarget t;
  if (!n["url"] || !n["secret"]) return InvalidArgument("alerts.webhook needs a url and a secret");
  FERRY_ASSIGN_OR_RETURN(t.url, GetString(n["url"], "alerts.webhook.url"));
  FERRY_ASSIGN_OR_RETURN(t.secret, GetString(n["secret"], "alerts.webhook.secret"));
  if (!t.url.starts_with("http://") && !t.url.starts_with("https://")) {
    return InvalidArgument("alerts.webhook.url must be an http:// or https:// URL");
  }
  FERRY_RETURN_IF_ERROR(ParseWebhookSecret(t.secret).status().WithContext("alerts.webhook.secret"));
  return t;
}

Result<EmailAlertTarget> ParseEmail(const YAML::Node& n) {
  FERRY_RETURN_IF_ERROR(OnlyFields(n, "alerts.email", {"smtp_url", "starttls", "from", "to", "username", "password_env"}));
  EmailAlertTarget t;
  if (!n["smtp_url"] || !n["from"] || !n["to"]) return InvalidArgument("alerts.email needs smtp_url, from and to");
  FERRY_ASSIGN_OR_RETURN(t.smtp_url, GetString(n["smtp_url"], "alerts.email.smtp_url"));
  if (!t.smtp_url.starts_with("smtp://") && !t.smtp_url.starts_with("smtps://")) {
    return InvalidArgument("alerts.email.smtp_url must be an smtp:// or smtps:// URL");
  }
  if (n["starttls"] && (!n["starttls"].IsScalar() || !YAML::convert<bool>::decode(n["starttls"], t.starttls))) {
    return InvalidArgument("alerts.email.starttls must be true or false");
  }
  auto address = [](const std::string& a) { return a.size() <= 254 && a.find('@') != std::string::npos && IsHeaderSafe(a) && a.find_first_of("<>, ") == std::string::npos; };
  FERRY_ASSIGN_OR_RETURN(t.from, GetString(n["from"], "alerts.email.from"));
  if (!address(t.from)) return InvalidArgument("alerts.email.from must be one e-mail address");
  if (!n["to"].IsSequence() || n["to"].size() == 0 || n["to"].size() > 32) {
    return InvalidArgument("alerts.email.to must be a list of 1 to 32 addresses");
  }
  for (const auto& item : n["to"]) {
    FERRY_ASSIGN_OR_RETURN(std::string to, GetString(item, "alerts.email.to[]"));
    if (!address(to)) return InvalidArgument(fmt::format("alerts.email.to: '{}' is not an e-mail address", to.substr(0, 64)));
    t.to.push_back(std::move(to));
  }
  if (n["username"]) {
    FERRY_ASSIGN_OR_RETURN(t.username, GetString(n["username"], "alerts.email.username"));
  }
  if (n["password_env"]) {
    FERRY_ASSIGN_OR_RETURN(t.password_env, GetString(n["password_env"], "alerts.email.password_env"));
  }
  if (t.username.empty() != t.password_env.empty()) {
    return InvalidArgument("alerts.email: give username and password_env together");
  }
  const std::string_view rest = std::string_view(t.smtp_url).substr(t.smtp_url.find("://") + 3);
  if (rest.substr(0, rest.find('/')).find('@') != std::string_view::npos) {
    return InvalidArgument("alerts.email.smtp_url must not hold credentials: use username and password_env");
  }
  if (!t.username.empty() && !t.starttls && !t.smtp_url.starts_with("smtps://")) {
    return InvalidArgument("alerts.email: a login needs TLS (smtps:// or starttls: true)");
  }
  return t;
}

Result<CostConfig> ParseRoot(const YAML::Node& root) {
  CostConfig c;
  if (root.IsNull()) return c;
  FERRY_RETURN_IF_ERROR(OnlyFields(root, "the cost configuration", {"currency", "prices", "budgets", "alerts"}));
  if (root["currency"]) {
    FERRY_ASSIGN_OR_RETURN(c.currency, GetString(root["currency"], "currency"));
    if (c.currency.empty() || c.currency.size() > 8 || !IsName(c.currency)) {
      return InvalidArgument("currency must be a short code such as USD");
    }
  }
  if (const YAML::Node prices = root["prices"]) {
    if (!prices.IsMap()) return InvalidArgument("prices must be a map of model names to prices");
    for (const auto& entry : prices) {
      const std::string model = entry.first.as<std::string>();
      if (model != "*" && !IsName(model)) return InvalidArgument(fmt::format("prices: '{}' is not a model name", model.substr(0, 64)));
      FERRY_ASSIGN_OR_RETURN(c.prices[model], ParsePrice(entry.second, fmt::format("prices.{}", model)));
    }
  }
  if (const YAML::Node budgets = root["budgets"]) {
    if (!budgets.IsSequence()) return InvalidArgument("budgets must be a list");
    std::set<std::string> names;
    for (size_t i = 0; i < budgets.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(Budget b, ParseBudget(budgets[i], i));
      if (!names.insert(b.name).second) return InvalidArgument(fmt::format("budget '{}' is named twice", b.name));
      c.budgets.push_back(std::move(b));
    }
  }
  if (const YAML::Node alerts = root["alerts"]) {
    FERRY_RETURN_IF_ERROR(OnlyFields(alerts, "alerts", {"webhook", "email"}));
    if (alerts["webhook"]) {
      FERRY_ASSIGN_OR_RETURN(c.webhook, ParseWebhook(alerts["webhook"]));
    }
    if (alerts["email"]) {
      FERRY_ASSIGN_OR_RETURN(c.email, ParseEmail(alerts["email"]));
    }
  }
  return c;
}

}  // namespace

std::string_view BudgetPeriodName(BudgetPeriod p) { return p == BudgetPeriod::kDay ? "day" : "month"; }

Price CostConfig::PriceOf(std::string_view model) const {
  if (auto it = prices.find(std::string(model)); it != prices.end()) return it->second;
  if (auto it = prices.find("*"); it != prices.end()) return it->second;
  return {};
}

double CostConfig::Cost(std::string_view model, const UsageUnits& units) const {
  const Price p = PriceOf(model);
  return static_cast<double>(units.compute_us) / 1e6 * p.compute_second +
         static_cast<double>(units.prompt_tokens) / 1e6 * p.prompt_tokens_per_million +
         static_cast<double>(units.completion_tokens) / 1e6 * p.completion_tokens_per_million;
}

Result<CostConfig> ParseCostConfig(std::string_view yaml) {
  if (yaml.size() > 1 << 20) return InvalidArgument("the cost configuration is over 1 MiB");
  try {
    return ParseRoot(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("the cost configuration is not valid YAML: {}", e.what()));
  }
}

}  // namespace ferry
