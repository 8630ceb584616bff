#include "jobs/batch.h"

#include <array>
#include <utility>

namespace ferry {
namespace {

constexpr std::array<std::pair<BatchState, std::string_view>, 7> kStateNames{{
    {BatchState::kValidating, "validating"},
    {BatchState::kInProgress, "in_progress"},
    {BatchState::kFinalizing, "finalizing"},
    {BatchState::kCompleted, "completed"},
    {BatchState::kFailed, "failed"},
    {BatchState::kCancelling, "cancelling"},
    {BatchState::kCancelled, "cancelled"},
}};

constexpr std::array<std::pair<BatchFormat, std::string_view>, 4> kFormatNames{{
    {BatchFormat::kOip, "oip"},
    {BatchFormat::kOpenAi, "openai"},
    {BatchFormat::kCsv, "csv"},
    {BatchFormat::kFiles, "files"},
}};

}  // namespace

std::string_view BatchStateName(BatchState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<BatchState> BatchStateFromName(std::string_view name) {
  for (const auto& [s, n] : kStateNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

bool IsLegalBatchTransition(BatchState from, BatchState to) {
  using S = BatchState;
  switch (from) {
    case S::kValidating: return to == S::kInProgress || to == S::kFailed || to == S::kCancelling;
    case S::kInProgress: return to == S::kFinalizing || to == S::kFailed || to == S::kCancelling;
    case S::kFinalizing: return to == S::kCompleted || to == S::kFailed;
    case S::kCancelling: return to == S::kCancelled;
    case S::kCompleted:
    case S::kFailed:
    case S::kCancelled: return false;
  }
  return false;
}

std::string_view BatchFormatName(BatchFormat format) {
  for (const auto& [f, name] : kFormatNames) {
    if (f == format) return name;
  }
  return "unknown";
}

std::optional<BatchFormat> BatchFormatFromName(std::string_view name) {
  for (const auto& [f, n] : kFormatNames) {
    if (n == name) return f;
  }
  return std::nullopt;
}

}  // namespace ferry
