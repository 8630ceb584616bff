#pragma once
// API keys, transport-neutral: the check every protected call makes, and the admin API's views
// (POST /v1/keys, GET /v1/keys, DELETE /v1/keys/{id}) as JSON. Thread-safe.
#include <chrono>
#include <string>
#include <string_view>

#include "keys/key_registry.h"

namespace ferry {

class KeyService {
 public:
  // `required`: calls without a valid key are refused (--require-api-keys); otherwise keys are only
  // managed (so they exist before the flag is turned on) and every call passes.
  KeyService(KeyRegistry* registry, bool required) : registry_(registry), required_(required) {}

  // The caller's `Authorization` header against the key rules, for a call on `model` (empty: the route
  // names none), when keys are required. kUnauthenticated without a key or with an unknown one,
  // kPermissionDenied, kResourceExhausted (`*retry_after` set) as KeyRegistry::Authorize says.
  // The caller's key when it passes (named "(none)", every model, while keys are not required).
  // `listing`: see KeyRegistry::Authorize.
  Result<ApiKey> Authorize(const std::string* authorization, std::string_view model,
                           std::chrono::milliseconds* retry_after, bool listing = false);
  // Whether the header carries a known key (to tell an inference key on an admin route from no key).
  bool IsKey(const std::string* authorization) const;
  bool required() const { return required_; }

  // {"name": "...", "models": ["..."], "rate_per_s": 5, "burst": 10}: the key, with its "secret" (only here).
  Result<std::string> CreateJson(std::string_view body);
  Result<std::string> ListJson();
  Result<std::string> RevokeJson(const std::string& id);

 private:
  KeyRegistry* registry_;
  bool required_;
};

}  // namespace ferry
