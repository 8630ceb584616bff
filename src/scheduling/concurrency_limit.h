#pragma once
// Per-model caps on concurrent requests (a model config's `max_concurrent_requests`): a request holds
// a slot from the moment it is admitted until it is answered (a generation until its last token, a
// stream until its last event), whatever queue it waits in and whether it is online, a job or a batch
// record. Over the cap a request is refused at once with Unavailable (503 + Retry-After; jobs and
// batch records try again later). Thread-safe.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry {

class ConcurrencyLimits {
 public:
  // A held slot; released when the last copy is destroyed.
  using Slot = std::shared_ptr<void>;

  // A slot of `model`'s `limit` (<= 0: no cap, and an empty slot), or Unavailable naming the cap.
  Result<Slot> Enter(std::string_view model, int64_t limit);
  // Slots of `model` held now.
  int64_t InUse(std::string_view model) const;

 private:
  void Leave(const std::string& model);

  mutable std::mutex mu_;
  std::map<std::string, int64_t, std::less<>> in_use_;  // models with a slot held
};

}  // namespace ferry
