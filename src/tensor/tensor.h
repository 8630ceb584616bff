#pragma once
// A named, typed, shaped tensor. Data is little-endian, row-major, no padding. BYTES tensors hold each
// element as a 4-byte little-endian length followed by its bytes (the wire layout of the binary
// extension), so the same bytes flow from request to backend. Value type, thread-compatible.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "tensor/buffer.h"
#include "tensor/data_type.h"

namespace ferry {

using Shape = std::vector<int64_t>;

// Product of dims; error if a dim is negative or the product overflows int64.
Result<int64_t> ElementCount(const Shape& shape);
// Element count × element size with overflow checks; an error for BYTES, whose size does not follow
// from the shape.
Result<int64_t> FixedByteSize(DataType type, const Shape& shape);
// "[1,3,224,224]"; "[]" for a scalar.
std::string ShapeToString(const Shape& shape);

struct Tensor {
  std::string name;
  DataType dtype = DataType::kFp32;
  Shape shape;
  // May be unaligned: a binary input is a view into the request body at whatever offset the client
  // put it, so read multi-byte elements with memcpy (or copy) rather than casting the pointer.
  Buffer data;

  // For BYTES: checks that `data` holds exactly ElementCount(shape) length-prefixed elements.
  // For other types: checks data.size() == FixedByteSize.
  Status ValidateData() const;
};

}  // namespace ferry
