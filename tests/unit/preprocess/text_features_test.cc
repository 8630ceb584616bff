#include "preprocess/text_features.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "repository/model_config.h"
#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

ModelConfig SentimentModel(int64_t buckets = 64) {
  auto config = ParseModelConfig(R"(
name: sentiment
max_batch_size: 8
inputs:
  - {name: review, datatype: BYTES, dims: [1]}
outputs:
  - {name: probabilities, datatype: FP32, dims: [2]}
preprocess:
  input: review
  text: {ngrams: [1, 3], buckets: )" + std::to_string(buckets) + R"(}
  tensor: {name: features, dims: [)" + std::to_string(buckets) + R"(]}
)", "sentiment");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : ModelConfig{};
}

TEST(TextFeaturesTest, MatchesTheTrainersHashedNgramCounts) {
  TextFeaturesConfig c;
  c.buckets = 64;
  const std::vector<float> v = TextFeatureVector(c, "Great value, NOT bad!");
  // From the Python replica in examples/feedback-sentiment/text_features.py.
  EXPECT_NEAR(v[0], 0.163299, 1e-6);
  EXPECT_NEAR(v[3], 0.163299, 1e-6);
  EXPECT_NEAR(v[4], 0.408248, 1e-6);
  EXPECT_NEAR(v[7], 0.081650, 1e-6);
  double norm = 0;
  int nonzero = 0;
  for (float x : v) {
    norm += x * x;
    nonzero += x != 0;
  }
  EXPECT_NEAR(norm, 1.0, 1e-6);
  EXPECT_EQ(nonzero, 36);
  EXPECT_EQ(TextFeatureVector(c, "GREAT VALUE, not BAD!"), v);  // lowercased
  c.lowercase = false;
  EXPECT_NE(TextFeatureVector(c, "GREAT VALUE, not BAD!"), v);
}

TEST(TextFeaturesTest, AnEmptyTextIsItsBoundarySpacesOnly) {
  TextFeaturesConfig c;
  c.buckets = 16;
  const std::vector<float> v = TextFeatureVector(c, "");
  double norm = 0;
  for (float x : v) norm += x * x;
  EXPECT_NEAR(norm, 1.0, 1e-6);
}

TEST(TextFeaturesTest, TurnsABatchOfTextsIntoRows) {
  auto pre = CreatePreprocessor(SentimentModel());
  ASSERT_TRUE(pre.ok()) << pre.status().ToString();
  std::vector<std::string> texts = {"loved it", "\xff\xfe not utf-8 \x01"};
  std::string bytes;
  for (const std::string& t : texts) {
    const uint32_t n = static_cast<uint32_t>(t.size());
    bytes.append(reinterpret_cast<const char*>(&n), 4);
    bytes += t;
  }
  std::vector<Tensor> inputs = {Tensor{"review", DataType::kBytes, {2, 1}, Buffer::Copy(bytes.data(), bytes.size())}};
  auto out = (*pre)->Apply(inputs, 2);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].name, "features");
  EXPECT_EQ((*out)[0].shape, (Shape{2, 64}));
  std::vector<float> row(64);
  std::memcpy(row.data(), (*out)[0].data.data() + 64 * sizeof(float), 64 * sizeof(float));
  TextFeaturesConfig c;
  c.buckets = 64;
  EXPECT_EQ(row, TextFeatureVector(c, texts[1]));
  EXPECT_FALSE((*pre)->Apply(inputs, 3).ok());  // fewer texts than the batch
}

TEST(TextFeaturesTest, BadTextBlocksAreRefusedAtLoad) {
  const char* base = R"(
name: s
max_batch_size: 8
inputs:
  - {name: review, datatype: BYTES, dims: [1]}
outputs:
  - {name: p, datatype: FP32, dims: [2]}
preprocess:
  input: review
)";
  struct Case {
    const char* block;
    const char* says;
  } cases[] = {
      {"  text: {ngrams: [1, 3]}\n  tensor: {name: f, dims: [64]}\n", "buckets"},
      {"  text: {buckets: 64}\n  tensor: {name: f, dims: [32]}\n", "tensor dims must be [64]"},
      {"  text: {buckets: 64, ngrams: [3, 1]}\n  tensor: {name: f, dims: [64]}\n", "ngrams"},
      {"  text: {buckets: 0}\n  tensor: {name: f, dims: [0]}\n", "buckets"},
      {"  text: {buckets: 64, lowercase: maybe}\n  tensor: {name: f, dims: [64]}\n", "lowercase"},
      {"  text: {buckets: 64}\n  resize: [8, 8]\n  tensor: {name: f, dims: [64]}\n", "none of the image keys"},
      {"  text: {buckets: 64, stem: true}\n  tensor: {name: f, dims: [64]}\n", "stem"},
  };
  for (const Case& c : cases) {
    auto config = ParseModelConfig(std::string(base) + c.block, "s");
    ASSERT_FALSE(config.ok()) << c.block;
    EXPECT_NE(config.status().message().find(c.says), std::string::npos) << c.block << ": " << config.status().message();
  }
}

}  // namespace
}  // namespace ferry
