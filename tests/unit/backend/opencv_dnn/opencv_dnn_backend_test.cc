#include "backend/opencv_dnn/opencv_dnn_backend.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "repository/model_config.h"
#include "testing/example_models.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using ferry::testing::Floats;
using namespace ferry::testing;  // NOLINT: the example-model helpers

class OpenCvDnnBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> backend_ = MakeOpenCvDnnBackend();
};

TEST_F(OpenCvDnnBackendTest, Name) { EXPECT_EQ(backend_->name(), "opencv_dnn"); }

TEST_F(OpenCvDnnBackendTest, IdentityMatchesPyTorchReference) {
  const ModelConfig config = LoadConfig("identity");
  auto instance = MustCreate(*backend_, config, ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  const Reference ref = LoadReference("identity");
  ASSERT_EQ(ref.input_shape, (Shape{2, 16}));

  auto out = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", ref.input_shape, ref.input)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  const Tensor& y = (*out)[0];
  EXPECT_EQ(y.name, "OUTPUT0");
  EXPECT_EQ(y.dtype, DataType::kFp32);
  EXPECT_EQ(y.shape, ref.output_shape);
  const auto got = Floats(y);
  ASSERT_EQ(got.size(), ref.output.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], ref.output[i], ref.tolerance) << "at " << i;
    EXPECT_FLOAT_EQ(got[i], ref.input[i] * 2.0f + 1.0f);
  }
}

TEST_F(OpenCvDnnBackendTest, CnnMatchesPyTorchReference) {
  const ModelConfig config = LoadConfig("cnn");
  auto instance = MustCreate(*backend_, config, ModelDir("cnn") / "1");
  ASSERT_NE(instance, nullptr);
  const Reference ref = LoadReference("cnn");
  ASSERT_EQ(ref.input_shape, (Shape{2, 3, 224, 224}));
  const auto input = CnnInput(ref.input_shape[0]);
  for (size_t i = 0; i < ref.input_first.size(); ++i) EXPECT_EQ(input[i], ref.input_first[i]) << "formula at " << i;

  auto out = instance->Execute({ferry::testing::MakeFloatTensor("image", ref.input_shape, input)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  const Tensor& y = (*out)[0];
  EXPECT_EQ(y.name, "probabilities");
  EXPECT_EQ(y.shape, (Shape{2, 10}));
  const auto got = Floats(y);
  ASSERT_EQ(got.size(), ref.output.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref.output[i], ref.tolerance) << "at " << i;
  for (int row = 0; row < 2; ++row) {
    float sum = 0;
    for (int c = 0; c < 10; ++c) sum += got[row * 10 + c];
    EXPECT_NEAR(sum, 1.0f, 1e-5f);
  }
}

// Rows of a batch are independent: a batch of 3 equals 3 single calls.
TEST_F(OpenCvDnnBackendTest, CnnBatchOfThreeEqualsThreeSingleCalls) {
  const ModelConfig config = LoadConfig("cnn");
  auto instance = MustCreate(*backend_, config, ModelDir("cnn") / "1");
  ASSERT_NE(instance, nullptr);
  const auto input = CnnInput(3);
  const size_t row = 3 * 224 * 224;

  auto batched = instance->Execute({ferry::testing::MakeFloatTensor("image", {3, 3, 224, 224}, input)});
  ASSERT_TRUE(batched.ok()) << batched.status().ToString();
  EXPECT_EQ((*batched)[0].shape, (Shape{3, 10}));
  const auto all = Floats((*batched)[0]);
  for (int b = 0; b < 3; ++b) {
    std::vector<float> one(input.begin() + b * row, input.begin() + (b + 1) * row);
    auto single = instance->Execute({ferry::testing::MakeFloatTensor("image", {1, 3, 224, 224}, one)});
    ASSERT_TRUE(single.ok()) << single.status().ToString();
    EXPECT_EQ((*single)[0].shape, (Shape{1, 10}));
    const auto got = Floats((*single)[0]);
    for (int c = 0; c < 10; ++c) EXPECT_NEAR(got[c], all[b * 10 + c], 1e-5) << "row " << b << " class " << c;
  }
}

TEST_F(OpenCvDnnBackendTest, IdentityBatchOfThreeEqualsThreeSingleCalls) {
  auto instance = MustCreate(*backend_, LoadConfig("identity"), ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  std::vector<float> input(48);
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i) * 0.5f - 3.0f;
  auto batched = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", {3, 16}, input)});
  ASSERT_TRUE(batched.ok()) << batched.status().ToString();
  const auto all = Floats((*batched)[0]);
  for (int b = 0; b < 3; ++b) {
    std::vector<float> one(input.begin() + b * 16, input.begin() + (b + 1) * 16);
    auto single = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", {1, 16}, one)});
    ASSERT_TRUE(single.ok()) << single.status().ToString();
    EXPECT_EQ(Floats((*single)[0]), std::vector<float>(all.begin() + b * 16, all.begin() + (b + 1) * 16));
  }
}

// Non-FP32 inputs are converted to float; outputs are converted to the declared dtype.
TEST_F(OpenCvDnnBackendTest, ConvertsDeclaredDtypes) {
  ModelConfig config = LoadConfig("identity");
  config.inputs[0].dtype = DataType::kInt32;
  config.outputs[0].dtype = DataType::kFp64;
  auto instance = MustCreate(*backend_, config, ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  std::vector<int32_t> ints(16);
  for (int i = 0; i < 16; ++i) ints[i] = i - 5;
  Tensor x{"INPUT0", DataType::kInt32, {1, 16}, Buffer::Copy(ints.data(), ints.size() * sizeof(int32_t))};
  auto out = instance->Execute({x});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const Tensor& y = (*out)[0];
  EXPECT_EQ(y.dtype, DataType::kFp64);
  ASSERT_EQ(y.data.size(), 16 * sizeof(double));
  for (int i = 0; i < 16; ++i) {
    double v;
    std::memcpy(&v, y.data.data() + i * sizeof(double), sizeof(double));
    EXPECT_EQ(v, 2.0 * (i - 5) + 1.0);
  }

  config.inputs[0].dtype = DataType::kFp32;
  config.outputs[0].dtype = DataType::kInt8;  // saturates: 2 * 100 + 1 -> 127
  auto narrowing = MustCreate(*backend_, config, ModelDir("identity") / "1");
  ASSERT_NE(narrowing, nullptr);
  std::vector<float> values(16, 100.0f);
  values[0] = -1.0f;
  auto narrowed = narrowing->Execute({ferry::testing::MakeFloatTensor("INPUT0", {1, 16}, values)});
  ASSERT_TRUE(narrowed.ok()) << narrowed.status().ToString();
  const auto* bytes = reinterpret_cast<const int8_t*>((*narrowed)[0].data.data());
  EXPECT_EQ(bytes[0], -1);
  EXPECT_EQ(bytes[1], 127);
}

// FP32 bytes at an odd address (a view into a request body) are copied, not read misaligned.
TEST_F(OpenCvDnnBackendTest, UnalignedFp32Input) {
  auto instance = MustCreate(*backend_, LoadConfig("identity"), ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  auto storage = std::make_shared<std::vector<uint8_t>>(16 * sizeof(float) + 1);
  std::vector<float> values(16);
  for (int i = 0; i < 16; ++i) values[i] = static_cast<float>(i);
  std::memcpy(storage->data() + 1, values.data(), 16 * sizeof(float));
  Tensor x{"INPUT0", DataType::kFp32, {1, 16}, Buffer::View(storage, storage->data() + 1, 16 * sizeof(float))};
  auto out = instance->Execute({x});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const auto got = Floats((*out)[0]);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(got[i], 2.0f * i + 1.0f);
}

TEST_F(OpenCvDnnBackendTest, ExecuteRejectsBadInputsWithStatus) {
  auto instance = MustCreate(*backend_, LoadConfig("identity"), ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  std::vector<float> sixteen(16, 1.0f);

  auto none = instance->Execute({});
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  auto short_data = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", {2, 16}, sixteen)});
  EXPECT_EQ(short_data.status().code(), StatusCode::kInvalidArgument);
  auto wrong_row = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", {2, 8}, sixteen)});
  EXPECT_EQ(wrong_row.status().code(), StatusCode::kInvalidArgument);
  auto no_batch = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", {16}, sixteen)});
  EXPECT_EQ(no_batch.status().code(), StatusCode::kInvalidArgument);
  std::vector<float> too_many(65 * 16, 1.0f);
  auto over_max = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", {65, 16}, too_many)});
  EXPECT_EQ(over_max.status().code(), StatusCode::kInvalidArgument);
  Tensor bytes{"INPUT0", DataType::kBytes, {1, 16}, Buffer()};
  EXPECT_FALSE(instance->Execute({bytes}).ok());
}

TEST_F(OpenCvDnnBackendTest, MissingModelFileFails) {
  TempDir dir;
  auto result = backend_->CreateInstance(LoadConfig("cnn"), dir.path());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_NE(result.status().message().find("model.onnx"), std::string::npos);
  // Only the model-relative name, never the server's folder.
  EXPECT_EQ(result.status().message().find(dir.path().string()), std::string::npos)
      << result.status().message();
}

TEST_F(OpenCvDnnBackendTest, CorruptModelFileFails) {
  TempDir dir;
  {
    std::ofstream out(dir.path() / "model.onnx", std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 131 + 7) & 0xff));
  }
  auto result = backend_->CreateInstance(LoadConfig("cnn"), dir.path());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
  EXPECT_EQ(result.status().message().find(dir.path().string()), std::string::npos)
      << result.status().message();
}

TEST_F(OpenCvDnnBackendTest, EmptyModelFileFails) {
  TempDir dir;
  std::ofstream(dir.path() / "model.onnx").close();
  auto result = backend_->CreateInstance(LoadConfig("identity"), dir.path());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
}

// A truncated copy of a real model: the protobuf parser sees a valid prefix.
TEST_F(OpenCvDnnBackendTest, TruncatedModelFileFails) {
  TempDir dir;
  const std::string bytes = ReadText(ModelDir("cnn") / "1" / "model.onnx");
  ASSERT_GT(bytes.size(), 1000u);
  {
    std::ofstream out(dir.path() / "model.onnx", std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  auto result = backend_->CreateInstance(LoadConfig("cnn"), dir.path());
  EXPECT_FALSE(result.ok());
}

TEST_F(OpenCvDnnBackendTest, WrongOutputNameFails) {
  ModelConfig config = LoadConfig("cnn");
  config.outputs[0].name = "logits";
  auto result = backend_->CreateInstance(config, ModelDir("cnn") / "1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("logits"), std::string::npos) << result.status().message();
  EXPECT_NE(result.status().message().find("probabilities"), std::string::npos) << result.status().message();
}

TEST_F(OpenCvDnnBackendTest, WrongInputNameFails) {
  ModelConfig config = LoadConfig("identity");
  config.inputs[0].name = "x";
  auto result = backend_->CreateInstance(config, ModelDir("identity") / "1");
  EXPECT_FALSE(result.ok());
}

TEST_F(OpenCvDnnBackendTest, WrongOutputDimsFail) {
  ModelConfig config = LoadConfig("cnn");
  config.outputs[0].dims = {11};
  auto result = backend_->CreateInstance(config, ModelDir("cnn") / "1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
}

TEST_F(OpenCvDnnBackendTest, WrongInputDimsFail) {
  ModelConfig cnn = LoadConfig("cnn");
  cnn.inputs[0].dims = {4, 224, 224};  // the first convolution has 3 input channels
  EXPECT_FALSE(backend_->CreateInstance(cnn, ModelDir("cnn") / "1").ok());

  ModelConfig identity = LoadConfig("identity");
  identity.inputs[0].dims = {17};  // runs (element-wise), but then 17 values per row != declared 16
  EXPECT_FALSE(backend_->CreateInstance(identity, ModelDir("identity") / "1").ok());
}

TEST_F(OpenCvDnnBackendTest, VariableOutputDimIsResolved) {
  ModelConfig config = LoadConfig("identity");
  config.outputs[0].dims = {-1};
  auto instance = MustCreate(*backend_, config, ModelDir("identity") / "1");
  ASSERT_NE(instance, nullptr);
  std::vector<float> values(32, 0.0f);
  auto out = instance->Execute({ferry::testing::MakeFloatTensor("INPUT0", {2, 16}, values)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].shape, (Shape{2, 16}));
}

TEST_F(OpenCvDnnBackendTest, BytesTensorInConfigFails) {
  ModelConfig config = LoadConfig("identity");
  config.inputs[0].dtype = DataType::kBytes;
  EXPECT_EQ(backend_->CreateInstance(config, ModelDir("identity") / "1").status().code(),
            StatusCode::kInvalidArgument);
}

// Prints OpenCV's latency for the cnn (informational: timings are never asserted).
TEST_F(OpenCvDnnBackendTest, PrintCnnLatency) {
  ModelConfig config = LoadConfig("cnn");
  auto instance = MustCreate(*backend_, config, ModelDir("cnn") / "1");
  ASSERT_NE(instance, nullptr);
  for (int64_t batch : {1, 8}) {
    const Tensor x = ferry::testing::MakeFloatTensor("image", {batch, 3, 224, 224}, CnnInput(batch));
    ASSERT_TRUE(instance->Execute({x}).ok());  // warm
    const int iterations = batch == 1 ? 10 : 3;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) ASSERT_TRUE(instance->Execute({x}).ok());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::cout << "[ info ] cnn batch " << batch << " (threads " << config.threads_per_instance
              << "): " << ms / iterations / static_cast<double>(batch) << " ms per image\n";
  }
}

}  // namespace
}  // namespace ferry
