#include "tensor/tensor.h"

#include <gtest/gtest.h>

#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

TEST(ElementCountTest, ProductsAndScalars) {
  EXPECT_EQ(*ElementCount({}), 1);
  EXPECT_EQ(*ElementCount({1, 3, 224, 224}), 150528);
  EXPECT_EQ(*ElementCount({0}), 0);
  EXPECT_EQ(*ElementCount({5, 0, 7}), 0);
}

TEST(ElementCountTest, NegativeDimensionIsAnError) {
  auto r = ElementCount({2, -1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[2,-1]"), std::string::npos) << r.status().message();
}

TEST(ElementCountTest, OverflowIsAnError) {
  EXPECT_FALSE(ElementCount({int64_t{1} << 62, 4}).ok());
  EXPECT_FALSE(ElementCount({int64_t{1} << 32, int64_t{1} << 32}).ok());
  EXPECT_EQ(*ElementCount({int64_t{1} << 62, 1}), int64_t{1} << 62);
  // A zero dimension makes the product zero even when the rest alone would overflow.
  EXPECT_EQ(*ElementCount({int64_t{1} << 62, int64_t{1} << 62, 0}), 0);
}

TEST(FixedByteSizeTest, CountTimesElementSize) {
  EXPECT_EQ(*FixedByteSize(DataType::kFp32, {1, 3, 224, 224}), 602112);
  EXPECT_EQ(*FixedByteSize(DataType::kBool, {7}), 7);
  EXPECT_EQ(*FixedByteSize(DataType::kFp16, {3}), 6);
  EXPECT_EQ(*FixedByteSize(DataType::kInt64, {}), 8);
}

TEST(FixedByteSizeTest, ErrorsForBytesAndOverflow) {
  EXPECT_FALSE(FixedByteSize(DataType::kBytes, {1}).ok());
  // Count fits in int64 but count * 8 does not.
  EXPECT_FALSE(FixedByteSize(DataType::kFp64, {int64_t{1} << 61}).ok());
  EXPECT_FALSE(FixedByteSize(DataType::kFp32, {int64_t{1} << 62, 4}).ok());
  EXPECT_TRUE(FixedByteSize(DataType::kUint8, {int64_t{1} << 61}).ok());
}

TEST(ShapeToStringTest, Format) {
  EXPECT_EQ(ShapeToString({}), "[]");
  EXPECT_EQ(ShapeToString({1, 3, 224, 224}), "[1,3,224,224]");
}

TEST(TensorValidateTest, FixedSize) {
  Tensor t{"x", DataType::kFp32, {2, 2}, Buffer::Copy("0123456789abcdef", 16)};
  EXPECT_TRUE(t.ValidateData().ok());
  t.shape = {2, 3};
  Status s = t.ValidateData();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'x'"), std::string::npos) << s.message();
  t.shape = {-1};
  EXPECT_FALSE(t.ValidateData().ok());
}

TEST(TensorValidateTest, Bytes) {
  const std::string elements[] = {"ab", "", "xyz"};
  Tensor t{"s", DataType::kBytes, {3}, MakeBytesBuffer(elements)};
  EXPECT_TRUE(t.ValidateData().ok());
  t.shape = {2};
  EXPECT_FALSE(t.ValidateData().ok());
  t.shape = {3};
  t.data = Buffer::Copy("\x05\x00\x00\x00" "ab", 6);  // claims 5 bytes, holds 2
  t.shape = {1};
  EXPECT_FALSE(t.ValidateData().ok());
}

TEST(BytesElementsTest, ReadBackWhatWasWritten) {
  std::vector<uint8_t> bytes;
  AppendBytesElement(&bytes, "hello");
  AppendBytesElement(&bytes, "");
  AppendBytesElement(&bytes, std::string(300, 'z'));
  ASSERT_EQ(bytes.size(), 4 + 5 + 4 + 4 + 300u);
  EXPECT_EQ(bytes[0], 5);
  EXPECT_EQ(bytes[13], 0x2c);  // 300 = 0x12c, little-endian
  EXPECT_EQ(bytes[14], 0x01);

  BytesElementReader reader(bytes);
  std::string_view e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e, "hello");
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e, "");
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e, std::string(300, 'z'));
  EXPECT_FALSE(reader.Next(&e));
  EXPECT_FALSE(reader.malformed());
  EXPECT_EQ(*CountBytesElements(bytes), 3);
}

TEST(BytesElementsTest, TruncationIsDetected) {
  const uint8_t short_prefix[] = {1, 0, 0};
  EXPECT_FALSE(CountBytesElements(short_prefix).ok());
  const uint8_t short_body[] = {4, 0, 0, 0, 'a', 'b'};
  EXPECT_FALSE(CountBytesElements(short_body).ok());
  const uint8_t huge_length[] = {0xff, 0xff, 0xff, 0xff, 'a'};
  BytesElementReader reader(huge_length);
  std::string_view e;
  EXPECT_FALSE(reader.Next(&e));
  EXPECT_TRUE(reader.malformed());
  EXPECT_EQ(*CountBytesElements({}), 0);
}

}  // namespace
}  // namespace ferry
