#include "backend/openvino/openvino_backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "repository/model_config.h"
#include "testing/example_models.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using namespace ferry::testing;  // NOLINT: the example-model helpers

class OpenVinoBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> backend_ = MakeOpenVinoBackend();
};

TEST_F(OpenVinoBackendTest, Name) { EXPECT_EQ(backend_->name(), "openvino"); }

TEST_F(OpenVinoBackendTest, CnnMatchesPyTorchAtBatchOneAndTwo) {
  ModelConfig config = LoadConfig("cnn");
  auto instance = MustCreate(*backend_, config, ModelDir("cnn") / "1");
  ASSERT_NE(instance, nullptr);
  const Reference ref = LoadReference("cnn");
  const int64_t batch = ref.input_shape[0];
  std::vector<Tensor> inputs{MakeFloatTensor("image", ref.input_shape, CnnInput(batch))};
  auto out = instance->Execute(inputs);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].name, "probabilities");
  EXPECT_EQ((*out)[0].shape, ref.output_shape);
  const std::vector<float> got = Floats((*out)[0]);
  ASSERT_EQ(got.size(), ref.output.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref.output[i], ref.tolerance) << i;

  // One row alone gives the first row of the batch: no state leaks between calls of different sizes.
  std::vector<float> one = CnnInput(1);
  auto single = instance->Execute({MakeFloatTensor("image", {1, 3, 224, 224}, one)});
  ASSERT_TRUE(single.ok()) << single.status().ToString();
  const std::vector<float> row = Floats((*single)[0]);
  for (size_t i = 0; i < row.size(); ++i) EXPECT_NEAR(row[i], ref.output[i], ref.tolerance) << i;
}

TEST_F(OpenVinoBackendTest, ConvertsDeclaredDtypesInsideTheGraph) {
  ModelConfig config = LoadConfig("identity");
  config.inputs[0].dtype = DataType::kUint8;   // the model takes FP32
  config.outputs[0].dtype = DataType::kInt32;  // and returns FP32
  auto instance = MustCreate(*backend_, config, ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  std::vector<uint8_t> bytes(16);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 10);
  Tensor in;
  in.name = "INPUT0";
  in.dtype = DataType::kUint8;
  in.shape = {1, 16};
  in.data = Buffer::Copy(bytes.data(), bytes.size());
  auto out = instance->Execute({in});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ((*out)[0].dtype, DataType::kInt32);
  ASSERT_EQ((*out)[0].data.size(), 16 * sizeof(int32_t));
  for (size_t i = 0; i < 16; ++i) {
    int32_t v;
    std::memcpy(&v, (*out)[0].data.data() + i * 4, 4);
    EXPECT_EQ(v, static_cast<int32_t>(i * 10 * 2 + 1));
  }
}

TEST_F(OpenVinoBackendTest, RefusesBadRequestsWithoutCrashing) {
  ModelConfig config = LoadConfig("identity");
  auto instance = MustCreate(*backend_, config, ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  const std::vector<float> row(16, 1.0f);
  std::vector<float> too_many(16 * static_cast<size_t>(config.max_batch_size + 1), 1.0f);
  auto over = instance->Execute({MakeFloatTensor("INPUT0", {config.max_batch_size + 1, 16}, too_many)});
  EXPECT_EQ(over.status().code(), StatusCode::kInvalidArgument) << over.status().ToString();
  auto wrong_dims = instance->Execute({MakeFloatTensor("INPUT0", {1, 8}, std::vector<float>(8))});
  EXPECT_EQ(wrong_dims.status().code(), StatusCode::kInvalidArgument);
  Tensor wrong_type = MakeFloatTensor("INPUT0", {1, 16}, row);
  wrong_type.dtype = DataType::kInt32;
  EXPECT_EQ(instance->Execute({wrong_type}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(instance->Execute({}).status().code(), StatusCode::kInvalidArgument);
  // Still serves afterwards.
  auto ok = instance->Execute({MakeFloatTensor("INPUT0", {1, 16}, row)});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_FLOAT_EQ(Floats((*ok)[0])[0], 3.0f);
}

TEST_F(OpenVinoBackendTest, LoadErrorsNameTheProblem) {
  ModelConfig config = LoadConfig("identity");
  const fs::path dir = ModelDir("identity") / "1";

  ModelConfig wrong_input = config;
  wrong_input.inputs[0].name = "nope";
  auto r1 = backend_->CreateInstance(wrong_input, dir);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.status().message().find("no input named 'nope'"), std::string::npos) << r1.status().message();
  EXPECT_NE(r1.status().message().find("INPUT0"), std::string::npos) << r1.status().message();

  ModelConfig wrong_output = config;
  wrong_output.outputs[0].name = "missing";
  auto r2 = backend_->CreateInstance(wrong_output, dir);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("no output named 'missing'"), std::string::npos) << r2.status().message();

  ModelConfig wrong_dims = config;
  wrong_dims.inputs[0].dims = {32};
  auto r3 = backend_->CreateInstance(wrong_dims, dir);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.status().message().find("the config declares"), std::string::npos) << r3.status().message();

  ModelConfig unknown_param = config;
  unknown_param.backend_options = {{"precision", "f32"}};
  auto r4 = backend_->CreateInstance(unknown_param, dir);
  ASSERT_FALSE(r4.ok());
  EXPECT_NE(r4.status().message().find("unknown parameter 'precision'"), std::string::npos);

  ModelConfig bad_precision = config;
  bad_precision.backend_options = {{"inference_precision", "int4"}};
  EXPECT_FALSE(backend_->CreateInstance(bad_precision, dir).ok());

  ModelConfig missing = config;
  missing.model_filename = "absent.onnx";
  EXPECT_EQ(backend_->CreateInstance(missing, dir).status().code(), StatusCode::kNotFound);

  ModelConfig bytes = config;
  bytes.inputs[0].dtype = DataType::kBytes;
  EXPECT_EQ(backend_->CreateInstance(bytes, dir).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(OpenVinoBackendTest, GarbageModelFileIsAnErrorNotACrash) {
  TempDir tmp;
  std::ofstream(tmp.path() / "model.onnx") << "this is not a protobuf \x01\x02\x03";
  ModelConfig config = LoadConfig("identity");
  auto r = backend_->CreateInstance(config, tmp.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a model OpenVINO can read"), std::string::npos) << r.status().message();
}

TEST_F(OpenVinoBackendTest, AcceptsThePrecisionAndStreamParameters) {
  ModelConfig config = LoadConfig("identity");
  config.backend_options = {{"inference_precision", "bf16"}, {"performance_hint", "throughput"},
                            {"num_streams", "2"}, {"device", "CPU"}};
  config.threads_per_instance = 1;
  auto instance = MustCreate(*backend_, config, ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  auto out = instance->Execute({MakeFloatTensor("INPUT0", {1, 16}, std::vector<float>(16, 2.0f))});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_NEAR(Floats((*out)[0])[0], 5.0f, 0.05f);  // bf16 keeps ~3 significant digits
}

}  // namespace
}  // namespace ferry
