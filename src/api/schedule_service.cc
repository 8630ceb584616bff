#include "api/schedule_service.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/json_writer.h"
#include "schedules/civil_time.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

void OptionalTime(JsonWriter& w, std::string_view key, int64_t unix_seconds, const TimeZone& zone) {
  w.Key(key);
  if (unix_seconds > 0) {
    w.Int(unix_seconds);
  } else {
    w.Null();
  }
  w.Key(std::string(key) + "_local");
  if (unix_seconds > 0) {
    w.String(FormatCivilMinute(CivilMinute::FromSeconds(zone.ToLocal(unix_seconds))));
  } else {
    w.Null();
  }
}

void WriteSchedule(JsonWriter& w, const ScheduleView& v) {
  const ScheduleSpec& s = v.spec;
  w.BeginObject().Key("name").String(s.name).Key("object").String("schedule");
  w.Key("source").String(v.record.source == "file" ? "file" : "api");
  w.Key("cron").String(s.cron.text()).Key("time_zone").String(s.zone.name());
  w.Key("model").String(s.batch.model).Key("input").String(s.batch.input).Key("output").String(s.batch.output);
  w.Key("format").String(s.batch.format).Key("missed").String(MissedPolicyName(s.missed));
  w.Key("overlap").String(OverlapPolicyName(s.overlap)).Key("grace_seconds").Int(s.grace_seconds);
  OptionalTime(w, "next_run_at", v.next.value_or(0), s.zone);
  OptionalTime(w, "last_slot_at", v.record.last_slot, s.zone);
  OptionalTime(w, "last_fired_at", v.record.last_fired_slot, s.zone);
  w.Key("last_batches").BeginArray();
  for (const std::string& id : ScheduleRecord::SplitBatches(v.record.last_batches)) w.String(id);
  w.EndArray();
  w.Key("fires").Int(v.record.fires).Key("misses").Int(v.record.misses).Key("skips").Int(v.record.skips);
  w.Key("last_error");
  if (v.record.last_error.empty()) {
    w.Null();
  } else {
    w.String(v.record.last_error);
  }
  w.EndObject();
}

void WriteRefused(JsonWriter& w, const std::vector<std::pair<std::string, std::string>>& refused) {
  w.Key("refused").BeginArray();
  for (const auto& [name, reason] : refused) w.BeginObject().Key("name").String(name).Key("error").String(reason).EndObject();
  w.EndArray();
}

void WriteTrigger(JsonWriter& w, const TriggerView& v) {
  w.BeginObject().Key("name").String(v.spec.name).Key("object").String("trigger");
  w.Key("watch").String(v.spec.watch).Key("folder").String(v.folder.string()).Key("pattern").String(v.spec.pattern);
  w.Key("complete").String(v.spec.complete == CompleteWhen::kRenamed ? "renamed" : "marker");
  w.Key("model").String(v.spec.batch.model).Key("output").String(v.spec.batch.output);
  w.Key("files").BeginObject();
  int64_t total = 0;
  for (const char* outcome : {"started", "completed", "failed", "refused"}) {
    int64_t n = 0;
    for (const auto& [o, count] : v.counts) n += o == outcome ? count : 0;
    total += n;
    w.Key(outcome).Int(n);
  }
  w.Key("total").Int(total).EndObject();
  w.Key("failures").BeginArray();
  for (const TriggerFileRecord& f : v.failures) {
    w.BeginObject().Key("file").String(f.name).Key("outcome").String(f.outcome).Key("error").String(f.error);
    w.Key("batch_id");
    if (f.batch_id.empty()) {
      w.Null();
    } else {
      w.String(f.batch_id);
    }
    w.Key("seen_at").Int(f.seen_ms / 1000).EndObject();
  }
  w.EndArray().EndObject();
}

Result<DefinitionFields> FieldsFromJson(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(body.data(), body.size()).get_object().get(root)) {
    return InvalidArgument("a schedule is a JSON object of its fields");
  }
  DefinitionFields fields;
  for (simdjson::dom::key_value_pair kv : root) {
    const std::string key(kv.key);
    std::string value;
    std::string_view text;
    if (!kv.value.get_string().get(text)) {
      value = std::string(text);
    } else if (kv.value.is_int64() || kv.value.is_bool()) {
      value = simdjson::minify(kv.value);
    } else {
      return InvalidArgument(fmt::format("'{}' must be a string, an integer or a boolean", key.substr(0, 64)));
    }
    if (!fields.emplace(key, std::move(value)).second) {
      return InvalidArgument(fmt::format("'{}' is given twice", key.substr(0, 64)));
    }
  }
  if (fields.count("watch")) return InvalidArgument("triggers are defined in files under schedules/, not through the API");
  return fields;
}

}  // namespace

void ScheduleService::LoadDefinitionFolders(const std::vector<fs::path>& folders) {
  for (const fs::path& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) continue;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string ext = it->path().extension().string();
      if ((ext == ".yaml" || ext == ".yml") && it->path().filename().string().front() != '.') files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      Result<DefinitionFields> fields = ReadDefinitionFile(file);
      const std::string name = fields.ok() ? fields->at("name") : file.stem().string();
      Status s = fields.status();
      const bool trigger = fields.ok() && IsTriggerDefinition(*fields);
      if (s.ok()) s = trigger ? triggers_->Add(*fields) : runner_->Add(*fields, "file").status();
      if (!s.ok()) {
        spdlog::error("{} '{}' ({}) does not run: {}", trigger ? "trigger" : "schedule", name, file.string(), s.message());
        if (trigger) {
          triggers_->Refuse(name, s.message());
        } else {
          runner_->Refuse(name, s.message());
        }
        continue;
      }
      spdlog::info("{} '{}' from {}", trigger ? "trigger" : "schedule", name, file.string());
    }
  }
  if (Status s = runner_->ForgetRemovedFileSchedules(); !s.ok()) spdlog::warn("schedules: {}", s.message());
  loaded_ = true;
}

Status ScheduleService::CheckLoaded() const {
  return loaded_ ? Status::Ok() : Unavailable("schedules are still being read; try again in a moment");
}

Result<std::string> ScheduleService::ListJson() {
  FERRY_RETURN_IF_ERROR(CheckLoaded());
  FERRY_ASSIGN_OR_RETURN(std::vector<ScheduleView> all, runner_->List());
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const ScheduleView& v : all) WriteSchedule(w, v);
  w.EndArray();
  WriteRefused(w, runner_->Refused());
  w.EndObject();
  return out;
}

Result<std::string> ScheduleService::GetJson(const std::string& name) {
  FERRY_RETURN_IF_ERROR(CheckLoaded());
  FERRY_ASSIGN_OR_RETURN(ScheduleView v, runner_->Get(name));
  std::string out;
  JsonWriter w(&out);
  WriteSchedule(w, v);
  return out;
}

Result<std::string> ScheduleService::Create(std::string_view body) {
  FERRY_RETURN_IF_ERROR(CheckLoaded());
  FERRY_ASSIGN_OR_RETURN(DefinitionFields fields, FieldsFromJson(body));
  FERRY_ASSIGN_OR_RETURN(ScheduleView v, runner_->Add(fields, "api"));
  std::string out;
  JsonWriter w(&out);
  WriteSchedule(w, v);
  return out;
}

Result<std::string> ScheduleService::Delete(const std::string& name) {
  FERRY_RETURN_IF_ERROR(CheckLoaded());
  FERRY_RETURN_IF_ERROR(runner_->Remove(name));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("name").String(name).Key("object").String("schedule").Key("deleted").Bool(true).EndObject();
  return out;
}

Result<std::string> ScheduleService::ListTriggersJson() {
  FERRY_RETURN_IF_ERROR(CheckLoaded());
  FERRY_ASSIGN_OR_RETURN(std::vector<TriggerView> all, triggers_->List(20));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const TriggerView& v : all) WriteTrigger(w, v);
  w.EndArray();
  WriteRefused(w, triggers_->Refused());
  w.EndObject();
  return out;
}

Result<std::string> ScheduleService::TriggerJson(const std::string& name) {
  FERRY_RETURN_IF_ERROR(CheckLoaded());
  FERRY_ASSIGN_OR_RETURN(TriggerView v, triggers_->Get(name, 200));
  std::string out;
  JsonWriter w(&out);
  WriteTrigger(w, v);
  return out;
}

}  // namespace ferry
