#include "backend/reference_check.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tensor/bytes_elements.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

using ferry::testing::DoublingInstance;
using ferry::testing::MakeFloatTensor;

ModelConfig DoublingConfig() {
  ModelConfig config;
  config.name = "doubling";
  config.max_batch_size = 4;
  config.inputs = {{"x", DataType::kFp32, {3}}};
  config.outputs = {{"out", DataType::kFp32, {3}}};
  return config;
}

ReferenceSample Sample(std::vector<float> in, std::vector<float> want) {
  ReferenceSample s;
  s.name = "s0";
  s.inputs.push_back(MakeFloatTensor("x", {1, 3}, in));
  s.outputs.push_back(MakeFloatTensor("out", {1, 3}, want));
  return s;
}

TEST(ReferenceCheckTest, PassesWhenTheInstanceComputesWhatTheSampleExpects) {
  DoublingInstance instance;
  ReferenceSet set;
  set.samples.push_back(Sample({1, 2, 3}, {2, 4, 6}));
  EXPECT_TRUE(RunReferenceCheck(instance, DoublingConfig(), set).ok());
}

TEST(ReferenceCheckTest, FailsNamingSampleOutputElementAndDifference) {
  DoublingInstance instance;
  ReferenceSet set;
  set.samples.push_back(Sample({1, 2, 3}, {2, 4.5f, 6}));
  Status s = RunReferenceCheck(instance, DoublingConfig(), set);
  ASSERT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("reference check failed"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'s0'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("output 'out'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("element 1 is 4, expected 4.5"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("max abs diff 0.5"), std::string::npos) << s.message();
}

TEST(ReferenceCheckTest, ToleranceIsAbsolutePlusRelative) {
  const Tensor want = MakeFloatTensor("y", {2}, {100.0f, 0.0f});
  ReferenceTolerance tol{0.01, 0.001};  // 0.11 allowed at 100, 0.01 at 0
  EXPECT_TRUE(CompareReferenceOutput(MakeFloatTensor("y", {2}, {100.1f, 0.009f}), want, tol).ok());
  EXPECT_FALSE(CompareReferenceOutput(MakeFloatTensor("y", {2}, {100.2f, 0.0f}), want, tol).ok());
  EXPECT_FALSE(CompareReferenceOutput(MakeFloatTensor("y", {2}, {100.0f, 0.02f}), want, tol).ok());
}

TEST(ReferenceCheckTest, NanMatchesOnlyNanAndShapesMustAgree) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  ReferenceTolerance tol{1.0, 1.0};
  EXPECT_TRUE(CompareReferenceOutput(MakeFloatTensor("y", {1}, {nan}), MakeFloatTensor("y", {1}, {nan}), tol).ok());
  EXPECT_FALSE(CompareReferenceOutput(MakeFloatTensor("y", {1}, {0.0f}), MakeFloatTensor("y", {1}, {nan}), tol).ok());
  EXPECT_FALSE(CompareReferenceOutput(MakeFloatTensor("y", {1}, {nan}), MakeFloatTensor("y", {1}, {0.0f}), tol).ok());
  EXPECT_FALSE(
      CompareReferenceOutput(MakeFloatTensor("y", {1, 2}, {1, 2}), MakeFloatTensor("y", {2, 1}, {1, 2}), tol).ok());
}

TEST(ReferenceCheckTest, IntegersAndBytesCompareExactly) {
  Tensor a;
  a.name = "ids";
  a.dtype = DataType::kInt64;
  a.shape = {2};
  std::vector<int64_t> v{1, 2};
  a.data = Buffer::Copy(v.data(), 16);
  Tensor b = a;
  std::vector<int64_t> w{1, 3};
  b.data = Buffer::Copy(w.data(), 16);
  ReferenceTolerance loose{10, 10};  // ignored for integers
  EXPECT_TRUE(CompareReferenceOutput(a, a, loose).ok());
  EXPECT_FALSE(CompareReferenceOutput(a, b, loose).ok());

  Tensor s1;
  s1.name = "text";
  s1.dtype = DataType::kBytes;
  s1.shape = {1};
  std::vector<std::string> hello{"hello"}, help{"help!"};
  s1.data = MakeBytesBuffer(hello);
  Tensor s2 = s1;
  s2.data = MakeBytesBuffer(help);
  EXPECT_TRUE(CompareReferenceOutput(s1, s1, loose).ok());
  EXPECT_FALSE(CompareReferenceOutput(s1, s2, loose).ok());
}

TEST(ReferenceCheckTest, SamplesThatDoNotFitTheConfigAreInvalidArguments) {
  DoublingInstance instance;
  ReferenceSet missing_input;
  ReferenceSample s = Sample({1, 2, 3}, {2, 4, 6});
  s.inputs[0].name = "y";
  missing_input.samples.push_back(s);
  EXPECT_EQ(RunReferenceCheck(instance, DoublingConfig(), missing_input).code(), StatusCode::kInvalidArgument);

  ReferenceSet unknown_output;
  ReferenceSample u = Sample({1, 2, 3}, {2, 4, 6});
  u.outputs[0].name = "logits";
  unknown_output.samples.push_back(u);
  EXPECT_EQ(RunReferenceCheck(instance, DoublingConfig(), unknown_output).code(), StatusCode::kInvalidArgument);

  DoublingInstance failing;
  failing.fail_ = true;
  ReferenceSet ok;
  ok.samples.push_back(Sample({1, 2, 3}, {2, 4, 6}));
  Status f = RunReferenceCheck(failing, DoublingConfig(), ok);
  EXPECT_EQ(f.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f.message().find("failed to run: model exploded"), std::string::npos) << f.message();
}

}  // namespace
}  // namespace ferry
