// EncodeInferResponse / EncodeErrorJson, and round trips through the decoder for every datatype.
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "codec_test_util.h"
#include "tensor/bytes_elements.h"
#include "tensor/float16.h"

namespace ferry {
namespace {

using nlohmann::json;
using testing::DecodeBinary;
using testing::DecodeJson;
using testing::RawBytes;
using testing::Values;

template <typename T>
Tensor MakeTensor(const std::string& name, DataType dtype, Shape shape, const std::vector<T>& values) {
  return Tensor{name, dtype, std::move(shape), Buffer::Copy(values.data(), values.size() * sizeof(T))};
}

TEST(EncodeResponseTest, JsonOutputs) {
  InferResponse response;
  response.model_name = "resnet";
  response.model_version = "2";
  response.id = "req-1";
  response.parameters = {{"s", std::string("v")}, {"i", int64_t{-3}}, {"d", 0.5}, {"b", true}};
  response.outputs.push_back(MakeTensor<float>("probs", DataType::kFp32, {1, 3}, {0.1f, 0.2f, 0.7f}));
  response.outputs.push_back(MakeTensor<uint8_t>("mask", DataType::kBool, {2}, {1, 0}));
  const EncodedResponse encoded = EncodeInferResponse(response);
  EXPECT_EQ(encoded.json_size, encoded.body.size());
  EXPECT_EQ(encoded.body,
            R"({"model_name":"resnet","model_version":"2","id":"req-1","parameters":{"b":true,"d":0.5,"i":-3,"s":"v"},)"
            R"("outputs":[{"name":"probs","datatype":"FP32","shape":[1,3],"data":[0.1,0.2,0.7]},)"
            R"({"name":"mask","datatype":"BOOL","shape":[2],"data":[true,false]}]})");
}

TEST(EncodeResponseTest, IdAndParametersAreOmittedWhenEmpty) {
  InferResponse response;
  response.model_name = "m";
  response.outputs.push_back(MakeTensor<int32_t>("y", DataType::kInt32, {0}, {}));
  const EncodedResponse encoded = EncodeInferResponse(response);
  EXPECT_EQ(encoded.body,
            R"({"model_name":"m","model_version":"","outputs":[{"name":"y","datatype":"INT32","shape":[0],"data":[]}]})");
}

TEST(EncodeResponseTest, BinaryOutputsFollowTheJsonInOrder) {
  InferResponse response;
  response.model_name = "m";
  response.model_version = "1";
  const std::vector<float> a = {1.5f, -2.0f};
  const std::vector<int64_t> c = {7, 8, 9};
  response.outputs.push_back(MakeTensor<float>("a", DataType::kFp32, {2}, a));
  response.outputs.push_back(MakeTensor<int32_t>("b", DataType::kInt32, {1}, {5}));
  response.outputs.push_back(MakeTensor<int64_t>("c", DataType::kInt64, {3}, c));
  response.binary_outputs = {true, false, true};
  const EncodedResponse encoded = EncodeInferResponse(response);
  ASSERT_EQ(encoded.body.size(), encoded.json_size + 8 + 24);
  const json parsed = json::parse(encoded.body.substr(0, encoded.json_size));
  EXPECT_EQ(parsed["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_FALSE(parsed["outputs"][0].contains("data"));
  EXPECT_EQ(parsed["outputs"][1]["data"], json::array({5}));
  EXPECT_FALSE(parsed["outputs"][1].contains("parameters"));
  EXPECT_EQ(parsed["outputs"][2]["parameters"]["binary_data_size"], 24);
  EXPECT_EQ(encoded.body.substr(encoded.json_size), RawBytes(a) + RawBytes(c));
}

TEST(EncodeResponseTest, ShortBinaryFlagsMeanJson) {
  InferResponse response;
  response.outputs.push_back(MakeTensor<uint8_t>("a", DataType::kUint8, {1}, {1}));
  response.outputs.push_back(MakeTensor<uint8_t>("b", DataType::kUint8, {1}, {2}));
  response.binary_outputs = {true};
  const EncodedResponse encoded = EncodeInferResponse(response);
  EXPECT_EQ(encoded.body.size(), encoded.json_size + 1);
  EXPECT_EQ(json::parse(encoded.body.substr(0, encoded.json_size))["outputs"][1]["data"], json::array({2}));
}

TEST(EncodeResponseTest, NonFiniteFloatsAreNull) {
  InferResponse response;
  const float inf = std::numeric_limits<float>::infinity();
  response.outputs.push_back(
      MakeTensor<float>("f", DataType::kFp32, {3}, {std::numeric_limits<float>::quiet_NaN(), inf, -inf}));
  response.outputs.push_back(MakeTensor<double>("d", DataType::kFp64, {1}, {std::nan("")}));
  response.outputs.push_back(MakeTensor<uint16_t>("h", DataType::kFp16, {2}, {0x7c00, 0x7e00}));
  response.outputs.push_back(MakeTensor<uint16_t>("b", DataType::kBf16, {1}, {0xff80}));
  const json parsed = json::parse(EncodeInferResponse(response).body);
  EXPECT_EQ(parsed["outputs"][0]["data"], json::parse("[null,null,null]"));
  EXPECT_EQ(parsed["outputs"][1]["data"], json::parse("[null]"));
  EXPECT_EQ(parsed["outputs"][2]["data"], json::parse("[null,null]"));
  EXPECT_EQ(parsed["outputs"][3]["data"], json::parse("[null]"));
}

TEST(EncodeResponseTest, HalfPrecisionIsWrittenAsShortestFloat) {
  InferResponse response;
  response.outputs.push_back(MakeTensor<uint16_t>("h", DataType::kFp16, {3}, {0x3c00, 0x2e66, 0x0001}));
  response.outputs.push_back(MakeTensor<uint16_t>("b", DataType::kBf16, {2}, {0x3f80, 0xc000}));
  const EncodedResponse encoded = EncodeInferResponse(response);
  EXPECT_NE(encoded.body.find(R"("data":[1,0.099975586,5.9604645e-08])"), std::string::npos) << encoded.body;
  EXPECT_NE(encoded.body.find(R"("data":[1,-2])"), std::string::npos) << encoded.body;
}

TEST(EncodeResponseTest, BytesOutputsAreJsonStrings) {
  InferResponse response;
  const std::string elements[] = {"plain", "q\"\\\n", std::string("\xff\x00z", 3), "\xC3\xA9"};
  response.outputs.push_back(Tensor{"s", DataType::kBytes, {4}, MakeBytesBuffer(elements)});
  const EncodedResponse encoded = EncodeInferResponse(response);
  const json parsed = json::parse(encoded.body);  // valid JSON despite the invalid UTF-8 byte
  const json& data = parsed["outputs"][0]["data"];
  ASSERT_EQ(data.size(), 4u);
  EXPECT_EQ(data[0], "plain");
  EXPECT_EQ(data[1], "q\"\\\n");
  EXPECT_EQ(data[2], std::string("\xEF\xBF\xBD\0z", 5));
  EXPECT_EQ(data[3], "\xC3\xA9");
}

TEST(EncodeResponseTest, InconsistentTensorsNeverReadPastTheirData) {
  InferResponse response;
  // Shape says 4 floats, buffer holds 1 and a half; BYTES buffer is truncated.
  response.outputs.push_back(Tensor{"f", DataType::kFp32, {4}, Buffer::Copy("\0\0\x80\x3f\0\0", 6)});
  response.outputs.push_back(Tensor{"s", DataType::kBytes, {2}, Buffer::Copy("\x01\0\0\0a\x09\0\0\0b", 10)});
  const json parsed = json::parse(EncodeInferResponse(response).body);
  EXPECT_EQ(parsed["outputs"][0]["data"], json::array({1}));
  EXPECT_EQ(parsed["outputs"][0]["shape"], json::array({4}));
  EXPECT_EQ(parsed["outputs"][1]["data"], json::array({"a"}));
}

TEST(EncodeResponseTest, ManyElementsSpanSeveralChunks) {
  std::vector<double> values(5000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = -1.0 / (static_cast<double>(i) + 3.0) * 1e-300;
  InferResponse response;
  response.outputs.push_back(MakeTensor<double>("d", DataType::kFp64, {5000}, values));
  const json parsed = json::parse(EncodeInferResponse(response).body);
  ASSERT_EQ(parsed["outputs"][0]["data"].size(), 5000u);
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(parsed["outputs"][0]["data"][i].get<double>(), values[i]);
}

TEST(EncodeErrorJsonTest, Escapes) {
  EXPECT_EQ(EncodeErrorJson("bad \"x\"\n"), R"({"error":"bad \"x\"\n"})");
  EXPECT_EQ(json::parse(EncodeErrorJson(std::string("nul\0\x80", 5)))["error"],
            std::string("nul\0\xEF\xBF\xBD", 7));
}

// Turns an encoded response into a request with the same tensors (outputs become inputs), so the
// decoder can read back what the encoder wrote, binary part included.
Result<InferRequest> DecodeAsRequest(const EncodedResponse& encoded) {
  json parsed = json::parse(encoded.body.substr(0, encoded.json_size));
  json request = {{"inputs", parsed["outputs"]}};
  return DecodeBinary(request.dump(), encoded.body.substr(encoded.json_size));
}

// One tensor of every datatype, with awkward values (limits, negative zero, subnormals, unicode).
std::vector<Tensor> EveryDatatype() {
  const std::string strings[] = {"", "hello", "\xE2\x82\xAC", std::string("a\0b", 3)};
  return {
      MakeTensor<uint8_t>("bool", DataType::kBool, {3}, {1, 0, 1}),
      MakeTensor<uint8_t>("u8", DataType::kUint8, {3}, {0, 128, 255}),
      MakeTensor<uint16_t>("u16", DataType::kUint16, {2}, {0, 65535}),
      MakeTensor<uint32_t>("u32", DataType::kUint32, {2}, {1, 4294967295u}),
      MakeTensor<uint64_t>("u64", DataType::kUint64, {2}, {9223372036854775808u, 18446744073709551615u}),
      MakeTensor<int8_t>("i8", DataType::kInt8, {2}, {-128, 127}),
      MakeTensor<int16_t>("i16", DataType::kInt16, {2}, {-32768, 32767}),
      MakeTensor<int32_t>("i32", DataType::kInt32, {2, 1}, {std::numeric_limits<int32_t>::min(), 7}),
      MakeTensor<int64_t>("i64", DataType::kInt64, {2},
                          {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}),
      MakeTensor<uint16_t>("f16", DataType::kFp16, {5}, {0x3c00, 0x8000, 0x0001, 0x7bff, 0x2e66}),
      MakeTensor<uint16_t>("bf16", DataType::kBf16, {4}, {0x3f80, 0x8000, 0x0001, 0x7f7f}),
      MakeTensor<float>("f32", DataType::kFp32, {1, 5},
                        {0.1f, -0.0f, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                         -123456.789f}),
      MakeTensor<double>("f64", DataType::kFp64, {4},
                         {0.1, -0.0, std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::max()}),
      Tensor{"bytes", DataType::kBytes, {2, 2}, MakeBytesBuffer(strings)},
  };
}

void ExpectSameTensors(const std::vector<Tensor>& expected, const std::vector<Tensor>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(expected[i].name);
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_EQ(actual[i].dtype, expected[i].dtype);
    EXPECT_EQ(actual[i].shape, expected[i].shape);
    EXPECT_TRUE(actual[i].ValidateData().ok()) << actual[i].ValidateData().ToString();
    // Bit-exact, which also checks -0 and subnormals.
    EXPECT_EQ(Values<uint8_t>(actual[i]), Values<uint8_t>(expected[i]));
  }
}

TEST(RoundTripTest, EveryDatatypeThroughJson) {
  InferResponse response;
  response.outputs = EveryDatatype();
  const EncodedResponse encoded = EncodeInferResponse(response);
  ASSERT_EQ(encoded.json_size, encoded.body.size());
  auto decoded = DecodeAsRequest(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString() << "\n" << encoded.body;
  ExpectSameTensors(response.outputs, decoded->inputs);
}

TEST(RoundTripTest, EveryDatatypeThroughBinary) {
  InferResponse response;
  response.outputs = EveryDatatype();
  response.binary_outputs.assign(response.outputs.size(), true);
  const EncodedResponse encoded = EncodeInferResponse(response);
  ASSERT_LT(encoded.json_size, encoded.body.size());
  auto decoded = DecodeAsRequest(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ExpectSameTensors(response.outputs, decoded->inputs);
}

TEST(RoundTripTest, AlternatingJsonAndBinary) {
  InferResponse response;
  response.outputs = EveryDatatype();
  for (size_t i = 0; i < response.outputs.size(); ++i) response.binary_outputs.push_back(i % 2 == 1);
  auto decoded = DecodeAsRequest(EncodeInferResponse(response));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ExpectSameTensors(response.outputs, decoded->inputs);
}

TEST(RoundTripTest, EveryFp16PatternThroughJson) {
  std::vector<uint16_t> all;
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    if (!std::isfinite(HalfBitsToFloat(static_cast<uint16_t>(bits)))) continue;
    all.push_back(static_cast<uint16_t>(bits));
  }
  for (DataType type : {DataType::kFp16, DataType::kBf16}) {
    std::vector<uint16_t> values;
    for (uint16_t bits : all) {
      const float f = type == DataType::kFp16 ? HalfBitsToFloat(bits) : Bf16BitsToFloat(bits);
      if (std::isfinite(f)) values.push_back(bits);
    }
    InferResponse response;
    response.outputs.push_back(MakeTensor<uint16_t>("h", type, {static_cast<int64_t>(values.size())}, values));
    auto decoded = DecodeAsRequest(EncodeInferResponse(response));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    ASSERT_EQ(Values<uint16_t>(decoded->inputs[0]), values) << DataTypeName(type);
  }
}

TEST(RoundTripTest, RandomFloatsThroughJsonAreBitExact) {
  std::vector<float> values;
  uint32_t state = 7;
  while (values.size() < 20000) {
    state = state * 1664525u + 1013904223u;
    const float f = std::bit_cast<float>(state);
    if (std::isfinite(f)) values.push_back(f);
  }
  InferResponse response;
  response.outputs.push_back(MakeTensor<float>("f", DataType::kFp32, {20000}, values));
  auto decoded = DecodeAsRequest(EncodeInferResponse(response));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(Values<uint32_t>(decoded->inputs[0]), Values<uint32_t>(response.outputs[0]));
}

}  // namespace
}  // namespace ferry
