#include "backend/tensor_checks.h"

#include <string>

namespace ferry {

Status CheckInputCount(const std::vector<Tensor>& inputs, const ModelConfig& config) {
  if (inputs.size() != config.inputs.size()) {
    return InvalidArgument("expected " + std::to_string(config.inputs.size()) + " inputs, got " +
                           std::to_string(inputs.size()));
  }
  return Status::Ok();
}

Shape WarmUpShape(const ModelConfig& config, const TensorSpec& spec) {
  Shape shape;
  if (config.max_batch_size > 0) shape.push_back(1);
  for (int64_t d : spec.dims) shape.push_back(d < 0 ? 1 : d);
  return shape;
}

Status CheckInputTensor(const Tensor& t, const TensorSpec& spec, const ModelConfig& config,
                        std::optional<int64_t>& batch) {
  const std::string what = "input '" + spec.name + "'";
  const size_t batch_dims = config.max_batch_size > 0 ? 1 : 0;
  if (t.shape.size() != spec.dims.size() + batch_dims) {
    return InvalidArgument(what + " has shape " + ShapeToString(t.shape) + ", expected " +
                           std::to_string(spec.dims.size() + batch_dims) + " dimensions");
  }
  for (size_t d = 0; d < spec.dims.size(); ++d) {
    if (spec.dims[d] >= 0 && t.shape[d + batch_dims] != spec.dims[d]) {
      return InvalidArgument(what + " has shape " + ShapeToString(t.shape) + ", the model takes " +
                             ShapeToString(spec.dims) + " per row");
    }
  }
  if (batch_dims == 1) {
    const int64_t b = t.shape[0];
    if (b < 1 || b > config.max_batch_size) {
      return InvalidArgument(what + ": batch size " + std::to_string(b) + " is outside 1.." +
                             std::to_string(config.max_batch_size));
    }
    if (batch && *batch != b) return InvalidArgument("inputs disagree on the batch size");
    batch = b;
  }
  if (t.dtype != DataType::kBytes) {
    FERRY_ASSIGN_OR_RETURN(int64_t bytes, FixedByteSize(t.dtype, t.shape));
    if (static_cast<uint64_t>(bytes) != t.data.size()) {
      return InvalidArgument(what + " holds " + std::to_string(t.data.size()) + " bytes, its shape needs " +
                             std::to_string(bytes));
    }
  }
  return Status::Ok();
}

Status CheckOutputShape(const Shape& actual, const TensorSpec& spec, std::optional<int64_t> batch) {
  Shape declared;
  if (batch) declared.push_back(*batch);
  declared.insert(declared.end(), spec.dims.begin(), spec.dims.end());
  bool agrees = actual.size() == declared.size();
  for (size_t i = 0; agrees && i < declared.size(); ++i) agrees = declared[i] < 0 || declared[i] == actual[i];
  if (!agrees) {
    return Internal("output '" + spec.name + "': the model returned shape " + ShapeToString(actual) +
                    ", the config declares " + ShapeToString(declared));
  }
  return Status::Ok();
}

}  // namespace ferry
