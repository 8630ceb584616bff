#pragma once
// Immutable bytes with shared ownership, so that a binary tensor can point into the request body
// without a copy. Thread-safe to share once built.
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ferry {

class Buffer {
 public:
  Buffer() = default;
  static Buffer Own(std::vector<uint8_t>&& bytes) {
    auto owner = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    Buffer b;
    b.data_ = owner->data();
    b.size_ = owner->size();
    b.owner_ = std::move(owner);
    return b;
  }
  static Buffer Copy(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    return Own(std::vector<uint8_t>(p, p + size));
  }
  // A view into memory kept alive by `owner` (e.g. the request body string).
  static Buffer View(std::shared_ptr<const void> owner, const uint8_t* data, size_t size) {
    Buffer b;
    b.owner_ = std::move(owner);
    b.data_ = data;
    b.size_ = size;
    return b;
  }

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_}; }

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ferry
