#pragma once
// `ferry batch`: the offline batch command (see batch_command.cc for its exit codes).
#include <CLI/CLI.hpp>

namespace ferry {

void AddBatchCommand(CLI::App& app);

}  // namespace ferry
