#include "schedules/schedule_runner.h"

#include <fmt/format.h>
#include <glob.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/json_writer.h"
#include "common/path_within.h"
#include "schedules/civil_time.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxInputsPerSlot = 1000;

Result<std::vector<fs::path>> Glob(const fs::path& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), GLOB_ERR, nullptr, &g);
  std::vector<fs::path> out;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  globfree(&g);
  if (rc != 0 && rc != GLOB_NOMATCH) return Unavailable(fmt::format("cannot read the folders of '{}'", pattern.string()));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

ScheduleRunner::ScheduleRunner(SqliteScheduleStore* store, BatchLauncher launcher, ScheduleRunnerOptions options,
                               ScheduleRunnerObserver observer)
    : store_(store), launcher_(std::move(launcher)), options_(std::move(options)), observer_(std::move(observer)) {}

ScheduleRunner::~ScheduleRunner() { Stop(); }

Status ScheduleRunner::LoadStored() {
  FERRY_ASSIGN_OR_RETURN(std::vector<ScheduleRecord> records, store_->List());
  for (const ScheduleRecord& r : records) {
    if (r.source != "api") continue;
    Result<DefinitionFields> fields = ParseDefinitionYaml(r.definition_yaml);
    Result<ScheduleView> added = fields.ok() ? Add(*fields, "stored") : Result<ScheduleView>(fields.status());
    if (!added.ok()) {
      spdlog::error("schedule '{}' (made through the API) no longer runs: {}", r.name, added.status().message());
      Refuse(r.name, added.status().message());
    }
  }
  return Status::Ok();
}

Result<ScheduleSpec> ScheduleRunner::Validate(const DefinitionFields& fields, const std::string& source) {
  FERRY_ASSIGN_OR_RETURN(ScheduleSpec spec, ParseSchedule(fields, options_.zoneinfo));
  // The input's folder must lie under the input root, whatever the placeholders become.
  FERRY_ASSIGN_OR_RETURN(const std::string probe, ExpandPattern(spec.batch.input, SlotValues(spec.zone, 0), false));
  FERRY_RETURN_IF_ERROR(PathUnderRoot(options_.input_root, probe, "input").status());
  FERRY_RETURN_IF_ERROR(
      CheckLaunchable(launcher_, spec.batch, /*loading_ok=*/source != "api", fmt::format("schedule '{}'", spec.name)));
  return spec;
}

Result<ScheduleView> ScheduleRunner::Add(const DefinitionFields& fields, const std::string& source) {
  FERRY_ASSIGN_OR_RETURN(ScheduleSpec spec, Validate(fields, source));
  {
    std::lock_guard lock(mu_);
    if (entries_.count(spec.name)) {
      return Status(StatusCode::kAlreadyExists, fmt::format("a schedule named '{}' exists already", spec.name));
    }
  }
  const int64_t now = options_.clock->NowUnixMs() / 1000;
  const std::string yaml = DefinitionYaml(fields);
  Result<ScheduleRecord> record = NotFound(fmt::format("schedule '{}' is no longer stored", spec.name));
  if (source == "api") {
    record = store_->Insert(spec.name, "api", yaml, now);
  } else if (source == "file") {
    FERRY_ASSIGN_OR_RETURN(std::optional<ScheduleRecord> stored, store_->Get(spec.name));
    if (stored && stored->source == "api") {
      return Status(StatusCode::kAlreadyExists,
                    fmt::format("a schedule named '{}' was made through the API; delete it or rename the file", spec.name));
    }
    record = store_->Upsert(spec.name, "file", yaml, now);
  } else {
    FERRY_ASSIGN_OR_RETURN(std::optional<ScheduleRecord> stored, store_->Get(spec.name));
    if (stored) record = *stored;
  }
  if (!record.ok()) return record.status();
  {
    std::lock_guard lock(mu_);
    entries_[spec.name] = Entry{spec, fields, source == "stored" ? "api" : source};
    refused_.erase(spec.name);
    wake_ = true;
  }
  cv_.notify_all();
  ScheduleView view{spec, fields, *record, NextSlot(spec.cron, spec.zone, std::max(now, record->last_slot))};
  if (observer_.next_run) observer_.next_run(spec.name, view.next);
  return view;
}

Status ScheduleRunner::ForgetRemovedFileSchedules() {
  FERRY_ASSIGN_OR_RETURN(std::vector<ScheduleRecord> records, store_->List());
  for (const ScheduleRecord& r : records) {
    bool known = r.source != "file";
    {
      std::lock_guard lock(mu_);
      known = known || entries_.count(r.name) || refused_.count(r.name);
    }
    if (!known) {
      spdlog::info("schedule '{}': its definition file is gone; its state is dropped", r.name);
      FERRY_RETURN_IF_ERROR(store_->Delete(r.name));
    }
  }
  return Status::Ok();
}

Status ScheduleRunner::Remove(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end() && !refused_.count(name)) return NotFound(fmt::format("no schedule '{}'", name.substr(0, 64)));
    if (it != entries_.end() && it->second.source == "file") {
      return FailedPrecondition(fmt::format("schedule '{}' comes from a definition file: remove the file", name));
    }
    // Out of the runner before the store, so that no evaluation starts its slots.
    if (it != entries_.end()) entries_.erase(it);
    refused_.erase(name);
  }
  Status s = store_->Delete(name);
  return s.code() == StatusCode::kNotFound ? Status::Ok() : s;  // a refused one may have no row
}

// The entry with its stored state; nullopt when it was removed meanwhile.
Result<std::optional<ScheduleView>> ScheduleRunner::View(const Entry& e, int64_t now) {
  FERRY_ASSIGN_OR_RETURN(std::optional<ScheduleRecord> r, store_->Get(e.spec.name));
  if (!r) return std::optional<ScheduleView>();
  return std::optional<ScheduleView>(
      ScheduleView{e.spec, e.fields, *r, NextSlot(e.spec.cron, e.spec.zone, std::max(now, r->last_slot))});
}

Result<std::vector<ScheduleView>> ScheduleRunner::List() {
  std::vector<Entry> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) entries.push_back(e);
  }
  const int64_t now = options_.clock->NowUnixMs() / 1000;
  std::vector<ScheduleView> out;
  for (const Entry& e : entries) {
    FERRY_ASSIGN_OR_RETURN(std::optional<ScheduleView> v, View(e, now));
    if (v) out.push_back(std::move(*v));
  }
  return out;
}

Result<ScheduleView> ScheduleRunner::Get(const std::string& name) {
  std::optional<Entry> entry;
  {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(name); it != entries_.end()) entry = it->second;
  }
  std::optional<ScheduleView> v;
  if (entry) {
    FERRY_ASSIGN_OR_RETURN(v, View(*entry, options_.clock->NowUnixMs() / 1000));
  }
  if (!v) return NotFound(fmt::format("no schedule '{}'", name.substr(0, 64)));
  return std::move(*v);
}

std::vector<std::pair<std::string, std::string>> ScheduleRunner::Refused() const {
  std::lock_guard lock(mu_);
  return {refused_.begin(), refused_.end()};
}

void ScheduleRunner::Refuse(const std::string& name, const std::string& reason) {
  std::lock_guard lock(mu_);
  refused_[name] = reason;
}

Result<std::vector<BatchOrder>> ScheduleRunner::Orders(const ScheduleSpec& spec, int64_t slot) const {
  PatternValues values = SlotValues(spec.zone, slot);
  FERRY_ASSIGN_OR_RETURN(std::string input, ExpandPattern(spec.batch.input, values, false));
  FERRY_ASSIGN_OR_RETURN(fs::path full, PathUnderRoot(options_.input_root, input, "input"));
  std::vector<fs::path> inputs;
  if (input.find_first_of("*?[") != std::string::npos) {
    FERRY_ASSIGN_OR_RETURN(std::vector<fs::path> matches, Glob(full));
    // A match reached through a link out of the root is not an input, and is not named either.
    std::error_code ec;
    const fs::path root = fs::canonical(options_.input_root, ec);
    for (const fs::path& m : matches) {
      const fs::path real = fs::canonical(m, ec);
      if (!ec && IsPathWithin(real, root)) inputs.push_back(m);
    }
    if (inputs.size() > kMaxInputsPerSlot) {
      return InvalidArgument(fmt::format("'{}' matches {} inputs, over the {} a slot may start", input, inputs.size(),
                                         kMaxInputsPerSlot));
    }
  } else {
    std::error_code ec;
    if (fs::exists(full, ec)) inputs.push_back(full);
  }
  std::vector<BatchOrder> orders;
  const std::string slot_text = FormatCivilMinute(CivilMinute::FromSeconds(spec.zone.ToLocal(slot)));
  for (const fs::path& path : inputs) {
    BatchOrder o;
    o.id = DerivedBatchId({"schedule", spec.name, std::to_string(slot), path.string()});
    o.batch = spec.batch;
    o.batch.input = path.string();
    values.name = path.filename().string();
    values.stem = path.stem().string();
    FERRY_ASSIGN_OR_RETURN(o.batch.output, ExpandPattern(spec.batch.output, values, true));
    JsonWriter w(&o.metadata_json);
    w.BeginObject().Key("schedule").String(spec.name).Key("slot").String(slot_text);
    w.Key("slot_unix").Int(slot).EndObject();
    orders.push_back(std::move(o));
  }
  return orders;
}

Result<bool> ScheduleRunner::StillRunning(const std::string& batches) {
  for (const std::string& id : ScheduleRecord::SplitBatches(batches)) {
    FERRY_ASSIGN_OR_RETURN(bool running, launcher_.running(id));
    if (running) return true;
  }
  return false;
}

int64_t ScheduleRunner::EvaluateOne(const Entry& e, int64_t now) {
  const std::string& name = e.spec.name;
  Result<std::optional<ScheduleRecord>> record = store_->Get(name);
  if (!record.ok() || !*record) return now;  // a store error: decided at the next evaluation
  const int64_t last = (*record)->last_slot;
  const SlotDecision d = DecideSlots(e.spec, last, now);
  if (!d.latest_due) return last;
  ScheduleTick tick;
  tick.last_slot = *d.latest_due;
  tick.misses = d.missed;
  if (d.fire) {
    Result<bool> busy = e.spec.overlap == OverlapPolicy::kSkip ? StillRunning((*record)->last_batches) : false;
    if (!busy.ok()) return last;
    if (*busy) {
      tick.skips = 1;
    } else {
      std::vector<std::string> ids;
      std::string error;
      Result<std::vector<BatchOrder>> orders = Orders(e.spec, *d.fire);
      if (!orders.ok()) error = orders.status().message();
      for (const BatchOrder& o : orders.ok() ? *orders : std::vector<BatchOrder>{}) {
        if (stopping_) return last;  // the slot is decided again at the next start; ids keep it once
        Result<bool> made = launcher_.launch(o);
        if (made.ok()) {
          ids.push_back(o.id);
        } else if (made.status().code() == StatusCode::kUnavailable) {
          return last;  // the store or a model is not ready: the slot is decided again at the next look
        } else {
          error = fmt::format("{}: {}", o.batch.input, made.status().message());
        }
      }
      if (orders.ok() && orders->empty()) error = fmt::format("no input matched '{}'", e.spec.batch.input);
      tick.fired_slot = *d.fire;
      tick.batches = fmt::format("{}", fmt::join(ids, ","));
      tick.fires = ids.empty() ? 0 : 1;
      tick.error = error;
    }
  }
  if (Status s = store_->RecordTick(name, tick); !s.ok()) {
    spdlog::warn("schedule '{}': cannot record slot {}: {}", name, tick.last_slot, s.message());
    return last;
  }
  if (!tick.error.empty()) spdlog::warn("schedule '{}': {}", name, tick.error);
  if (observer_.ticked) {
    if (tick.fires) observer_.ticked(name, "fired", tick.fires);
    if (tick.fired_slot && !tick.fires) observer_.ticked(name, "failed", 1);
    if (tick.misses) observer_.ticked(name, "missed", tick.misses);
    if (tick.skips) observer_.ticked(name, "skipped", tick.skips);
  }
  return tick.last_slot;
}

std::optional<int64_t> ScheduleRunner::Evaluate() {
  std::lock_guard evaluating(evaluate_mu_);
  std::vector<Entry> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) entries.push_back(e);
  }
  const int64_t now = options_.clock->NowUnixMs() / 1000;
  std::optional<int64_t> earliest;
  for (const Entry& e : entries) {
    const int64_t last = EvaluateOne(e, now);
    const std::optional<int64_t> next = NextSlot(e.spec.cron, e.spec.zone, std::max(now, last));
    if (observer_.next_run) observer_.next_run(e.spec.name, next);
    if (next && (!earliest || *next < *earliest)) earliest = next;
  }
  return earliest;
}

void ScheduleRunner::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void ScheduleRunner::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ScheduleRunner::Loop() {
  while (true) {
    std::optional<int64_t> next;
    try {
      next = Evaluate();
    } catch (const std::exception& e) {
      spdlog::error("schedules: evaluation failed: {}", e.what());
    }
    std::unique_lock lock(mu_);
    if (stopping_) return;
    auto wait = options_.max_sleep;
    if (next) {
      const int64_t until = *next * 1000 + 5 - options_.clock->NowUnixMs();
      wait = std::clamp(std::chrono::milliseconds(until), std::chrono::milliseconds(0), options_.max_sleep);
    }
    cv_.wait_for(lock, wait, [this] { return stopping_ || wake_; });
    if (stopping_) return;
    wake_ = false;
  }
}

}  // namespace ferry
