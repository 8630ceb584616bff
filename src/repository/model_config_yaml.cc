// ParseModelConfig: config.yaml -> ModelConfig. yaml-cpp is used only as a tree builder; every value is
// read through the checked readers in yaml_fields.h so that a wrong type becomes a Status naming the key and
// line instead of a yaml-cpp exception, and the only exceptions left (syntax errors) are caught here.
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>

#include <fmt/format.h>

#include "repository/model_config.h"
#include "repository/yaml_fields.h"

namespace ferry {
namespace {

using namespace yaml_fields;  // NOLINT: the checked readers are this file's vocabulary

Status ParseTensors(const YAML::Node& node, std::string_view path, std::vector<TensorSpec>* out) {
  if (!node.IsSequence()) {
    return InvalidArgument(fmt::format("{}: expected a list of tensors{}", path, Line(node)));
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node& item = node[i];
    const std::string item_path = Index(path, i);
    FERRY_RETURN_IF_ERROR(CheckMap(item, item_path, {"name", "datatype", "dims", "columns"}));
    TensorSpec spec;
    for (std::string_view key : {"name", "datatype", "dims"}) {
      if (!item[std::string(key)]) return Missing(item, item_path, key);
    }
    FERRY_RETURN_IF_ERROR(GetString(item["name"], Child(item_path, "name"), &spec.name));
    FERRY_RETURN_IF_ERROR(ParseDataType(item["datatype"], Child(item_path, "datatype"), &spec.dtype));
    FERRY_RETURN_IF_ERROR(GetIntList(item["dims"], Child(item_path, "dims"), &spec.dims));
    if (const YAML::Node columns = item["columns"]) {
      const std::string columns_path = Child(item_path, "columns");
      if (!columns.IsSequence()) return InvalidArgument(fmt::format("{}: expected a list of names{}", columns_path, Line(columns)));
      for (size_t c = 0; c < columns.size(); ++c) {
        std::string column;
        FERRY_RETURN_IF_ERROR(GetString(columns[c], Index(columns_path, c), &column));
        spec.columns.push_back(std::move(column));
      }
    }
    out->push_back(std::move(spec));
  }
  return Status::Ok();
}

Status ParseVersionPolicy(const YAML::Node& node, VersionPolicy* out) {
  constexpr std::string_view kPath = "version_policy";
  FERRY_RETURN_IF_ERROR(CheckMap(node, kPath, {"latest", "all", "specific"}));
  if (node.size() != 1) {
    return InvalidArgument(
        fmt::format("{}: expected exactly one of latest, all, specific{}", kPath, Line(node)));
  }
  const auto entry = *node.begin();  // a copy: see CheckMap on yaml-cpp's iterator proxies
  const YAML::Node& key = entry.first;
  const YAML::Node& value = entry.second;
  const std::string path = Child(kPath, key.Scalar());
  if (key.Scalar() == "latest") {
    out->kind = VersionPolicy::Kind::kLatest;
    if (value.IsMap()) {  // Triton's {latest: {num_versions: N}}
      FERRY_RETURN_IF_ERROR(CheckMap(value, path, {"num_versions"}));
      if (!value["num_versions"]) return Missing(value, path, "num_versions");
      return GetInt(value["num_versions"], Child(path, "num_versions"), &out->latest_count);
    }
    return GetInt(value, path, &out->latest_count);
  }
  if (key.Scalar() == "all") {
    out->kind = VersionPolicy::Kind::kAll;
    if (value.IsNull()) return Status::Ok();
    if (value.IsMap()) return CheckMap(value, path, {});
    bool all = false;
    FERRY_RETURN_IF_ERROR(GetBool(value, path, &all));
    if (!all) {
      return InvalidArgument(
          fmt::format("{}: 'all: false' is not a policy; use latest or specific{}", path, Line(value)));
    }
    return Status::Ok();
  }
  out->kind = VersionPolicy::Kind::kSpecific;
  if (value.IsMap()) {  // Triton's {specific: {versions: [..]}}
    FERRY_RETURN_IF_ERROR(CheckMap(value, path, {"versions"}));
    if (!value["versions"]) return Missing(value, path, "versions");
    return GetIntList(value["versions"], Child(path, "versions"), &out->versions);
  }
  return GetIntList(value, path, &out->versions);
}

Status ParseDynamicBatching(const YAML::Node& node, DynamicBatchingConfig* out) {
  constexpr std::string_view kPath = "dynamic_batching";
  // Presence enables it, so a bare `dynamic_batching:` (null) means "on, with defaults".
  if (node.IsNull()) {
    out->enabled = true;
    return Status::Ok();
  }
  if (node.IsScalar()) return GetBool(node, kPath, &out->enabled);
  FERRY_RETURN_IF_ERROR(CheckMap(node, kPath, {"max_queue_delay_us", "preferred_batch_sizes"}));
  out->enabled = true;
  if (const YAML::Node n = node["max_queue_delay_us"]) {
    FERRY_RETURN_IF_ERROR(GetInt(n, Child(kPath, "max_queue_delay_us"), &out->max_queue_delay_us));
  }
  if (const YAML::Node n = node["preferred_batch_sizes"]) {
    FERRY_RETURN_IF_ERROR(GetIntList(n, Child(kPath, "preferred_batch_sizes"), &out->preferred_batch_sizes));
  }
  return Status::Ok();
}

Status ParseInstanceGroup(const YAML::Node& node, ModelConfig* out) {
  constexpr std::string_view kPath = "instance_group";
  FERRY_RETURN_IF_ERROR(
      CheckMap(node, kPath, {"count", "threads", "min", "max", "scale_up_after_s", "scale_down_idle_s", "cooldown_s"}));
  if (const YAML::Node n = node["min"]) FERRY_RETURN_IF_ERROR(GetInt(n, Child(kPath, "min"), &out->instance_min));
  if (const YAML::Node n = node["max"]) FERRY_RETURN_IF_ERROR(GetInt(n, Child(kPath, "max"), &out->instance_max));
  if ((node["min"] || node["max"]) && !node["max"]) {
    return InvalidArgument(fmt::format("{}: autoscaling needs max (and min, default 1){}", kPath, Line(node)));
  }
  if (node["max"] && !node["min"]) out->instance_min = 1;
  if (const YAML::Node n = node["count"]) {
    FERRY_RETURN_IF_ERROR(GetInt(n, Child(kPath, "count"), &out->instance_count));
  } else if (node["max"]) {
    out->instance_count = out->instance_min;  // starts at its minimum
  }
  for (auto [key, target] : {std::pair{"scale_up_after_s", &out->scale_up_after_s},
                             {"scale_down_idle_s", &out->scale_down_idle_s}, {"cooldown_s", &out->scale_cooldown_s}}) {
    if (const YAML::Node n = node[key]) {
      FERRY_RETURN_IF_ERROR(GetDouble(n, Child(kPath, key), target));
      if (!node["max"]) return InvalidArgument(fmt::format("{}.{} needs autoscaling (min and max){}", kPath, key, Line(n)));
      if (!(*target >= 0 && *target <= 86400)) {
        return InvalidArgument(fmt::format("{}.{} must be 0 to 86400 seconds{}", kPath, key, Line(n)));
      }
    }
  }
  if (const YAML::Node n = node["threads"]) {
    FERRY_RETURN_IF_ERROR(GetInt(n, Child(kPath, "threads"), &out->threads_per_instance));
  }
  return Status::Ok();
}

Status ParseParameters(const YAML::Node& node, ModelConfig* out) {
  constexpr std::string_view kPath = "parameters";
  if (!node.IsMap()) {
    return InvalidArgument(fmt::format("{}: expected a mapping{}", kPath, Line(node)));
  }
  std::set<std::string, std::less<>> seen;
  for (const auto& entry : node) {
    std::string key;
    std::string value;
    FERRY_RETURN_IF_ERROR(GetString(entry.first, fmt::format("{} key", kPath), &key));
    if (!seen.insert(key).second) {
      return InvalidArgument(fmt::format("duplicate key {} in {}{}", Quote(key), kPath, Line(entry.first)));
    }
    FERRY_RETURN_IF_ERROR(GetString(entry.second, Child(kPath, key), &value));
    out->backend_options.emplace_back(std::move(key), std::move(value));
  }
  return Status::Ok();
}

Status ParseDoubleList(const YAML::Node& node, std::string_view path, std::vector<double>* out) {
  if (!node.IsSequence()) return InvalidArgument(fmt::format("{}: expected a list of numbers{}", path, Line(node)));
  for (size_t i = 0; i < node.size(); ++i) {
    double v = 0;
    FERRY_RETURN_IF_ERROR(GetDouble(node[i], Index(path, i), &v));
    out->push_back(v);
  }
  return Status::Ok();
}

Status ParseTextFeatures(const YAML::Node& node, PreprocessConfig* p) {
  const std::string path = "preprocess.text";
  FERRY_RETURN_IF_ERROR(CheckMap(node, path, {"ngrams", "buckets", "lowercase"}));
  if (!node["buckets"]) return Missing(node, path, "buckets");
  TextFeaturesConfig t;
  FERRY_RETURN_IF_ERROR(GetInt(node["buckets"], Child(path, "buckets"), &t.buckets));
  if (const YAML::Node n = node["ngrams"]) {
    std::vector<int64_t> range;
    FERRY_RETURN_IF_ERROR(GetIntList(n, Child(path, "ngrams"), &range));
    if (range.size() != 2) return InvalidArgument(fmt::format("preprocess.text.ngrams: expected [min, max]{}", Line(n)));
    t.ngram_min = range[0];
    t.ngram_max = range[1];
  }
  if (const YAML::Node n = node["lowercase"]) {
    if (!n.IsScalar() || (n.Scalar() != "true" && n.Scalar() != "false")) {
      return InvalidArgument(fmt::format("preprocess.text.lowercase: expected true or false{}", Line(n)));
    }
    t.lowercase = n.Scalar() == "true";
  }
  p->text = t;
  return Status::Ok();
}

Status ParsePreprocess(const YAML::Node& node, ModelConfig* out) {
  constexpr std::string_view kPath = "preprocess";
  FERRY_RETURN_IF_ERROR(CheckMap(node, kPath, {"input", "raw", "color", "crop", "resize", "interpolation", "scale",
                                               "mean", "std", "tensor", "text"}));
  PreprocessConfig p;
  for (std::string_view key : {"input", "tensor"}) {
    if (!node[std::string(key)]) return Missing(node, kPath, key);
  }
  FERRY_RETURN_IF_ERROR(GetString(node["input"], Child(kPath, "input"), &p.input));
  if (const YAML::Node raw = node["raw"]) {
    const std::string path = Child(kPath, "raw");
    FERRY_RETURN_IF_ERROR(CheckMap(raw, path, {"width", "height", "channels"}));
    for (std::string_view key : {"width", "height", "channels"}) {
      if (!raw[std::string(key)]) return Missing(raw, path, key);
    }
    FERRY_RETURN_IF_ERROR(GetInt(raw["width"], Child(path, "width"), &p.raw_width));
    FERRY_RETURN_IF_ERROR(GetInt(raw["height"], Child(path, "height"), &p.raw_height));
    FERRY_RETURN_IF_ERROR(GetInt(raw["channels"], Child(path, "channels"), &p.raw_channels));
  }
  if (const YAML::Node n = node["color"]) {
    std::string color;
    FERRY_RETURN_IF_ERROR(GetString(n, Child(kPath, "color"), &color));
    if (color == "grey" || color == "gray") {
      p.color = PreprocessConfig::Color::kGrey;
    } else if (color == "bgr") {
      p.color = PreprocessConfig::Color::kBgr;
    } else if (color == "rgb") {
      p.color = PreprocessConfig::Color::kRgb;
    } else {
      return InvalidArgument(fmt::format("preprocess.color: expected grey, bgr or rgb, got {}{}", Quote(color), Line(n)));
    }
  }
  if (const YAML::Node n = node["crop"]) FERRY_RETURN_IF_ERROR(GetIntList(n, Child(kPath, "crop"), &p.crop));
  if (const YAML::Node n = node["resize"]) {
    std::vector<int64_t> size;
    FERRY_RETURN_IF_ERROR(GetIntList(n, Child(kPath, "resize"), &size));
    if (size.size() != 2) return InvalidArgument(fmt::format("preprocess.resize: expected [width, height]{}", Line(n)));
    p.resize_width = size[0];
    p.resize_height = size[1];
  }
  if (const YAML::Node n = node["interpolation"]) {
    std::string how;
    FERRY_RETURN_IF_ERROR(GetString(n, Child(kPath, "interpolation"), &how));
    if (how == "linear") {
      p.interpolation = PreprocessConfig::Interpolation::kLinear;
    } else if (how == "area") {
      p.interpolation = PreprocessConfig::Interpolation::kArea;
    } else if (how == "nearest") {
      p.interpolation = PreprocessConfig::Interpolation::kNearest;
    } else {
      return InvalidArgument(
          fmt::format("preprocess.interpolation: expected linear, area or nearest, got {}{}", Quote(how), Line(n)));
    }
  }
  if (const YAML::Node n = node["text"]) FERRY_RETURN_IF_ERROR(ParseTextFeatures(n, &p));
  if (const YAML::Node n = node["scale"]) FERRY_RETURN_IF_ERROR(GetDouble(n, Child(kPath, "scale"), &p.scale));
  if (const YAML::Node n = node["mean"]) FERRY_RETURN_IF_ERROR(ParseDoubleList(n, Child(kPath, "mean"), &p.mean));
  if (const YAML::Node n = node["std"]) FERRY_RETURN_IF_ERROR(ParseDoubleList(n, Child(kPath, "std"), &p.stddev));
  const YAML::Node tensor = node["tensor"];
  const std::string path = Child(kPath, "tensor");
  FERRY_RETURN_IF_ERROR(CheckMap(tensor, path, {"name", "dims"}));
  for (std::string_view key : {"name", "dims"}) {
    if (!tensor[std::string(key)]) return Missing(tensor, path, key);
  }
  FERRY_RETURN_IF_ERROR(GetString(tensor["name"], Child(path, "name"), &p.tensor.name));
  FERRY_RETURN_IF_ERROR(GetIntList(tensor["dims"], Child(path, "dims"), &p.tensor.dims));
  p.tensor.dtype = DataType::kFp32;
  out->preprocess = std::move(p);
  return Status::Ok();
}

Status ParsePrecomputed(const YAML::Node& node, ModelConfig* out) {
  constexpr std::string_view kPath = "precomputed";
  FERRY_RETURN_IF_ERROR(CheckMap(node, kPath, {"table", "max_age_s", "any_version", "write_back"}));
  PrecomputedConfig p;
  if (!node["table"]) return Missing(node, kPath, "table");
  FERRY_RETURN_IF_ERROR(GetString(node["table"], Child(kPath, "table"), &p.table));
  if (const YAML::Node n = node["max_age_s"]) FERRY_RETURN_IF_ERROR(GetInt(n, Child(kPath, "max_age_s"), &p.max_age_s));
  if (const YAML::Node n = node["any_version"]) FERRY_RETURN_IF_ERROR(GetBool(n, Child(kPath, "any_version"), &p.any_version));
  if (const YAML::Node n = node["write_back"]) FERRY_RETURN_IF_ERROR(GetBool(n, Child(kPath, "write_back"), &p.write_back));
  out->precomputed = std::move(p);
  return Status::Ok();
}

// `response_cache: true`, or Triton's `response_cache: {enable: true}`.
Status ParseResponseCache(const YAML::Node& node, ModelConfig* out) {
  if (!node.IsMap()) return GetBool(node, "response_cache", &out->response_cache);
  FERRY_RETURN_IF_ERROR(CheckMap(node, "response_cache", {"enable"}));
  if (!node["enable"]) return Missing(node, "response_cache", "enable");
  return GetBool(node["enable"], "response_cache.enable", &out->response_cache);
}

// A duration in seconds within 0..one year (0 only where `zero_ok`).
Status GetSeconds(const YAML::Node& node, std::string_view path, bool zero_ok, std::optional<double>* out) {
  double seconds = 0;
  FERRY_RETURN_IF_ERROR(GetDouble(node, path, &seconds));
  constexpr double kYear = 365.0 * 24 * 3600;
  if (seconds < 0 || (!zero_ok && seconds == 0) || seconds > kYear) {
    return InvalidArgument(fmt::format("{} must be {} seconds up to one year ({}), got {}{}", path,
                                       zero_ok ? "0 (never) or more" : "more than 0", kYear, seconds, Line(node)));
  }
  *out = seconds;
  return Status::Ok();
}

// Fills `out` from the document root; `*has_name` tells whether the config named itself.
Status ParseRoot(const YAML::Node& root, ModelConfig* out, bool* has_name) {
  *has_name = false;
  if (root.IsNull()) return Status::Ok();  // an empty file: every default
  FERRY_RETURN_IF_ERROR(CheckMap(
      root, "",
      {"name", "backend", "platform", "model_filename", "max_batch_size", "inputs", "outputs",
       "version_policy", "dynamic_batching", "instance_group", "max_queue_size", "default_timeout_ms",
       "parameters", "preprocess", "precomputed", "response_cache", "idle_unload_s", "cold_start_timeout_s",
       "max_queue_wait_ms", "max_concurrent_requests"}));
  if (const YAML::Node n = root["name"]) {
    *has_name = true;
    FERRY_RETURN_IF_ERROR(GetString(n, "name", &out->name));
  }
  if (const YAML::Node n = root["backend"]) FERRY_RETURN_IF_ERROR(GetString(n, "backend", &out->backend));
  if (const YAML::Node n = root["platform"]) FERRY_RETURN_IF_ERROR(GetString(n, "platform", &out->platform));
  if (const YAML::Node n = root["model_filename"]) {
    FERRY_RETURN_IF_ERROR(GetString(n, "model_filename", &out->model_filename));
  }
  if (const YAML::Node n = root["max_batch_size"]) {
    FERRY_RETURN_IF_ERROR(GetInt(n, "max_batch_size", &out->max_batch_size));
  }
  if (const YAML::Node n = root["inputs"]) FERRY_RETURN_IF_ERROR(ParseTensors(n, "inputs", &out->inputs));
  if (const YAML::Node n = root["outputs"]) FERRY_RETURN_IF_ERROR(ParseTensors(n, "outputs", &out->outputs));
  if (const YAML::Node n = root["version_policy"]) {
    FERRY_RETURN_IF_ERROR(ParseVersionPolicy(n, &out->version_policy));
  }
  if (const YAML::Node n = root["dynamic_batching"]) {
    FERRY_RETURN_IF_ERROR(ParseDynamicBatching(n, &out->dynamic_batching));
  }
  if (const YAML::Node n = root["instance_group"]) FERRY_RETURN_IF_ERROR(ParseInstanceGroup(n, out));
  if (const YAML::Node n = root["max_queue_size"]) {
    FERRY_RETURN_IF_ERROR(GetInt(n, "max_queue_size", &out->max_queue_size));
  }
  if (const YAML::Node n = root["max_concurrent_requests"]) {
    FERRY_RETURN_IF_ERROR(GetInt(n, "max_concurrent_requests", &out->max_concurrent_requests));
    if (out->max_concurrent_requests < 0 || out->max_concurrent_requests > 1'000'000) {
      return InvalidArgument(fmt::format("max_concurrent_requests must be within 0..1000000 (0: no cap), got {}{}",
                                         out->max_concurrent_requests, Line(n)));
    }
  }
  if (const YAML::Node n = root["default_timeout_ms"]) {
    int64_t ms = 0;
    FERRY_RETURN_IF_ERROR(GetInt(n, "default_timeout_ms", &ms));
    constexpr int64_t kMaxMs = std::numeric_limits<int64_t>::max() / 1000;
    if (ms < 0 || ms > kMaxMs) {
      return InvalidArgument(
          fmt::format("default_timeout_ms must be within 0..{}, got {}{}", kMaxMs, ms, Line(n)));
    }
    out->default_timeout_us = ms * 1000;
  }
  if (const YAML::Node n = root["max_queue_wait_ms"]) {
    int64_t ms = 0;
    FERRY_RETURN_IF_ERROR(GetInt(n, "max_queue_wait_ms", &ms));
    if (ms < 0 || ms > 3'600'000) {
      return InvalidArgument(fmt::format("max_queue_wait_ms must be within 0..3600000, got {}{}", ms, Line(n)));
    }
    out->max_queue_wait_us = ms * 1000;
  }
  if (const YAML::Node n = root["parameters"]) FERRY_RETURN_IF_ERROR(ParseParameters(n, out));
  if (const YAML::Node n = root["preprocess"]) FERRY_RETURN_IF_ERROR(ParsePreprocess(n, out));
  if (const YAML::Node n = root["precomputed"]) FERRY_RETURN_IF_ERROR(ParsePrecomputed(n, out));
  if (const YAML::Node n = root["response_cache"]) FERRY_RETURN_IF_ERROR(ParseResponseCache(n, out));
  if (const YAML::Node n = root["idle_unload_s"]) {
    FERRY_RETURN_IF_ERROR(GetSeconds(n, "idle_unload_s", /*zero_ok=*/true, &out->idle_unload_s));
  }
  if (const YAML::Node n = root["cold_start_timeout_s"]) {
    FERRY_RETURN_IF_ERROR(GetSeconds(n, "cold_start_timeout_s", /*zero_ok=*/false, &out->cold_start_timeout_s));
  }
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ParseModelConfig(std::string_view yaml_text, std::string_view model_name) {
  ModelConfig config;
  bool has_name = false;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    FERRY_RETURN_IF_ERROR(ParseRoot(root, &config, &has_name));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return InvalidArgument(fmt::format("invalid YAML: {}", e.msg));
    return InvalidArgument(
        fmt::format("invalid YAML at line {}, column {}: {}", e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::exception& e) {  // e.g. bad_alloc on a hostile document; never let it escape
    return InvalidArgument(fmt::format("cannot parse config: {}", e.what()));
  }
  if (!has_name) {
    config.name = std::string(model_name);
  } else if (!model_name.empty() && config.name != model_name) {
    return InvalidArgument(fmt::format("name {} does not match the model folder {}", Quote(config.name),
                                       Quote(model_name)));
  }
  FERRY_RETURN_IF_ERROR(ValidateModelConfig(config));
  return config;
}

}  // namespace ferry
