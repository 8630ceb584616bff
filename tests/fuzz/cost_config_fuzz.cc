// What cost accounting parses: the cost configuration (YAML or JSON, from --costs or a PUT to
// /v1/usage/config) and the query of GET /v1/usage. The first byte picks one. Neither may crash; a
// configuration is accepted whole (its prices give finite, non-negative costs) or refused as invalid,
// and a query is answered as JSON or refused with a 4xx code.
#include <cmath>
#include <cstdint>
#include <string>

#include "api/usage_service.h"
#include "fuzz_check.h"

namespace {

ferry::UsageLedger* Ledger() {
  static ferry::UsageLedger* ledger = [] {
    ferry::UsageLedgerOptions options;
    options.path = ":memory:";
    options.flush_every = std::chrono::milliseconds(0);
    auto opened = ferry::UsageLedger::Open(std::move(options), ferry::CostConfig{});
    fuzz::Check(opened.ok(), "an in-memory ledger opens");
    opened.value()->Charge(ferry::UsageCharge{"k", "m", ferry::UsageUnits{1, 1000, 2, 3}});
    return opened.value().release();
  }();
  return ledger;
}

std::optional<std::string> Field(const std::string& text, size_t* pos) {
  if (*pos > text.size()) return std::nullopt;
  const size_t nl = std::min(text.find('\n', *pos), text.size());
  std::string v = text.substr(*pos, nl - *pos);
  *pos = nl + 1;
  if (v == "-") return std::nullopt;  // "-" leaves the field out
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    ferry::Result<ferry::CostConfig> config = ferry::ParseCostConfig(rest);
    if (!config.ok()) {
      fuzz::Check(config.status().code() == ferry::StatusCode::kInvalidArgument, "a bad configuration is invalid");
      return 0;
    }
    for (const auto& [model, price] : config->prices) {
      const double cost = config->Cost(model, ferry::UsageUnits{1, 1'000'000'000, 1'000'000, 1'000'000});
      fuzz::Check(std::isfinite(cost) && cost >= 0, "prices give finite, non-negative costs");
    }
    for (const ferry::Budget& b : config->budgets) fuzz::Check(b.limit > 0 && std::isfinite(b.limit), "limits are positive");
    return 0;
  }
  ferry::UsageQuery query;
  size_t pos = 0;
  query.from = Field(rest, &pos);
  query.to = Field(rest, &pos);
  query.group_by = Field(rest, &pos);
  query.key = Field(rest, &pos);
  const std::string asker = Field(rest, &pos).value_or("(admin)");
  ferry::UsageService service(Ledger(), "/nonexistent/costs.yaml");
  ferry::Result<std::string> answer = service.UsageJson(query, asker);
  if (answer.ok()) {
    fuzz::Check(!answer->empty() && answer->front() == '{' && answer->back() == '}', "an answer is a JSON object");
  } else {
    const ferry::StatusCode c = answer.status().code();
    fuzz::Check(c == ferry::StatusCode::kInvalidArgument || c == ferry::StatusCode::kPermissionDenied,
                "a refused query is the caller's fault");
  }
  return 0;
}
