// ModelRepository: reads the repository tree with the std::error_code overloads of std::filesystem, so
// that no filesystem exception escapes; every failure becomes a Status on the model it concerns.
#include "repository/model_repository.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <system_error>

#include <fmt/format.h>

namespace ferry {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kConfigFile = "config.yaml";
constexpr std::string_view kSchedulesFolder = "schedules";

// True when `path` lies strictly below `root`; both already resolved by weakly_canonical, so a link
// has been replaced by its target and ".." cannot climb back out.
bool IsWithin(const fs::path& root, const fs::path& path) {
  auto p = path.begin();
  for (const fs::path& part : root) {
    if (part.empty()) continue;  // a trailing separator yields an empty last element
    if (p == path.end() || *p != part) return false;
    ++p;
  }
  return p != path.end();
}

// Resolves `path` and checks that it stays inside `canon_root`: kPermissionDenied when a link leads
// out, kUnavailable when it cannot be resolved.
Status CheckInside(const fs::path& canon_root, const fs::path& path, std::string_view what) {
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(path, ec);
  if (ec) return Unavailable(fmt::format("cannot resolve {}: {}", what, ec.message()));
  if (!IsWithin(canon_root, canon)) {
    return PermissionDenied(fmt::format("{} is a link that leaves the model repository", what));
  }
  return Status::Ok();
}

// "1", "42"; not "0", "01", "+1", "1a" or anything past int64.
std::optional<int64_t> ParseVersion(std::string_view name) {
  if (name.empty() || name[0] == '0') return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (ec != std::errc() || ptr != name.data() + name.size() || v < 1) return std::nullopt;
  return v;
}

Result<ModelConfig> ReadConfig(const fs::path& canon_root, const fs::path& dir, std::string_view model) {
  const fs::path file = dir / kConfigFile;
  std::error_code ec;
  const fs::file_status st = fs::status(file, ec);
  if (st.type() == fs::file_type::not_found) return NotFound("missing config.yaml");
  if (ec) return Unavailable(fmt::format("cannot read config.yaml: {}", ec.message()));
  // A FIFO or device would block or never end; only a plain file is a config.
  if (!fs::is_regular_file(st)) return InvalidArgument("config.yaml is not a regular file");
  FERRY_RETURN_IF_ERROR(CheckInside(canon_root, file, "config.yaml"));
  const uintmax_t size = fs::file_size(file, ec);
  if (ec) return Unavailable(fmt::format("cannot read config.yaml: {}", ec.message()));
  if (size > ModelRepository::kMaxConfigBytes) {
    return InvalidArgument(
        fmt::format("config.yaml is {} bytes; the limit is {}", size, ModelRepository::kMaxConfigBytes));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Unavailable("cannot open config.yaml");
  std::string text;
  text.reserve(static_cast<size_t>(size));
  // Read at most a chunk past the limit even if the file grew since file_size().
  char buf[8192];
  while (text.size() <= ModelRepository::kMaxConfigBytes && in.read(buf, sizeof(buf)).gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return Unavailable("cannot read config.yaml: read error");
  if (text.size() > ModelRepository::kMaxConfigBytes) {
    return InvalidArgument(
        fmt::format("config.yaml is over the limit of {} bytes", ModelRepository::kMaxConfigBytes));
  }
  Result<ModelConfig> config = ParseModelConfig(text, model);
  if (!config.ok()) return config.status().WithContext("config.yaml");
  return config;
}

// Fills model->versions and model->version_errors; a non-OK return means the folder could not be
// listed, so the versions are unknown (not "none").
Status ListVersions(const fs::path& canon_root, RepositoryModel* model) {
  std::error_code ec;
  fs::directory_iterator it(model->path, ec);
  for (const fs::directory_iterator end; !ec && it != end; it.increment(ec)) {
    const std::string file_name = it->path().filename().string();
    const std::optional<int64_t> version = ParseVersion(file_name);
    if (!version) continue;
    std::error_code st_ec;
    const fs::file_status st = it->status(st_ec);  // follows links
    if (st.type() == fs::file_type::not_found) continue;  // a dangling link: not a version
    if (st_ec) {
      model->version_errors.push_back(
          Unavailable(fmt::format("version {}: cannot read its status: {}", file_name, st_ec.message())));
      continue;
    }
    if (!fs::is_directory(st)) continue;
    Status inside = CheckInside(canon_root, it->path(), fmt::format("version {}", file_name));
    if (!inside.ok()) {
      model->version_errors.push_back(std::move(inside));
      continue;
    }
    model->versions.push_back(*version);
  }
  if (ec) return Unavailable(fmt::format("cannot list version folders: {}", ec.message()));
  std::sort(model->versions.begin(), model->versions.end());
  return Status::Ok();
}

// Everything about one existing model folder; problems land in the result, never in a failure.
RepositoryModel ReadModelDir(const fs::path& canon_root, std::string name, fs::path dir) {
  RepositoryModel model;
  model.name = std::move(name);
  model.path = std::move(dir);
  if (Status inside = CheckInside(canon_root, model.path, "the model folder"); !inside.ok()) {
    model.config = std::move(inside);
    return model;
  }
  model.config = ReadConfig(canon_root, model.path, model.name);
  if (Status listed = ListVersions(canon_root, &model); !listed.ok()) {
    // Unknown versions must not read as "no versions": that would unload a healthy model.
    model.versions.clear();
    model.config = std::move(listed);
  }
  return model;
}

Result<fs::path> CanonicalRoot(const fs::path& root) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(root, ec);
  if (ec) {
    return Unavailable(fmt::format("cannot resolve model repository '{}': {}", root.string(), ec.message()));
  }
  return canon;
}

}  // namespace

bool ModelRepository::IsValidModelName(std::string_view name) {
  if (name.empty() || name.size() > kMaxModelNameLength) return false;
  if (name == "." || name == ".." || name.front() == '.') return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == '\\' || u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

fs::path ModelRepository::VersionPath(std::string_view model, int64_t version) const {
  return root_ / fs::path(std::string(model)) / std::to_string(version);
}

Result<std::vector<RepositoryModel>> ModelRepository::Scan() const {
  std::error_code ec;
  fs::directory_iterator it(root_, ec);
  if (ec) {
    const std::string message =
        fmt::format("cannot read model repository '{}': {}", root_.string(), ec.message());
    if (ec == std::errc::no_such_file_or_directory) return NotFound(message);
    return Unavailable(message);
  }
  FERRY_ASSIGN_OR_RETURN(const fs::path canon_root, CanonicalRoot(root_));
  std::vector<RepositoryModel> models;
  for (const fs::directory_iterator end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!IsValidModelName(name)) continue;  // hidden entries and names no URL could carry
    if (name == kSchedulesFolder) continue;  // batch schedules and triggers, not a model
    std::error_code st_ec;
    const fs::file_status st = it->status(st_ec);  // follows links
    if (st.type() == fs::file_type::not_found) continue;  // a dangling link
    if (st_ec) {
      // Listed rather than skipped: skipping would read as "removed" and unload the model.
      RepositoryModel model;
      model.name = std::move(name);
      model.path = it->path();
      model.config = Unavailable(fmt::format("cannot read the model folder: {}", st_ec.message()));
      models.push_back(std::move(model));
      continue;
    }
    if (!fs::is_directory(st)) continue;
    models.push_back(ReadModelDir(canon_root, std::move(name), it->path()));
  }
  // A partial listing would read as "these models were removed"; fail the whole scan instead.
  if (ec) {
    return Unavailable(fmt::format("cannot read model repository '{}': {}", root_.string(), ec.message()));
  }
  std::sort(models.begin(), models.end(),
            [](const RepositoryModel& a, const RepositoryModel& b) { return a.name < b.name; });
  return models;
}

Result<RepositoryModel> ModelRepository::ReadModel(std::string_view name) const {
  if (!IsValidModelName(name)) {
    return InvalidArgument(fmt::format("invalid model name '{}'", name.substr(0, 64)));
  }
  const fs::path dir = root_ / fs::path(std::string(name));
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);  // follows links
  if (st.type() == fs::file_type::not_found) return NotFound(fmt::format("model '{}' not found", name));
  if (ec) return Unavailable(fmt::format("cannot read model '{}': {}", name, ec.message()));
  if (!fs::is_directory(st)) return NotFound(fmt::format("model '{}' not found", name));
  FERRY_ASSIGN_OR_RETURN(const fs::path canon_root, CanonicalRoot(root_));
  return ReadModelDir(canon_root, std::string(name), dir);
}

std::vector<int64_t> SelectVersions(const VersionPolicy& policy, const std::vector<int64_t>& available) {
  std::vector<int64_t> sorted = available;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  switch (policy.kind) {
    case VersionPolicy::Kind::kAll:
      return sorted;
    case VersionPolicy::Kind::kLatest: {
      if (policy.latest_count <= 0) return {};
      const size_t keep = std::min(sorted.size(), static_cast<size_t>(policy.latest_count));
      return std::vector<int64_t>(sorted.end() - static_cast<std::ptrdiff_t>(keep), sorted.end());
    }
    case VersionPolicy::Kind::kSpecific: {
      std::vector<int64_t> wanted = policy.versions;
      std::sort(wanted.begin(), wanted.end());
      std::vector<int64_t> out;
      std::set_intersection(sorted.begin(), sorted.end(), wanted.begin(), wanted.end(),
                            std::back_inserter(out));
      out.erase(std::unique(out.begin(), out.end()), out.end());
      return out;
    }
  }
  return {};
}

}  // namespace ferry
