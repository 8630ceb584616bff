#pragma once
// A backend with no runtime: output i is input i, renamed. Serves every datatype (BYTES included),
// so it measures the server's own overhead and tests the protocol paths; Triton ships the same idea.
#include <memory>

#include "backend/backend.h"

namespace ferry {

std::unique_ptr<Backend> MakeIdentityBackend();

}  // namespace ferry
