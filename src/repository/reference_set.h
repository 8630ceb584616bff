#pragma once
// Reference samples a model version may carry beside its model file: inputs and the outputs the model
// must produce for them (made from the training framework). The loader runs them through the backend
// before a version serves, so a runtime that computes a model wrongly is refused instead of serving
// wrong answers.
//
// <version_dir>/reference/reference.yaml (unknown keys are errors):
//
//   tolerance: {absolute: 1.0e-4, relative: 1.0e-4}   # default; |got - want| <= absolute + relative*|want|
//   samples:
//     - name: s0
//       tolerance: {absolute: 1.0e-3, relative: 0}    # optional, for this sample
//       inputs:
//         - {name: image, datatype: FP32, shape: [1, 3, 224, 224], file: s0.image.bin}
//       outputs:                                       # only the outputs listed are compared
//         - {name: probabilities, datatype: FP32, shape: [1, 10], file: s0.probabilities.bin}
//
// Tensor files sit in the reference folder: raw little-endian row-major elements (BYTES: each element
// as a 4-byte little-endian length and its bytes). Shapes include the batch dimension of a batched
// model. Integer, BOOL and BYTES outputs must match exactly; NaN matches only NaN.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "tensor/tensor.h"

namespace ferry {

inline constexpr std::string_view kReferenceFolder = "reference";
inline constexpr std::string_view kReferenceFile = "reference.yaml";

struct ReferenceTolerance {
  double absolute = 1e-4;
  double relative = 1e-4;
};

struct ReferenceSample {
  std::string name;
  ReferenceTolerance tolerance;
  std::vector<Tensor> inputs;
  std::vector<Tensor> outputs;
};

struct ReferenceSet {
  std::vector<ReferenceSample> samples;
};

// Reads <version_dir>/reference/reference.yaml and the tensor files it names; nullopt when the version
// has no reference folder. Any problem with the folder (bad YAML, a missing or wrongly sized file, a
// file name with a path in it, more than `max_total_bytes` of tensors) is kInvalidArgument: a version
// whose references cannot be read is not served.
Result<std::optional<ReferenceSet>> ReadReferenceSet(const std::filesystem::path& version_dir,
                                                     int64_t max_total_bytes = int64_t{256} << 20);

// The same from YAML text, with tensor files read from `folder`.
Result<ReferenceSet> ParseReferenceSet(std::string_view yaml_text, const std::filesystem::path& folder,
                                       int64_t max_total_bytes = int64_t{256} << 20);

}  // namespace ferry
