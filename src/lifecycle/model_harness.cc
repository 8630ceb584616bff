#include "lifecycle/model_harness.h"

#include <fmt/format.h>

namespace ferry {

std::string_view VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kNew: return "UNKNOWN";
    case VersionState::kLoading: return "LOADING";
    case VersionState::kReady: return "READY";
    case VersionState::kDraining: return "UNLOADING";
    case VersionState::kUnloaded: return "UNAVAILABLE";
    case VersionState::kError: return "UNAVAILABLE";
    case VersionState::kAsleep: return "READY";
  }
  return "UNKNOWN";
}

bool IsLegalTransition(VersionState from, VersionState to) {
  using S = VersionState;
  switch (from) {
    case S::kNew: return to == S::kLoading;
    case S::kLoading: return to == S::kReady || to == S::kError || to == S::kAsleep;
    case S::kReady: return to == S::kDraining;
    case S::kDraining: return to == S::kUnloaded || to == S::kAsleep;
    case S::kUnloaded: return to == S::kLoading;
    case S::kError: return to == S::kLoading;
    case S::kAsleep: return to == S::kLoading;
  }
  return false;
}

Status ModelHarness::TransitionTo(VersionState to, std::string reason) {
  if (!IsLegalTransition(state_, to)) {
    return FailedPrecondition(fmt::format("illegal model state transition {} -> {}", static_cast<int>(state_),
                                          static_cast<int>(to)));
  }
  state_ = to;
  reason_ = std::move(reason);
  return Status::Ok();
}

}  // namespace ferry
