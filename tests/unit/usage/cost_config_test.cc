#include "usage/cost_config.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

constexpr const char* kFull = R"(
currency: EUR
prices:
  cnn: {compute_second: 0.002}
  llm: {compute_second: 0.01, prompt_tokens_per_million: 0.5, completion_tokens_per_million: 1.5}
  "*": {compute_second: 0.001}
budgets:
  - {name: reporting-daily, key: reporting, period: day, limit: 5, alerts: [50, 80, 100], cap: hard}
  - {name: llm-monthly, model: llm, period: month, limit: 100}
alerts:
  webhook: {url: "https://ops.example.com/ferry", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
  email: {smtp_url: "smtp://relay.example.com:587", starttls: true, from: "ferry@example.com", to: ["ops@example.com"]}
)";

TEST(CostConfigTest, ReadsPricesBudgetsAndAlertTargets) {
  Result<CostConfig> c = ParseCostConfig(kFull);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->currency, "EUR");
  ASSERT_EQ(c->budgets.size(), 2u);
  EXPECT_EQ(c->budgets[0].key, "reporting");
  EXPECT_EQ(c->budgets[0].cap, BudgetCap::kHard);
  EXPECT_EQ(c->budgets[1].period, BudgetPeriod::kMonth);
  EXPECT_EQ(c->budgets[1].cap, BudgetCap::kSoft);                  // the default
  EXPECT_EQ(c->budgets[1].alerts, (std::vector<int>{50, 80, 100}));  // the default
  ASSERT_TRUE(c->webhook && c->email);
  EXPECT_TRUE(c->email->starttls);
}

TEST(CostConfigTest, CostIsComputeSecondsAndTokensAtTheModelsPriceElseTheDefault) {
  CostConfig c = ParseCostConfig(kFull).value();
  EXPECT_DOUBLE_EQ(c.Cost("cnn", UsageUnits{1, 500'000, 0, 0}), 0.001);
  EXPECT_DOUBLE_EQ(c.Cost("llm", UsageUnits{1, 1'000'000, 2'000'000, 1'000'000}), 0.01 + 1.0 + 1.5);
  EXPECT_DOUBLE_EQ(c.Cost("other", UsageUnits{1, 2'000'000, 5, 5}), 0.002);  // "*": no token prices
  EXPECT_DOUBLE_EQ(CostConfig{}.Cost("cnn", UsageUnits{1, 9'000'000, 0, 0}), 0.0);  // no table: free
}

TEST(CostConfigTest, ABudgetCoversItsKeyAndModelOrEveryoneWhenUnnamed) {
  Budget b;
  b.key = "k";
  EXPECT_TRUE(b.Covers("k", "any"));
  EXPECT_FALSE(b.Covers("other", "any"));
  b.model = "m";
  EXPECT_FALSE(b.Covers("k", "n"));
  EXPECT_TRUE(Budget{}.Covers("(none)", "x"));
}

TEST(CostConfigTest, AnEmptyDocumentIsNoPricesAndNoBudgets) {
  Result<CostConfig> c = ParseCostConfig("");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->budgets.empty());
  EXPECT_EQ(c->currency, "USD");
}

TEST(CostConfigTest, JsonIsReadToo) {
  Result<CostConfig> c = ParseCostConfig(
      R"({"prices": {"cnn": {"compute_second": 1}}, "budgets": [{"name": "b", "period": "day", "limit": 2}]})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->budgets.size(), 1u);
}

TEST(CostConfigTest, EveryMalformedEntryIsRefusedNamingIt) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"currency: [1]", "currency"},
      {"surprise: 1", "unknown field 'surprise'"},
      {"prices: [1]", "prices must be a map"},
      {"prices: {cnn: {compute_second: -1}}", "prices.cnn.compute_second"},
      {"prices: {cnn: {compute_second: .nan}}", "prices.cnn.compute_second"},
      {"prices: {cnn: {per_hour: 1}}", "unknown field 'per_hour'"},
      {"prices: {'a b': {compute_second: 1}}", "not a model name"},
      {"budgets: {name: x}", "budgets must be a list"},
      {"budgets: [{period: day, limit: 1}]", "needs a name"},
      {"budgets: [{name: 'x y', period: day, limit: 1}]", "budgets[0].name"},
      {"budgets: [{name: b, period: week, limit: 1}]", "period must be day or month"},
      {"budgets: [{name: b, period: day}]", "needs a limit"},
      {"budgets: [{name: b, period: day, limit: 0}]", "limit must be above 0"},
      {"budgets: [{name: b, period: day, limit: abc}]", "limit must be a number"},
      {"budgets: [{name: b, period: day, limit: 1, alerts: [80, 50]}]", "ascending"},
      {"budgets: [{name: b, period: day, limit: 1, alerts: [0]}]", "1 to 1000"},
      {"budgets: [{name: b, period: day, limit: 1, cap: maybe}]", "cap must be hard or soft"},
      {"budgets: [{name: b, period: day, limit: 1}, {name: b, period: month, limit: 2}]", "named twice"},
      {"alerts: {webhook: {url: 'ftp://x', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'}}", "http:// or https://"},
      {"alerts: {webhook: {url: 'http://x/a', secret: 'nope'}}", "alerts.webhook.secret"},
      {"alerts: {email: {smtp_url: 'http://x', from: a@b, to: [c@d]}}", "smtp:// or smtps://"},
      {"alerts: {email: {smtp_url: 'smtp://x', from: a@b, to: []}}", "1 to 32 addresses"},
      {"alerts: {email: {smtp_url: 'smtp://x', from: \"a@b\\r\\nBcc: e@f\", to: [c@d]}}", "one e-mail address"},
      {"alerts: {email: {smtp_url: 'smtp://x', from: a@b, to: [nobody]}}", "not an e-mail address"},
      {"alerts: {email: {smtp_url: 'smtp://x', from: a@b, to: [c@d], username: u}}", "together"},
      {"alerts: {email: {smtp_url: 'smtp://u:p@x', from: a@b, to: [c@d]}}", "must not hold credentials"},
      {"alerts: {email: {smtp_url: 'smtp://x', from: a@b, to: [c@d], username: u, password_env: P}}", "needs TLS"},
      {"budgets: [", "not valid YAML"},
  };
  for (const auto& [text, expected] : cases) {
    Result<CostConfig> c = ParseCostConfig(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(c.status().message().find(expected), std::string::npos) << text << " -> " << c.status().message();
  }
}

}  // namespace
}  // namespace ferry
