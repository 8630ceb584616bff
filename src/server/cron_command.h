#pragma once
// `ferry cron`: a schedule's next slots, as the server computes them (see cron_command.cc).
#include <CLI/CLI.hpp>

namespace ferry {

void AddCronCommand(CLI::App& app);

}  // namespace ferry
