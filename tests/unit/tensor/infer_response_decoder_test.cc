#include <gtest/gtest.h>

#include <cstring>

#include "tensor/infer_codec.h"

namespace ferry {
namespace {

TEST(DecodeInferResponseJsonTest, ReadsWhatTheEncoderWrites) {
  InferResponse response;
  response.model_name = "recs";
  response.model_version = "3";
  response.id = "user-1";
  Tensor t;
  t.name = "scores";
  t.dtype = DataType::kFp32;
  t.shape = {1, 3};
  const float values[] = {0.5f, -1.25f, 7.0f};
  t.data = Buffer::Copy(values, sizeof(values));
  response.outputs = {t};
  Result<InferResponse> back = DecodeInferResponseJson(EncodeInferResponse(response).body);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->model_name, "recs");
  EXPECT_EQ(back->model_version, "3");
  EXPECT_EQ(back->id, "user-1");
  ASSERT_EQ(back->outputs.size(), 1u);
  EXPECT_EQ(back->outputs[0].name, "scores");
  EXPECT_EQ(back->outputs[0].shape, (Shape{1, 3}));
  ASSERT_EQ(back->outputs[0].data.size(), sizeof(values));
  EXPECT_EQ(std::memcmp(back->outputs[0].data.data(), values, sizeof(values)), 0);
}

TEST(DecodeInferResponseJsonTest, ErrorsNameTheOutput) {
  auto error = [](std::string_view json) { return DecodeInferResponseJson(json).status().message(); };
  EXPECT_NE(error(R"({"outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[1]}]})").find("output 'y'"),
            std::string::npos);
  EXPECT_NE(error(R"({"id":"a"})").find("no outputs"), std::string::npos);
  EXPECT_NE(error(R"({"id":5,"outputs":[]})").find("id must be a string"), std::string::npos);
  EXPECT_NE(error(R"({"outputs":[{"name":"y","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]})")
                .find("binary"), std::string::npos);
  EXPECT_NE(error("[1,2]").find("JSON object"), std::string::npos);
  EXPECT_NE(error("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error(R"({"outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1]},)"
                  R"({"name":"y","datatype":"FP32","shape":[1],"data":[1]}]})").find("more than once"),
            std::string::npos);
}

}  // namespace
}  // namespace ferry
