#pragma once
// The response cache: exact-match answers of models that opt in (`response_cache: true`), keyed by a
// SHA-256 over everything that decides an answer, under one byte budget with LRU eviction, and with
// single flight: while one request for a key runs the model, identical requests wait for its answer
// instead of running it again. Errors are never cached. Thread-safe.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hybrid/byte_lru.h"
#include "tensor/infer_message.h"

namespace ferry {

struct CachedAnswer {
  std::string model_version;
  std::vector<Tensor> outputs;          // the outputs the request asked for, in its order
  std::weak_ptr<const void> servable;   // the loaded version that answered: expired = stale
};

// The key of a request: model, version, the identity of the loaded servable (a reload is a new one),
// the requested output names in order, the parameters that can change an answer (all but `timeout`
// and `key`), and each input's name, datatype, shape and bytes in config order. The binary flags are
// left out: they change how an answer is written, not what it is.
std::string ResponseCacheKey(std::string_view model, int64_t version, const void* servable,
                             const std::vector<Tensor>& ordered_inputs, const std::vector<RequestedOutput>& outputs,
                             const Parameters& parameters);

struct ResponseCacheStats {
  int64_t bytes = 0;
  int64_t entries = 0;
  int64_t evictions = 0;
  int64_t in_flight = 0;  // keys being computed
};

class ResponseCache {
 public:
  explicit ResponseCache(size_t budget_bytes, size_t max_waiters_per_key = 1024)
      : lru_(budget_bytes), max_waiters_(max_waiters_per_key) {}

  // Called once with the leader's answer, or with null when the leader failed: the waiter then runs
  // the model itself. Called on the leader's thread, outside the cache's lock.
  using Waiter = std::function<void(std::shared_ptr<const CachedAnswer>)>;
  enum class Role {
    kHit,     // `hit` holds the answer
    kLeader,  // the caller runs the model and must call Finish(key, ...)
    kJoined,  // `waiter` will be called at Finish
    kAlone,   // too many waiters on this key: run the model without the cache
  };
  struct Start {
    Role role = Role::kLeader;
    std::shared_ptr<const CachedAnswer> hit;
  };
  Start Begin(const std::string& key, Waiter waiter);
  // Ends the flight for `key`: stores `answer` (null: nothing stored) and calls every waiter.
  void Finish(const std::string& key, std::shared_ptr<const CachedAnswer> answer);
  ResponseCacheStats Stats() const;

 private:
  mutable std::mutex mu_;
  ByteLru<CachedAnswer> lru_;
  std::map<std::string, std::vector<Waiter>> flights_;
  size_t max_waiters_;
};

size_t CachedAnswerBytes(const CachedAnswer& answer);

}  // namespace ferry
