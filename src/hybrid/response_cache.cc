#include "hybrid/response_cache.h"

#include <openssl/evp.h>

#include <cstring>
#include <type_traits>

namespace ferry {
namespace {

class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Hasher() { EVP_MD_CTX_free(ctx_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  // Every field is length-prefixed, so no two different sequences of fields hash the same bytes.
  void Bytes(const void* data, size_t size) {
    const uint64_t n = size;
    EVP_DigestUpdate(ctx_, &n, sizeof(n));
    if (size > 0) EVP_DigestUpdate(ctx_, data, size);
  }
  void Text(std::string_view s) { Bytes(s.data(), s.size()); }
  template <typename T>
  void Value(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    Bytes(&v, sizeof(v));
  }
  std::string Digest() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_, out, &size);
    return std::string(reinterpret_cast<const char*>(out), size);
  }

 private:
  EVP_MD_CTX* ctx_;
};

void HashParameter(Hasher& h, const ParameterValue& value) {
  h.Value(static_cast<uint8_t>(value.index()));
  std::visit([&h](const auto& v) {
    if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) {
      h.Text(v);
    } else {
      h.Value(v);
    }
  }, value);
}

}  // namespace

std::string ResponseCacheKey(std::string_view model, int64_t version, const void* servable,
                             const std::vector<Tensor>& ordered_inputs, const std::vector<RequestedOutput>& outputs,
                             const Parameters& parameters) {
  Hasher h;
  h.Text(model);
  h.Value(version);
  h.Value(reinterpret_cast<uintptr_t>(servable));
  h.Value(outputs.size());
  for (const RequestedOutput& out : outputs) h.Text(out.name);
  for (const auto& [name, value] : parameters) {  // a std::map: in key order
    if (name == "timeout" || name == "key") continue;
    h.Text(name);
    HashParameter(h, value);
  }
  h.Value(ordered_inputs.size());
  for (const Tensor& t : ordered_inputs) {
    h.Text(t.name);
    h.Value(static_cast<uint8_t>(t.dtype));
    h.Bytes(t.shape.data(), t.shape.size() * sizeof(int64_t));
    h.Bytes(t.data.data(), t.data.size());
  }
  return h.Digest();
}

size_t CachedAnswerBytes(const CachedAnswer& answer) {
  size_t bytes = 64 + answer.model_version.size();
  for (const Tensor& t : answer.outputs) bytes += 96 + t.name.size() + t.shape.size() * 8 + t.data.size();
  return bytes;
}

ResponseCache::Start ResponseCache::Begin(const std::string& key, Waiter waiter) {
  std::lock_guard lock(mu_);
  if (std::shared_ptr<const CachedAnswer> hit = lru_.Get(key)) {
    if (!hit->servable.expired()) return Start{Role::kHit, std::move(hit)};
    lru_.Erase(key);  // its version was unloaded or reloaded
  }
  auto it = flights_.find(key);
  if (it == flights_.end()) {
    flights_.emplace(key, std::vector<Waiter>());
    return Start{Role::kLeader, nullptr};
  }
  if (it->second.size() >= max_waiters_) return Start{Role::kAlone, nullptr};
  it->second.push_back(std::move(waiter));
  return Start{Role::kJoined, nullptr};
}

void ResponseCache::Finish(const std::string& key, std::shared_ptr<const CachedAnswer> answer) {
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(mu_);
    auto it = flights_.find(key);
    if (it != flights_.end()) {
      waiters = std::move(it->second);
      flights_.erase(it);
    }
    if (answer) lru_.Put(key, answer, CachedAnswerBytes(*answer));
  }
  for (Waiter& w : waiters) w(answer);
}

ResponseCacheStats ResponseCache::Stats() const {
  std::lock_guard lock(mu_);
  return ResponseCacheStats{static_cast<int64_t>(lru_.bytes()), static_cast<int64_t>(lru_.size()), lru_.evictions(),
                            static_cast<int64_t>(flights_.size())};
}

}  // namespace ferry
