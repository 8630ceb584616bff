#pragma once
// Internal to the tensor codecs: turns the "data" value of one OIP input (a flat or nested JSON array)
// into the tensor's wire bytes. Kept apart from the request decoder because it is the hot loop and
// holds all the per-datatype value rules. Pure functions, thread-safe.
#include <cstdint>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "common/status.h"
#include "tensor/tensor.h"

namespace ferry::tensor_internal {

struct JsonDataTarget {
  std::string_view tensor_name;  // for messages
  std::string_view noun = "input";  // for messages: "input" or "output"
  DataType dtype = DataType::kFp32;
  const Shape* shape = nullptr;  // for messages
  int64_t expected_count = 0;    // product of the shape, already checked against the limits
  size_t max_nesting = 0;        // array levels allowed below "data" itself
};

// Value rules (every violation is kInvalidArgument naming the tensor and the row-major element index):
//  BOOL       JSON true / false only.
//  integers   JSON integers, or numbers with no fractional part (2.0, 1e3), that fit the type exactly.
//  FP16/BF16  any JSON number whose rounding (to nearest, ties to even) is finite; integers beyond
//  FP32/FP64  2^53 are rounded once, never twice.
//  BYTES      JSON strings, stored as 4-byte little-endian length + bytes.
// The total number of scalars must equal expected_count; the nesting itself is not checked against the
// shape, matching Triton, which also flattens whatever nesting it is given.
Status DecodeJsonTensorData(simdjson::dom::element data, const JsonDataTarget& target, std::vector<uint8_t>* out);

}  // namespace ferry::tensor_internal
