#pragma once
// The API keys a server accepts: made and revoked through the admin API (kept in <data-dir>/keys.db,
// as hashes) or listed in a keys file read at start, held in memory with a token bucket each.
// Thread-safe.
//
// A keys file (--api-keys-file) is YAML, a list of keys; each names its secret's SHA-256 (never the
// secret itself, so the file may be shared with less care):
//
//   - name: reporting
//     sha256: 3f1c...            # HashKeySecret(secret): `printf %s "$KEY" | sha256sum`
//     models: [cnn, identity]    # optional; default: every model
//     rate_per_s: 20             # optional; 0 (default): no limit
//     burst: 40                  # optional; default: the rate rounded up
//     tokens_per_s: 500          # optional; language-model tokens per second; 0 (default): no limit
//     token_burst: 4000          # optional; default: the token rate rounded up
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "jobs/sqlite_db.h"
#include "keys/api_key.h"

namespace ferry {

class KeyRegistry {
 public:
  static Result<std::unique_ptr<KeyRegistry>> Open(const std::filesystem::path& db_path,
                                                   const Clock* clock = &Clock::Real(),
                                                   const WallClock* wall_clock = &WallClock::Real());
  // Adds the file's keys; any bad entry refuses the whole file (kInvalidArgument naming it).
  Status LoadFile(const std::filesystem::path& path);

  // Makes a key from `fields` (name, models, rate, burst); answers it and its secret, shown only now.
  // kAlreadyExists for a name in use.
  Result<std::pair<ApiKey, std::string>> Create(ApiKey fields);
  // kNotFound for an unknown id; kFailedPrecondition for a key from the file.
  Status Revoke(const std::string& id);
  std::vector<ApiKey> List() const;

  // The key a secret belongs to, if it may use `model` (empty: a call that names no model in its path,
  // which only an unrestricted key may make) now: kUnauthenticated for an unknown or revoked secret,
  // kPermissionDenied for a model it may not use, kResourceExhausted over its rate (with
  // `*retry_after` set). `listing`: a call that lists models (any key may; the caller filters the list
  // to the key's models), whatever `model` says.
  Result<ApiKey> Authorize(std::string_view secret, std::string_view model, std::chrono::milliseconds* retry_after,
                           bool listing = false);
  // Whether `secret` is a key's (for telling "a key, but not the admin key" from "no key"). Charges nothing.
  bool Knows(std::string_view secret) const;

  // Token rate limits, by key name (names that are no key with a token rate always pass):
  // kResourceExhausted (with Retry-After, also in `*retry_after`) while the key is in debt.
  Status AdmitTokens(const std::string& name, std::chrono::milliseconds* retry_after = nullptr);
  // Charges what a generation used; the key may go into debt.
  void ChargeTokens(const std::string& name, int64_t tokens);

 private:
  struct Entry {
    ApiKey key;
    TokenBucket bucket;
  };
  KeyRegistry(const Clock* clock, const WallClock* wall_clock) : clock_(clock), wall_clock_(wall_clock) {}
  Status AddMissingColumns();
  Status LoadStored();
  void AddLocked(const ApiKey& key);

  const Clock* clock_;
  const WallClock* wall_clock_;
  mutable std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;
  std::map<std::string, Entry> by_hash_;  // live keys only
  std::map<std::string, ApiKey> by_id_;   // every key, revoked too
  std::map<std::string, TokenBucket, std::less<>> token_buckets_;  // by name: live keys with a token rate
};

}  // namespace ferry
