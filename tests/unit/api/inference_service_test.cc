#include "api/inference_service.h"

#include <gtest/gtest.h>

#include "api/admin_service.h"
#include "api/status_mapping.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

using testing::MakeFloatTensor;

ModelConfig TwoInputConfig() {
  ModelConfig c;
  c.name = "m";
  c.max_batch_size = 4;
  c.inputs = {{"a", DataType::kFp32, {2}}, {"b", DataType::kFp32, {-1}}};
  c.outputs = {{"y", DataType::kFp32, {2}}};
  return c;
}

TEST(ParseVersionTest, AcceptsPositiveDecimalsOnly) {
  EXPECT_EQ(ParseVersion("1").value(), 1);
  EXPECT_EQ(ParseVersion("123").value(), 123);
  for (const char* bad : {"", "0", "01", "-1", "+1", "1x", "x", "99999999999999999999", "1.0"}) {
    EXPECT_FALSE(ParseVersion(bad).ok()) << bad;
  }
}

TEST(ValidateAndOrderInputsTest, ReordersToConfigOrderAndReturnsBatch) {
  std::vector<Tensor> inputs = {MakeFloatTensor("b", {3, 5}, std::vector<float>(15)),
                                MakeFloatTensor("a", {3, 2}, std::vector<float>(6))};
  Result<int64_t> batch = ValidateAndOrderInputs(TwoInputConfig(), &inputs);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(*batch, 3);
  EXPECT_EQ(inputs[0].name, "a");
  EXPECT_EQ(inputs[1].name, "b");
}

TEST(ValidateAndOrderInputsTest, RefusesWhatTheModelCannotTake) {
  struct Case {
    std::vector<Tensor> inputs;
    const char* why;
  };
  std::vector<Case> cases;
  cases.push_back({{MakeFloatTensor("a", {1, 2}, {1, 2})}, "missing input"});
  cases.push_back({{MakeFloatTensor("a", {1, 2}, {1, 2}), MakeFloatTensor("b", {1, 1}, {1}),
                    MakeFloatTensor("c", {1, 1}, {1})}, "unexpected input"});
  cases.push_back({{MakeFloatTensor("a", {1, 3}, {1, 2, 3}), MakeFloatTensor("b", {1, 1}, {1})}, "shape"});
  cases.push_back({{MakeFloatTensor("a", {2}, {1, 2}), MakeFloatTensor("b", {1, 1}, {1})}, "shape"});
  cases.push_back({{MakeFloatTensor("a", {5, 2}, std::vector<float>(10)), MakeFloatTensor("b", {5, 1}, std::vector<float>(5))},
                   "batch size"});
  cases.push_back({{MakeFloatTensor("a", {0, 2}, {}), MakeFloatTensor("b", {0, 1}, {})}, "batch size"});
  cases.push_back({{MakeFloatTensor("a", {2, 2}, {1, 2, 3, 4}), MakeFloatTensor("b", {1, 1}, {1})}, "batch size"});
  Tensor wrong_type = MakeFloatTensor("a", {1, 2}, {1, 2});
  wrong_type.dtype = DataType::kInt32;
  cases.push_back({{wrong_type, MakeFloatTensor("b", {1, 1}, {1})}, "datatype"});
  for (Case& c : cases) {
    Result<int64_t> r = ValidateAndOrderInputs(TwoInputConfig(), &c.inputs);
    ASSERT_FALSE(r.ok()) << c.why;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.why), std::string::npos) << r.status().message();
  }
}

TEST(ValidateAndOrderInputsTest, UnbatchedModelsTakeTheDeclaredShape) {
  ModelConfig c = TwoInputConfig();
  c.max_batch_size = 0;
  std::vector<Tensor> inputs = {MakeFloatTensor("a", {2}, {1, 2}), MakeFloatTensor("b", {7}, std::vector<float>(7))};
  EXPECT_EQ(ValidateAndOrderInputs(c, &inputs).value(), 1);
}

TEST(StatusMappingTest, MapsEveryCodeOnce) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPayloadTooLarge), 413);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInternal), 500);
  EXPECT_EQ(RetryAfterSecondsFor(StatusCode::kUnavailable), 1);
  EXPECT_EQ(RetryAfterSecondsFor(StatusCode::kInvalidArgument), 0);
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("secret2", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace ferry
