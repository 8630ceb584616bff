// DecodeInferRequest with JSON bodies: request structure, every datatype, and every error path.
#include <cmath>
#include <limits>

#include "codec_test_util.h"
#include "tensor/bytes_elements.h"
#include "tensor/float16.h"

namespace ferry {
namespace {

using testing::DecodeJson;
using testing::OneInput;
using testing::Values;

TEST(DecodeRequestTest, FullRequest) {
  auto r = DecodeJson(R"({
    "id": "req-7",
    "parameters": {"priority": 3, "note": "hi", "ratio": 0.5, "flag": true, "binary_data_output": true},
    "inputs": [
      {"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [1, 2.5, -3, 4e2]},
      {"name": "b", "datatype": "INT64", "shape": [3], "data": [1, -2, 3], "parameters": {"extra": "x"}}
    ],
    "outputs": [
      {"name": "y", "parameters": {"binary_data": false, "classification": 3}},
      {"name": "z"}
    ],
    "unknown_key": {"nested": [1, 2, {"deep": null}]}
  })");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const InferRequest& req = *r;
  EXPECT_EQ(req.id, "req-7");
  EXPECT_TRUE(req.binary_data_output);
  EXPECT_EQ(req.parameters.count("binary_data_output"), 0u);  // lifted, not passed through
  EXPECT_EQ(std::get<int64_t>(req.parameters.at("priority")), 3);
  EXPECT_EQ(std::get<std::string>(req.parameters.at("note")), "hi");
  EXPECT_EQ(std::get<double>(req.parameters.at("ratio")), 0.5);
  EXPECT_EQ(std::get<bool>(req.parameters.at("flag")), true);

  ASSERT_EQ(req.inputs.size(), 2u);
  EXPECT_EQ(req.inputs[0].name, "a");
  EXPECT_EQ(req.inputs[0].dtype, DataType::kFp32);
  EXPECT_EQ(req.inputs[0].shape, (Shape{2, 2}));
  EXPECT_EQ(Values<float>(req.inputs[0]), (std::vector<float>{1, 2.5f, -3, 400}));
  EXPECT_EQ(Values<int64_t>(req.inputs[1]), (std::vector<int64_t>{1, -2, 3}));
  for (const Tensor& t : req.inputs) EXPECT_TRUE(t.ValidateData().ok());

  ASSERT_EQ(req.outputs.size(), 2u);
  EXPECT_EQ(req.outputs[0].name, "y");
  EXPECT_EQ(req.outputs[0].binary_data, false);
  EXPECT_EQ(req.outputs[0].parameters.count("binary_data"), 0u);
  EXPECT_EQ(std::get<int64_t>(req.outputs[0].parameters.at("classification")), 3);
  EXPECT_EQ(req.outputs[1].name, "z");
  EXPECT_EQ(req.outputs[1].binary_data, std::nullopt);
}

TEST(DecodeRequestTest, MinimalRequestHasDefaults) {
  auto r = DecodeJson(OneInput("FP32", "[1]", "[0]"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->id, "");
  EXPECT_FALSE(r->binary_data_output);
  EXPECT_TRUE(r->parameters.empty());
  EXPECT_TRUE(r->outputs.empty());
}

TEST(DecodeDataTest, Bool) {
  auto r = DecodeJson(OneInput("BOOL", "[3]", "[true,false,true]"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<uint8_t>(r->inputs[0]), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("BOOL", "[1]", "[1]")), "true or false");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("BOOL", "[1]", R"(["true"])")), "BOOL");
}

TEST(DecodeDataTest, UnsignedIntegersAtTheirLimits) {
  auto u8 = DecodeJson(OneInput("UINT8", "[3]", "[0,255,7]"));
  ASSERT_TRUE(u8.ok()) << u8.status().ToString();
  EXPECT_EQ(Values<uint8_t>(u8->inputs[0]), (std::vector<uint8_t>{0, 255, 7}));
  auto u16 = DecodeJson(OneInput("UINT16", "[2]", "[0,65535]"));
  ASSERT_TRUE(u16.ok());
  EXPECT_EQ(Values<uint16_t>(u16->inputs[0]), (std::vector<uint16_t>{0, 65535}));
  auto u32 = DecodeJson(OneInput("UINT32", "[2]", "[0,4294967295]"));
  ASSERT_TRUE(u32.ok());
  EXPECT_EQ(Values<uint32_t>(u32->inputs[0]), (std::vector<uint32_t>{0, 4294967295u}));
  auto u64 = DecodeJson(OneInput("UINT64", "[3]", "[0,9223372036854775807,18446744073709551615]"));
  ASSERT_TRUE(u64.ok()) << u64.status().ToString();
  EXPECT_EQ(Values<uint64_t>(u64->inputs[0]),
            (std::vector<uint64_t>{0, 9223372036854775807u, 18446744073709551615u}));

  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT8", "[1]", "[256]")), "out of range for UINT8");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT8", "[2]", "[1,300]")), "data element 1 (300)");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT8", "[1]", "[-1]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT16", "[1]", "[65536]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT32", "[1]", "[4294967296]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT64", "[1]", "[-1]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT64", "[1]", "[-9223372036854775808]")), "out of range");
  EXPECT_FALSE(DecodeJson(OneInput("UINT64", "[1]", "[18446744073709551616]")).ok());
}

TEST(DecodeDataTest, SignedIntegersAtTheirLimits) {
  auto i8 = DecodeJson(OneInput("INT8", "[2]", "[-128,127]"));
  ASSERT_TRUE(i8.ok());
  EXPECT_EQ(Values<int8_t>(i8->inputs[0]), (std::vector<int8_t>{-128, 127}));
  auto i16 = DecodeJson(OneInput("INT16", "[2]", "[-32768,32767]"));
  ASSERT_TRUE(i16.ok());
  EXPECT_EQ(Values<int16_t>(i16->inputs[0]), (std::vector<int16_t>{-32768, 32767}));
  auto i32 = DecodeJson(OneInput("INT32", "[2]", "[-2147483648,2147483647]"));
  ASSERT_TRUE(i32.ok());
  EXPECT_EQ(Values<int32_t>(i32->inputs[0]), (std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 2147483647}));
  auto i64 = DecodeJson(OneInput("INT64", "[2]", "[-9223372036854775808,9223372036854775807]"));
  ASSERT_TRUE(i64.ok());
  EXPECT_EQ(Values<int64_t>(i64->inputs[0]),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}));

  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT8", "[1]", "[128]")), "out of range for INT8");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT8", "[1]", "[-129]")), "out of range for INT8");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT16", "[1]", "[32768]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT32", "[1]", "[2147483648]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT64", "[1]", "[9223372036854775808]")), "out of range");
}

TEST(DecodeDataTest, IntegersAcceptIntegralNumbersOnly) {
  auto r = DecodeJson(OneInput("INT32", "[3]", "[2.0,-1e3,0.0]"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>(r->inputs[0]), (std::vector<int32_t>{2, -1000, 0}));
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT32", "[1]", "[1.5]")), "not an integer, as INT32 requires");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT8", "[1]", "[0.001]")), "not an integer");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT32", "[1]", "[3e9]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT64", "[1]", "[9.3e18]")), "out of range");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("UINT64", "[1]", "[1.9e19]")), "out of range");
  auto big = DecodeJson(OneInput("UINT64", "[1]", "[1.8e19]"));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(Values<uint64_t>(big->inputs[0])[0], 18000000000000000000u);
}

TEST(DecodeDataTest, NonNumbersAreRejectedForNumericTypes) {
  for (const char* type : {"UINT8", "INT32", "INT64", "FP16", "BF16", "FP32", "FP64"}) {
    EXPECT_DECODE_ERROR(DecodeJson(OneInput(type, "[1]", R"(["1"])")), "is a string");
    EXPECT_DECODE_ERROR(DecodeJson(OneInput(type, "[1]", "[null]")), "is null");
    EXPECT_DECODE_ERROR(DecodeJson(OneInput(type, "[1]", "[true]")), "is a boolean");
    EXPECT_DECODE_ERROR(DecodeJson(OneInput(type, "[1]", "[{}]")), "is an object");
  }
}

TEST(DecodeDataTest, Fp32AndFp64) {
  // "-0.0", not "-0": simdjson reads "-0" as the integer 0, which has no sign (the encoder writes -0.0).
  auto f = DecodeJson(OneInput("FP32", "[5]", "[0.1,-0.0,3.4028234663852886e38,1e-45,7]"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const auto fv = Values<float>(f->inputs[0]);
  EXPECT_EQ(fv[0], 0.1f);
  EXPECT_TRUE(std::signbit(fv[1]));
  EXPECT_EQ(fv[2], std::numeric_limits<float>::max());
  EXPECT_EQ(fv[3], std::numeric_limits<float>::denorm_min());
  EXPECT_EQ(fv[4], 7.0f);
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1]", "[1e39]")), "out of range for FP32");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1]", "[-3.5e38]")), "out of range");
  // Tiny values underflow to zero rather than failing.
  auto tiny = DecodeJson(OneInput("FP32", "[1]", "[1e-50]"));
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(Values<float>(tiny->inputs[0])[0], 0.0f);

  auto d = DecodeJson(OneInput("FP64", "[4]", "[0.1,1e308,-5e-324,9007199254740993]"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const auto dv = Values<double>(d->inputs[0]);
  EXPECT_EQ(dv[0], 0.1);
  EXPECT_EQ(dv[1], 1e308);
  EXPECT_EQ(dv[2], -5e-324);
  EXPECT_EQ(dv[3], 9007199254740992.0);
  // simdjson itself rejects numbers that overflow a double.
  EXPECT_FALSE(DecodeJson(OneInput("FP64", "[1]", "[1e400]")).ok());
}

TEST(DecodeDataTest, Fp16AndBf16) {
  auto h = DecodeJson(OneInput("FP16", "[5]", "[1,0.1,-65504,65519,1e-8]"));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(Values<uint16_t>(h->inputs[0]), (std::vector<uint16_t>{0x3c00, 0x2e66, 0xfbff, 0x7bff, 0x0000}));
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP16", "[1]", "[65520]")), "out of range for FP16");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP16", "[1]", "[-70000]")), "out of range for FP16");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP16", "[1]", "[9223372036854775807]")), "out of range");

  auto b = DecodeJson(OneInput("BF16", "[4]", "[1,-2,3e38,18446744073709551615]"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const auto bv = Values<uint16_t>(b->inputs[0]);
  EXPECT_EQ(bv[0], 0x3f80);
  EXPECT_EQ(bv[1], 0xc000);
  EXPECT_EQ(bv[2], DoubleToBf16Bits(3e38));
  EXPECT_EQ(bv[3], 0x5f80);  // 2^64 after rounding
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("BF16", "[1]", "[3.4e38]")), "out of range for BF16");
}

TEST(DecodeDataTest, LargeIntegersRoundOnceToBf16) {
  // 2^60 + 2^52 + 1 lies just above the midpoint between two BF16 values (2^60 and 2^60 + 2^53).
  // Rounding to double first would land exactly on the midpoint and then round down to even.
  auto r = DecodeJson(OneInput("BF16", "[1]", "[1157425104234217473]"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<uint16_t>(r->inputs[0])[0], DoubleToBf16Bits(0x1p60 + 0x1p53));
  auto negative = DecodeJson(OneInput("BF16", "[1]", "[-1157425104234217473]"));
  ASSERT_TRUE(negative.ok());
  EXPECT_EQ(Values<uint16_t>(negative->inputs[0])[0], DoubleToBf16Bits(-(0x1p60 + 0x1p53)));
}

TEST(DecodeDataTest, Bytes) {
  auto r = DecodeJson(OneInput("BYTES", "[4]", R"(["abc","","caf\u00e9 \"q\"\n","\ud83d\ude00"])"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tensor& t = r->inputs[0];
  EXPECT_TRUE(t.ValidateData().ok());
  BytesElementReader reader(t.data.span());
  std::string_view e;
  std::vector<std::string> got;
  while (reader.Next(&e)) got.emplace_back(e);
  EXPECT_EQ(got, (std::vector<std::string>{"abc", "", "caf\xC3\xA9 \"q\"\n", "\xF0\x9F\x98\x80"}));
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("BYTES", "[1]", "[1]")), "BYTES needs a string");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("BYTES", "[2]", R"(["a"])")), "has 1 elements but shape [2] needs 2");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("BYTES", "[1]", R"(["a","b"])")), "more than the 1 elements");
}

TEST(DecodeDataTest, NestedDataIsFlattenedRowMajor) {
  auto r = DecodeJson(OneInput("INT32", "[2,3]", "[[1,2,3],[4,5,6]]"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>(r->inputs[0]), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  auto deep = DecodeJson(OneInput("FP32", "[2,2,2]", "[[[1,2],[3,4]],[[5,6],[7,8]]]"));
  ASSERT_TRUE(deep.ok());
  EXPECT_EQ(Values<float>(deep->inputs[0]), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  auto bytes = DecodeJson(OneInput("BYTES", "[2,1]", R"([["a"],["b"]])"));
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(bytes->inputs[0].ValidateData().ok());
  // Only the total count is checked, as in Triton.
  EXPECT_TRUE(DecodeJson(OneInput("INT32", "[2,2]", "[[1],[2,3,4]]")).ok());
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT32", "[2,3]", "[[1,2,3],[4,5]]")), "has 5 elements but shape [2,3]");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT32", "[2,2]", "[[1,2],[3,4],[5]]")), "more than the 4 elements");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT32", "[2]", "[[1],[\"x\"]]")), "data element 1 is a string");
}

TEST(DecodeDataTest, EmptyAndScalarTensors) {
  auto empty = DecodeJson(OneInput("FP32", "[0,3]", "[]"));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->inputs[0].data.size(), 0u);
  auto scalar = DecodeJson(OneInput("INT64", "[]", "[42]"));
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(Values<int64_t>(scalar->inputs[0]), (std::vector<int64_t>{42}));
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT64", "[]", "42")), "data must be an array");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("INT64", "[0]", "[1]")), "more than the 0 elements");
}

TEST(DecodeDataTest, CountMismatch) {
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[3]", "[1,2]")), "input 'x': data has 2 elements but shape [3] needs 3");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1]", "[1,2]")), "more than the 1 elements that shape [1] needs");
  // A shape that no body of this size could fill is rejected before anything is allocated.
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1000000000]", "[1]")), "fewer elements than the 1000000000");
}

TEST(DecodeStructureTest, BodyMustBeAJsonObject) {
  EXPECT_DECODE_ERROR(DecodeJson(""), "not valid JSON");
  EXPECT_DECODE_ERROR(DecodeJson("{"), "not valid JSON");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs": [}")"), "not valid JSON");
  EXPECT_DECODE_ERROR(DecodeJson("[]"), "must be a JSON object");
  EXPECT_DECODE_ERROR(DecodeJson("3"), "must be a JSON object");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1]", "[1]") + "x"), "not valid JSON");
  auto null_body = DecodeInferRequest(nullptr, std::nullopt);
  EXPECT_DECODE_ERROR(null_body, "no body");
}

TEST(DecodeStructureTest, Inputs) {
  EXPECT_DECODE_ERROR(DecodeJson(R"({"id":"a"})"), "no inputs");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":{}})"), "inputs must be an array");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[]})"), "inputs must not be empty");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[1]})"), "inputs[0] must be an object");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})"), "inputs[0] has no name");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":3,"datatype":"FP32","shape":[1],"data":[1]}]})"),
                      "inputs[0].name must be a string");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"","datatype":"FP32","shape":[1],"data":[1]}]})"),
                      "inputs[0].name is empty");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"x","shape":[1],"data":[1]}]})"), "input 'x' has no datatype");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"x","datatype":5,"shape":[1],"data":[1]}]})"),
                      "datatype must be a string");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FLOAT", "[1]", "[1]")), "unknown datatype 'FLOAT'");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})"), "input 'x' has no shape");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})"),
                      "input 'x' has neither data nor parameters.binary_data_size");
}

TEST(DecodeStructureTest, DuplicateInputNames) {
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[
      {"name":"x","datatype":"FP32","shape":[1],"data":[1]},
      {"name":"x","datatype":"FP32","shape":[1],"data":[2]}]})"),
                      "input 'x' appears more than once");
}

TEST(DecodeStructureTest, DuplicateKeysAreRefused) {
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                                 R"("inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,2]}]})"),
                      "the request has the key 'inputs' more than once");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"shape":[2],"data":[1]}]})"),
                      "inputs[0] has the key 'shape' more than once");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"parameters":{"a":1,"a":2},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})"),
                      "parameter 'a' is given more than once");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                                 R"("outputs":[{"name":"y","name":"z"}]})"),
                      "outputs[0] has the key 'name' more than once");
}

TEST(DecodeStructureTest, Shapes) {
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "3", "[1,2,3]")), "shape must be an array");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[-1]", "[1]")), "non-negative integers, found -1");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1.5]", "[1]")), "non-negative integers, found 1.5");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", R"(["3"])", "[1]")), "non-negative integers");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[18446744073709551615]", "[1]")), "non-negative integers");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[4611686018427387904,4]", "[1]")), "overflows");
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[4294967296,4294967296]", "[1]")), "input 'x'");
}

TEST(DecodeStructureTest, IdAndParameters) {
  EXPECT_DECODE_ERROR(DecodeJson(R"({"id":5,"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})"),
                      "id must be a string");
  EXPECT_DECODE_ERROR(DecodeJson(R"({"parameters":[],"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})"),
                      "request parameters must be an object");
  EXPECT_DECODE_ERROR(
      DecodeJson(R"({"parameters":{"p":{}},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})"),
      "parameter 'p' must be a string, number or boolean");
  EXPECT_DECODE_ERROR(
      DecodeJson(R"({"parameters":{"p":null},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})"),
      "parameter 'p'");
  EXPECT_DECODE_ERROR(
      DecodeJson(
          R"({"parameters":{"p":18446744073709551615},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})"),
      "out of the int64 range");
  EXPECT_DECODE_ERROR(
      DecodeJson(
          R"({"parameters":{"binary_data_output":1},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})"),
      "'binary_data_output' must be a boolean");
  EXPECT_DECODE_ERROR(
      DecodeJson(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"a":[1]}}]})"),
      "input 'x' parameter 'a'");
  EXPECT_DECODE_ERROR(
      DecodeJson(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":5}]})"),
      "input 'x' parameters must be an object");
}

TEST(DecodeStructureTest, Outputs) {
  const std::string input = R"("inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}])";
  auto ok = DecodeJson("{" + input + R"(,"outputs":[{"name":"a","parameters":{"binary_data":true}},{"name":"b"}]})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->outputs[0].binary_data, true);
  EXPECT_TRUE(ok->outputs[0].parameters.empty());
  auto empty = DecodeJson("{" + input + R"(,"outputs":[]})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->outputs.empty());
  EXPECT_DECODE_ERROR(DecodeJson("{" + input + R"(,"outputs":{}})"), "outputs must be an array");
  EXPECT_DECODE_ERROR(DecodeJson("{" + input + R"(,"outputs":["a"]})"), "outputs[0] must be an object");
  EXPECT_DECODE_ERROR(DecodeJson("{" + input + R"(,"outputs":[{}]})"), "outputs[0] has no name");
  EXPECT_DECODE_ERROR(DecodeJson("{" + input + R"(,"outputs":[{"name":1}]})"), "outputs[0].name must be a string");
  EXPECT_DECODE_ERROR(DecodeJson("{" + input + R"(,"outputs":[{"name":""}]})"), "outputs[0].name is empty");
  EXPECT_DECODE_ERROR(DecodeJson("{" + input + R"(,"outputs":[{"name":"a"},{"name":"a"}]})"),
                      "output 'a' is requested more than once");
  EXPECT_DECODE_ERROR(DecodeJson("{" + input + R"(,"outputs":[{"name":"a","parameters":{"binary_data":"yes"}}]})"),
                      "output 'a' parameter 'binary_data' must be a boolean");
}

TEST(DecodeLimitsTest, MaxElements) {
  DecodeLimits limits;
  limits.max_elements = 3;
  EXPECT_TRUE(DecodeJson(OneInput("FP32", "[3]", "[1,2,3]"), limits).ok());
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[4]", "[1,2,3,4]"), limits), "4 elements, over the limit of 3");
}

TEST(DecodeLimitsTest, MaxTensors) {
  DecodeLimits limits;
  limits.max_tensors = 1;
  const std::string two = R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]},
                                        {"name":"b","datatype":"FP32","shape":[1],"data":[1]}]})";
  EXPECT_DECODE_ERROR(DecodeJson(two, limits), "2 inputs, over the limit of 1");
  const std::string outputs = R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}],
                                  "outputs":[{"name":"y"},{"name":"z"}]})";
  EXPECT_DECODE_ERROR(DecodeJson(outputs, limits), "2 outputs, over the limit of 1");
}

std::string Nested(int levels) {
  return std::string(levels, '[') + "1" + std::string(levels, ']');
}

TEST(DecodeLimitsTest, JsonDepth) {
  DecodeLimits limits;
  limits.max_json_depth = 8;
  // Root object, inputs array and input object take three levels; "data" takes the rest.
  EXPECT_TRUE(DecodeJson(OneInput("FP32", "[1]", Nested(5)), limits).ok());
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1]", Nested(6)), limits), "deeper than the limit of 8");
  // Depth counts anywhere in the document, including keys that are otherwise ignored.
  EXPECT_DECODE_ERROR(DecodeJson(R"({"junk":)" + Nested(10) + "," + OneInput("FP32", "[1]", "[1]").substr(1), limits),
                      "deeper than the limit");
  // The default tolerates ordinary nesting, and documents far deeper fail cleanly.
  EXPECT_TRUE(DecodeJson(OneInput("FP32", "[1,1,1,1,1,1,1,1]", Nested(8))).ok());
  EXPECT_DECODE_ERROR(DecodeJson(OneInput("FP32", "[1]", Nested(100000))), "deeper than the limit of 64");
}

TEST(DecodeLimitsTest, ThreadParserSurvivesChangingLimitsAndSizes) {
  DecodeLimits shallow;
  shallow.max_json_depth = 5;
  for (int round = 0; round < 3; ++round) {
    EXPECT_FALSE(DecodeJson(OneInput("FP32", "[1]", Nested(3)), shallow).ok());
    EXPECT_TRUE(DecodeJson(OneInput("FP32", "[1]", Nested(3))).ok());
    std::string big = "[";
    for (int i = 0; i < 200000; ++i) big += i == 0 ? "1" : ",1";
    big += "]";
    auto r = DecodeJson(OneInput("UINT8", "[200000]", big));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->inputs[0].data.size(), 200000u);
  }
}

TEST(DecodeStructureTest, SpareCapacityLetsTheJsonBeParsedInPlace) {
  // With 64 spare bytes simdjson reads the string's own allocation past the JSON; the bytes there are
  // garbage on purpose and must not matter.
  const std::string json = OneInput("INT32", "[3]", "[1,2,3]");
  std::string body;
  body.reserve(json.size() + 64);
  body.assign(json.size() + 64, ']');
  body.resize(json.size());
  body.replace(0, json.size(), json);
  ASSERT_GE(body.capacity() - body.size(), 64u);
  auto r = DecodeInferRequest(std::make_shared<const std::string>(std::move(body)), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>(r->inputs[0]), (std::vector<int32_t>{1, 2, 3}));
}

TEST(DecodeLargeTest, DocumentsAboveTheThreadParserSizeUseTheirOwnParser) {
  // Over 8 MiB of JSON.
  const int n = 3'000'000;
  std::string data = "[";
  data.reserve(n * 2 + 2);
  for (int i = 0; i < n; ++i) {
    if (i) data += ',';
    data += static_cast<char>('0' + i % 10);
  }
  data += "]";
  auto r = DecodeJson(OneInput("INT8", "[" + std::to_string(n) + "]", data));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->inputs[0].data.size(), static_cast<size_t>(n));
  EXPECT_EQ(Values<int8_t>(r->inputs[0])[n - 1], (n - 1) % 10);
}

}  // namespace
}  // namespace ferry
