#pragma once
// Server-level views and model management (OIP v2 server metadata, health, repository extension).
// Transport-neutral; the admin key check is here so that every transport applies the same rule.
// Thread-safe.
#include <atomic>
#include <string>
#include <vector>

#include "lifecycle/model_manager.h"
#include "lifecycle/repository_watcher.h"
#include "repository/model_repository.h"

namespace ferry {

struct AdminOptions {
  std::string admin_key;  // empty: only the loopback admin listener reaches admin routes
};

class AdminService {
 public:
  AdminService(AdminOptions options, ModelManager* manager, RepositoryWatcher* watcher,
               const ModelRepository* repository)
      : options_(std::move(options)), manager_(manager), watcher_(watcher), repository_(repository) {}

  std::string ServerMetadataJson() const;

  // Ready once start-up loads are done, until drain begins.
  void SetReady(bool ready) { ready_.store(ready); }
  bool Ready() const { return ready_.load(); }

  // PermissionDenied when the server has no admin key, Unauthenticated for a missing or wrong key.
  // `authorization` is the raw Authorization header value ("Bearer <key>") or null.
  Status CheckAdmin(const std::string* authorization) const;
  bool IsAdminKey(const std::string* authorization) const { return CheckAdmin(authorization).ok(); }

  // [{"name","version","state","reason"}]: every model in the repository, loaded or not (only those
  // in `only_models` when it is not empty: a key's models). `request_body` is the index request: empty
  // or {"ready": bool}.
  Result<std::string> RepositoryIndexJson(std::string_view request_body,
                                          const std::vector<std::string>& only_models = {}) const;
  Status LoadModel(std::string_view name);
  Status UnloadModel(std::string_view name);

 private:
  const AdminOptions options_;
  ModelManager* manager_;
  RepositoryWatcher* watcher_;
  const ModelRepository* repository_;
  std::atomic<bool> ready_{false};
};

// Compares in time independent of where the strings differ (for secrets).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace ferry
