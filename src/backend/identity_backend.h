#pragma once
// A backend with no runtime: output i is input i, renamed. Serves every datatype (BYTES included),
// so it measures the server's own overhead and tests the protocol paths; Triton ships the same idea.
// parameters: {execute_delay_ms: N} sleeps N ms per execution (Triton's name), {load_delay_ms: N} per
// instance created (a slow load, for cold starts); 0..60000 each. {load_memory_mb: N} holds N MiB
// of written memory per instance (a large model, for memory budgets); 0..4096.
#include <memory>

#include "backend/backend.h"

namespace ferry {

std::unique_ptr<Backend> MakeIdentityBackend();

}  // namespace ferry
