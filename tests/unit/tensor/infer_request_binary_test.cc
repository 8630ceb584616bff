// DecodeInferRequest with the binary tensor extension (Inference-Header-Content-Length).
#include <numeric>

#include "codec_test_util.h"

namespace ferry {
namespace {

using testing::BytesElement;
using testing::DecodeBinary;
using testing::RawBytes;
using testing::Values;

std::string BinaryInput(const std::string& name, const std::string& datatype, const std::string& shape,
                        size_t size) {
  return R"({"name":")" + name + R"(","datatype":")" + datatype + R"(","shape":)" + shape +
         R"(,"parameters":{"binary_data_size":)" + std::to_string(size) + "}}";
}

std::string Request(const std::string& inputs) { return R"({"inputs":[)" + inputs + "]}"; }

TEST(BinaryDecodeTest, Fp32IsAViewIntoTheBody) {
  std::vector<float> values(1 * 3 * 224 * 224);
  std::iota(values.begin(), values.end(), 0.0f);
  const std::string json = Request(BinaryInput("img", "FP32", "[1,3,224,224]", values.size() * 4));
  auto body = std::make_shared<const std::string>(json + RawBytes(values));
  auto r = DecodeInferRequest(body, json.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tensor& t = r->inputs[0];
  EXPECT_EQ(t.dtype, DataType::kFp32);
  EXPECT_EQ(t.shape, (Shape{1, 3, 224, 224}));
  // Zero copy: the tensor points at the bytes after the JSON.
  EXPECT_EQ(t.data.data(), reinterpret_cast<const uint8_t*>(body->data()) + json.size());
  EXPECT_EQ(t.data.size(), values.size() * 4);
  EXPECT_EQ(Values<float>(t), values);
}

TEST(BinaryDecodeTest, TensorKeepsTheBodyAlive) {
  const std::vector<int32_t> values = {1, 2, 3};
  const std::string json = Request(BinaryInput("x", "INT32", "[3]", 12));
  auto body = std::make_shared<const std::string>(json + RawBytes(values));
  std::weak_ptr<const std::string> watch = body;
  Tensor t;
  {
    auto r = DecodeInferRequest(std::move(body), json.size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    t = r->inputs[0];
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(Values<int32_t>(t), values);
  t = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(BinaryDecodeTest, MixedJsonAndBinaryInputsTakeConsecutiveSlices) {
  const std::vector<int16_t> a = {-1, 2};
  const std::vector<double> c = {0.25, -8, 1e100};
  const std::string json = Request(BinaryInput("a", "INT16", "[2]", 4) +
                                   R"(,{"name":"b","datatype":"UINT8","shape":[2],"data":[9,8]},)" +
                                   BinaryInput("c", "FP64", "[3]", 24) + "," + BinaryInput("d", "FP32", "[0]", 0));
  auto r = DecodeBinary(json, RawBytes(a) + RawBytes(c));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->inputs.size(), 4u);
  EXPECT_EQ(Values<int16_t>(r->inputs[0]), a);
  EXPECT_EQ(Values<uint8_t>(r->inputs[1]), (std::vector<uint8_t>{9, 8}));
  EXPECT_EQ(Values<double>(r->inputs[2]), c);
  EXPECT_EQ(r->inputs[3].data.size(), 0u);
}

TEST(BinaryDecodeTest, SmallBinaryPartsAreParsedFromACopy) {
  // Under 64 bytes follow the JSON, so simdjson may not read past it in place; the result is the same.
  const std::vector<uint8_t> v = {1, 0, 1};
  auto r = DecodeBinary(Request(BinaryInput("b", "BOOL", "[3]", 3)), RawBytes(v));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<uint8_t>(r->inputs[0]), v);
}

TEST(BinaryDecodeTest, BinaryBoolElementsOtherThanZeroOrOneAreRefused) {
  // Found by fuzz_infer_request: a byte 0x80 passed as BOOL and came back as true, not as itself.
  auto r = DecodeBinary(Request(BinaryInput("b", "BOOL", "[3]", 3)), RawBytes(std::vector<uint8_t>{1, 0x80, 0}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("BOOL element 1 is the byte 128"), std::string::npos) << r.status().message();
}

TEST(BinaryDecodeTest, BinaryBytesThatLookLikeJsonDoNotConfuseTheParser) {
  const std::string binary = std::string(",\"x\":[1,2,3]}]}") + std::string(100, ' ');
  const std::string json = Request(BinaryInput("s", "UINT8", "[" + std::to_string(binary.size()) + "]", binary.size()));
  auto r = DecodeBinary(json, binary);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->inputs[0].data.size(), binary.size());
}

TEST(BinaryDecodeTest, BytesTensors) {
  const std::string payload = BytesElement("hello") + BytesElement("") + BytesElement(std::string("\0\xff", 2));
  auto r = DecodeBinary(Request(BinaryInput("s", "BYTES", "[3]", payload.size())), payload);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->inputs[0].ValidateData().ok());
  EXPECT_EQ(r->inputs[0].data.size(), payload.size());

  EXPECT_DECODE_ERROR(DecodeBinary(Request(BinaryInput("s", "BYTES", "[2]", payload.size())), payload),
                      "binary data holds 3 BYTES elements but shape [2] needs 2");
  const std::string truncated = BytesElement("hello").substr(0, 7);
  EXPECT_DECODE_ERROR(DecodeBinary(Request(BinaryInput("s", "BYTES", "[1]", truncated.size())), truncated),
                      "input 's' binary data: BYTES element 0");
  // The slice boundary counts: an element may not run into the next input's bytes.
  const std::string two = BytesElement("ab") + BytesElement("cd");
  EXPECT_DECODE_ERROR(
      DecodeBinary(Request(BinaryInput("s", "BYTES", "[1]", 5) + "," + BinaryInput("t", "UINT8", "[7]", 7)), two),
      "truncated");
}

TEST(BinaryDecodeTest, SizeMustMatchShapeAndType) {
  EXPECT_DECODE_ERROR(DecodeBinary(Request(BinaryInput("x", "FP32", "[3]", 8)), std::string(8, '\0')),
                      "input 'x': binary_data_size is 8 but FP32 [3] needs 12 bytes");
  EXPECT_DECODE_ERROR(DecodeBinary(Request(BinaryInput("x", "FP16", "[2]", 5)), std::string(5, '\0')),
                      "needs 4 bytes");
}

TEST(BinaryDecodeTest, SumMustEqualTheBinaryPartExactly) {
  const std::string json = Request(BinaryInput("x", "FP32", "[2]", 8));
  EXPECT_TRUE(DecodeBinary(json, std::string(8, '\0')).ok());
  EXPECT_DECODE_ERROR(DecodeBinary(json, std::string(7, '\0')), "runs past the end of the body (7 bytes remain)");
  EXPECT_DECODE_ERROR(DecodeBinary(json, std::string(9, '\0')), "1 bytes of binary data after the last binary input");
  const std::string two = Request(BinaryInput("x", "FP32", "[2]", 8) + "," + BinaryInput("y", "INT8", "[4]", 4));
  EXPECT_DECODE_ERROR(DecodeBinary(two, std::string(11, '\0')), "input 'y': binary_data_size 4 runs past the end");
}

TEST(BinaryDecodeTest, TrailingBytesWithoutBinaryInputs) {
  const std::string json = Request(R"({"name":"x","datatype":"FP32","shape":[1],"data":[1]})");
  EXPECT_TRUE(DecodeBinary(json, "").ok());  // the header may be sent with nothing after the JSON
  EXPECT_DECODE_ERROR(DecodeBinary(json, "abc"), "3 bytes after the JSON part");
}

TEST(BinaryDecodeTest, JsonSizeBeyondTheBody) {
  const std::string json = Request(R"({"name":"x","datatype":"FP32","shape":[1],"data":[1]})");
  auto r = DecodeInferRequest(std::make_shared<const std::string>(json), json.size() + 1);
  EXPECT_DECODE_ERROR(r, "is larger than the body");
}

TEST(BinaryDecodeTest, JsonSizeCutsTheJson) {
  const std::string json = Request(BinaryInput("x", "UINT8", "[2]", 2));
  auto r = DecodeInferRequest(std::make_shared<const std::string>(json + "ab"), json.size() - 1);
  EXPECT_DECODE_ERROR(r, "not valid JSON");
  auto zero = DecodeInferRequest(std::make_shared<const std::string>(json + "ab"), 0);
  EXPECT_DECODE_ERROR(zero, "not valid JSON");
}

TEST(BinaryDecodeTest, BinaryInputWithoutJsonSize) {
  const std::string json = Request(BinaryInput("x", "UINT8", "[2]", 2));
  auto r = DecodeInferRequest(std::make_shared<const std::string>(json), std::nullopt);
  EXPECT_DECODE_ERROR(r, "request has no binary part");
}

TEST(BinaryDecodeTest, BadBinaryDataSize) {
  const std::string prefix = R"({"inputs":[{"name":"x","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":)";
  EXPECT_DECODE_ERROR(DecodeBinary(prefix + "-2}}]}", "ab"), "binary_data_size must be a non-negative integer");
  EXPECT_DECODE_ERROR(DecodeBinary(prefix + "2.0}}]}", "ab"), "binary_data_size must be a non-negative integer");
  EXPECT_DECODE_ERROR(DecodeBinary(prefix + "\"2\"}}]}", "ab"), "binary_data_size must be a non-negative integer");
  EXPECT_DECODE_ERROR(DecodeBinary(prefix + "18446744073709551615}}]}", "ab"), "int64");
}

TEST(BinaryDecodeTest, DataAndBinaryTogether) {
  const std::string json =
      R"({"inputs":[{"name":"x","datatype":"UINT8","shape":[2],"data":[1,2],"parameters":{"binary_data_size":2}}]})";
  EXPECT_DECODE_ERROR(DecodeBinary(json, "ab"), "input 'x' has both data and parameters.binary_data_size");
}

TEST(BinaryDecodeTest, ShapeOverflowInBinaryInput) {
  EXPECT_DECODE_ERROR(DecodeBinary(Request(BinaryInput("x", "FP32", "[4611686018427387904,4]", 4)), "abcd"),
                      "overflows");
  DecodeLimits limits;
  limits.max_elements = int64_t{1} << 62;
  EXPECT_DECODE_ERROR(DecodeBinary(Request(BinaryInput("x", "FP64", "[2305843009213693952]", 8)), "abcdefgh", limits),
                      "too large");
}

}  // namespace
}  // namespace ferry
