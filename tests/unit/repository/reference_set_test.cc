#include "repository/reference_set.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ferry {
namespace {

namespace fs = std::filesystem;

class ReferenceSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    version_ = fs::temp_directory_path() / ("ferry_reference_test_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(version_);
    fs::create_directories(version_ / "reference");
  }
  void TearDown() override { fs::remove_all(version_); }

  void WriteFloats(const std::string& name, const std::vector<float>& v) {
    std::ofstream(version_ / "reference" / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  }
  void WriteYaml(const std::string& text) { std::ofstream(version_ / "reference" / "reference.yaml") << text; }

  fs::path version_;
};

constexpr const char* kGood = R"(
tolerance: {absolute: 1.0e-3, relative: 0}
samples:
  - name: first
    inputs:
      - {name: x, datatype: FP32, shape: [1, 3], file: x.bin}
    outputs:
      - {name: y, datatype: FP32, shape: [1, 3], file: y.bin}
  - tolerance: {relative: 0.5}
    inputs:
      - {name: x, datatype: FP32, shape: [3], file: x.bin}
    outputs:
      - {name: y, datatype: TYPE_FP32, shape: [3], file: y.bin}
)";

TEST_F(ReferenceSetTest, NoFolderMeansNoReferences) {
  fs::remove_all(version_ / "reference");
  auto r = ReadReferenceSet(version_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value());
}

TEST_F(ReferenceSetTest, ReadsSamplesTolerancesAndTensorFiles) {
  WriteFloats("x.bin", {1, 2, 3});
  WriteFloats("y.bin", {2, 4, 6});
  WriteYaml(kGood);
  auto r = ReadReferenceSet(version_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->has_value());
  const ReferenceSet& set = **r;
  ASSERT_EQ(set.samples.size(), 2u);
  EXPECT_EQ(set.samples[0].name, "first");
  EXPECT_DOUBLE_EQ(set.samples[0].tolerance.absolute, 1e-3);
  EXPECT_DOUBLE_EQ(set.samples[0].tolerance.relative, 0);
  EXPECT_EQ(set.samples[1].name, "#1");
  EXPECT_DOUBLE_EQ(set.samples[1].tolerance.absolute, 1e-3);  // inherited
  EXPECT_DOUBLE_EQ(set.samples[1].tolerance.relative, 0.5);
  const Tensor& y = set.samples[0].outputs[0];
  EXPECT_EQ(y.name, "y");
  EXPECT_EQ(y.shape, (Shape{1, 3}));
  float v[3];
  ASSERT_EQ(y.data.size(), sizeof(v));
  std::memcpy(v, y.data.data(), sizeof(v));
  EXPECT_EQ(v[2], 6.0f);
}

TEST_F(ReferenceSetTest, EveryProblemIsAnInvalidArgumentThatSaysWhere) {
  WriteFloats("x.bin", {1, 2, 3});
  WriteFloats("y.bin", {2, 4});  // too short for [1, 3]
  const struct {
    std::string yaml;
    std::string says;
  } cases[] = {
      {kGood, "does not hold shape"},
      {"samples: []", "non-empty list under 'samples'"},
      {"tolerance: {absolute: -1}\nsamples: []", "must not be negative"},
      {"samples:\n  - inputs: [{name: x, datatype: FP32, shape: [3], file: ../x.bin}]\n    outputs: []",
       "plain file name"},
      {"samples:\n  - inputs: [{name: x, datatype: FP32, shape: [3], file: nope.bin}]\n"
       "    outputs: [{name: y, datatype: FP32, shape: [2], file: y.bin}]",
       "not found"},
      {"samples:\n  - inputs: [{name: x, datatype: FP32, shape: [3], file: x.bin}]", "missing required key 'outputs'"},
      {"samples:\n  - {inputs: [], outputs: [], extra: 1}", "unknown key 'extra'"},
      {"samples:\n  - inputs: [{name: x, datatype: FP99, shape: [3], file: x.bin}]\n    outputs: []",
       "unknown datatype"},
      {"tolerance: {absolute: abc}\nsamples: []", "expected a finite number"},
      {"samples: [", "reference.yaml"},
  };
  for (const auto& c : cases) {
    WriteYaml(c.yaml);
    auto r = ReadReferenceSet(version_);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << c.yaml << " -> " << r.status().message();
  }
}

TEST_F(ReferenceSetTest, TotalSizeIsBounded) {
  WriteFloats("x.bin", {1, 2, 3});
  WriteFloats("y.bin", {2, 4, 6});
  WriteYaml(kGood);
  auto r = ReadReferenceSet(version_, /*max_total_bytes=*/20);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("size limit"), std::string::npos) << r.status().message();
}

TEST_F(ReferenceSetTest, FolderWithoutYamlIsAnError) {
  auto r = ReadReferenceSet(version_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("reference.yaml"), std::string::npos);
}

}  // namespace
}  // namespace ferry
