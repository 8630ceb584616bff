#pragma once
// How schedules and triggers reach the batches, without knowing the service behind them (the server
// wires api/BatchService in; tests a fake). Also the definition files' YAML, read and written.
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "schedules/schedule.h"

namespace ferry {

struct BatchLauncher {
  // Creates the order's batch: true when made now, false when a batch with its id exists (the order
  // was placed before a restart). Errors are the batch API's (a missing input, a refused model).
  std::function<Result<bool>(const BatchOrder&)> launch;
  // Whether the batch is not final yet; false for an id not known.
  std::function<Result<bool>(const std::string& id)> running;
  // The batch's final state's name ("completed", "failed", "cancelled") and error, or empty while it runs.
  std::function<Result<std::pair<std::string, std::string>>(const std::string& id)> outcome;
  // Checks what a definition would start before it is accepted (the model exists and takes batches).
  std::function<Status(const BatchTemplate&)> check;
};

// The launcher's check of what a definition would start. `loading_ok`: for a definition read at
// start, a model still loading (kUnavailable) is a warning naming `what`, not a refusal: its runs wait
// for the model.
Status CheckLaunchable(const BatchLauncher& launcher, const BatchTemplate& batch, bool loading_ok, std::string_view what);

// A definition's YAML: a map of scalars. kInvalidArgument for anything else.
Result<DefinitionFields> ParseDefinitionYaml(std::string_view text);
std::string DefinitionYaml(const DefinitionFields& fields);
// Reads one definition file; `name` defaults to the file's stem.
Result<DefinitionFields> ReadDefinitionFile(const std::filesystem::path& file);

// Whether `path` (made absolute against `root`) stays inside `root`, lexically and after links.
Result<std::filesystem::path> PathUnderRoot(const std::filesystem::path& root, std::string_view path, std::string_view what);

}  // namespace ferry
