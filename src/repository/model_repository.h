#pragma once
// Reads a model repository on disk: <root>/<model>/config.yaml and numbered version folders.
// No threads, no caching: every call reads the disk. Thread-safe (stateless apart from the root).
//
// Layout: every subfolder of the root whose name passes IsValidModelName is a model (hidden entries,
// plain files, other names and `schedules/`, which holds batch schedules, are ignored); its versions
// are subfolders named by a positive decimal
// integer without leading zeros ("1", "42"; not "01", "v1", "0"). Symbolic links are followed only
// while they stay inside the root, so a repository cannot be used to read arbitrary folders.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "repository/model_config.h"

namespace ferry {

struct RepositoryModel {
  std::string name;
  // The parsed config, or why there is none. The code tells storage trouble from content trouble, so
  // that a watcher can keep its previous decision on the former:
  //   kInvalidArgument     config.yaml is malformed or fails validation
  //   kNotFound            "missing config.yaml"
  //   kPermissionDenied    the model folder or config.yaml is a link that leaves the repository
  //   kUnavailable         a read failed (I/O error, permissions); the folder may be fine later
  Result<ModelConfig> config = Status(StatusCode::kNotFound, "not read");
  std::vector<int64_t> versions;       // numeric version folders present on disk, ascending
  // Version folders that were skipped, each with why (a link that leaves the repository, a status
  // that could not be read). The model itself may still be served from `versions`.
  std::vector<Status> version_errors;
  std::filesystem::path path;          // <root>/<name>
};

class ModelRepository {
 public:
  // config.yaml files larger than this are rejected unread: configs are small, and the repository
  // may be writable by others.
  static constexpr uintmax_t kMaxConfigBytes = 1 << 20;
  static constexpr size_t kMaxModelNameLength = 255;

  explicit ModelRepository(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }

  // Lists all models, sorted by name. A model with a broken config is listed with its error (not
  // skipped). Fails only when the root itself cannot be read (kNotFound if it does not exist,
  // kUnavailable otherwise; the watcher then keeps its previous view).
  Result<std::vector<RepositoryModel>> Scan() const;
  // One model by name. Fails with kInvalidArgument for a name IsValidModelName rejects, kNotFound when
  // there is no such model folder, kUnavailable when the root cannot be read; every other problem is
  // reported inside the returned model, as Scan() does.
  Result<RepositoryModel> ReadModel(std::string_view name) const;

  // <root>/<model>/<version>
  std::filesystem::path VersionPath(std::string_view model, int64_t version) const;

  // True when `name` is safe as a single path component and a URL segment: 1..255 bytes, not "." or
  // "..", no leading '.', no '/', '\\', NUL or other control characters.
  static bool IsValidModelName(std::string_view name);

 private:
  std::filesystem::path root_;
};

// Versions to serve out of those present, per policy; ascending, without duplicates.
std::vector<int64_t> SelectVersions(const VersionPolicy& policy, const std::vector<int64_t>& available);

}  // namespace ferry
