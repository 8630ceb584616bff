#include "preprocess/image_preprocessor.h"

#include <gtest/gtest.h>

#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

// A 8x6 BGR camera whose frames go through grey, resize to 4x3 (area) and (x/255 - 0.5)/0.5.
ModelConfig CameraModel(int64_t max_batch = 0, std::string extra = "") {
  const std::string batch_dims = max_batch > 0 ? "[1, 3, 4]" : "[1, 1, 3, 4]";
  auto config = ParseModelConfig(
      "name: cam\nmax_batch_size: " + std::to_string(max_batch) +
          "\ninputs: [{name: frame, datatype: BYTES, dims: [1]}]\n"
          "outputs: [{name: y, datatype: FP32, dims: [1]}]\n"
          "preprocess:\n  input: frame\n  raw: {width: 8, height: 6, channels: 3}\n  color: grey\n"
          "  resize: [4, 3]\n  interpolation: area\n  scale: 0.00392156862745098\n  mean: [0.5]\n  std: [0.5]\n"
          "  tensor: {name: input, dims: " + batch_dims + "}\n" + extra,
      "cam");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return *config;
}

Tensor Frames(const std::vector<std::string>& elements) {
  Tensor t;
  t.name = "frame";
  t.dtype = DataType::kBytes;
  t.shape = {static_cast<int64_t>(elements.size())};
  t.data = MakeBytesBuffer(elements);
  return t;
}

std::string RawFrame(uint8_t b, uint8_t g, uint8_t r) {
  std::string raw;
  for (int i = 0; i < 8 * 6; ++i) raw += {static_cast<char>(b), static_cast<char>(g), static_cast<char>(r)};
  return raw;
}

std::string Encode(const std::string& raw, const char* ext) {
  cv::Mat image(6, 8, CV_8UC3, const_cast<char*>(raw.data()));
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(ext, image, out));
  return std::string(out.begin(), out.end());
}

std::vector<float> Values(const Tensor& t) {
  std::vector<float> v(t.data.size() / sizeof(float));
  std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

TEST(ImagePreprocessorTest, RawFramesBecomeNormalisedGreyPlanes) {
  const ModelConfig config = CameraModel();
  auto pre = CreateImagePreprocessor(config);
  ASSERT_TRUE(pre.ok()) << pre.status().ToString();
  auto out = (*pre)->Apply({Frames({RawFrame(255, 255, 255)})}, 1);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const Tensor& t = (*out)[0];
  EXPECT_EQ(t.name, "input");
  EXPECT_EQ(t.shape, (Shape{1, 1, 3, 4}));
  for (float v : Values(t)) EXPECT_NEAR(v, 1.0f, 1e-5);
  // Grey with OpenCV's BGR weights: pure blue is 0.114 * 255 = 29.
  auto blue = (*pre)->Apply({Frames({RawFrame(255, 0, 0)})}, 1);
  ASSERT_TRUE(blue.ok());
  for (float v : Values((*blue)[0])) EXPECT_NEAR(v, (29 / 255.0 - 0.5) / 0.5, 1e-5);
}

TEST(ImagePreprocessorTest, EncodedImagesDecodeToTheSameTensor) {
  auto pre = CreateImagePreprocessor(CameraModel());
  ASSERT_TRUE(pre.ok());
  const std::string raw = RawFrame(10, 120, 200);
  auto from_raw = (*pre)->Apply({Frames({raw})}, 1);
  auto from_png = (*pre)->Apply({Frames({Encode(raw, ".png")})}, 1);
  ASSERT_TRUE(from_raw.ok() && from_png.ok()) << from_png.status().ToString();
  EXPECT_EQ(Values((*from_raw)[0]), Values((*from_png)[0]));  // PNG is lossless
  auto from_jpeg = (*pre)->Apply({Frames({Encode(raw, ".jpg")})}, 1);
  ASSERT_TRUE(from_jpeg.ok()) << from_jpeg.status().ToString();
}

TEST(ImagePreprocessorTest, BadFramesAreClearErrors) {
  auto pre = CreateImagePreprocessor(CameraModel());
  ASSERT_TRUE(pre.ok());
  const std::string jpeg = Encode(RawFrame(1, 2, 3), ".jpg");
  const std::string png = Encode(RawFrame(1, 2, 3), ".png");
  struct Case {
    std::string bytes;
    std::string says;
  } cases[] = {
      {"not an image at all", "neither a raw 8x6x3 frame"},
      {RawFrame(1, 2, 3).substr(1), "neither a raw"},
      {jpeg.substr(0, jpeg.size() / 2), "truncated JPEG"},
      {png.substr(0, png.size() - 12), "truncated PNG"},
      {"", "neither a raw"},
  };
  for (const Case& c : cases) {
    auto out = (*pre)->Apply({Frames({c.bytes})}, 1);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find(c.says), std::string::npos) << out.status().message();
  }
}

TEST(ImagePreprocessorTest, AnImageOfAnotherSizeIsRefusedWithoutAResizeToFitIt) {
  ModelConfig config = CameraModel(0, "");
  config.preprocess->resize_width = 0;
  config.preprocess->resize_height = 0;
  config.preprocess->crop = {0, 0, 4, 3};
  auto pre = CreateImagePreprocessor(config);
  ASSERT_TRUE(pre.ok()) << pre.status().ToString();
  ASSERT_TRUE((*pre)->Apply({Frames({RawFrame(9, 9, 9)})}, 1).ok());
  cv::Mat small(2, 2, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<uint8_t> png;
  cv::imencode(".png", small, png);
  auto out = (*pre)->Apply({Frames({std::string(png.begin(), png.end())})}, 1);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("reaches outside"), std::string::npos) << out.status().message();
}

TEST(ImagePreprocessorTest, ABatchTurnsEachElementIntoItsOwnPlane) {
  auto pre = CreateImagePreprocessor(CameraModel(4));
  ASSERT_TRUE(pre.ok()) << pre.status().ToString();
  auto out = (*pre)->Apply({Frames({RawFrame(0, 0, 0), RawFrame(255, 255, 255)})}, 2);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].shape, (Shape{2, 1, 3, 4}));
  const std::vector<float> v = Values((*out)[0]);
  EXPECT_FLOAT_EQ(v.front(), -1.0f);
  EXPECT_FLOAT_EQ(v.back(), 1.0f);
}

TEST(ImagePreprocessorTest, ConfigsThatCannotWorkAreRefusedWhenParsed) {
  const std::string head = "name: cam\ninputs: [{name: frame, datatype: BYTES, dims: [1]}]\n"
                           "outputs: [{name: y, datatype: FP32, dims: [1]}]\npreprocess:\n  input: frame\n";
  struct Case {
    std::string body;
    std::string says;
  } cases[] = {
      {"  resize: [4, 3]\n  tensor: {name: input, dims: [1, 3, 3, 5]}\n", "comes out 4x3"},
      {"  color: grey\n  resize: [4, 3]\n  tensor: {name: input, dims: [1, 3, 3, 4]}\n", "1 channel"},
      {"  color: purple\n  tensor: {name: input, dims: [1, 3, 3, 4]}\n", "grey, bgr or rgb"},
      {"  resize: [4, 3]\n  mean: [0.1, 0.2]\n  tensor: {name: input, dims: [1, 3, 3, 4]}\n", "one value per channel"},
      {"  resize: [4, 3]\n  std: [1, 0, 1]\n  tensor: {name: input, dims: [1, 3, 3, 4]}\n", "std values"},
      {"  raw: {width: 8, height: 6, channels: 2}\n  tensor: {name: input, dims: [1, 3, 6, 8]}\n", "channels must"},
      {"  tensor: {name: input, dims: [1, 3, 3, 4]}\n", "size is unknown"},
      {"  resize: [4, 3]\n", "tensor"},
  };
  for (const Case& c : cases) {
    auto config = ParseModelConfig(head + c.body, "cam");
    ASSERT_FALSE(config.ok()) << c.body;
    EXPECT_NE(config.status().message().find(c.says), std::string::npos) << config.status().message();
  }
  auto wrong_input = ParseModelConfig(
      "name: cam\ninputs: [{name: frame, datatype: UINT8, dims: [6, 8, 3]}]\n"
      "outputs: [{name: y, datatype: FP32, dims: [1]}]\npreprocess:\n  input: frame\n  resize: [4, 3]\n"
      "  tensor: {name: input, dims: [1, 3, 3, 4]}\n",
      "cam");
  ASSERT_FALSE(wrong_input.ok());
  EXPECT_NE(wrong_input.status().message().find("BYTES"), std::string::npos);
}

TEST(ImagePreprocessorTest, TheModelSideConfigTakesTheTensorInPlaceOfTheFrame) {
  const ModelConfig side = ModelSideConfig(CameraModel());
  ASSERT_EQ(side.inputs.size(), 1u);
  EXPECT_EQ(side.inputs[0].name, "input");
  EXPECT_EQ(side.inputs[0].dtype, DataType::kFp32);
  EXPECT_EQ(side.inputs[0].dims, (Shape{1, 1, 3, 4}));
  EXPECT_FALSE(side.preprocess.has_value());
}

}  // namespace
}  // namespace ferry
