// ValidateModelConfig, FullShape and the Triton JSON rendering of a ModelConfig.
#include "repository/model_config.h"

#include <cmath>
#include <set>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/json_writer.h"
#include "repository/model_repository.h"

namespace ferry {
namespace {

// The backend joins this to the version folder, so it must not be able to name anything else.
bool IsPlainFileName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  return name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

Status ValidateColumns(const TensorSpec& t, std::string_view what, size_t i) {
  if (t.columns.empty()) return Status::Ok();
  if (what != "inputs") return InvalidArgument(fmt::format("{}[{}] '{}': only inputs name columns", what, i, t.name));
  if (t.dims.size() != 1 || t.dims[0] < 1 || static_cast<size_t>(t.dims[0]) != t.columns.size()) {
    return InvalidArgument(fmt::format("{}[{}] '{}': columns name each element of a 1-D input; dims {} hold {} values, "
                                       "columns has {}", what, i, t.name, ShapeToString(t.dims),
                                       t.dims.size() == 1 ? t.dims[0] : -1, t.columns.size()));
  }
  std::set<std::string_view> seen;
  for (const std::string& c : t.columns) {
    if (c.empty() || c == "id" || c == "custom_id") {
      return InvalidArgument(fmt::format("{}[{}] '{}': a column name must be non-empty and not id or custom_id", what, i, t.name));
    }
    if (!seen.insert(c).second) return InvalidArgument(fmt::format("{}[{}] '{}': column '{}' is named twice", what, i, t.name, c));
  }
  return Status::Ok();
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
    FERRY_RETURN_IF_ERROR(ValidateColumns(t, what, i));
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

static Status ValidateTextPreprocess(const ModelConfig& config) {
  const PreprocessConfig& p = *config.preprocess;
  const TextFeaturesConfig& t = *p.text;
  const auto bad = [](std::string_view why) { return InvalidArgument(fmt::format("preprocess: {}", why)); };
  if (p.raw_width != 0 || !p.crop.empty() || p.resize_width != 0 || p.resize_height != 0 || !p.mean.empty() ||
      !p.stddev.empty() || p.scale != 1.0) {
    return bad("text takes none of the image keys (raw, color, crop, resize, scale, mean, std)");
  }
  if (t.ngram_min < 1 || t.ngram_min > t.ngram_max || t.ngram_max > 8) return bad("text.ngrams must be [min, max] within 1..8");
  if (t.buckets < 1 || t.buckets > (int64_t{1} << 20)) return bad("text.buckets must be within 1..1048576");
  if (p.tensor.name.empty()) return bad("tensor needs a name");
  const Shape want = config.max_batch_size == 0 ? Shape{1, t.buckets} : Shape{t.buckets};
  if (p.tensor.dims != want) {
    return bad(fmt::format("tensor dims must be [{}{}] (one value per bucket)", config.max_batch_size == 0 ? "1, " : "",
                           t.buckets));
  }
  return Status::Ok();
}

Status ValidatePreprocess(const ModelConfig& config) {
  const PreprocessConfig& p = *config.preprocess;
  const auto bad = [](std::string_view why) { return InvalidArgument(fmt::format("preprocess: {}", why)); };
  const TensorSpec* input = nullptr;
  for (const TensorSpec& t : config.inputs) {
    if (t.name == p.input) input = &t;
  }
  if (input == nullptr) return bad(fmt::format("input '{}' is not one of the model's inputs", p.input));
  if (input->dtype != DataType::kBytes || input->dims != Shape{1}) {
    return bad(fmt::format("input '{}' must be BYTES with dims [1] (one {} per element)", p.input,
                           p.text ? "text" : "image"));
  }
  if (p.text) return ValidateTextPreprocess(config);
  if (p.raw_width != 0 || p.raw_height != 0 || p.raw_channels != 0) {
    if (p.raw_width < 1 || p.raw_height < 1 || p.raw_width > 16384 || p.raw_height > 16384) {
      return bad("raw width and height must be within 1..16384");
    }
    if (p.raw_channels != 1 && p.raw_channels != 3) return bad("raw channels must be 1 (grey) or 3 (BGR)");
  }
  if (!p.crop.empty()) {
    if (p.crop.size() != 4 || p.crop[0] < 0 || p.crop[1] < 0 || p.crop[2] < 1 || p.crop[3] < 1) {
      return bad("crop must be [x, y, width, height] with x, y >= 0 and width, height >= 1");
    }
    if (p.raw_width > 0 && (p.crop[0] + p.crop[2] > p.raw_width || p.crop[1] + p.crop[3] > p.raw_height)) {
      return bad("crop reaches outside the raw frame");
    }
  }
  if ((p.resize_width == 0) != (p.resize_height == 0) || p.resize_width < 0 || p.resize_height < 0 ||
      p.resize_width > 16384 || p.resize_height > 16384) {
    return bad("resize must be [width, height], each within 1..16384");
  }
  const size_t channels = static_cast<size_t>(p.channels());
  for (const auto* v : {&p.mean, &p.stddev}) {
    if (!v->empty() && v->size() != channels) {
      return bad(fmt::format("mean and std need one value per channel ({})", channels));
    }
  }
  for (double s : p.stddev) {
    if (!(s > 0)) return bad("std values must be > 0");
  }
  if (!(p.scale > 0) || !std::isfinite(p.scale)) return bad("scale must be a finite number > 0");
  if (p.tensor.name.empty()) return bad("tensor needs a name");
  Shape want = {static_cast<int64_t>(channels), -1, -1};
  if (config.max_batch_size == 0) want.insert(want.begin(), 1);
  const Shape& dims = p.tensor.dims;
  const size_t c_at = config.max_batch_size == 0 ? 1 : 0;
  if (dims.size() != want.size() || (c_at == 1 && dims[0] != 1) || dims[c_at] != want[c_at] || dims[c_at + 1] < 1 ||
      dims[c_at + 2] < 1) {
    return bad(fmt::format("tensor dims must be {}[{}, H, W] (NCHW, {} channel{} for color {})",
                           c_at == 1 ? "[1, ...]: " : "", channels, channels, channels == 1 ? "" : "s",
                           channels == 1 ? "grey" : "bgr/rgb"));
  }
  const int64_t out_h = dims[c_at + 1], out_w = dims[c_at + 2];
  const int64_t in_w = p.resize_width ? p.resize_width : (!p.crop.empty() ? p.crop[2] : p.raw_width);
  const int64_t in_h = p.resize_height ? p.resize_height : (!p.crop.empty() ? p.crop[3] : p.raw_height);
  if (in_w == 0 && in_h == 0) return bad("without raw, crop or resize the image size is unknown; add resize");
  if (in_w != out_w || in_h != out_h) {
    return bad(fmt::format("the image comes out {}x{} (width x height) but tensor dims want {}x{}", in_w, in_h,
                           out_w, out_h));
  }
  return Status::Ok();
}

ModelConfig ModelSideConfig(const ModelConfig& config) {
  if (!config.preprocess) return config;
  ModelConfig side = config;
  for (TensorSpec& t : side.inputs) {
    if (t.name == config.preprocess->input) {
      t = config.preprocess->tensor;
      t.dtype = DataType::kFp32;
    }
  }
  side.preprocess.reset();
  return side;
}

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
  if (config.instance_max > 0 &&
      (config.instance_min < 1 || config.instance_max > 64 || config.instance_min > config.instance_max ||
       config.instance_count < config.instance_min || config.instance_count > config.instance_max)) {
    return InvalidArgument(fmt::format("instance_group: need 1 <= min <= count <= max <= 64, got min {}, count {}, max {}",
                                       config.instance_min, config.instance_count, config.instance_max));
  }
  if (config.threads_per_instance < 0) {
    return InvalidArgument(
        fmt::format("instance_group.threads must be >= 0, got {}", config.threads_per_instance));
  }
  if (config.max_queue_size < 1) {
    // 0 means "unbounded" in Triton; Ferry's queues are always bounded.
    return InvalidArgument(fmt::format("max_queue_size must be >= 1, got {}", config.max_queue_size));
  }
  if (config.max_concurrent_requests < 0) {
    return InvalidArgument(fmt::format("max_concurrent_requests must be >= 0, got {}", config.max_concurrent_requests));
  }
  if (config.default_timeout_us < 0) {
    return InvalidArgument(fmt::format("default timeout must be >= 0, got {} us", config.default_timeout_us));
  }
  std::set<std::string_view> keys;
  for (const auto& [key, value] : config.backend_options) {
    if (key.empty()) return InvalidArgument("parameters: a key is empty");
    if (!keys.insert(key).second) return InvalidArgument(fmt::format("parameters: duplicate key '{}'", key));
  }
  if (config.preprocess) FERRY_RETURN_IF_ERROR(ValidatePreprocess(config));
  if (config.precomputed) {
    FERRY_RETURN_IF_ERROR(CheckTableName(config.precomputed->table).WithContext("precomputed.table"));
    constexpr int64_t kMaxAgeS = int64_t{100} * 366 * 86400;  // a century: kept far from overflow in ms
    if (config.precomputed->max_age_s < 0 || config.precomputed->max_age_s > kMaxAgeS) {
      return InvalidArgument(fmt::format("precomputed.max_age_s must be within 0..{}, got {}", kMaxAgeS,
                                         config.precomputed->max_age_s));
    }
  }
  return Status::Ok();
}

Status CheckTableName(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
                  });
  if (ok) return Status::Ok();
  return InvalidArgument(fmt::format(
      "table name '{}' must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
      name.substr(0, 80)));
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
