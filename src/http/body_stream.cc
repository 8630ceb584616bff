#include "http/http_types.h"

namespace ferry {

bool BodyStream::Write(std::string_view data) {
  std::unique_lock lock(mu_);
  if (aborted_ || ended_) return false;
  if (queued_.size() + data.size() > kMaxQueuedBytes) {
    aborted_ = true;  // the client stopped reading; the write timeout closes the connection
    return false;
  }
  queued_.append(data);
  WakeLocked(lock);
  return true;
}

void BodyStream::End() {
  std::unique_lock lock(mu_);
  if (ended_) return;
  ended_ = true;
  WakeLocked(lock);
}

void BodyStream::WakeLocked(std::unique_lock<std::mutex>& lock) {
  if (!waiting_ || !wake_) return;
  waiting_ = false;
  auto wake = wake_;
  lock.unlock();
  wake();
}

void BodyStream::SetWake(std::function<void()> wake) {
  std::lock_guard lock(mu_);
  wake_ = std::move(wake);
}

std::string BodyStream::Take(bool* ended) {
  std::lock_guard lock(mu_);
  std::string out = std::move(queued_);
  queued_.clear();
  *ended = ended_ || aborted_;
  waiting_ = out.empty() && !*ended;
  return out;
}

void BodyStream::Abort() {
  std::lock_guard lock(mu_);
  aborted_ = true;
  queued_.clear();
  wake_ = nullptr;  // breaks the cycle session -> stream -> wake -> session
}

}  // namespace ferry
