#pragma once
// Shared flag that a transport trips when its client goes away; schedulers check it before running work.
// Thread-safe.
#include <atomic>
#include <memory>

namespace ferry {

class CancelToken {
 public:
  static std::shared_ptr<CancelToken> Create() { return std::make_shared<CancelToken>(); }
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace ferry
