#pragma once
// Checked readers for yaml-cpp trees: a wrong type, an unknown or duplicate key, or a missing one becomes
// a kInvalidArgument Status naming the key path and line, never a yaml-cpp exception. yaml-cpp is used
// only as a tree builder.
#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tensor/data_type.h"

namespace ferry::yaml_fields {

using Keys = std::initializer_list<std::string_view>;

// " (line N)" when yaml-cpp knows where the node came from.
std::string Line(const YAML::Node& node);
// Echoes a user value in a message without letting a huge scalar flood the log.
std::string Quote(std::string_view s);
std::string Child(std::string_view parent, std::string_view key);
std::string Index(std::string_view parent, size_t i);

// A mapping whose keys are all in `known`, each once. yaml-cpp keeps duplicate keys and answers
// lookups with the first, which would silently ignore the second; we refuse instead.
Status CheckMap(const YAML::Node& node, std::string_view path, Keys known);
Status Missing(const YAML::Node& parent, std::string_view path, std::string_view key);

Status GetString(const YAML::Node& node, std::string_view path, std::string* out);
// Plain decimal only: yaml-cpp's own integer conversion reads "010" as octal 8, which would surprise.
Status GetInt(const YAML::Node& node, std::string_view path, int64_t* out);
// A finite decimal number (1e-4 spellings included).
Status GetDouble(const YAML::Node& node, std::string_view path, double* out);
Status GetBool(const YAML::Node& node, std::string_view path, bool* out);
Status GetIntList(const YAML::Node& node, std::string_view path, std::vector<int64_t>* out);
// OIP names (FP32) and Triton's config names (TYPE_FP32).
Status ParseDataType(const YAML::Node& node, std::string_view path, DataType* out);

}  // namespace ferry::yaml_fields
