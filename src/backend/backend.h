#pragma once
// The one interface every inference runtime sits behind. Backends never see HTTP or JSON.
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/language_model.h"
#include "common/result.h"
#include "repository/model_config.h"
#include "tensor/tensor.h"

namespace ferry {

// One loaded copy of a model. Not thread-safe: the scheduler runs one Execute at a time per instance,
// on an executor thread (never an I/O thread).
class ModelInstance {
 public:
  virtual ~ModelInstance() = default;
  // `inputs` follow config.inputs order; when max_batch_size > 0 each has the batch dimension first.
  // Returns outputs in config.outputs order with matching names, dtypes and the same batch dimension.
  virtual Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) = 0;
};

// Creates instances from a version folder. Thread-safe.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Loads <version_dir>/<config.model_filename>, checks the declared inputs/outputs against the model,
  // and returns an instance. Failure is a Status (never an exception, never a crash).
  virtual Result<std::unique_ptr<ModelInstance>> CreateInstance(
      const ModelConfig& config, const std::filesystem::path& version_dir) = 0;
  // Backends that generate text return their loader (and refuse CreateInstance); tensor backends null.
  virtual LanguageModelLoader* language_models() { return nullptr; }
};

// The backend of a model whose config names none, unless the server is told otherwise.
inline constexpr std::string_view kDefaultOnnxBackend = "opencv_dnn";

// Backends by name ("opencv_dnn"). Filled once at start-up, read-only afterwards: thread-safe reads.
class BackendRegistry {
 public:
  void Register(std::unique_ptr<Backend> backend);
  Backend* Find(std::string_view name) const;
  std::vector<std::string> Names() const;

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
};

}  // namespace ferry
