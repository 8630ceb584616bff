#pragma once
// Schedules and triggers as their definitions state them, and the pure decisions they make: which cron
// slots are due, which one runs, which are missed. A definition is a flat map of scalar fields, read
// from a YAML file under a `schedules/` folder or from a JSON body (POST /v1/schedules):
//
//   name: nightly-feedback         # default: the file's stem
//   cron: "0 2 * * *"              # a schedule; or `watch: incoming/` for a trigger
//   time_zone: Europe/Berlin       # IANA name; default UTC
//   model: feedback_sentiment
//   input: feedback/{date}/*.csv   # under the batch input root; a glob runs one batch per file
//   output: sentiment/{date}-{stem}.csv   # under the batch output root; default: the data folder
//   format: csv                    # oip | csv | files | openai; default: from the input
//   publish_table: user_recs       # publish each completed output as this precomputed table
//   missed: skip                   # a slot missed while down or late past `grace_seconds`: skip | run_once
//   overlap: skip                  # a slot while the last run's batches still run: skip | allow
//
// Placeholders: {date} (the slot's local date, 2026-12-02), {time} (its local time, 0200), and in
// outputs {name} and {stem} (the input file's name, and that without its extension). An output must
// differ between consecutive slots; an input may not put a wildcard in a part starting with '.'.
// Value types, thread-safe.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "schedules/cron.h"
#include "schedules/time_zone.h"

namespace ferry {

using DefinitionFields = std::map<std::string, std::string, std::less<>>;

enum class MissedPolicy { kSkip, kRunOnce };
enum class OverlapPolicy { kSkip, kAllow };
enum class CompleteWhen { kRenamed, kMarker };  // a trigger's file is complete when renamed in, or has <file>.done

// What a schedule or trigger starts, its paths still patterns.
struct BatchTemplate {
  std::string model;
  std::string endpoint;       // openai batches: /v1/chat/completions or /v1/completions
  std::string format;         // empty: from the input
  std::string input;          // schedules: a path or glob under the input root
  std::string output;         // under the output root; empty: the data folder
  std::string output_format;  // empty: from the output's name
  std::string publish_table;  // a precomputed table the output is published into; empty: none
  int64_t priority = 0;
};

struct ScheduleSpec {
  std::string name;
  CronExpression cron;
  TimeZone zone = TimeZone::Utc();
  BatchTemplate batch;
  MissedPolicy missed = MissedPolicy::kSkip;
  OverlapPolicy overlap = OverlapPolicy::kSkip;
  int64_t grace_seconds = 300;  // a slot noticed later than this after its time counts as missed
};

struct TriggerSpec {
  std::string name;
  std::string watch;             // a folder under the input root
  std::string pattern = "*";     // entry names it takes (fnmatch)
  CompleteWhen complete = CompleteWhen::kRenamed;
  BatchTemplate batch;           // `input` unused: each entry is the input
};

// One batch a schedule or trigger starts. Its id is derived from what started it, so starting it twice
// (after a crash between creating the batch and recording the slot) finds the first one.
struct BatchOrder {
  std::string id;
  BatchTemplate batch;          // input: an absolute path; output: placeholders filled in
  std::string metadata_json;    // {"schedule": ..., "slot": ...} or {"trigger": ..., "file": ...}
};

// kInvalidArgument naming the field. Unknown keys are refused (a typo must not pass silently).
Result<ScheduleSpec> ParseSchedule(const DefinitionFields& fields, const std::filesystem::path& zoneinfo);
Result<TriggerSpec> ParseTrigger(const DefinitionFields& fields);
bool IsTriggerDefinition(const DefinitionFields& fields);  // it has `watch`
Status CheckScheduleName(std::string_view name);

// Fills the placeholders; kInvalidArgument for one it does not know.
struct PatternValues {
  std::string date, time, name, stem;
};
Result<std::string> ExpandPattern(std::string_view pattern, const PatternValues& values, bool allow_file_names);
PatternValues SlotValues(const TimeZone& zone, int64_t slot_unix_seconds);

// The first slot strictly after `after` (Unix seconds): the slot's wall-clock minute in the zone, at
// its first instant where clocks fall back, at the end of the gap where they spring forward.
std::optional<int64_t> NextSlot(const CronExpression& cron, const TimeZone& zone, int64_t after);

// What a schedule does at `now`, its last handled slot being `last`: every slot in (last, now] is due;
// the latest runs if it is at most `grace` old (or if missed == run_once), the rest are missed. `last`
// becomes `latest_due`, so a slot is decided once, whichever way the clock moves.
struct SlotDecision {
  std::optional<int64_t> fire;   // the slot to run now
  int64_t missed = 0;            // due slots that will not run
  std::optional<int64_t> latest_due;
};
SlotDecision DecideSlots(const ScheduleSpec& spec, int64_t last, int64_t now);

// "batch_" + 24 hex digits of SHA-256 over the parts.
std::string DerivedBatchId(std::initializer_list<std::string_view> parts);

std::string_view MissedPolicyName(MissedPolicy p);
std::string_view OverlapPolicyName(OverlapPolicy p);

}  // namespace ferry
