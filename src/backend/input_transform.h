#pragma once
// Pre-processing run in the server before a request is queued: turns the public inputs a client sends
// (e.g. camera frames as JPEG or raw pixels) into the tensors the model takes. Per request, so a bad
// frame fails its own request and never a batch. Implementations are immutable: thread-safe.
#include <functional>
#include <memory>
#include <vector>

#include "common/result.h"
#include "repository/model_config.h"
#include "tensor/tensor.h"

namespace ferry {

class InputTransform {
 public:
  virtual ~InputTransform() = default;
  // `inputs` are validated against the public config and in its order; returns the model side's
  // inputs (ModelSideConfig) in order. `batch` is the request's batch size. kInvalidArgument for an
  // input it cannot turn into a tensor.
  virtual Result<std::vector<Tensor>> Apply(std::vector<Tensor> inputs, int64_t batch) const = 0;
};

// Makes the transform a config's `preprocess` block asks for.
using InputTransformFactory = std::function<Result<std::shared_ptr<const InputTransform>>(const ModelConfig&)>;

}  // namespace ferry
