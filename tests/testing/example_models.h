#pragma once
// The example model repository and its PyTorch references, as the backend tests read them.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "repository/model_config.h"

namespace ferry::testing {

namespace fs = std::filesystem;

inline fs::path SourceDir() {
  if (const char* dir = std::getenv("FERRY_SOURCE_DIR"); dir != nullptr && *dir != '\0') return dir;
  // tests/testing/<this file> -> repository root.
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

inline fs::path ModelDir(const std::string& name) { return SourceDir() / "examples" / "models" / name; }

inline std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline ModelConfig LoadConfig(const std::string& name) {
  auto config = ParseModelConfig(ReadText(ModelDir(name) / "config.yaml"), name);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? config.value() : ModelConfig{};
}

// The cnn reference input, as tools/make_example_models.py defines it (see tools/reference/cnn.json).
inline std::vector<float> CnnInput(int64_t batch) {
  std::vector<float> v(static_cast<size_t>(batch) * 3 * 224 * 224);
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t k = (static_cast<int64_t>(i) * 7919 + 13) % 1000;
    v[i] = static_cast<float>(static_cast<double>(k - 500) / 500.0);
  }
  return v;
}

struct Reference {
  Shape input_shape;
  std::vector<float> input;        // literal input, if stored
  std::vector<float> input_first;  // first values of a formula input
  Shape output_shape;
  std::vector<float> output;
  double tolerance = 0;
};

inline std::vector<float> JsonFloats(simdjson::dom::element e) {
  std::vector<float> out;
  for (double d : e.get_array()) out.push_back(static_cast<float>(d));
  return out;
}

inline Shape JsonShape(simdjson::dom::element e) {
  Shape out;
  for (int64_t d : e.get_array()) out.push_back(d);
  return out;
}

inline Reference LoadReference(const std::string& name) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load((SourceDir() / "tools" / "reference" / (name + ".json")).string());
  Reference ref;
  simdjson::dom::element in = doc["input"];
  ref.input_shape = JsonShape(in["shape"]);
  if (simdjson::dom::element data; in["data"].get(data) == simdjson::SUCCESS) ref.input = JsonFloats(data);
  if (simdjson::dom::element first; in["first"].get(first) == simdjson::SUCCESS) {
    ref.input_first = JsonFloats(first);
  }
  ref.output_shape = JsonShape(doc["output"]["shape"]);
  ref.output = JsonFloats(doc["output"]["data"]);
  ref.tolerance = doc["tolerance"].get_double();
  return ref;
}

inline std::unique_ptr<ModelInstance> MustCreate(Backend& backend, const ModelConfig& config, const fs::path& dir) {
  auto instance = backend.CreateInstance(config, dir);
  EXPECT_TRUE(instance.ok()) << instance.status().ToString();
  return instance.ok() ? std::move(instance).value() : nullptr;
}

// A scratch folder removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("ferry_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace ferry::testing
