// Model files the xgboost backend must refuse at load, with a reason, and never crash on.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "backend/xgboost/xgboost_backend.h"
#include "repository/model_config.h"
#include "testing/example_models.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using namespace ferry::testing;  // NOLINT: the example-model helpers

class XgboostBadFilesTest : public ::testing::Test {
 protected:
  // Writes `bytes` as <tmp>/<filename> and loads it with the fraud_xgb config (or `config`).
  Result<std::unique_ptr<ModelInstance>> Load(const std::string& bytes, const std::string& filename,
                                              ModelConfig config) {
    config.model_filename = filename;
    std::ofstream(tmp_.path() / filename, std::ios::binary | std::ios::trunc) << bytes;
    return backend_->CreateInstance(config, tmp_.path());
  }
  Result<std::unique_ptr<ModelInstance>> Load(const std::string& bytes, const std::string& filename) {
    return Load(bytes, filename, LoadConfig("fraud_xgb"));
  }

  static void ExpectRefused(const Result<std::unique_ptr<ModelInstance>>& r, const std::string& want) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
  }

  static std::string Replace(std::string text, const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  }

  TempDir tmp_;
  std::unique_ptr<Backend> backend_ = MakeXgboostBackend();
  const std::string json_ = ReadText(ModelDir("fraud_xgb") / "1" / "model.json");
  const std::string ubj_ = ReadText(ModelDir("segment_xgb") / "1" / "model.ubj");
};

TEST_F(XgboostBadFilesTest, TruncatedFilesAreRefused) {
  ASSERT_GT(json_.size(), 1000u);
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, json_.size() / 2, json_.size() - 1}) {
    ExpectRefused(Load(json_.substr(0, n), "model.json"), "is not served: not a JSON document");
  }
  const ModelConfig segment = LoadConfig("segment_xgb");
  for (size_t n : {size_t{1}, size_t{50}, ubj_.size() / 2, ubj_.size() - 1}) {
    ExpectRefused(Load(ubj_.substr(0, n), "model.ubj", segment), "is not served: not a UBJSON document");
  }
}

TEST_F(XgboostBadFilesTest, OtherFormatsAreRefused) {
  const std::string onnx = ReadText(ModelDir("identity") / "1" / "model.onnx");
  ExpectRefused(Load(onnx, "model.json"), "not a JSON document");
  ExpectRefused(Load(onnx, "model.ubj"), "not a UBJSON document");
  ExpectRefused(Load(json_, "model.ubj"), "not a UBJSON document");  // JSON under the other name
  ExpectRefused(Load(ubj_, "model.json", LoadConfig("segment_xgb")), "not a JSON document");
  ExpectRefused(Load("{\"hello\": \"world\"}", "model.json"), "not an XGBoost model");
  ExpectRefused(Load(R"({"learner":{},"version":[1,7,4]})", "model.json"), "missing 'learner_model_param'");
}

TEST_F(XgboostBadFilesTest, AModelFromANewerXgboostIsRefusedWithTheReason) {
  // What XGBoost 2.0 and later write: a newer version, and base_score as an array.
  std::string newer = Replace(json_, R"("version":[1,7,4])", R"("version":[3,2,0])");
  newer = Replace(newer, R"("base_score":"5E-1")", R"("base_score":"[5E-1]")");
  ExpectRefused(Load(newer, "model.json"),
                "written by XGBoost 3.2.0, newer than this server's library (1.7.4), which misreads such models");
}

TEST_F(XgboostBadFilesTest, TreesThatWouldCrashXgboostAreRefused) {
  // Each of these was a segmentation fault inside XGBoost 1.7.4's loader before the check existed.
  ExpectRefused(Load(Replace(json_, R"("left_children":[1,)", R"("left_children":[70000000,)"), "model.json"),
                "trees[0]: node 0 has children (70000000, 2)");
  const std::string split = R"("split_indices":[)";
  const size_t at = json_.find(split) + split.size();
  std::string far_feature = json_;
  far_feature.insert(at, "4000000");  // the root's feature index gains leading digits
  ExpectRefused(Load(far_feature, "model.json"), "splits on feature 4000000");
}

// The fuzzer's seeds (every booster, both formats) load and predict: dart and gblinear are served too.
TEST_F(XgboostBadFilesTest, EveryBoosterInBothFormatsServes) {
  ModelConfig config = LoadConfig("fraud_xgb");
  config.inputs[0].dims = {3};
  config.outputs[0].dims = {-1};
  config.backend_options = {};
  int served = 0;
  for (const auto& entry : fs::directory_iterator(SourceDir() / "tests" / "fuzz" / "corpus" / "xgboost_model")) {
    const std::string file = ReadText(entry.path());
    auto r = Load(file.substr(1), file[0] == 'u' ? "model.ubj" : "model.json", config);
    ASSERT_TRUE(r.ok()) << entry.path() << ": " << r.status().ToString();
    const std::vector<float> rows{0.5f, std::nanf(""), -1.0f, 2.0f, 0.0f, 1.0f};
    auto out = (*r)->Execute({MakeFloatTensor("features", {2, 3}, rows)});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const int64_t width = entry.path().filename().string().find("multiclass") != std::string::npos ? 3 : 1;
    EXPECT_EQ((*out)[0].shape, (Shape{2, width})) << entry.path();
    for (float v : Floats((*out)[0])) EXPECT_TRUE(std::isfinite(v)) << entry.path();
    ++served;
  }
  EXPECT_EQ(served, 8);
}

// Bytes changed at many places in both formats: every load either fails with a Status or gives a model
// that predicts; nothing crashes. (What is accepted computes other numbers; the reference check exists
// for that.)
TEST_F(XgboostBadFilesTest, CorruptedBytesNeverCrash) {
  const std::string replacements = "0123456789-.,[]{}\":eE\x01\xff";
  uint64_t state = 88172645463325252ull;
  const auto next = [&] {  // xorshift64: the same positions on every run
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int loaded = 0, refused = 0;
  for (const auto& [original, filename, model] :
       {std::tuple{&json_, "model.json", "fraud_xgb"}, std::tuple{&ubj_, "model.ubj", "segment_xgb"}}) {
    const ModelConfig config = LoadConfig(model);
    const int64_t features = config.inputs[0].dims[0];
    for (int i = 0; i < 150; ++i) {
      std::string bytes = *original;
      for (int k = 0; k < 1 + i % 3; ++k) {
        bytes[next() % bytes.size()] = replacements[next() % replacements.size()];
      }
      auto r = Load(bytes, filename, config);
      if (!r.ok()) {
        ++refused;
        EXPECT_FALSE(r.status().message().empty());
        continue;
      }
      ++loaded;
      std::vector<float> rows(static_cast<size_t>(4 * features), 0.5f);
      rows[1] = std::nanf("");
      auto out = (*r)->Execute({MakeFloatTensor("features", {4, features}, rows)});
      EXPECT_TRUE(out.ok()) << out.status().ToString();
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(loaded, 0);  // some changes only touch numbers (a threshold, a leaf), which stay loadable
}

}  // namespace
}  // namespace ferry
