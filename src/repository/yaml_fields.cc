// The checked readers behind every YAML file Ferry reads (config.yaml, reference.yaml).
#include "repository/yaml_fields.h"

#include <charconv>
#include <cmath>
#include <set>

#include <fmt/format.h>

namespace ferry::yaml_fields {

namespace {
constexpr std::string_view kDataTypeNames =
    "BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES";
}  // namespace

std::string Line(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return fmt::format(" (line {})", mark.line + 1);
}

std::string Quote(std::string_view s) {
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return fmt::format("'{}'", s);
  return fmt::format("'{}...'", s.substr(0, kMax));
}

std::string Child(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string Index(std::string_view parent, size_t i) { return fmt::format("{}[{}]", parent, i); }

Status CheckMap(const YAML::Node& node, std::string_view path, Keys known) {
  const std::string where = path.empty() ? std::string("the config") : std::string(path);
  if (!node.IsMap()) {
    return InvalidArgument(fmt::format("{}: expected a mapping{}", where, Line(node)));
  }
  std::set<std::string, std::less<>> seen;
  // Range-for binds the iterator's value temporary to `entry`; `it->first` would dangle once the
  // proxy that operator-> returns is gone.
  for (const auto& entry : node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      return InvalidArgument(fmt::format("{}: keys must be plain strings{}", where, Line(key)));
    }
    const std::string& name = key.Scalar();
    bool is_known = false;
    for (std::string_view k : known) is_known = is_known || k == name;
    if (!is_known) {
      std::string expected;
      for (std::string_view k : known) expected += expected.empty() ? std::string(k) : fmt::format(", {}", k);
      return InvalidArgument(fmt::format("unknown key {} in {}{}; expected {}", Quote(name), where,
                                         Line(key), expected.empty() ? "no keys" : "one of: " + expected));
    }
    if (!seen.insert(name).second) {
      return InvalidArgument(fmt::format("duplicate key {} in {}{}", Quote(name), where, Line(key)));
    }
  }
  return Status::Ok();
}

Status Missing(const YAML::Node& parent, std::string_view path, std::string_view key) {
  return InvalidArgument(fmt::format("{}: missing required key '{}'{}", path, key, Line(parent)));
}

Status GetString(const YAML::Node& node, std::string_view path, std::string* out) {
  // IsScalar rules out `key:` (null), which yaml-cpp's as<std::string>() would turn into "null".
  if (!node.IsScalar()) {
    return InvalidArgument(fmt::format("{}: expected a string{}", path, Line(node)));
  }
  *out = node.Scalar();
  return Status::Ok();
}

Status GetInt(const YAML::Node& node, std::string_view path, int64_t* out) {
  if (!node.IsScalar()) {
    return InvalidArgument(fmt::format("{}: expected an integer{}", path, Line(node)));
  }
  const std::string& s = node.Scalar();
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  if (ec == std::errc::result_out_of_range) {
    return InvalidArgument(fmt::format("{}: {} is out of range{}", path, Quote(s), Line(node)));
  }
  if (ec != std::errc() || ptr != end) {
    return InvalidArgument(fmt::format("{}: expected an integer, got {}{}", path, Quote(s), Line(node)));
  }
  return Status::Ok();
}

Status GetBool(const YAML::Node& node, std::string_view path, bool* out) {
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, *out)) {
    return InvalidArgument(fmt::format("{}: expected true or false{}", path, Line(node)));
  }
  return Status::Ok();
}

Status GetIntList(const YAML::Node& node, std::string_view path, std::vector<int64_t>* out) {
  if (!node.IsSequence()) {
    return InvalidArgument(fmt::format("{}: expected a list of integers{}", path, Line(node)));
  }
  out->clear();
  out->reserve(node.size());
  for (size_t i = 0; i < node.size(); ++i) {
    int64_t v = 0;
    FERRY_RETURN_IF_ERROR(GetInt(node[i], Index(path, i), &v));
    out->push_back(v);
  }
  return Status::Ok();
}

Status ParseDataType(const YAML::Node& node, std::string_view path, DataType* out) {
  std::string name;
  FERRY_RETURN_IF_ERROR(GetString(node, path, &name));
  std::optional<DataType> type = DataTypeFromName(name);
  // Triton's spelling too, so that a config copied from a config.pbtxt needs no edit.
  if (!type) type = DataTypeFromTritonConfigName(name);
  if (!type) {
    return InvalidArgument(fmt::format("{}: unknown datatype {}{}; expected one of: {}", path, Quote(name),
                                       Line(node), kDataTypeNames));
  }
  *out = *type;
  return Status::Ok();
}

Status GetDouble(const YAML::Node& node, std::string_view path, double* out) {
  if (!node.IsScalar()) {
    return InvalidArgument(fmt::format("{}: expected a number{}", path, Line(node)));
  }
  const std::string& s = node.Scalar();
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  if (ec != std::errc() || ptr != end || !std::isfinite(*out)) {
    return InvalidArgument(fmt::format("{}: expected a finite number, got {}{}", path, Quote(s), Line(node)));
  }
  return Status::Ok();
}

}  // namespace ferry::yaml_fields
