// ValidateModelConfig, FullShape and the Triton JSON rendering of a ModelConfig.
#include "repository/model_config.h"

#include <set>

#include <fmt/format.h>

#include "common/json_writer.h"
#include "repository/model_repository.h"

namespace ferry {
namespace {

// The backend joins this to the version folder, so it must not be able to name anything else.
bool IsPlainFileName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  return name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

Status ValidateTensors(const std::vector<TensorSpec>& tensors, std::string_view what) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec& t = tensors[i];
    if (t.name.empty()) return InvalidArgument(fmt::format("{}[{}]: name is empty", what, i));
    if (!names.insert(t.name).second) {
      return InvalidArgument(fmt::format("{}[{}]: duplicate name '{}'", what, i, t.name));
    }
    for (size_t d = 0; d < t.dims.size(); ++d) {
      if (t.dims[d] < -1) {
        return InvalidArgument(fmt::format("{}[{}] '{}': dims[{}] is {}; dims must be >= -1 (-1 = variable)",
                                           what, i, t.name, d, t.dims[d]));
      }
    }
  }
  return Status::Ok();
}

Status ValidateVersionPolicy(const VersionPolicy& policy) {
  switch (policy.kind) {
    case VersionPolicy::Kind::kLatest:
      if (policy.latest_count < 1) {
        return InvalidArgument(
            fmt::format("version_policy.latest must be >= 1, got {}", policy.latest_count));
      }
      return Status::Ok();
    case VersionPolicy::Kind::kAll:
      return Status::Ok();
    case VersionPolicy::Kind::kSpecific: {
      if (policy.versions.empty()) {
        return InvalidArgument("version_policy.specific must list at least one version");
      }
      std::set<int64_t> seen;
      for (int64_t v : policy.versions) {
        if (v < 1) return InvalidArgument(fmt::format("version_policy.specific: version {} is not >= 1", v));
        if (!seen.insert(v).second) {
          return InvalidArgument(fmt::format("version_policy.specific: version {} is listed twice", v));
        }
      }
      return Status::Ok();
    }
  }
  return InvalidArgument("version_policy: unknown policy kind");
}

Status ValidateDynamicBatching(const ModelConfig& config) {
  const DynamicBatchingConfig& db = config.dynamic_batching;
  if (!db.enabled) return Status::Ok();
  // Batching needs a batch dimension to stack requests along (Triton refuses the same).
  if (config.max_batch_size == 0) {
    return InvalidArgument("dynamic_batching requires max_batch_size > 0");
  }
  if (db.max_queue_delay_us < 0) {
    return InvalidArgument(
        fmt::format("dynamic_batching.max_queue_delay_us must be >= 0, got {}", db.max_queue_delay_us));
  }
  std::set<int64_t> seen;
  for (int64_t size : db.preferred_batch_sizes) {
    if (size < 1 || size > config.max_batch_size) {
      return InvalidArgument(fmt::format(
          "dynamic_batching.preferred_batch_sizes: {} is outside 1..max_batch_size ({})", size,
          config.max_batch_size));
    }
    if (!seen.insert(size).second) {
      return InvalidArgument(
          fmt::format("dynamic_batching.preferred_batch_sizes: {} is listed twice", size));
    }
  }
  return Status::Ok();
}

void WriteTensors(JsonWriter& w, const std::vector<TensorSpec>& tensors) {
  w.BeginArray();
  for (const TensorSpec& t : tensors) {
    w.BeginObject();
    w.Key("name").String(t.name);
    w.Key("data_type").String(TritonConfigTypeName(t.dtype));
    w.Key("dims").BeginArray();
    for (int64_t d : t.dims) w.Int(d);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
}

void WriteVersionPolicy(JsonWriter& w, const VersionPolicy& policy) {
  w.BeginObject();
  switch (policy.kind) {
    case VersionPolicy::Kind::kLatest:
      w.Key("latest").BeginObject().Key("num_versions").Int(policy.latest_count).EndObject();
      break;
    case VersionPolicy::Kind::kAll:
      w.Key("all").BeginObject().EndObject();
      break;
    case VersionPolicy::Kind::kSpecific:
      w.Key("specific").BeginObject().Key("versions").BeginArray();
      for (int64_t v : policy.versions) w.Int(v);
      w.EndArray().EndObject();
      break;
  }
  w.EndObject();
}

}  // namespace

Status ValidateModelConfig(const ModelConfig& config) {
  if (config.name.empty()) return InvalidArgument("name is empty");
  if (!ModelRepository::IsValidModelName(config.name)) {
    return InvalidArgument(fmt::format(
        "name '{}' is not a valid model name (1..255 bytes, no leading '.', no '/', '\\' or control "
        "characters)",
        config.name.substr(0, 64)));
  }
  if (config.platform.empty()) return InvalidArgument("platform must not be empty");
  if (!IsPlainFileName(config.model_filename)) {
    return InvalidArgument(fmt::format(
        "model_filename '{}' must be a plain file name with no path separators",
        config.model_filename.substr(0, 64)));
  }
  if (config.max_batch_size < 0) {
    return InvalidArgument(fmt::format("max_batch_size must be >= 0, got {}", config.max_batch_size));
  }
  FERRY_RETURN_IF_ERROR(ValidateTensors(config.inputs, "inputs"));
  FERRY_RETURN_IF_ERROR(ValidateTensors(config.outputs, "outputs"));
  FERRY_RETURN_IF_ERROR(ValidateVersionPolicy(config.version_policy));
  FERRY_RETURN_IF_ERROR(ValidateDynamicBatching(config));
  if (config.instance_count < 1) {
    return InvalidArgument(fmt::format("instance_group.count must be >= 1, got {}", config.instance_count));
  }
  if (config.threads_per_instance < 0) {
    return InvalidArgument(
        fmt::format("instance_group.threads must be >= 0, got {}", config.threads_per_instance));
  }
  if (config.max_queue_size < 1) {
    // 0 means "unbounded" in Triton; Ferry's queues are always bounded.
    return InvalidArgument(fmt::format("max_queue_size must be >= 1, got {}", config.max_queue_size));
  }
  if (config.default_timeout_us < 0) {
    return InvalidArgument(fmt::format("default timeout must be >= 0, got {} us", config.default_timeout_us));
  }
  std::set<std::string_view> keys;
  for (const auto& [key, value] : config.backend_options) {
    if (key.empty()) return InvalidArgument("parameters: a key is empty");
    if (!keys.insert(key).second) return InvalidArgument(fmt::format("parameters: duplicate key '{}'", key));
  }
  return Status::Ok();
}

Shape FullShape(const ModelConfig& config, const TensorSpec& spec, std::optional<int64_t> batch) {
  if (config.max_batch_size == 0) return spec.dims;
  Shape shape;
  shape.reserve(spec.dims.size() + 1);
  shape.push_back(batch.value_or(-1));
  shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
  return shape;
}

std::string ModelConfigToTritonJson(const ModelConfig& config) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("name").String(config.name);
  w.Key("platform").String(config.platform);
  w.Key("backend").String(config.backend);
  w.Key("version_policy");
  WriteVersionPolicy(w, config.version_policy);
  w.Key("max_batch_size").Int(config.max_batch_size);
  w.Key("input");
  WriteTensors(w, config.inputs);
  w.Key("output");
  WriteTensors(w, config.outputs);
  // perf_analyzer picks its scheduler from the key's presence, so it is written only when enabled.
  if (config.dynamic_batching.enabled) {
    w.Key("dynamic_batching").BeginObject();
    w.Key("preferred_batch_size").BeginArray();
    for (int64_t size : config.dynamic_batching.preferred_batch_sizes) w.Int(size);
    w.EndArray();
    w.Key("max_queue_delay_microseconds").Int(config.dynamic_batching.max_queue_delay_us);
    w.EndObject();
  }
  w.Key("instance_group").BeginArray().BeginObject();
  w.Key("name").String(config.name);
  w.Key("count").Int(config.instance_count);
  w.Key("kind").String("KIND_CPU");
  w.EndObject().EndArray();
  w.Key("default_model_filename").String(config.model_filename);
  if (!config.backend_options.empty()) {
    w.Key("parameters").BeginObject();
    for (const auto& [key, value] : config.backend_options) {
      w.Key(key).BeginObject().Key("string_value").String(value).EndObject();
    }
    w.EndObject();
  }
  w.EndObject();
  return out;
}

}  // namespace ferry
