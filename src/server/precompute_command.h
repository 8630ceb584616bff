#pragma once
// `ferry precompute`: precomputed tables from the command line (see precompute_command.cc).
#include <CLI/CLI.hpp>

namespace ferry {

void AddPrecomputeCommand(CLI::App& app);

}  // namespace ferry
