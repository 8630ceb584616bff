#pragma once
// API keys: the unit that access, rate limits (and, later, budgets) attach to. A key's secret is shown
// once, when it is made; only its SHA-256 is kept. Value types and pure functions, thread-safe.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace ferry {

struct ApiKey {
  std::string id;                   // "key_<hex>": how the admin API names it
  std::string name;                 // the operator's label, unique
  std::string hash;                 // hex SHA-256 of the secret
  std::string prefix;               // the secret's first characters, to recognise it in a list
  std::vector<std::string> models;  // the models it may use; empty: every model
  double rate_per_s = 0;            // requests per second; 0: no limit
  int64_t burst = 0;                // requests it may make at once above the rate (>= 1 with a rate)
  // Language-model tokens (prompt + completion) per second of online traffic; 0: no limit. A
  // generation is admitted while the key is not in debt and charged what it used once it ends, so one
  // long answer may take the key below zero: it then waits until the rate has paid the debt back.
  double tokens_per_s = 0;
  int64_t token_burst = 0;          // tokens it may use at once above the rate (>= 1 with a rate)
  int64_t created_ms = 0;
  int64_t revoked_ms = 0;           // 0: live
  std::string source = "api";       // "api" (the admin API) or "file" (--api-keys-file)
};

// "fk_" + 43 characters of URL-safe base64 (32 random bytes from OpenSSL's generator).
std::string NewKeySecret();
// Lower-case hex SHA-256 of the secret.
std::string HashKeySecret(std::string_view secret);
// The fields a key is made with are checked: a name of 1..64 of [A-Za-z0-9_.-], model names that could
// be models, a rate >= 0 (at most 1e6), a burst of 1..1e6 with a rate (tokens: 1e9 each).
// kInvalidArgument naming the field.
Status CheckKeyFields(const ApiKey& key);

// A token bucket: `burst` tokens, refilled at `rate_per_s`. Not thread-safe (its owner locks).
class TokenBucket {
 public:
  TokenBucket(double rate_per_s, int64_t burst, SteadyTime now)
      : rate_(rate_per_s), capacity_(static_cast<double>(burst)), tokens_(capacity_), last_(now) {}
  // Takes one token; false when there is none (the caller is over its rate).
  bool Take(SteadyTime now);
  // How long until the next token, for Retry-After.
  std::chrono::milliseconds WaitForNext(SteadyTime now) const;
  // Whether a whole token is there now (none is taken).
  bool Available(SteadyTime now);
  // Takes `n` tokens, going into debt (below zero) if there are not so many.
  void Spend(double n, SteadyTime now);
  double rate() const { return rate_; }

 private:
  void Refill(SteadyTime now);
  double rate_;
  double capacity_;
  double tokens_;
  SteadyTime last_;
};

}  // namespace ferry
