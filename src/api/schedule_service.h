#pragma once
// Schedules and triggers, transport-neutral: GET/POST /v1/schedules, GET/DELETE /v1/schedules/{name},
// GET /v1/triggers and /v1/triggers/{name}, as JSON. Definitions come from YAML files under the model
// repository's and the data folder's `schedules/` (read at start: `cron:` makes a schedule, `watch:` a
// trigger) and, for schedules, from POST bodies (kept in the store). A bad definition file is logged
// and listed under "refused"; the others run. Calls block on the store: callers run them off the I/O
// threads. Thread-safe.
#include <atomic>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "schedules/folder_trigger.h"
#include "schedules/schedule_runner.h"

namespace ferry {

class ScheduleService {
 public:
  ScheduleService(ScheduleRunner* runner, FolderTriggers* triggers) : runner_(runner), triggers_(triggers) {}

  // Reads every *.yaml / *.yml file of each folder (missing folders are skipped), drops the state of
  // definition files that are gone, and opens the API (until then every call is kUnavailable: a POST
  // must not take the name of a file not read yet).
  void LoadDefinitionFolders(const std::vector<std::filesystem::path>& folders);

  Result<std::string> ListJson();
  Result<std::string> GetJson(const std::string& name);
  // A JSON object of the definition's fields (strings, integers or booleans); answers the schedule.
  Result<std::string> Create(std::string_view body);
  Result<std::string> Delete(const std::string& name);

  Result<std::string> ListTriggersJson();
  Result<std::string> TriggerJson(const std::string& name);

 private:
  Status CheckLoaded() const;

  ScheduleRunner* runner_;
  FolderTriggers* triggers_;
  std::atomic<bool> loaded_{false};
};

}  // namespace ferry
