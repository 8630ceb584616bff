#pragma once
// Runs a version's reference samples through a freshly created instance and compares what it returns
// with what the samples expect. The same check for every backend: it is how a runtime that loads a
// model but computes it wrongly is caught before the version serves.
#include "backend/backend.h"
#include "repository/reference_set.h"

namespace ferry {

// Inputs are matched to config.inputs by name (every declared input must be given, in any order, with
// the declared dtype). kFailedPrecondition names the first sample, output and element that differ,
// with the largest difference seen in that output; other problems (a sample that does not fit the
// config, an instance that fails to run it) are kInvalidArgument.
Status RunReferenceCheck(ModelInstance& instance, const ModelConfig& config, const ReferenceSet& references);

// Compares one output (exposed for tests): shape and dtype must be equal; floats within `tolerance`.
Status CompareReferenceOutput(const Tensor& got, const Tensor& want, const ReferenceTolerance& tolerance);

}  // namespace ferry
