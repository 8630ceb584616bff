#pragma once
// OIP v2 datatypes and their names in the protocol ("FP32") and in Triton's model config ("TYPE_FP32").
#include <cstddef>
#include <optional>
#include <string_view>

namespace ferry {

enum class DataType {
  kBool, kUint8, kUint16, kUint32, kUint64, kInt8, kInt16, kInt32, kInt64,
  kFp16, kFp32, kFp64, kBf16, kBytes,
};

// "FP32" etc.; nullopt for an unknown name.
std::optional<DataType> DataTypeFromName(std::string_view name);
std::string_view DataTypeName(DataType type);
// Triton model-config spelling: "TYPE_FP32", BYTES is "TYPE_STRING".
std::string_view TritonConfigTypeName(DataType type);
std::optional<DataType> DataTypeFromTritonConfigName(std::string_view name);
// Bytes per element; 0 for BYTES (variable length).
size_t ElementSize(DataType type);

}  // namespace ferry
