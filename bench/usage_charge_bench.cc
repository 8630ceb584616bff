// What cost accounting adds to each answered request: one UsageLedger::Charge (a map update under the
// ledger's mutex, and each budget covering the caller judged), alone and from several threads at
// once, with no budget and with three. The flusher runs as in the server (every 250 ms).
#include <benchmark/benchmark.h>

#include <filesystem>

#include "usage/usage_ledger.h"

namespace {

ferry::UsageLedger* Ledger(bool budgets) {
  static ferry::UsageLedger* with[2] = {nullptr, nullptr};
  if (with[budgets] == nullptr) {
    ferry::UsageLedgerOptions options;
    options.path = std::filesystem::temp_directory_path() / (budgets ? "ferry-bench-usage-b.db" : "ferry-bench-usage.db");
    std::filesystem::remove(options.path);
    ferry::CostConfig config;
    if (budgets) {
      config = ferry::ParseCostConfig(
                   "prices: {\"*\": {compute_second: 0.000001}}\nbudgets:\n"
                   "  - {name: a, key: k0, period: day, limit: 1e9}\n  - {name: b, model: m, period: month, limit: 1e9}\n"
                   "  - {name: c, period: day, limit: 1e9, cap: hard}\n")
                   .value();
    }
    with[budgets] = ferry::UsageLedger::Open(std::move(options), std::move(config)).value().release();
  }
  return with[budgets];
}

void BM_Charge(benchmark::State& state) {
  ferry::UsageLedger* ledger = Ledger(state.range(0) != 0);
  const ferry::UsageCharge charge{"k" + std::to_string(state.thread_index() % 4), "m", ferry::UsageUnits{1, 120, 0, 0}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(ledger->Admit(charge.caller, charge.model));
    ledger->Charge(charge);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Charge)->Arg(0)->Arg(1)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
