#pragma once
// A least-recently-used map from string keys to shared immutable values, held under a byte budget.
// Not thread-safe: its owner locks around it.
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

namespace ferry {

template <typename V>
class ByteLru {
 public:
  explicit ByteLru(size_t budget_bytes) : budget_(budget_bytes) {}

  // The value, now the most recently used; null when absent.
  std::shared_ptr<const V> Get(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->value;
  }
  // Stores (or replaces) the value, then evicts the least recently used until the budget holds. A value
  // larger than the whole budget is not stored.
  void Put(const std::string& key, std::shared_ptr<const V> value, size_t bytes) {
    Erase(key);
    bytes += key.size() + kOverhead;
    if (bytes > budget_) return;
    order_.push_front(Item{key, std::move(value), bytes});
    index_.emplace(key, order_.begin());
    used_ += bytes;
    while (used_ > budget_) {
      Item& last = order_.back();
      used_ -= last.bytes;
      index_.erase(last.key);
      order_.pop_back();
      ++evictions_;
    }
  }
  void Erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    used_ -= it->second->bytes;
    order_.erase(it->second);
    index_.erase(it);
  }
  size_t bytes() const { return used_; }
  size_t size() const { return index_.size(); }
  int64_t evictions() const { return evictions_; }
  size_t budget() const { return budget_; }

 private:
  // The list node, the index entry and the key's second copy, roughly.
  static constexpr size_t kOverhead = 128;
  struct Item {
    std::string key;
    std::shared_ptr<const V> value;
    size_t bytes = 0;
  };
  size_t budget_;
  size_t used_ = 0;
  int64_t evictions_ = 0;
  std::list<Item> order_;
  std::unordered_map<std::string, typename std::list<Item>::iterator> index_;
};

}  // namespace ferry
