#pragma once
// The state machine of one model version. Legal transitions (anything else is a bug, refused):
//
//   New ──> Loading ──> Ready ──> Draining ──> Unloaded
//              │                         │        │
//              └──> Error <── (retry) ──┐│        └──> Loading   (loaded again)
//                     └──> Loading ─────┘└──> Asleep <──> Loading   (woken by a request; back to
//                                                                        sleep if the wake fails)
//
// Asleep: unloaded after sitting idle (scale to zero) but still wanted; the index shows it READY, since
// a request is answered (it waits while the version loads).
// A Ready version may load a replacement servable in the background (config or file change); it stays
// Ready while that runs and swaps only when the replacement is ready. Confined to the manager's lock.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ferry {

enum class VersionState { kNew, kLoading, kReady, kDraining, kUnloaded, kError, kAsleep };

std::string_view VersionStateName(VersionState state);  // "LOADING", "READY", ... as the OIP index shows
bool IsLegalTransition(VersionState from, VersionState to);

class ModelHarness {
 public:
  VersionState state() const { return state_; }
  const std::string& reason() const { return reason_; }
  // Moves to `to` if legal and records why; returns FailedPrecondition (and stays put) otherwise.
  Status TransitionTo(VersionState to, std::string reason = {});

 private:
  VersionState state_ = VersionState::kNew;
  std::string reason_;
};

}  // namespace ferry
