#include "tensor/data_type.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

struct TypeRow {
  DataType type;
  const char* name;
  const char* triton;
  size_t size;
};

constexpr TypeRow kRows[] = {
    {DataType::kBool, "BOOL", "TYPE_BOOL", 1},       {DataType::kUint8, "UINT8", "TYPE_UINT8", 1},
    {DataType::kUint16, "UINT16", "TYPE_UINT16", 2}, {DataType::kUint32, "UINT32", "TYPE_UINT32", 4},
    {DataType::kUint64, "UINT64", "TYPE_UINT64", 8}, {DataType::kInt8, "INT8", "TYPE_INT8", 1},
    {DataType::kInt16, "INT16", "TYPE_INT16", 2},    {DataType::kInt32, "INT32", "TYPE_INT32", 4},
    {DataType::kInt64, "INT64", "TYPE_INT64", 8},    {DataType::kFp16, "FP16", "TYPE_FP16", 2},
    {DataType::kFp32, "FP32", "TYPE_FP32", 4},       {DataType::kFp64, "FP64", "TYPE_FP64", 8},
    {DataType::kBf16, "BF16", "TYPE_BF16", 2},       {DataType::kBytes, "BYTES", "TYPE_STRING", 0},
};

TEST(DataTypeTest, NamesSizesAndTritonSpellings) {
  for (const TypeRow& row : kRows) {
    EXPECT_EQ(DataTypeName(row.type), row.name);
    EXPECT_EQ(TritonConfigTypeName(row.type), row.triton);
    EXPECT_EQ(ElementSize(row.type), row.size) << row.name;
    EXPECT_EQ(DataTypeFromName(row.name), row.type);
    EXPECT_EQ(DataTypeFromTritonConfigName(row.triton), row.type);
  }
}

TEST(DataTypeTest, UnknownNamesAreNullopt) {
  EXPECT_EQ(DataTypeFromName("fp32"), std::nullopt);  // case matters in the protocol
  EXPECT_EQ(DataTypeFromName("STRING"), std::nullopt);
  EXPECT_EQ(DataTypeFromName(""), std::nullopt);
  EXPECT_EQ(DataTypeFromTritonConfigName("TYPE_BYTES"), std::nullopt);
  EXPECT_EQ(DataTypeFromTritonConfigName("FP32"), std::nullopt);
}

}  // namespace
}  // namespace ferry
