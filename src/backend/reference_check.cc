#include "backend/reference_check.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "tensor/float16.h"
#include "tensor/unaligned.h"

namespace ferry {
namespace {

bool IsFloat(DataType t) {
  return t == DataType::kFp16 || t == DataType::kBf16 || t == DataType::kFp32 || t == DataType::kFp64;
}

double FloatAt(DataType type, const uint8_t* p, size_t i) {
  switch (type) {
    case DataType::kFp16: return HalfBitsToFloat(LoadUnaligned<uint16_t>(p + 2 * i));
    case DataType::kBf16: return Bf16BitsToFloat(LoadUnaligned<uint16_t>(p + 2 * i));
    case DataType::kFp32: return LoadUnaligned<float>(p + 4 * i);
    default: return LoadUnaligned<double>(p + 8 * i);
  }
}

Status CompareFloats(const Tensor& got, const Tensor& want, const ReferenceTolerance& tol, int64_t count) {
  int64_t first_bad = -1;
  double worst = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double g = FloatAt(got.dtype, got.data.data(), static_cast<size_t>(i));
    const double w = FloatAt(want.dtype, want.data.data(), static_cast<size_t>(i));
    bool ok;
    if (std::isnan(w) || std::isnan(g)) {
      ok = std::isnan(w) && std::isnan(g);
    } else if (std::isinf(w) || std::isinf(g)) {
      ok = g == w;
    } else {
      const double diff = std::fabs(g - w);
      worst = std::max(worst, diff);
      ok = diff <= tol.absolute + tol.relative * std::fabs(w);
    }
    if (!ok && first_bad < 0) first_bad = i;
  }
  if (first_bad < 0) return Status::Ok();
  const size_t i = static_cast<size_t>(first_bad);
  return FailedPrecondition(fmt::format(
      "element {} is {:.7g}, expected {:.7g}; max abs diff {:.3g} over {} elements (tolerance {:g} + {:g}*|expected|)",
      first_bad, FloatAt(got.dtype, got.data.data(), i), FloatAt(want.dtype, want.data.data(), i), worst, count,
      tol.absolute, tol.relative));
}

}  // namespace

Status CompareReferenceOutput(const Tensor& got, const Tensor& want, const ReferenceTolerance& tolerance) {
  if (got.dtype != want.dtype) {
    return FailedPrecondition(fmt::format("is {}, expected {}", DataTypeName(got.dtype), DataTypeName(want.dtype)));
  }
  if (got.shape != want.shape) {
    return FailedPrecondition(fmt::format("has shape {}, expected {}", ShapeToString(got.shape), ShapeToString(want.shape)));
  }
  FERRY_ASSIGN_OR_RETURN(int64_t count, ElementCount(want.shape));
  if (IsFloat(want.dtype)) {
    if (got.data.size() != want.data.size()) return FailedPrecondition("has the wrong number of bytes");
    return CompareFloats(got, want, tolerance, count);
  }
  // Integers, BOOL and BYTES: byte for byte.
  if (got.data.size() != want.data.size() ||
      (want.data.size() > 0 && std::memcmp(got.data.data(), want.data.data(), want.data.size()) != 0)) {
    return FailedPrecondition("differs from the expected values (compared exactly)");
  }
  return Status::Ok();
}

Status RunReferenceCheck(ModelInstance& instance, const ModelConfig& config, const ReferenceSet& references) {
  for (const ReferenceSample& sample : references.samples) {
    const std::string where = fmt::format("reference sample '{}'", sample.name);
    std::vector<Tensor> inputs;
    for (const TensorSpec& spec : config.inputs) {
      const Tensor* found = nullptr;
      for (const Tensor& t : sample.inputs) found = t.name == spec.name ? &t : found;
      if (found == nullptr) return InvalidArgument(fmt::format("{} has no input '{}'", where, spec.name));
      if (found->dtype != spec.dtype) {
        return InvalidArgument(fmt::format("{}: input '{}' is {}, the config declares {}", where, spec.name,
                                           DataTypeName(found->dtype), DataTypeName(spec.dtype)));
      }
      inputs.push_back(*found);
    }
    if (sample.inputs.size() != config.inputs.size()) {
      return InvalidArgument(fmt::format("{} has inputs the config does not declare", where));
    }
    Result<std::vector<Tensor>> outputs = instance.Execute(inputs);
    if (!outputs.ok()) return InvalidArgument(fmt::format("{} failed to run: {}", where, outputs.status().message()));
    for (const Tensor& want : sample.outputs) {
      const Tensor* got = nullptr;
      for (const Tensor& t : *outputs) got = t.name == want.name ? &t : got;
      if (got == nullptr) return InvalidArgument(fmt::format("{} expects output '{}', which the config does not declare", where, want.name));
      Status same = CompareReferenceOutput(*got, want, sample.tolerance);
      if (!same.ok()) {
        return FailedPrecondition(fmt::format("reference check failed: {}, output '{}' {}", where, want.name,
                                              same.message()));
      }
    }
  }
  return Status::Ok();
}

}  // namespace ferry
