#pragma once
// The `ferry` command line: `ferry serve` and `ferry models`. Flags that mean what Triton's mean carry
// Triton's names (--model-repository, --http-port, --model-control-mode, ...).
namespace ferry {

// Runs the command line; returns the process exit code.
int RunCli(int argc, char** argv);

}  // namespace ferry
