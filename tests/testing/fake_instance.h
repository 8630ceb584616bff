#pragma once
// Test doubles for the backend interface.
#include <atomic>
#include <condition_variable>
#include <mutex>

#include "backend/backend.h"

namespace ferry::testing {

inline Tensor MakeFloatTensor(std::string name, Shape shape, const std::vector<float>& values) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = DataType::kFp32;
  t.shape = std::move(shape);
  t.data = Buffer::Copy(values.data(), values.size() * sizeof(float));
  return t;
}

inline std::vector<float> Floats(const Tensor& t) {
  std::vector<float> v(t.data.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

// Doubles every float; records the batch sizes it saw. Can be told to block until released or to fail.
class DoublingInstance : public ModelInstance {
 public:
  Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    {
      std::unique_lock lock(mu_);
      batches_.push_back(inputs.front().shape.empty() ? 1 : inputs.front().shape[0]);
      ++running_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !hold_; });
      --running_;
    }
    if (fail_) return Internal("model exploded");
    std::vector<float> v = Floats(inputs.front());
    for (float& x : v) x *= 2;
    return std::vector<Tensor>{MakeFloatTensor("out", inputs.front().shape, v)};
  }
  void Hold() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      hold_ = false;
    }
    cv_.notify_all();
  }
  void WaitRunning() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return running_ > 0; });
  }
  std::vector<int64_t> batches() {
    std::lock_guard lock(mu_);
    return batches_;
  }
  std::atomic<bool> fail_{false};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  int running_ = 0;
  std::vector<int64_t> batches_;
};

}  // namespace ferry::testing
