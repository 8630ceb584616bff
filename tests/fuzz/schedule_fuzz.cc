// Fuzzes what schedules parse. The first byte picks the parser, the rest is its input:
//   0: a cron expression; when it parses, NextAfter from a few minutes must return a later minute that
//      matches, with no matching minute between (checked over the first two days);
//   1: TZif bytes; when they parse, FromLocal must give instants whose wall clock is the one asked
//      (unique, or both of a fold), and a gap's end must be at or past it;
//   2: a POSIX TZ string;
//   3: definition fields as key=value lines, through ParseSchedule, ParseTrigger and NextSlot.
// Every refusal must be a 4xx kind of Status (kInvalidArgument, kPermissionDenied).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "schedules/cron.h"
#include "schedules/schedule.h"
#include "schedules/time_zone.h"

namespace {

using namespace ferry;

using fuzz::Check;

void CheckRefusal(const Status& s) {
  Check(s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kPermissionDenied,
        "a refusal that is not kInvalidArgument or kPermissionDenied");
}

void FuzzCron(std::string_view text) {
  Result<CronExpression> e = CronExpression::Parse(text);
  if (!e.ok()) return CheckRefusal(e.status());
  for (int64_t start : {int64_t{0}, int64_t{20'000} * 1440 + 1439, int64_t{24'000} * 1440 + 61}) {
    const CivilMinute after = CivilMinute::FromSeconds(start * 60);
    std::optional<CivilMinute> next = e->NextAfter(after);
    if (!next) continue;
    Check(after < *next, "NextAfter is not after");
    Check(e->Matches(*next), "NextAfter does not match");
    CivilMinute m = after;
    for (int i = 0; i < 2 * 1440; ++i) {
      m = CivilMinute::FromSeconds(m.Seconds() + 60);
      if (!(m < *next)) break;
      Check(!e->Matches(m), "a matching minute was skipped");
    }
  }
}

void FuzzTzif(std::string_view bytes) {
  Result<TimeZone> z = TimeZone::FromTzif("fuzz", bytes);
  if (!z.ok()) return CheckRefusal(z.status());
  for (int64_t local : {int64_t{0}, int64_t{1'774'746'000}, int64_t{-2'000'000'000}, int64_t{4'000'000'000}}) {
    const int32_t offset = z->OffsetAt(local);
    Check(offset >= -26 * 3600 && offset <= 26 * 3600, "an offset out of range");
    const TimeZone::Resolved r = z->FromLocal(local);
    if (r.kind == TimeZone::Resolved::kUnique) {
      Check(z->ToLocal(r.first) == local, "a unique instant shows another wall clock");
    } else if (r.kind == TimeZone::Resolved::kAmbiguous) {
      Check(r.first < r.second, "a fold's instants are out of order");
      Check(z->ToLocal(r.first) == local && z->ToLocal(r.second) == local, "a fold's instant shows another wall clock");
    }
  }
}

void FuzzFields(std::string_view text) {
  DefinitionFields fields;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = text.substr(start, end - start);
    const size_t eq = line.find('=');
    if (eq != std::string_view::npos) fields[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    start = end + 1;
  }
  if (IsTriggerDefinition(fields)) {
    Result<TriggerSpec> t = ParseTrigger(fields);
    if (!t.ok()) CheckRefusal(t.status());
    return;
  }
  Result<ScheduleSpec> s = ParseSchedule(fields, "/usr/share/zoneinfo");
  if (!s.ok()) return CheckRefusal(s.status());
  std::optional<int64_t> next = NextSlot(s->cron, s->zone, 1'796'169'600);
  Check(!next || *next > 1'796'169'600, "NextSlot is not after");
  (void)DecideSlots(*s, 1'796'169'600, 1'796'169'600 + 6 * 3600);
  Result<std::string> input = ExpandPattern(s->batch.input, SlotValues(s->zone, next.value_or(0)), false);
  Check(input.ok(), "an accepted input pattern does not expand");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 64 * 1024) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: FuzzCron(rest); break;
    case 1: FuzzTzif(rest); break;
    case 2: {
      Result<PosixTzRule> r = ParsePosixTz(rest);
      if (!r.ok()) CheckRefusal(r.status());
      break;
    }
    default: FuzzFields(rest); break;
  }
  return 0;
}
