// `ferry cron`: previews a schedule's slots, as the server computes them.
//   ferry cron --cron "0 2 * * *" --time-zone Europe/Berlin --count 5   (after now, or --after UNIX)
//   ferry cron --stdin   reads "time_zone<TAB>cron<TAB>after" lines, writes each next slot (Unix
//                        seconds, "none", or "error: ...") on its own line; tests compare it with croniter.
// Exit codes: 0 done, 1 an expression or zone refused (without --stdin).
#include "server/cron_command.h"

#include <chrono>
#include <iostream>
#include <string>

#include "schedules/civil_time.h"
#include "schedules/schedule.h"

namespace ferry {
namespace {

std::string NextLine(const std::string& line) {
  const size_t a = line.find('\t');
  const size_t b = a == std::string::npos ? std::string::npos : line.find('\t', a + 1);
  if (b == std::string::npos) return "error: expected time_zone<TAB>cron<TAB>after";
  Result<TimeZone> zone = TimeZone::Load(line.substr(0, a));
  if (!zone.ok()) return "error: " + zone.status().message();
  Result<CronExpression> cron = CronExpression::Parse(line.substr(a + 1, b - a - 1));
  if (!cron.ok()) return "error: " + cron.status().message();
  int64_t after = 0;
  try {
    after = std::stoll(line.substr(b + 1));
  } catch (const std::exception&) {
    return "error: 'after' is not an integer";
  }
  std::optional<int64_t> next = NextSlot(*cron, *zone, after);
  return next ? std::to_string(*next) : "none";
}

int Preview(const std::string& text, const std::string& zone_name, int64_t after, int count) {
  Result<TimeZone> zone = TimeZone::Load(zone_name);
  Result<CronExpression> cron = zone.ok() ? CronExpression::Parse(text) : Result<CronExpression>(zone.status());
  if (!cron.ok()) {
    std::cerr << "ferry cron: " << cron.status().message() << "\n";
    return 1;
  }
  for (int i = 0; i < count; ++i) {
    std::optional<int64_t> next = NextSlot(*cron, *zone, after);
    if (!next) {
      std::cout << "no further slot within " << CronExpression::kSearchYears << " years\n";
      break;
    }
    std::cout << *next << "  " << FormatCivilMinute(CivilMinute::FromSeconds(zone->ToLocal(*next))) << " "
              << zone->name() << "\n";
    after = *next;
  }
  return 0;
}

}  // namespace

void AddCronCommand(CLI::App& app) {
  struct Flags {
    std::string cron;
    std::string zone = "UTC";
    int64_t after = -1;
    int count = 5;
    bool stdin_lines = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("cron", "Show the next slots of a cron expression in a time zone");
  cmd->add_option("--cron", f->cron, "Five fields, or @daily, @weekly, ...");
  cmd->add_option("--time-zone", f->zone, "IANA name")->capture_default_str();
  cmd->add_option("--after", f->after, "Unix seconds (default: now)");
  cmd->add_option("--count", f->count, "Slots to show")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_flag("--stdin", f->stdin_lines, "Read time_zone<TAB>cron<TAB>after lines; write each next slot");
  cmd->callback([f] {
    if (f->stdin_lines) {
      std::string line;
      while (std::getline(std::cin, line)) std::cout << NextLine(line) << "\n";
      throw CLI::RuntimeError(0);
    }
    if (f->cron.empty()) {
      std::cerr << "ferry cron: give --cron EXPRESSION, or --stdin\n";
      throw CLI::RuntimeError(2);
    }
    const int64_t after = f->after >= 0 ? f->after
                                         : std::chrono::duration_cast<std::chrono::seconds>(
                                               std::chrono::system_clock::now().time_since_epoch()).count();
    throw CLI::RuntimeError(Preview(f->cron, f->zone, after, f->count));
  });
}

}  // namespace ferry
