#include "scheduling/concurrency_limit.h"

#include <fmt/format.h>

namespace ferry {

Result<ConcurrencyLimits::Slot> ConcurrencyLimits::Enter(std::string_view model, int64_t limit) {
  if (limit <= 0) return Slot();
  std::string name(model);
  {
    std::lock_guard lock(mu_);
    auto it = in_use_.find(name);
    if (it == in_use_.end()) it = in_use_.emplace(name, 0).first;
    if (it->second >= limit) {
      return Unavailable(fmt::format("model '{}' is at its limit of {} concurrent requests", name.substr(0, 80), limit));
    }
    ++it->second;
  }
  // The deleter releases the slot; the object itself holds nothing.
  return Slot(static_cast<void*>(this), [this, name = std::move(name)](void*) { Leave(name); });
}

int64_t ConcurrencyLimits::InUse(std::string_view model) const {
  std::lock_guard lock(mu_);
  auto it = in_use_.find(model);
  return it == in_use_.end() ? 0 : it->second;
}

void ConcurrencyLimits::Leave(const std::string& model) {
  std::lock_guard lock(mu_);
  auto it = in_use_.find(model);
  if (it == in_use_.end()) return;
  if (--it->second <= 0) in_use_.erase(it);
}

}  // namespace ferry
