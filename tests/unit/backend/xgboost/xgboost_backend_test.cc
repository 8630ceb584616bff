#include "backend/xgboost/xgboost_backend.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "backend/reference_check.h"
#include "repository/model_config.h"
#include "repository/reference_set.h"
#include "testing/example_models.h"
#include "testing/fake_instance.h"
#include "unit/backend/xgboost/tiny_models.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using namespace ferry::testing;  // NOLINT: the example-model helpers

// tools/reference/xgboost_<model>.json: test rows (null = missing) and XGBoost's Python predictions.
struct PythonReference {
  int64_t rows = 0;
  int64_t features = 0;
  std::vector<float> input;
  int64_t width = 0;
  std::vector<float> prediction;
  std::vector<float> margin;
  double tolerance = 0;
};

std::vector<float> Matrix(simdjson::dom::element rows, int64_t* width) {
  std::vector<float> out;
  for (simdjson::dom::element row : rows.get_array()) {
    int64_t n = 0;
    for (simdjson::dom::element v : row.get_array()) {
      out.push_back(v.is_null() ? std::nanf("") : static_cast<float>(v.get_double().value()));
      ++n;
    }
    *width = n;
  }
  return out;
}

PythonReference LoadPythonReference(const std::string& model) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc =
      parser.load((SourceDir() / "tools" / "reference" / ("xgboost_" + model + ".json")).string());
  PythonReference ref;
  ref.input = Matrix(doc["input"], &ref.features);
  ref.rows = static_cast<int64_t>(ref.input.size()) / ref.features;
  ref.prediction = Matrix(doc["prediction"], &ref.width);
  int64_t margin_width = 0;
  ref.margin = Matrix(doc["margin"], &margin_width);
  EXPECT_EQ(margin_width, ref.width);
  ref.tolerance = doc["tolerance"].get_double();
  return ref;
}

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, double tolerance,
                const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tolerance) << what << " element " << i;
}

class XgboostBackendTest : public ::testing::Test {
 protected:
  // Runs `rows` rows through the instance (batched by max_batch_size) and returns the flat output.
  std::vector<float> Run(ModelInstance& instance, const std::vector<float>& input, int64_t rows, int64_t features,
                         int64_t batch) {
    std::vector<float> out;
    for (int64_t first = 0; first < rows; first += batch) {
      const int64_t n = std::min(batch, rows - first);
      std::vector<float> part(input.begin() + first * features, input.begin() + (first + n) * features);
      auto result = instance.Execute({MakeFloatTensor("features", {n, features}, part)});
      EXPECT_TRUE(result.ok()) << result.status().ToString();
      if (!result.ok()) return {};
      const std::vector<float> values = Floats((*result)[0]);
      out.insert(out.end(), values.begin(), values.end());
    }
    return out;
  }

  std::unique_ptr<Backend> backend_ = MakeXgboostBackend();
};

TEST_F(XgboostBackendTest, NameAndLibraryVersion) {
  EXPECT_EQ(backend_->name(), "xgboost");
  const auto v = XgboostLibraryVersion();
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[1], 7);
}

TEST_F(XgboostBackendTest, ExamplesMatchPythonXgboostAtEveryBatchSize) {
  for (const std::string model : {"fraud_xgb", "segment_xgb", "demand_xgb"}) {
    SCOPED_TRACE(model);
    const PythonReference ref = LoadPythonReference(model);
    ModelConfig config = LoadConfig(model);
    auto instance = MustCreate(*backend_, config, ModelDir(model) / "1");
    ASSERT_NE(instance, nullptr);
    for (int64_t batch : {int64_t{1}, int64_t{7}, config.max_batch_size}) {
      ExpectNear(Run(*instance, ref.input, ref.rows, ref.features, batch), ref.prediction, ref.tolerance,
                 "prediction at batch " + std::to_string(batch));
    }
    config.backend_options = {{"output", "margin"}};
    auto margin = MustCreate(*backend_, config, ModelDir(model) / "1");
    ASSERT_NE(margin, nullptr);
    ExpectNear(Run(*margin, ref.input, ref.rows, ref.features, 16), ref.margin, ref.tolerance, "margin");
  }
}

TEST_F(XgboostBackendTest, MultiClassGivesEveryClass) {
  const PythonReference ref = LoadPythonReference("segment_xgb");
  auto instance = MustCreate(*backend_, LoadConfig("segment_xgb"), ModelDir("segment_xgb") / "1");
  ASSERT_NE(instance, nullptr);
  std::vector<float> rows(ref.input.begin(), ref.input.begin() + 5 * ref.features);
  auto out = instance->Execute({MakeFloatTensor("features", {5, ref.features}, rows)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].name, "probabilities");
  EXPECT_EQ((*out)[0].shape, (Shape{5, 4}));
  const std::vector<float> p = Floats((*out)[0]);
  for (int r = 0; r < 5; ++r) EXPECT_NEAR(p[r * 4] + p[r * 4 + 1] + p[r * 4 + 2] + p[r * 4 + 3], 1.0, 1e-5) << r;
}

TEST_F(XgboostBackendTest, NanIsMissingNotZero) {
  const PythonReference ref = LoadPythonReference("fraud_xgb");
  auto instance = MustCreate(*backend_, LoadConfig("fraud_xgb"), ModelDir("fraud_xgb") / "1");
  ASSERT_NE(instance, nullptr);
  const std::vector<float> with_nan = Run(*instance, ref.input, ref.rows, ref.features, 32);
  std::vector<float> zeroed = ref.input;
  int missing = 0;
  for (float& v : zeroed) {
    if (std::isnan(v)) {
      v = 0.0f;
      ++missing;
    }
  }
  ASSERT_GT(missing, ref.features);  // the reference rows do have missing values (the last row is all NaN)
  const std::vector<float> with_zero = Run(*instance, zeroed, ref.rows, ref.features, 32);
  ExpectNear(with_nan, ref.prediction, ref.tolerance, "with NaN");
  EXPECT_NE(with_nan, with_zero) << "NaN was read as 0";
}

TEST_F(XgboostBackendTest, HandWrittenTreeGivesHandWorkedNumbers) {
  TempDir tmp;
  std::ofstream(tmp.path() / "model.json") << ModelJson(TinyModel{});
  ModelConfig config = LoadConfig("fraud_xgb");
  config.inputs[0].dims = {2};
  config.backend_options = {};
  auto instance = MustCreate(*backend_, config, tmp.path());
  ASSERT_NE(instance, nullptr);
  // Feature 0 below 0.5 or missing: leaf -0.4; at or above 0.5: leaf 0.6. base_score 0.5 adds 0 to the
  // margin; binary:logistic's prediction is the sigmoid of the margin.
  const float nan = std::nanf("");
  const std::vector<float> rows{0.2f, 9.0f, 0.5f, 0.0f, nan, 1.0f, 0.7f, nan};
  const auto sigmoid = [](double x) { return static_cast<float>(1.0 / (1.0 + std::exp(-x))); };
  ExpectNear(Run(*instance, rows, 4, 2, 4), {sigmoid(-0.4), sigmoid(0.6), sigmoid(-0.4), sigmoid(0.6)}, 1e-6,
             "prediction");
  config.backend_options = {{"output", "margin"}};
  auto margin = MustCreate(*backend_, config, tmp.path());
  ASSERT_NE(margin, nullptr);
  ExpectNear(Run(*margin, rows, 4, 2, 4), {-0.4f, 0.6f, -0.4f, 0.6f}, 1e-6, "margin");
}

TEST_F(XgboostBackendTest, UnbatchedConfigsTakeRowsAsTheirFirstDim) {
  ModelConfig config = LoadConfig("demand_xgb");
  const PythonReference ref = LoadPythonReference("demand_xgb");
  config.max_batch_size = 0;
  config.dynamic_batching = {};
  config.inputs[0].dims = {-1, ref.features};
  config.outputs[0].dims = {-1, 1};
  auto instance = MustCreate(*backend_, config, ModelDir("demand_xgb") / "1");
  ASSERT_NE(instance, nullptr);
  ExpectNear(Run(*instance, ref.input, ref.rows, ref.features, ref.rows), ref.prediction, ref.tolerance, "unbatched");
}

TEST_F(XgboostBackendTest, ThreadsFromTheInstanceGroupGiveTheSameNumbers) {
  const PythonReference ref = LoadPythonReference("demand_xgb");
  ModelConfig config = LoadConfig("demand_xgb");
  config.threads_per_instance = 2;
  auto instance = MustCreate(*backend_, config, ModelDir("demand_xgb") / "1");
  ASSERT_NE(instance, nullptr);
  ExpectNear(Run(*instance, ref.input, ref.rows, ref.features, 32), ref.prediction, ref.tolerance, "2 threads");
}

TEST_F(XgboostBackendTest, TheReferenceSamplesPassAndCatchAWrongOutputKind) {
  ModelConfig config = LoadConfig("fraud_xgb");
  const fs::path dir = ModelDir("fraud_xgb") / "1";
  auto references = ReadReferenceSet(dir);
  ASSERT_TRUE(references.ok() && references->has_value()) << references.status().ToString();
  auto instance = MustCreate(*backend_, config, dir);
  ASSERT_NE(instance, nullptr);
  EXPECT_TRUE(RunReferenceCheck(*instance, config, **references).ok());
  config.backend_options = {{"output", "margin"}};  // margins are not the probabilities the samples hold
  auto margin = MustCreate(*backend_, config, dir);
  ASSERT_NE(margin, nullptr);
  EXPECT_FALSE(RunReferenceCheck(*margin, config, **references).ok());
}

TEST_F(XgboostBackendTest, RefusesBadRequestsAndKeepsServing) {
  ModelConfig config = LoadConfig("fraud_xgb");
  auto instance = MustCreate(*backend_, config, ModelDir("fraud_xgb") / "1");
  ASSERT_NE(instance, nullptr);
  std::vector<float> row(12, 0.5f);
  row[3] = std::numeric_limits<float>::infinity();
  auto inf = instance->Execute({MakeFloatTensor("features", {1, 12}, row)});
  ASSERT_EQ(inf.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(inf.status().message().find("row 0 feature 3 is infinite"), std::string::npos) << inf.status().message();
  row[3] = 0.5f;
  EXPECT_EQ(instance->Execute({MakeFloatTensor("features", {1, 11}, std::vector<float>(11))}).status().code(),
            StatusCode::kInvalidArgument);
  Tensor wrong_type = MakeFloatTensor("features", {1, 12}, row);
  wrong_type.dtype = DataType::kInt32;
  EXPECT_EQ(instance->Execute({wrong_type}).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> too_many(12 * static_cast<size_t>(config.max_batch_size + 1), 0.5f);
  EXPECT_EQ(instance->Execute({MakeFloatTensor("features", {config.max_batch_size + 1, 12}, too_many)}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(instance->Execute({}).status().code(), StatusCode::kInvalidArgument);
  auto ok = instance->Execute({MakeFloatTensor("features", {1, 12}, row)});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)[0].shape, (Shape{1, 1}));
}

// The load fails with kInvalidArgument (or `code`) and a message containing `want`.
void ExpectLoadFails(Backend& backend, const ModelConfig& config, const fs::path& dir, const std::string& want,
                     StatusCode code = StatusCode::kInvalidArgument) {
  auto r = backend.CreateInstance(config, dir);
  ASSERT_FALSE(r.ok()) << "loaded " << config.name << " from " << dir;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
}

TEST_F(XgboostBackendTest, ConfigsThatDisagreeWithTheModelAreRefused) {
  const fs::path fraud = ModelDir("fraud_xgb") / "1";
  const ModelConfig config = LoadConfig("fraud_xgb");
  ModelConfig features = config;
  features.inputs[0].dims = {11};
  ExpectLoadFails(*backend_, features, fraud, "input 'features' declares 11 features, the model has 12");
  ModelConfig classes = LoadConfig("segment_xgb");
  classes.outputs[0].dims = {3};
  ExpectLoadFails(*backend_, classes, ModelDir("segment_xgb") / "1",
                  "output 'probabilities' declares 3 values per row, the model gives 4 (objective multi:softprob");
  ModelConfig probability = LoadConfig("demand_xgb");
  probability.backend_options = {{"output", "probability"}};
  ExpectLoadFails(*backend_, probability, ModelDir("demand_xgb") / "1", "the objective reg:squarederror gives none");
  ModelConfig unknown = config;
  unknown.backend_options = {{"outputs", "margin"}};
  ExpectLoadFails(*backend_, unknown, fraud, "unknown parameter 'outputs'");
  ModelConfig bad_value = config;
  bad_value.backend_options = {{"output", "logits"}};
  ExpectLoadFails(*backend_, bad_value, fraud, "parameter 'output' is 'logits'");
  ModelConfig fp64 = config;
  fp64.inputs[0].dtype = DataType::kFp64;
  ExpectLoadFails(*backend_, fp64, fraud, "take and give FP32");
  ModelConfig two_inputs = config;
  two_inputs.inputs.push_back(config.inputs[0]);
  two_inputs.inputs[1].name = "more";
  ExpectLoadFails(*backend_, two_inputs, fraud, "one input");
  ModelConfig legacy = config;
  legacy.model_filename = "model.bin";
  ExpectLoadFails(*backend_, legacy, fraud, "must end in .json or .ubj");
  ModelConfig missing = config;
  missing.model_filename = "absent.json";
  ExpectLoadFails(*backend_, missing, fraud, "not found", StatusCode::kNotFound);
}

}  // namespace
}  // namespace ferry
