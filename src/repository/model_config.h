#pragma once
// A model's configuration: parsed from <repo>/<model>/config.yaml, validated, and rendered as Triton's
// JSON model configuration for tritonclient / perf_analyzer. Value types, thread-compatible.
//
// config.yaml (every key optional unless marked; unknown keys anywhere are errors, to catch typos):
//
//   name: cnn                    # must equal the folder name if given
//   backend: opencv_dnn          # opencv_dnn | openvino | xgboost | llama_cpp | identity; default:
//                                #   the server's default ONNX backend (`--default-onnx-backend`)
//   platform: onnx               # reported in metadata; default "onnx"
//   model_filename: model.onnx   # default; a plain file name inside the version folder
//   max_batch_size: 8            # 0 (default) = the model has no batch dimension
//   inputs:                      # each entry needs name, datatype and dims
//     - name: input
//       datatype: FP32           # OIP names: BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64
//                                #   FP16 FP32 FP64 BF16 BYTES (Triton's TYPE_FP32 spelling also accepted)
//       dims: [3, 224, 224]      # without the batch dim when max_batch_size > 0; -1 = variable
//   outputs:
//     - name: probabilities
//       datatype: FP32
//       dims: [10]
//   version_policy: {latest: 1}  # default. Or {all: {}} / {all: true} / {specific: [1, 3]}; Triton's
//                                #   {latest: {num_versions: 1}} and {specific: {versions: [..]}} too
//   dynamic_batching:            # its presence enables it (`dynamic_batching: {}` = defaults; `false` = off)
//     max_queue_delay_us: 500    # default 0
//     preferred_batch_sizes: [4, 8]
//   instance_group: {count: 1, threads: 2}   # executor instances; threads 0 = backend default
//   instance_group: {count: 1, min: 1, max: 4, scale_up_after_s: 1, scale_down_idle_s: 30, cooldown_s: 5}
//                                # autoscaling (tensor models): an instance is added while the queue
//                                #   stays deep (every instance busy and at least one task queued per
//                                #   instance) for scale_up_after_s, one removed when an instance has
//                                #   been idle with nothing queued for scale_down_idle_s; at most one
//                                #   change per cooldown_s; count is where it starts (default min)
//   max_queue_size: 64           # bounded per-model queue, > 0
//   max_concurrent_requests: 0   # 0 = no cap; requests of this model admitted and not yet answered
//                                #   (queued, running, generating, streaming; online, jobs and batch
//                                #   records alike); beyond it: 503 with Retry-After at once
//   default_timeout_ms: 0        # 0 = none; stored as default_timeout_us
//   max_queue_wait_ms: 0         # 0 = none; an online request whose expected queue wait (the work ahead
//                                #   times the recent execution time) is longer is refused at once, 503
//                                #   with Retry-After; one that could not finish before its deadline too
//   parameters: {key: value}     # backend options; scalar values, kept as strings in file order
//   preprocess:                  # image pre-processing run by the server (see PreprocessConfig)
//     input: frame               # the public input: BYTES, one element per image
//     raw: {width: 320, height: 240, channels: 3}   # an element of exactly w*h*c bytes is raw pixels
//     color: grey                # grey | bgr | rgb (raw 3-channel pixels are BGR, as cameras give them)
//     crop: [0, 0, 320, 240]     # x, y, width, height in source pixels
//     resize: [96, 72]           # width, height
//     interpolation: area        # linear (default) | area | nearest
//     scale: 0.00392156862745098 # then (x * scale - mean[c]) / std[c]
//     mean: [0.5]
//     std: [0.5]
//     tensor: {name: input, dims: [1, 1, 72, 96]}  # the model's FP32 NCHW input it produces
//   precomputed:                 # a precomputed table answers requests that carry parameters.key
//     table: user_recs           # the table's name (published by a batch or `ferry precompute load`)
//     max_age_s: 86400           # 0 (default): any age; an older entry is stale and goes to the model
//     any_version: false         # default: an entry made by another model version is stale
//     write_back: false          # true: a live answer to a keyed request is written into the table
//   response_cache: true         # exact-match answer cache (Triton's {enable: true} also accepted)
//   idle_unload_s: 300           # scale to zero: unload after this long unused (0 = never; default:
//                                #   the server's --idle-unload-s); the next request loads it and waits
//   cold_start_timeout_s: 60     # how long a request waits for a sleeping model to load (default:
//                                #   the server's --cold-start-timeout-s), then 503 with Retry-After
//
// Integers are plain decimal (no 0x / octal spellings, no floats). An empty file means all defaults.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "tensor/data_type.h"
#include "tensor/tensor.h"

namespace ferry {

struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kFp32;
  // Dims WITHOUT the batch dimension when max_batch_size > 0 (Triton convention); -1 = variable.
  Shape dims;
  // A tabular input's feature names, one per element in order (inputs only, 1-D fixed dims): a CSV
  // batch takes these columns by name, in whatever order the file has them.
  std::vector<std::string> columns;
};

struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int64_t latest_count = 1;         // kLatest: serve the N highest versions
  std::vector<int64_t> versions;    // kSpecific
};

struct DynamicBatchingConfig {
  bool enabled = false;
  int64_t max_queue_delay_us = 0;
  std::vector<int64_t> preferred_batch_sizes;  // in the order the config gives them
};

// Turns each element of a BYTES input (an encoded image, or raw pixels of the declared size) into an
// FP32 NCHW tensor for the model, in the server, so that clients such as cameras send frames as they are.
// A text's features, as a `preprocess: {text: ...}` block asks: the counts of its character n-grams
// (ngram_min..ngram_max bytes of the text, ASCII-lowercased when asked, with a space added at each
// end), each hashed (FNV-1a, 32 bits, over the n-gram's length byte and then its bytes) into one of
// `buckets`, the vector scaled to unit length. TextFeatureVector (preprocess/text_features.h) computes it.
struct TextFeaturesConfig {
  int64_t ngram_min = 1;
  int64_t ngram_max = 3;
  int64_t buckets = 0;
  bool lowercase = true;
};

struct PreprocessConfig {
  enum class Color { kGrey, kBgr, kRgb };
  enum class Interpolation { kLinear, kArea, kNearest };
  std::string input;                    // the public input (in ModelConfig::inputs): BYTES
  int64_t raw_width = 0;                // 0: every element is an encoded image (JPEG, PNG, BMP...)
  int64_t raw_height = 0;
  int64_t raw_channels = 0;             // 1 (grey) or 3 (BGR)
  Color color = Color::kBgr;
  std::vector<int64_t> crop;            // empty, or x, y, width, height
  int64_t resize_width = 0;             // 0: no resize
  int64_t resize_height = 0;
  Interpolation interpolation = Interpolation::kLinear;
  double scale = 1.0;
  std::vector<double> mean;             // one per channel, or empty (0)
  std::vector<double> stddev;           // `std`: one per channel, or empty (1)
  TensorSpec tensor;                    // FP32; dims [C, H, W] (batched) or [1, C, H, W]; text: [buckets]
  std::optional<TextFeaturesConfig> text;  // a text, not an image: none of the image keys apply
  int64_t channels() const { return color == Color::kGrey ? 1 : 3; }
};

// Which precomputed table fronts the model, and when its entries may answer.
struct PrecomputedConfig {
  std::string table;
  int64_t max_age_s = 0;     // 0: no limit
  bool any_version = false;  // false: only entries the serving version produced answer
  bool write_back = false;
};

struct ModelConfig {
  std::string name;                 // must equal the folder name
  std::string backend;              // empty: the server's default ONNX backend
  std::string platform = "onnx";    // reported in metadata
  std::string model_filename = "model.onnx";
  int64_t max_batch_size = 0;       // 0: no batch dimension
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  VersionPolicy version_policy;
  DynamicBatchingConfig dynamic_batching;
  int64_t instance_count = 1;       // executor instances, each with its own network
  int64_t threads_per_instance = 0; // 0: backend default
  // Autoscaling between instance_min and instance_max (instance_max 0: a fixed instance_count).
  int64_t instance_min = 0;
  int64_t instance_max = 0;
  double scale_up_after_s = 1;
  double scale_down_idle_s = 30;
  double scale_cooldown_s = 5;
  int64_t max_queue_size = 64;      // bounded per-model queue; full -> 503
  int64_t max_concurrent_requests = 0;  // 0: no cap; admitted and not yet answered; over it -> 503
  int64_t default_timeout_us = 0;   // 0: none; a request still queued past it fails with 504
  int64_t max_queue_wait_us = 0;    // 0: none; an online request expected to wait longer gets 503 now
  // Backend-specific string options (e.g. opencv target), passed through.
  std::vector<std::pair<std::string, std::string>> backend_options;
  std::optional<PreprocessConfig> preprocess;
  std::optional<PrecomputedConfig> precomputed;
  bool response_cache = false;
  std::optional<double> idle_unload_s;         // nullopt: the server's default
  std::optional<double> cold_start_timeout_s;  // nullopt: the server's default
};

// A language model (text generation through the generation scheduler), told by its config alone.
inline bool GeneratesText(const ModelConfig& config) { return config.backend == "llama_cpp"; }

// The config the backend sees: with pre-processing, the public input is replaced by the tensor it
// produces (in its place in `inputs`); otherwise `config` itself.
ModelConfig ModelSideConfig(const ModelConfig& config);

// Parses YAML text. `model_name` is the repository folder name; a config whose `name` differs is an
// error; a config without `name` takes it (an empty `model_name` skips the comparison). Runs
// ValidateModelConfig(). Every failure -- YAML syntax (with its line), a wrong type, an unknown key,
// a failed check -- is kInvalidArgument with a message naming the key and, where known, the line.
Result<ModelConfig> ParseModelConfig(std::string_view yaml_text, std::string_view model_name);
// Semantic checks: a valid model name, non-empty platform, non-empty unique tensor names,
// dims >= -1, max_batch_size >= 0, dynamic batching only with max_batch_size > 0 and preferred sizes
// unique within 1..max_batch_size, queue delay >= 0, instance count >= 1, threads >= 0,
// max_queue_size >= 1, timeout >= 0, a known policy (latest >= 1, specific: non-empty, unique,
// positive), a model filename with no path separators, unique non-empty parameter keys.
Status ValidateModelConfig(const ModelConfig& config);
// A precomputed table's name: 1..64 of [A-Za-z0-9_.-], starting with a letter or digit.
Status CheckTableName(std::string_view name);

// Full input shape accepted for a request with batch size `batch` (prepends batch when batched;
// prepends -1 when batched and `batch` is nullopt; ignores `batch` when the model is not batched).
Shape FullShape(const ModelConfig& config, const TensorSpec& spec, std::optional<int64_t> batch);

// Triton's JSON model configuration ("max_batch_size", "input":[{"name","data_type":"TYPE_FP32","dims"}],
// "output", "dynamic_batching" (only when enabled), "instance_group", "backend", "platform",
// "version_policy", "default_model_filename", and "parameters" in Triton's {"k":{"string_value":"v"}}
// form when there are any). Integers, dims included, are JSON numbers.
std::string ModelConfigToTritonJson(const ModelConfig& config);

}  // namespace ferry
