#pragma once
// Checks every backend applies to the tensors it is given and returns, so that all of them answer a bad
// shape with the same words.
#include <optional>
#include <vector>

#include "common/status.h"
#include "repository/model_config.h"
#include "tensor/tensor.h"

namespace ferry {

// The number of inputs Execute was given against the config's.
Status CheckInputCount(const std::vector<Tensor>& inputs, const ModelConfig& config);

// The shape a warm-up run feeds for `spec`: batch 1 when the model is batched, each -1 dim as 1.
Shape WarmUpShape(const ModelConfig& config, const TensorSpec& spec);

// Checks one input against its declared spec: rank, every known dim, the batch size (1..max_batch_size,
// and the same for every input: `batch` carries it from one call to the next; it stays nullopt for a
// model without a batch dimension), and that the bytes match the shape. Does not check the dtype:
// backends differ in what they convert.
Status CheckInputTensor(const Tensor& tensor, const TensorSpec& spec, const ModelConfig& config,
                        std::optional<int64_t>& batch);

// Checks an output shape a runtime produced against [batch] + declared dims (a -1 dim matches anything).
Status CheckOutputShape(const Shape& actual, const TensorSpec& spec, std::optional<int64_t> batch);

}  // namespace ferry
