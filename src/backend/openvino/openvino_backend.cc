#include "backend/openvino/openvino_backend.h"

#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <openvino/frontend/manager.hpp>
#include <openvino/openvino.hpp>

#include "backend/tensor_checks.h"

namespace ferry {
namespace {

constexpr std::string_view kName = "openvino";

Result<ov::element::Type> ToOvType(DataType type) {
  switch (type) {
    case DataType::kBool: return ov::element::boolean;
    case DataType::kUint8: return ov::element::u8;
    case DataType::kUint16: return ov::element::u16;
    case DataType::kUint32: return ov::element::u32;
    case DataType::kUint64: return ov::element::u64;
    case DataType::kInt8: return ov::element::i8;
    case DataType::kInt16: return ov::element::i16;
    case DataType::kInt32: return ov::element::i32;
    case DataType::kInt64: return ov::element::i64;
    case DataType::kFp16: return ov::element::f16;
    case DataType::kFp32: return ov::element::f32;
    case DataType::kFp64: return ov::element::f64;
    case DataType::kBf16: return ov::element::bf16;
    case DataType::kBytes: break;
  }
  return InvalidArgument("BYTES tensors are not supported by the openvino backend");
}

std::string PartialShapeString(const ov::PartialShape& shape) { return shape.to_string(); }

// The options a model's `parameters:` may set, parsed and checked.
struct OpenVinoOptions {
  std::string device = "CPU";
  ov::element::Type precision = ov::element::f32;
  ov::hint::PerformanceMode hint = ov::hint::PerformanceMode::LATENCY;
  int num_streams = 1;
};

Result<OpenVinoOptions> ParseOptions(const ModelConfig& config) {
  OpenVinoOptions options;
  for (const auto& [key, value] : config.backend_options) {
    if (key == "device") {
      if (value.empty()) return InvalidArgument("parameter 'device' must not be empty");
      options.device = value;
    } else if (key == "inference_precision") {
      if (value == "f32") {
        options.precision = ov::element::f32;
      } else if (value == "bf16") {
        options.precision = ov::element::bf16;
      } else if (value == "f16") {
        options.precision = ov::element::f16;
      } else {
        return InvalidArgument("parameter 'inference_precision' is '" + value + "'; use f32, bf16 or f16");
      }
    } else if (key == "performance_hint") {
      if (value == "latency") {
        options.hint = ov::hint::PerformanceMode::LATENCY;
      } else if (value == "throughput") {
        options.hint = ov::hint::PerformanceMode::THROUGHPUT;
      } else {
        return InvalidArgument("parameter 'performance_hint' is '" + value + "'; use latency or throughput");
      }
    } else if (key == "num_streams") {
      const int n = std::atoi(value.c_str());
      if (n < 1 || n > 256 || std::to_string(n) != value) {
        return InvalidArgument("parameter 'num_streams' must be an integer in 1..256, got '" + value + "'");
      }
      options.num_streams = n;
    } else {
      return InvalidArgument("unknown parameter '" + key +
                             "' for the openvino backend (known: device, inference_precision, "
                             "performance_hint, num_streams)");
    }
  }
  return options;
}

// Finds a model port by tensor name; lists the names the model has when it is missing.
template <typename Ports>
Result<size_t> FindPort(const Ports& ports, const std::string& name, std::string_view kind) {
  std::string known;
  for (size_t i = 0; i < ports.size(); ++i) {
    const auto& names = ports[i].get_names();
    if (names.count(name) > 0) return i;
    known += (known.empty() ? "" : ", ") + (names.empty() ? std::string("?") : ports[i].get_any_name());
  }
  return InvalidArgument("the model has no " + std::string(kind) + " named '" + name + "'; its " +
                         std::string(kind) + "s are: " + (known.empty() ? "(none)" : known));
}

// The shape the served model takes for `spec`: [1..max_batch] + dims, -1 as a dynamic dim. The model's
// own shape must have the same rank and agree on every dim both sides fix (the batch dim excepted).
Result<ov::PartialShape> ServedShape(const ModelConfig& config, const TensorSpec& spec,
                                     const ov::PartialShape& model_shape) {
  std::vector<ov::Dimension> dims;
  if (config.max_batch_size > 0) dims.emplace_back(1, config.max_batch_size);
  for (int64_t d : spec.dims) dims.push_back(d < 0 ? ov::Dimension::dynamic() : ov::Dimension(d));
  ov::PartialShape served(dims);
  const auto mismatch = [&] {
    return InvalidArgument("input '" + spec.name + "': the config declares " + PartialShapeString(served) +
                           ", the model takes " + PartialShapeString(model_shape));
  };
  if (model_shape.rank().is_static()) {
    if (model_shape.rank().get_length() != static_cast<int64_t>(dims.size())) return mismatch();
    const size_t first = config.max_batch_size > 0 ? 1 : 0;
    for (size_t i = first; i < dims.size(); ++i) {
      if (dims[i].is_static() && model_shape[i].is_static() && dims[i] != model_shape[i]) return mismatch();
    }
  }
  return served;
}

// Confined to one thread at a time (the scheduler runs one Execute per instance).
class OpenVinoInstance final : public ModelInstance {
 public:
  OpenVinoInstance(ModelConfig config, ov::CompiledModel compiled)
      : config_(std::move(config)), compiled_(std::move(compiled)), request_(compiled_.create_infer_request()) {}

  Status WarmUp() {
    std::vector<Tensor> inputs;
    for (const auto& spec : config_.inputs) {
      Tensor t;
      t.name = spec.name;
      t.dtype = spec.dtype;
      t.shape = WarmUpShape(config_, spec);
      FERRY_ASSIGN_OR_RETURN(int64_t bytes, FixedByteSize(t.dtype, t.shape));
      t.data = Buffer::Own(std::vector<uint8_t>(static_cast<size_t>(bytes), 0));
      inputs.push_back(std::move(t));
    }
    Result<std::vector<Tensor>> outputs = Execute(inputs);
    if (!outputs.ok()) {
      return InvalidArgument("warm-up with the declared input shapes failed: " + outputs.status().message());
    }
    return Status::Ok();
  }

  Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    try {
      return ExecuteImpl(inputs);
    } catch (const std::exception& e) {
      return Internal(std::string("openvino: ") + e.what());
    } catch (...) {
      return Internal("openvino: unknown exception");
    }
  }

 private:
  Result<std::vector<Tensor>> ExecuteImpl(const std::vector<Tensor>& inputs) {
    FERRY_RETURN_IF_ERROR(CheckInputCount(inputs, config_));
    std::optional<int64_t> batch;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Tensor& t = inputs[i];
      const TensorSpec& spec = config_.inputs[i];
      if (t.dtype != spec.dtype) {
        return InvalidArgument("input '" + spec.name + "' is " + std::string(DataTypeName(t.dtype)) +
                               ", the model takes " + std::string(DataTypeName(spec.dtype)));
      }
      FERRY_RETURN_IF_ERROR(CheckInputTensor(t, spec, config_, batch));
      FERRY_ASSIGN_OR_RETURN(ov::element::Type type, ToOvType(t.dtype));
      ov::Shape shape(t.shape.begin(), t.shape.end());
      // A view of the request's bytes: OpenVINO only reads inputs.
      request_.set_tensor(spec.name, ov::Tensor(type, shape, const_cast<uint8_t*>(t.data.data())));
    }
    request_.infer();

    std::vector<Tensor> outputs;
    outputs.reserve(config_.outputs.size());
    for (const TensorSpec& spec : config_.outputs) {
      const ov::Tensor out = request_.get_tensor(spec.name);
      Tensor t;
      t.name = spec.name;
      t.dtype = spec.dtype;
      const ov::Shape& shape = out.get_shape();
      t.shape.assign(shape.begin(), shape.end());
      FERRY_RETURN_IF_ERROR(CheckOutputShape(t.shape, spec, batch));
      FERRY_ASSIGN_OR_RETURN(int64_t bytes, FixedByteSize(t.dtype, t.shape));
      if (static_cast<size_t>(bytes) != out.get_byte_size()) {
        return Internal("output '" + spec.name + "' has " + std::to_string(out.get_byte_size()) +
                        " bytes, its shape needs " + std::to_string(bytes));
      }
      const auto* src = static_cast<const uint8_t*>(out.data());
      t.data = Buffer::Own(std::vector<uint8_t>(src, src + out.get_byte_size()));
      outputs.push_back(std::move(t));
    }
    return outputs;
  }

  ModelConfig config_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
};

Status CheckConfig(const ModelConfig& config) {
  if (config.inputs.empty()) return InvalidArgument("openvino needs at least one declared input");
  if (config.outputs.empty()) return InvalidArgument("openvino needs at least one declared output");
  for (const auto* list : {&config.inputs, &config.outputs}) {
    for (const auto& spec : *list) FERRY_RETURN_IF_ERROR(ToOvType(spec.dtype).status());
  }
  return Status::Ok();
}

class OpenVinoBackend final : public Backend {
 public:
  std::string_view name() const override { return kName; }

  Result<std::unique_ptr<ModelInstance>> CreateInstance(const ModelConfig& config,
                                                        const std::filesystem::path& version_dir) override {
    try {
      auto result = CreateInstanceImpl(config, version_dir);
      if (!result.ok()) return result.status().WithContext("openvino: loading '" + config.name + "'");
      return result;
    } catch (const std::exception& e) {
      return InvalidArgument("openvino: loading '" + config.name + "': " + Shorten(e.what()));
    } catch (...) {
      return Internal("openvino: loading '" + config.name + "': unknown exception");
    }
  }

 private:
  // OpenVINO's messages carry its own source locations and check names; keep them short for the index.
  static std::string Shorten(std::string message) {
    constexpr size_t kMax = 600;
    if (message.size() > kMax) message = message.substr(0, kMax) + "...";
    return message;
  }

  // One ov::Core for the process, made on first use (it reads the plugin list; ov::Core is thread-safe).
  // Never destroyed: destroying it unloads OpenVINO's plugins, after which the sanitizers can no longer
  // symbolize what those plugins allocated, and nothing is gained by unloading them at exit.
  static Result<ov::Core*> GetCore() {
    static std::mutex mutex;
    static ov::Core* core = nullptr;
    std::lock_guard lock(mutex);
    if (core == nullptr) {
      try {
        core = new ov::Core();
      } catch (const std::exception& e) {
        return Internal(std::string("cannot start the OpenVINO runtime: ") + e.what());
      }
    }
    return core;
  }

  // An .onnx file goes to the ONNX frontend alone. ov::Core::read_model would offer an unreadable file to
  // every frontend in turn, and the TensorFlow one logs protobuf parse errors for it and leaks.
  static std::shared_ptr<ov::Model> ReadOnnx(const std::filesystem::path& file) {
    static std::mutex mutex;
    static auto* manager = new ov::frontend::FrontEndManager();  // kept, like the Core: see GetCore
    std::lock_guard lock(mutex);
    static ov::frontend::FrontEnd::Ptr onnx = manager->load_by_framework("onnx");
    return onnx->convert(onnx->load(file.string()));
  }

  Result<std::unique_ptr<ModelInstance>> CreateInstanceImpl(const ModelConfig& config,
                                                            const std::filesystem::path& version_dir) {
    FERRY_RETURN_IF_ERROR(CheckConfig(config));
    FERRY_ASSIGN_OR_RETURN(OpenVinoOptions options, ParseOptions(config));
    const std::filesystem::path file = version_dir / config.model_filename;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      return NotFound("model file '" + config.model_filename + "' not found");
    }
    FERRY_ASSIGN_OR_RETURN(ov::Core * core, GetCore());

    std::shared_ptr<ov::Model> model;
    try {
      model = file.extension() == ".onnx" ? ReadOnnx(file) : core->read_model(file.string());
    } catch (const std::exception& e) {
      return InvalidArgument("'" + config.model_filename + "' is not a model OpenVINO can read: " +
                             Shorten(e.what()));
    }

    std::map<std::string, ov::PartialShape> shapes;
    for (const auto& spec : config.inputs) {
      FERRY_ASSIGN_OR_RETURN(size_t port, FindPort(model->inputs(), spec.name, "input"));
      FERRY_ASSIGN_OR_RETURN(ov::PartialShape served,
                             ServedShape(config, spec, model->inputs()[port].get_partial_shape()));
      shapes.emplace(spec.name, std::move(served));
    }
    for (const auto& spec : config.outputs) {
      FERRY_RETURN_IF_ERROR(FindPort(model->outputs(), spec.name, "output").status());
    }
    try {
      model->reshape(shapes);
    } catch (const std::exception& e) {
      return InvalidArgument("the model cannot take the declared input shapes (a batch dimension of 1.." +
                             std::to_string(config.max_batch_size) + " when batched): " + Shorten(e.what()));
    }

    // Declared dtypes at the edges; the compiled graph converts to and from the model's own types.
    ov::preprocess::PrePostProcessor ppp(model);
    for (const auto& spec : config.inputs) {
      ppp.input(spec.name).tensor().set_element_type(ToOvType(spec.dtype).value());
    }
    for (const auto& spec : config.outputs) {
      ppp.output(spec.name).tensor().set_element_type(ToOvType(spec.dtype).value());
    }
    model = ppp.build();

    ov::AnyMap properties{ov::hint::inference_precision(options.precision),
                          ov::hint::performance_mode(options.hint), ov::num_streams(options.num_streams)};
    if (config.threads_per_instance > 0) {
      properties.emplace(ov::inference_num_threads(static_cast<int>(config.threads_per_instance)));
    }
    ov::CompiledModel compiled;
    try {
      compiled = core->compile_model(model, options.device, properties);
    } catch (const std::exception& e) {
      return InvalidArgument("OpenVINO cannot compile the model for " + options.device + ": " + Shorten(e.what()));
    }
    auto instance = std::make_unique<OpenVinoInstance>(config, std::move(compiled));
    FERRY_RETURN_IF_ERROR(instance->WarmUp());
    return std::unique_ptr<ModelInstance>(std::move(instance));
  }
};

}  // namespace

std::unique_ptr<Backend> MakeOpenVinoBackend() { return std::make_unique<OpenVinoBackend>(); }

}  // namespace ferry
