#include "schedules/schedule.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <charconv>
#include <set>

#include "schedules/civil_time.h"

namespace ferry {
namespace {

constexpr std::string_view kBatchKeys[] = {"model", "endpoint", "format", "output", "output_format", "publish_table",
                                           "priority"};

bool IsBatchKey(std::string_view key) {
  for (std::string_view k : kBatchKeys) {
    if (k == key) return true;
  }
  return false;
}

const std::string* Find(const DefinitionFields& f, std::string_view key) {
  auto it = f.find(key);
  return it == f.end() ? nullptr : &it->second;
}

Status CheckKeys(const DefinitionFields& fields, std::initializer_list<std::string_view> own) {
  for (const auto& [key, value] : fields) {
    bool known = IsBatchKey(key) || key == "name" || key == "description";
    for (std::string_view k : own) known = known || k == key;
    if (!known) return InvalidArgument(fmt::format("unknown key '{}'", key.substr(0, 64)));
  }
  return Status::Ok();
}

Result<int64_t> Integer(std::string_view key, const std::string& text, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
    return InvalidArgument(fmt::format("'{}' must be an integer within {}..{}", key, lo, hi));
  }
  return v;
}

bool HasGlob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

bool HasDotDot(std::string_view path) {
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const std::string_view part = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part == "..") return true;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return false;
}

// A wildcard in a part that starts with '.' would match ".." (glob's `.*`).
bool HasDotWildcard(std::string_view path) {
  size_t start = 0;
  while (start < path.size()) {
    const size_t slash = path.find('/', start);
    const std::string_view part = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!part.empty() && part.front() == '.' && HasGlob(part)) return true;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return false;
}

Status CheckPath(std::string_view key, std::string_view pattern, bool file_names) {
  if (HasDotDot(pattern)) return PermissionDenied(fmt::format("'{}' must not contain '..'", key));
  if (HasDotWildcard(pattern)) {
    return PermissionDenied(fmt::format("'{}' must not have a wildcard in a part starting with '.'", key));
  }
  Result<std::string> expanded = ExpandPattern(pattern, {"2026-01-01", "0000", "x", "x"}, file_names);
  if (!expanded.ok()) return InvalidArgument(fmt::format("'{}': {}", key, expanded.status().message()));
  return Status::Ok();
}

Result<BatchTemplate> ParseBatch(const DefinitionFields& fields) {
  BatchTemplate b;
  for (auto [key, out] : {std::pair{"model", &b.model}, {"endpoint", &b.endpoint}, {"format", &b.format},
                          {"output", &b.output}, {"output_format", &b.output_format},
                          {"publish_table", &b.publish_table}}) {
    if (const std::string* v = Find(fields, key)) *out = *v;
  }
  if (const std::string* v = Find(fields, "priority")) {
    FERRY_ASSIGN_OR_RETURN(b.priority, Integer("priority", *v, -1000, 1000));
  }
  if (b.model.empty() && b.endpoint.empty()) return InvalidArgument("'model' is required");
  if (!b.format.empty() && b.format != "oip" && b.format != "csv" && b.format != "files" && b.format != "openai") {
    return InvalidArgument(fmt::format("format must be oip, csv, files or openai, not '{}'", b.format.substr(0, 32)));
  }
  if (!b.output_format.empty() && b.output_format != "jsonl" && b.output_format != "csv") {
    return InvalidArgument(fmt::format("output_format must be jsonl or csv, not '{}'", b.output_format.substr(0, 32)));
  }
  FERRY_RETURN_IF_ERROR(CheckPath("output", b.output, true));
  return b;
}

}  // namespace

Status CheckScheduleName(std::string_view name) {
  if (name.empty() || name.size() > 64) return InvalidArgument("'name' must be 1..64 characters");
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return InvalidArgument(fmt::format("'name' may hold letters, digits, '-', '_' and '.', not '{}'", name.substr(0, 64)));
    }
  }
  if (name.front() == '.') return InvalidArgument("'name' must not start with '.'");
  return Status::Ok();
}

bool IsTriggerDefinition(const DefinitionFields& fields) { return fields.count("watch") != 0; }

Result<ScheduleSpec> ParseSchedule(const DefinitionFields& fields, const std::filesystem::path& zoneinfo) {
  FERRY_RETURN_IF_ERROR(CheckKeys(fields, {"cron", "time_zone", "input", "missed", "overlap", "grace_seconds"}));
  ScheduleSpec s;
  if (const std::string* v = Find(fields, "name")) s.name = *v;
  FERRY_RETURN_IF_ERROR(CheckScheduleName(s.name));
  const std::string* cron = Find(fields, "cron");
  if (cron == nullptr) return InvalidArgument("'cron' is required");
  FERRY_ASSIGN_OR_RETURN(s.cron, CronExpression::Parse(*cron));
  if (const std::string* v = Find(fields, "time_zone")) {
    FERRY_ASSIGN_OR_RETURN(s.zone, TimeZone::Load(*v, zoneinfo));
  }
  FERRY_ASSIGN_OR_RETURN(s.batch, ParseBatch(fields));
  const std::string* input = Find(fields, "input");
  if (input == nullptr || input->empty()) return InvalidArgument("'input' is required");
  s.batch.input = *input;
  FERRY_RETURN_IF_ERROR(CheckPath("input", s.batch.input, false));
  if (HasGlob(s.batch.input) && !s.batch.output.empty() && s.batch.output.find("{name}") == std::string::npos &&
      s.batch.output.find("{stem}") == std::string::npos) {
    return InvalidArgument("'input' is a glob, so 'output' needs {name} or {stem} (one batch runs per file)");
  }
  // Outputs of consecutive slots must differ, or every slot after the first finds its output taken.
  if (!s.batch.output.empty()) {
    const std::optional<int64_t> a = NextSlot(s.cron, s.zone, 1'796'169'600);
    const std::optional<int64_t> b = a ? NextSlot(s.cron, s.zone, *a) : std::nullopt;
    auto output_of = [&](int64_t slot) {
      Result<std::string> out = ExpandPattern(s.batch.output, SlotValues(s.zone, slot), true);
      return out.ok() ? *out : std::string();
    };
    if (a && b && output_of(*a) == output_of(*b)) {
      return InvalidArgument("'output' names the same file for consecutive slots: give it {date} (and {time} "
                             "when slots share a day)");
    }
  }
  if (const std::string* v = Find(fields, "missed")) {
    if (*v != "skip" && *v != "run_once") return InvalidArgument("'missed' must be skip or run_once");
    s.missed = *v == "skip" ? MissedPolicy::kSkip : MissedPolicy::kRunOnce;
  }
  if (const std::string* v = Find(fields, "overlap")) {
    if (*v != "skip" && *v != "allow") return InvalidArgument("'overlap' must be skip or allow");
    s.overlap = *v == "skip" ? OverlapPolicy::kSkip : OverlapPolicy::kAllow;
  }
  if (const std::string* v = Find(fields, "grace_seconds")) {
    FERRY_ASSIGN_OR_RETURN(s.grace_seconds, Integer("grace_seconds", *v, 0, 7 * 86400));
  }
  return s;
}

Result<TriggerSpec> ParseTrigger(const DefinitionFields& fields) {
  FERRY_RETURN_IF_ERROR(CheckKeys(fields, {"watch", "pattern", "complete"}));
  TriggerSpec t;
  if (const std::string* v = Find(fields, "name")) t.name = *v;
  FERRY_RETURN_IF_ERROR(CheckScheduleName(t.name));
  t.watch = *Find(fields, "watch");
  if (t.watch.empty()) return InvalidArgument("'watch' must name a folder under the input root");
  if (HasDotDot(t.watch) || HasGlob(t.watch)) return PermissionDenied("'watch' must be a plain folder path without '..'");
  if (const std::string* v = Find(fields, "pattern")) {
    if (v->empty() || v->find('/') != std::string::npos) return InvalidArgument("'pattern' matches names, without '/'");
    t.pattern = *v;
  }
  if (const std::string* v = Find(fields, "complete")) {
    if (*v != "renamed" && *v != "marker") return InvalidArgument("'complete' must be renamed or marker");
    t.complete = *v == "renamed" ? CompleteWhen::kRenamed : CompleteWhen::kMarker;
  }
  FERRY_ASSIGN_OR_RETURN(t.batch, ParseBatch(fields));
  if (!t.batch.output.empty() && t.batch.output.find("{name}") == std::string::npos &&
      t.batch.output.find("{stem}") == std::string::npos) {
    return InvalidArgument("a trigger's 'output' needs {name} or {stem} (one batch runs per file)");
  }
  return t;
}

Result<std::string> ExpandPattern(std::string_view pattern, const PatternValues& values, bool allow_file_names) {
  std::string out;
  size_t i = 0;
  while (i < pattern.size()) {
    const size_t open = pattern.find('{', i);
    out.append(pattern.substr(i, open == std::string_view::npos ? std::string_view::npos : open - i));
    if (open == std::string_view::npos) break;
    const size_t close = pattern.find('}', open);
    if (close == std::string_view::npos) return InvalidArgument("a '{' is never closed");
    const std::string_view key = pattern.substr(open + 1, close - open - 1);
    if (key == "date") {
      out += values.date;
    } else if (key == "time") {
      out += values.time;
    } else if (allow_file_names && key == "name") {
      out += values.name;
    } else if (allow_file_names && key == "stem") {
      out += values.stem;
    } else {
      return InvalidArgument(fmt::format("unknown placeholder {{{}}} (known: {{date}} {{time}}{})", key.substr(0, 32),
                                         allow_file_names ? " {name} {stem}" : ""));
    }
    i = close + 1;
  }
  return out;
}

PatternValues SlotValues(const TimeZone& zone, int64_t slot) {
  const CivilMinute m = CivilMinute::FromSeconds(zone.ToLocal(slot));
  return PatternValues{FormatCivilDate(m.days), fmt::format("{:02}{:02}", m.minute_of_day / 60, m.minute_of_day % 60), "", ""};
}

std::optional<int64_t> NextSlot(const CronExpression& cron, const TimeZone& zone, int64_t after) {
  CivilMinute cursor = CivilMinute::FromSeconds(zone.ToLocal(after));
  // Where clocks fall back, the wall clock repeats: minutes already passed once are looked at again
  // and their first instant is not after `after`; a day of such misses at most.
  for (int guard = 0; guard < 4000; ++guard) {
    std::optional<CivilMinute> next = cron.NextAfter(cursor);
    if (!next) return std::nullopt;
    const TimeZone::Resolved r = zone.FromLocal(next->Seconds());
    if (r.first > after) return r.first;
    cursor = *next;
  }
  return std::nullopt;
}

SlotDecision DecideSlots(const ScheduleSpec& spec, int64_t last, int64_t now) {
  SlotDecision d;
  int64_t due = 0;
  int64_t cursor = last;
  // A schedule every minute left for a year has half a million slots due: past a bound, skip ahead to
  // the last day before `now` (the count of missed slots is then a lower bound).
  constexpr int64_t kCountBound = 20'000;
  while (true) {
    std::optional<int64_t> next = NextSlot(spec.cron, spec.zone, cursor);
    if (!next || *next > now) break;
    ++due;
    d.latest_due = *next;
    cursor = *next;
    if (due == kCountBound && cursor < now - 86400) cursor = now - 86400;
  }
  if (!d.latest_due) return d;
  const bool on_time = now - *d.latest_due <= spec.grace_seconds;
  if (on_time || spec.missed == MissedPolicy::kRunOnce) {
    d.fire = d.latest_due;
    d.missed = due - 1;
  } else {
    d.missed = due;
  }
  return d;
}

std::string DerivedBatchId(std::initializer_list<std::string_view> parts) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (std::string_view p : parts) {
    EVP_DigestUpdate(ctx, p.data(), p.size());
    EVP_DigestUpdate(ctx, "\0", 1);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  std::string id = "batch_";
  for (int i = 0; i < 12; ++i) id += fmt::format("{:02x}", digest[i]);
  return id;
}

std::string_view MissedPolicyName(MissedPolicy p) { return p == MissedPolicy::kSkip ? "skip" : "run_once"; }
std::string_view OverlapPolicyName(OverlapPolicy p) { return p == OverlapPolicy::kSkip ? "skip" : "allow"; }

}  // namespace ferry
