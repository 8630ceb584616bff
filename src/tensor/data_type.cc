#include "tensor/data_type.h"

#include <array>

namespace ferry {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;         // OIP v2
  std::string_view triton_name;  // Triton model config
  size_t size;                   // bytes per element, 0 = variable
};

// One row per DataType, in enum order, so that a lookup by type is an index.
constexpr std::array<TypeInfo, 14> kTypes = {{
    {DataType::kBool, "BOOL", "TYPE_BOOL", 1},
    {DataType::kUint8, "UINT8", "TYPE_UINT8", 1},
    {DataType::kUint16, "UINT16", "TYPE_UINT16", 2},
    {DataType::kUint32, "UINT32", "TYPE_UINT32", 4},
    {DataType::kUint64, "UINT64", "TYPE_UINT64", 8},
    {DataType::kInt8, "INT8", "TYPE_INT8", 1},
    {DataType::kInt16, "INT16", "TYPE_INT16", 2},
    {DataType::kInt32, "INT32", "TYPE_INT32", 4},
    {DataType::kInt64, "INT64", "TYPE_INT64", 8},
    {DataType::kFp16, "FP16", "TYPE_FP16", 2},
    {DataType::kFp32, "FP32", "TYPE_FP32", 4},
    {DataType::kFp64, "FP64", "TYPE_FP64", 8},
    {DataType::kBf16, "BF16", "TYPE_BF16", 2},
    {DataType::kBytes, "BYTES", "TYPE_STRING", 0},
}};

constexpr bool RowsInEnumOrder() {
  for (size_t i = 0; i < kTypes.size(); ++i) {
    if (static_cast<size_t>(kTypes[i].type) != i) return false;
  }
  return true;
}
static_assert(RowsInEnumOrder(), "kTypes must list DataType values in enum order");

const TypeInfo& Info(DataType type) {
  const auto index = static_cast<size_t>(type);
  // An out-of-range enum value can only come from a cast bug; map it to BYTES (size 0) rather than
  // reading past the table.
  return index < kTypes.size() ? kTypes[index] : kTypes.back();
}

}  // namespace

std::optional<DataType> DataTypeFromName(std::string_view name) {
  for (const TypeInfo& info : kTypes) {
    if (info.name == name) return info.type;
  }
  return std::nullopt;
}

std::string_view DataTypeName(DataType type) { return Info(type).name; }

std::string_view TritonConfigTypeName(DataType type) { return Info(type).triton_name; }

std::optional<DataType> DataTypeFromTritonConfigName(std::string_view name) {
  for (const TypeInfo& info : kTypes) {
    if (info.triton_name == name) return info.type;
  }
  return std::nullopt;
}

size_t ElementSize(DataType type) { return Info(type).size; }

}  // namespace ferry
