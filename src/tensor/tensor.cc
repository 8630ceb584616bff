#include "tensor/tensor.h"

#include <fmt/format.h>

#include "tensor/bytes_elements.h"

namespace ferry {

Result<int64_t> ElementCount(const Shape& shape) {
  bool has_zero = false;
  for (int64_t dim : shape) {
    if (dim < 0) return InvalidArgument(fmt::format("shape {} has a negative dimension", ShapeToString(shape)));
    if (dim == 0) has_zero = true;
  }
  // A zero anywhere makes the product zero even when the other dims alone would overflow.
  if (has_zero) return int64_t{0};
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (__builtin_mul_overflow(count, dim, &count)) {
      return InvalidArgument(fmt::format("shape {} has too many elements (overflows int64)", ShapeToString(shape)));
    }
  }
  return count;
}

Result<int64_t> FixedByteSize(DataType type, const Shape& shape) {
  const size_t element_size = ElementSize(type);
  if (element_size == 0) {
    return InvalidArgument(fmt::format("{} has no fixed byte size", DataTypeName(type)));
  }
  FERRY_ASSIGN_OR_RETURN(int64_t count, ElementCount(shape));
  int64_t bytes = 0;
  if (__builtin_mul_overflow(count, static_cast<int64_t>(element_size), &bytes)) {
    return InvalidArgument(fmt::format("{} tensor of shape {} is too large (byte size overflows int64)",
                                       DataTypeName(type), ShapeToString(shape)));
  }
  return bytes;
}

std::string ShapeToString(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ",")); }

Status Tensor::ValidateData() const {
  const std::string context = fmt::format("tensor '{}'", name);
  if (dtype == DataType::kBytes) {
    auto expected = ElementCount(shape);
    if (!expected.ok()) return expected.status().WithContext(context);
    auto counted = CountBytesElements(data.span());
    if (!counted.ok()) return counted.status().WithContext(context);
    if (*counted != *expected) {
      return InvalidArgument(fmt::format("{} holds {} BYTES elements but shape {} needs {}", context, *counted,
                                         ShapeToString(shape), *expected));
    }
    return Status::Ok();
  }
  auto expected = FixedByteSize(dtype, shape);
  if (!expected.ok()) return expected.status().WithContext(context);
  if (static_cast<uint64_t>(*expected) != data.size()) {
    return InvalidArgument(fmt::format("{} has {} bytes of data but {} {} needs {}", context, data.size(),
                                       DataTypeName(dtype), ShapeToString(shape), *expected));
  }
  return Status::Ok();
}

}  // namespace ferry
