#include "backend/xgboost/xgboost_backend.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xgboost/c_api.h>

#include "backend/tensor_checks.h"
#include "backend/xgboost/xgboost_model_check.h"

namespace ferry {
namespace {

constexpr std::string_view kName = "xgboost";
constexpr int64_t kMaxModelBytes = int64_t{1} << 30;

// XGBoost's own log lines (warnings about old models, for instance) go to Ferry's log. Its callback
// registry is per thread, so every thread that calls XGBoost registers it first.
void RouteXgboostLog() {
  thread_local bool registered = false;
  if (registered) return;
  registered = true;
  XGBRegisterLogCallback([](const char* message) { spdlog::warn("xgboost: {}", message); });
}

// XGBGetLastError for this thread without the timestamp and the stack trace XGBoost appends.
std::string LastError() {
  std::string message = XGBGetLastError();
  if (const size_t trace = message.find("Stack trace:"); trace != std::string::npos) message.resize(trace);
  if (message.size() > 11 && message[0] == '[' && message[9] == ']' && message[10] == ' ') message.erase(0, 11);
  while (!message.empty() && (std::isspace(static_cast<unsigned char>(message.back())) || message.back() == ':')) {
    message.pop_back();
  }
  constexpr size_t kMax = 600;
  if (message.size() > kMax) message = message.substr(0, kMax) + "...";
  return message.empty() ? "unknown XGBoost error" : message;
}

struct BoosterDeleter {
  void operator()(void* handle) const { XGBoosterFree(handle); }
};
using Booster = std::unique_ptr<void, BoosterDeleter>;

enum class OutputKind { kPrediction, kProbability, kMargin };

Result<OutputKind> ParseOptions(const ModelConfig& config) {
  OutputKind output = OutputKind::kPrediction;
  for (const auto& [key, value] : config.backend_options) {
    if (key != "output") {
      return InvalidArgument("unknown parameter '" + key + "' for the xgboost backend (known: output)");
    }
    if (value == "prediction") {
      output = OutputKind::kPrediction;
    } else if (value == "probability") {
      output = OutputKind::kProbability;
    } else if (value == "margin") {
      output = OutputKind::kMargin;
    } else {
      return InvalidArgument("parameter 'output' is '" + value + "'; use prediction, probability or margin");
    }
  }
  return output;
}

// The declared feature count and values per row (-1: whatever the model gives).
struct DeclaredShape {
  int64_t features = 0;
  int64_t values = -1;
};

Result<DeclaredShape> CheckConfig(const ModelConfig& config) {
  if (config.inputs.size() != 1 || config.outputs.size() != 1) {
    return InvalidArgument("xgboost models take one input ([features] per row) and give one output");
  }
  const TensorSpec& in = config.inputs[0];
  const TensorSpec& out = config.outputs[0];
  if (in.dtype != DataType::kFp32 || out.dtype != DataType::kFp32) {
    return InvalidArgument("xgboost models take and give FP32 (input '" + in.name + "' is " +
                           std::string(DataTypeName(in.dtype)) + ", output '" + out.name + "' is " +
                           std::string(DataTypeName(out.dtype)) + ")");
  }
  const size_t rank = config.max_batch_size > 0 ? 1 : 2;
  const std::string form = config.max_batch_size > 0 ? "[features]" : "[rows, features]";
  if (in.dims.size() != rank || out.dims.size() != rank) {
    return InvalidArgument("input '" + in.name + "' must have dims " + form + " and output '" + out.name +
                           "' " + (rank == 1 ? "[values]" : "[rows, values]") +
                           (rank == 1 ? " (max_batch_size > 0 adds the batch dimension)" : ""));
  }
  if (in.dims.back() < 1) return InvalidArgument("input '" + in.name + "': declare the feature count");
  if (rank == 2 && out.dims[0] != in.dims[0]) {
    return InvalidArgument("output '" + out.name + "' must have as many rows as input '" + in.name + "'");
  }
  return DeclaredShape{in.dims.back(), out.dims.back()};
}

Result<XgboostFormat> FormatOf(const std::string& filename) {
  const std::string ext = std::filesystem::path(filename).extension().string();
  if (ext == ".json") return XgboostFormat::kJson;
  if (ext == ".ubj") return XgboostFormat::kUbjson;
  return InvalidArgument("model_filename '" + filename + "' must end in .json or .ubj (XGBoost's JSON or UBJSON "
                         "model, as Booster.save_model writes it; the legacy binary format is not served)");
}

Result<std::string> ReadModelFile(const std::filesystem::path& file, const std::string& shown) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return NotFound("model file '" + shown + "' not found");
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return InvalidArgument("cannot read '" + shown + "': " + ec.message());
  if (size > static_cast<uintmax_t>(kMaxModelBytes)) {
    return InvalidArgument(fmt::format("'{}' has {} bytes, over the {} this backend reads", shown, size, kMaxModelBytes));
  }
  std::ifstream in(file, std::ios::binary);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())) || in.gcount() != static_cast<std::streamsize>(size)) {
    return InvalidArgument("cannot read '" + shown + "'");
  }
  return bytes;
}

bool GivesProbability(std::string_view objective) {
  return objective == "binary:logistic" || objective == "reg:logistic" || objective == "multi:softprob";
}

// Confined to one thread at a time (the scheduler runs one Execute per instance).
class XgboostInstance final : public ModelInstance {
 public:
  // `in_place`: predict straight from the request's rows; XGBoost 1.7's linear booster cannot, so it
  // gets a DMatrix (a copy of the rows) per batch.
  XgboostInstance(ModelConfig config, Booster booster, OutputKind output, bool in_place)
      : config_(std::move(config)), booster_(std::move(booster)), in_place_(in_place) {
    predict_config_ = fmt::format(
        R"({{"type":{},"training":false,"iteration_begin":0,"iteration_end":0,"strict_shape":true,)"
        R"("missing":NaN,"cache_id":0}})",
        output == OutputKind::kMargin ? 1 : 0);
  }

  // Predicts one row of missing values to learn the values per row the model gives.
  Result<int64_t> ProbeWidth(int64_t features) {
    const std::vector<float> row(static_cast<size_t>(features), std::nanf(""));
    std::vector<uint8_t> out;
    FERRY_ASSIGN_OR_RETURN(width_, Predict(row.data(), 1, features, out));
    return width_;
  }

  Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    try {
      return ExecuteImpl(inputs);
    } catch (const std::exception& e) {
      return Internal(std::string("xgboost: ") + e.what());
    } catch (...) {
      return Internal("xgboost: unknown exception");
    }
  }

 private:
  struct DMatrixDeleter {
    void operator()(void* handle) const { XGDMatrixFree(handle); }
  };

  // Predicts `rows` rows into `out` (rows * width floats, copied: XGBoost reuses its buffer on the next
  // call, and a DMatrix's results go with it). Returns the width.
  Result<int64_t> Predict(const float* data, int64_t rows, int64_t features, std::vector<uint8_t>& out) {
    RouteXgboostLog();
    const bst_ulong* shape = nullptr;
    bst_ulong dims = 0;
    const float* values = nullptr;
    std::unique_ptr<void, DMatrixDeleter> matrix;
    int rc = 0;
    if (in_place_) {
      const std::string array = fmt::format(R"({{"data":[{},true],"shape":[{},{}],"typestr":"<f4","version":3}})",
                                            reinterpret_cast<uintptr_t>(data), rows, features);
      rc = XGBoosterPredictFromDense(booster_.get(), array.c_str(), predict_config_.c_str(), nullptr, &shape, &dims,
                                     &values);
    } else {
      DMatrixHandle handle = nullptr;
      if (XGDMatrixCreateFromMat(data, static_cast<bst_ulong>(rows), static_cast<bst_ulong>(features), std::nanf(""),
                                 &handle) != 0) {
        return Internal("xgboost: cannot take the rows: " + LastError());
      }
      matrix.reset(handle);
      rc = XGBoosterPredictFromDMatrix(booster_.get(), handle, predict_config_.c_str(), &shape, &dims, &values);
    }
    if (rc != 0) return Internal("xgboost: prediction failed: " + LastError());
    if (dims != 2 || shape[0] != static_cast<bst_ulong>(rows) || shape[1] < 1) {
      return Internal(fmt::format("xgboost: a prediction for {} rows came back with {} dims", rows, dims));
    }
    const auto width = static_cast<int64_t>(shape[1]);
    out.resize(static_cast<size_t>(rows * width) * sizeof(float));
    std::memcpy(out.data(), values, out.size());
    return width;
  }

  static Status CheckFinite(const float* data, int64_t rows, int64_t features, const std::string& name) {
    for (int64_t i = 0; i < rows * features; ++i) {
      if (std::isinf(data[i])) {
        return InvalidArgument(fmt::format("input '{}' row {} feature {} is infinite; send NaN for a missing value",
                                           name, i / features, i % features));
      }
    }
    return Status::Ok();
  }

  Result<std::vector<Tensor>> ExecuteImpl(const std::vector<Tensor>& inputs) {
    FERRY_RETURN_IF_ERROR(CheckInputCount(inputs, config_));
    const Tensor& in = inputs[0];
    const TensorSpec& spec = config_.inputs[0];
    if (in.dtype != DataType::kFp32) {
      return InvalidArgument("input '" + spec.name + "' is " + std::string(DataTypeName(in.dtype)) +
                             ", the model takes FP32");
    }
    std::optional<int64_t> batch;
    FERRY_RETURN_IF_ERROR(CheckInputTensor(in, spec, config_, batch));
    const int64_t rows = in.shape[0];
    const int64_t features = in.shape[1];
    const float* data = reinterpret_cast<const float*>(in.data.data());
    std::vector<float> aligned;
    if (reinterpret_cast<uintptr_t>(data) % alignof(float) != 0) {
      aligned.resize(static_cast<size_t>(rows * features));
      std::memcpy(aligned.data(), in.data.data(), aligned.size() * sizeof(float));
      data = aligned.data();
    }
    FERRY_RETURN_IF_ERROR(CheckFinite(data, rows, features, spec.name));

    Tensor out;
    out.name = config_.outputs[0].name;
    out.dtype = DataType::kFp32;
    out.shape = {rows, width_};
    std::vector<uint8_t> bytes;
    if (rows > 0) {
      FERRY_ASSIGN_OR_RETURN(int64_t width, Predict(data, rows, features, bytes));
      if (width != width_) return Internal(fmt::format("xgboost: {} values per row, {} at load", width, width_));
    }
    FERRY_RETURN_IF_ERROR(CheckOutputShape(out.shape, config_.outputs[0], batch));
    out.data = Buffer::Own(std::move(bytes));
    std::vector<Tensor> outputs;
    outputs.push_back(std::move(out));
    return outputs;
  }

  ModelConfig config_;
  Booster booster_;
  bool in_place_;
  std::string predict_config_;
  int64_t width_ = 0;
};

class XgboostBackend final : public Backend {
 public:
  std::string_view name() const override { return kName; }

  Result<std::unique_ptr<ModelInstance>> CreateInstance(const ModelConfig& config,
                                                        const std::filesystem::path& version_dir) override {
    try {
      auto result = CreateInstanceImpl(config, version_dir);
      if (!result.ok()) return result.status().WithContext("xgboost: loading '" + config.name + "'");
      return result;
    } catch (const std::exception& e) {
      return Internal("xgboost: loading '" + config.name + "': " + e.what());
    } catch (...) {
      return Internal("xgboost: loading '" + config.name + "': unknown exception");
    }
  }

 private:
  static Result<Booster> LoadBooster(const std::string& bytes, const ModelConfig& config) {
    RouteXgboostLog();
    BoosterHandle handle = nullptr;
    if (XGBoosterCreate(nullptr, 0, &handle) != 0) return Internal("cannot create a booster: " + LastError());
    Booster booster(handle);
    if (XGBoosterLoadModelFromBuffer(handle, bytes.data(), static_cast<bst_ulong>(bytes.size())) != 0) {
      return InvalidArgument("XGBoost cannot load '" + config.model_filename + "': " + LastError());
    }
    if (config.threads_per_instance > 0) {
      const std::string threads = std::to_string(config.threads_per_instance);
      if (XGBoosterSetParam(handle, "nthread", threads.c_str()) != 0) {
        return InvalidArgument("cannot set nthread to " + threads + ": " + LastError());
      }
    }
    return booster;
  }

  static Result<std::unique_ptr<ModelInstance>> CreateInstanceImpl(const ModelConfig& config,
                                                                   const std::filesystem::path& version_dir) {
    FERRY_ASSIGN_OR_RETURN(DeclaredShape declared, CheckConfig(config));
    FERRY_ASSIGN_OR_RETURN(OutputKind output, ParseOptions(config));
    FERRY_ASSIGN_OR_RETURN(XgboostFormat format, FormatOf(config.model_filename));
    FERRY_ASSIGN_OR_RETURN(std::string bytes, ReadModelFile(version_dir / config.model_filename, config.model_filename));
    Result<XgboostModelInfo> checked = CheckXgboostModel(bytes, format, XgboostLibraryVersion());
    if (!checked.ok()) return checked.status().WithContext("'" + config.model_filename + "' is not served");
    const XgboostModelInfo& info = checked.value();
    if (output == OutputKind::kProbability && !GivesProbability(info.objective)) {
      return InvalidArgument("parameter 'output' is probability, but the objective " + info.objective +
                             " gives none (use prediction or margin)");
    }
    FERRY_ASSIGN_OR_RETURN(Booster booster, LoadBooster(bytes, config));
    bst_ulong features = 0;
    if (XGBoosterGetNumFeature(booster.get(), &features) != 0) {
      return Internal("cannot read the feature count: " + LastError());
    }
    if (static_cast<int64_t>(features) != declared.features) {
      return InvalidArgument(fmt::format("input '{}' declares {} features, the model has {}", config.inputs[0].name,
                                         declared.features, features));
    }
    auto instance = std::make_unique<XgboostInstance>(config, std::move(booster), output, info.booster != "gblinear");
    Result<int64_t> width = instance->ProbeWidth(declared.features);
    if (!width.ok()) return width.status().WithContext("warm-up prediction");
    if (declared.values >= 0 && width.value() != declared.values) {
      return InvalidArgument(fmt::format(
          "output '{}' declares {} values per row, the model gives {} (objective {}, {} output groups)",
          config.outputs[0].name, declared.values, width.value(), info.objective, info.num_groups));
    }
    return std::unique_ptr<ModelInstance>(std::move(instance));
  }
};

}  // namespace

std::array<int64_t, 3> XgboostLibraryVersion() {
  int major = 0, minor = 0, patch = 0;
  XGBoostVersion(&major, &minor, &patch);
  return {major, minor, patch};
}

std::unique_ptr<Backend> MakeXgboostBackend() { return std::make_unique<XgboostBackend>(); }

}  // namespace ferry
