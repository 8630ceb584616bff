#include "schedules/batch_launcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iterator>

#include "common/path_within.h"

namespace ferry {

namespace fs = std::filesystem;

Status CheckLaunchable(const BatchLauncher& launcher, const BatchTemplate& batch, bool loading_ok, std::string_view what) {
  if (!launcher.check) return Status::Ok();
  Status s = launcher.check(batch);
  if (loading_ok && s.code() == StatusCode::kUnavailable) {
    spdlog::warn("{}: {} (its runs wait for it)", what, s.message());
    return Status::Ok();
  }
  return s;
}

Result<DefinitionFields> ParseDefinitionYaml(std::string_view text) {
  if (text.size() > 64 * 1024) return InvalidArgument("a definition is over 64 KiB");
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("not valid YAML: {}", e.msg));
  }
  if (!root.IsMap()) return InvalidArgument("a definition is a map of keys to values");
  DefinitionFields fields;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) return InvalidArgument("a definition's keys are names");
    const std::string key = kv.first.Scalar();
    if (!kv.second.IsScalar()) return InvalidArgument(fmt::format("'{}' must be a single value", key.substr(0, 64)));
    if (!fields.emplace(key, kv.second.Scalar()).second) {
      return InvalidArgument(fmt::format("'{}' is given twice", key.substr(0, 64)));
    }
  }
  return fields;
}

std::string DefinitionYaml(const DefinitionFields& fields) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& [key, value] : fields) out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
  out << YAML::EndMap;
  return out.c_str();
}

Result<DefinitionFields> ReadDefinitionFile(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec) || fs::file_size(file, ec) > 64 * 1024) {
    return InvalidArgument(fmt::format("'{}' is not a definition file under 64 KiB", file.string()));
  }
  std::ifstream in(file, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FERRY_ASSIGN_OR_RETURN(DefinitionFields fields, ParseDefinitionYaml(text));
  fields.emplace("name", file.stem().string());
  return fields;
}

Result<fs::path> PathUnderRoot(const fs::path& root, std::string_view text, std::string_view what) {
  if (root.empty()) {
    return PermissionDenied(fmt::format("{} paths need the server's batch input root (--batch-input-root)", what));
  }
  const fs::path p(text);
  for (const fs::path& part : p) {
    if (part == "..") return PermissionDenied(fmt::format("the {} must not contain '..'", what));
  }
  std::error_code ec;
  const fs::path canon_root = fs::weakly_canonical(root, ec);
  const fs::path full = fs::weakly_canonical(p.is_absolute() ? p : root / p, ec);
  if (ec || !IsPathWithin(full, canon_root)) return PermissionDenied(fmt::format("the {} is outside the input root", what));
  return full;
}

}  // namespace ferry
