#include "api/usage_service.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include "common/json_writer.h"

namespace ferry {
namespace {

bool IsDay(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(std::stoi(s.substr(0, 4))),
                                        std::chrono::month(static_cast<unsigned>(std::stoi(s.substr(5, 2)))),
                                        std::chrono::day(static_cast<unsigned>(std::stoi(s.substr(8, 2))))};
  return ymd.ok();
}

void WriteUnits(JsonWriter& w, const UsageUnits& u, double cost) {
  w.Key("requests").Int(u.requests).Key("compute_us").Int(u.compute_us);
  w.Key("compute_seconds").Double(static_cast<double>(u.compute_us) / 1e6);
  w.Key("prompt_tokens").Int(u.prompt_tokens).Key("completion_tokens").Int(u.completion_tokens);
  w.Key("cost").Double(cost);
}

void WriteBudget(JsonWriter& w, const BudgetState& s, const std::string& currency) {
  const Budget& b = s.budget;
  w.BeginObject().Key("name").String(b.name);
  w.Key("key");
  b.key.empty() ? w.Null() : w.String(b.key);
  w.Key("model");
  b.model.empty() ? w.Null() : w.String(b.model);
  w.Key("period").String(BudgetPeriodName(b.period)).Key("window").String(s.window.id);
  w.Key("limit").Double(b.limit).Key("spent").Double(s.spent).Key("currency").String(currency);
  w.Key("fraction").Double(s.spent / b.limit);
  w.Key("cap").String(b.cap == BudgetCap::kHard ? "hard" : "soft").Key("capped").Bool(s.capped());
  w.Key("alerts").BeginArray();
  for (int p : b.alerts) w.Int(p);
  w.EndArray().Key("alerts_sent").BeginArray();
  for (int p : s.alerts_sent) w.Int(p);
  w.EndArray().Key("resets_at").String(IsoTimeOf(s.window.end_ms)).EndObject();
}

// Written whole beside the file (0600: it holds the webhook secret), synced, renamed over it, and the
// folder synced: after a crash or a power loss the file is the old one or the new one, never a part.
Status WriteFileDurably(const std::filesystem::path& path, std::string_view body) {
  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable(fmt::format("could not write {}: {}", tmp, std::strerror(errno)));
  size_t written = 0;
  while (written < body.size()) {
    const ssize_t n = ::write(fd, body.data() + written, body.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  const bool ok = written == body.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable(fmt::format("could not replace {}: {}", path.string(), std::strerror(errno)));
  }
  const std::string folder = path.has_parent_path() ? path.parent_path().string() : ".";
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> UsageService::UsageJson(const UsageQuery& query, const std::string& asker) {
  const bool everyone = asker == "(admin)" || asker == "(none)";
  if (!everyone && query.key && *query.key != asker) {
    return PermissionDenied("a key may see only its own usage");
  }
  const int64_t now = wall_clock_->NowUnixMs();
  const std::string to = query.to.value_or(DayOf(now));
  const std::string from = query.from.value_or(DayOf(now).substr(0, 8) + "01");
  if (!IsDay(from) || !IsDay(to)) return InvalidArgument("'from' and 'to' must be days, YYYY-MM-DD");
  if (from > to) return InvalidArgument("'from' is after 'to'");
  std::set<std::string> group;
  std::string group_text = query.group_by.value_or("key,model");
  for (size_t start = 0; start <= group_text.size();) {
    const size_t comma = std::min(group_text.find(',', start), group_text.size());
    const std::string g = group_text.substr(start, comma - start);
    if (g != "day" && g != "key" && g != "model") {
      return InvalidArgument(fmt::format("'group_by' takes day, key and model, not '{}'", g.substr(0, 32)));
    }
    group.insert(g);
    start = comma + 1;
  }
  const std::optional<std::string> only = everyone ? query.key : std::optional<std::string>(asker);
  if (std::stoi(to.substr(0, 4)) - std::stoi(from.substr(0, 4)) > 10) return InvalidArgument("ask for at most ten years");
  FERRY_ASSIGN_OR_RETURN(const std::vector<UsageRow> rows,
                         ledger_->Rows(from, to, only, group.count("day") > 0, group.count("key") > 0));
  const CostConfig config = ledger_->config();

  // Costs are priced per model, then summed into the groups asked for.
  std::map<std::tuple<std::string, std::string, std::string>, std::pair<UsageUnits, double>> grouped;
  UsageUnits total;
  double total_cost = 0;
  for (const UsageRow& r : rows) {
    const double cost = config.Cost(r.model, r.units);
    auto& cell = grouped[{group.count("day") ? r.day : "", group.count("key") ? r.caller : "",
                          group.count("model") ? r.model : ""}];
    cell.first += r.units;
    cell.second += cost;
    total += r.units;
    total_cost += cost;
  }
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("currency").String(config.currency).Key("from").String(from).Key("to").String(to);
  w.Key("group_by").BeginArray();
  for (const char* g : {"day", "key", "model"}) {
    if (group.count(g)) w.String(g);
  }
  w.EndArray().Key("total").BeginObject();
  WriteUnits(w, total, total_cost);
  w.EndObject().Key("rows").BeginArray();
  for (const auto& [k, cell] : grouped) {
    const auto& [day, caller, model] = k;
    w.BeginObject();
    if (group.count("day")) w.Key("day").String(day);
    if (group.count("key")) w.Key("key").String(caller);
    if (group.count("model")) w.Key("model").String(model);
    WriteUnits(w, cell.first, cell.second);
    w.EndObject();
  }
  w.EndArray().Key("budgets").BeginArray();
  for (const BudgetState& s : ledger_->Budgets()) {
    if (everyone || s.budget.key == asker) WriteBudget(w, s, config.currency);
  }
  w.EndArray().EndObject();
  return out;
}

std::string UsageService::ConfigJson() const {
  const CostConfig c = ledger_->config();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("file").String(config_path_.string()).Key("currency").String(c.currency);
  w.Key("prices").BeginObject();
  for (const auto& [model, p] : c.prices) {
    w.Key(model).BeginObject().Key("compute_second").Double(p.compute_second);
    w.Key("prompt_tokens_per_million").Double(p.prompt_tokens_per_million);
    w.Key("completion_tokens_per_million").Double(p.completion_tokens_per_million).EndObject();
  }
  w.EndObject().Key("budgets").BeginArray();
  for (const BudgetState& s : ledger_->Budgets()) WriteBudget(w, s, c.currency);
  w.EndArray().Key("alerts").BeginObject();
  if (c.webhook) w.Key("webhook").BeginObject().Key("url").String(c.webhook->url).EndObject();  // never the secret
  if (c.email) {
    w.Key("email").BeginObject().Key("smtp_url").String(c.email->smtp_url).Key("from").String(c.email->from);
    w.Key("to").BeginArray();
    for (const std::string& a : c.email->to) w.String(a);
    w.EndArray().EndObject();
  }
  w.EndObject().EndObject();
  return out;
}

Status UsageService::ReplaceConfig(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return InvalidArgument("an empty configuration; send {} for no prices and no budgets");
  }
  FERRY_ASSIGN_OR_RETURN(CostConfig config, ParseCostConfig(body));
  std::lock_guard lock(write_mu_);
  FERRY_RETURN_IF_ERROR(WriteFileDurably(config_path_, body));
  ledger_->SetConfig(std::move(config));
  return Status::Ok();
}

std::string UsageService::AlertJson(const BudgetAlert& a) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("type").String("budget.alert").Key("timestamp").String(IsoTimeOf(a.at_ms));
  w.Key("data").BeginObject().Key("id").String(a.id).Key("budget").String(a.budget.name);
  w.Key("key");
  a.budget.key.empty() ? w.Null() : w.String(a.budget.key);
  w.Key("model");
  a.budget.model.empty() ? w.Null() : w.String(a.budget.model);
  w.Key("period").String(BudgetPeriodName(a.budget.period)).Key("window").String(a.period);
  w.Key("percent").Int(a.percent).Key("spent").Double(a.spent).Key("limit").Double(a.budget.limit);
  w.Key("currency").String(a.currency).Key("cap").String(a.budget.cap == BudgetCap::kHard ? "hard" : "soft");
  w.Key("capped").Bool(a.budget.cap == BudgetCap::kHard && a.spent >= a.budget.limit);
  w.Key("resets_at").String(IsoTimeOf(a.resets_at_ms)).EndObject().EndObject();
  return out;
}

}  // namespace ferry
