#include "backend/xgboost/ubjson.h"

#include <gtest/gtest.h>

#include <string>

#include "testing/example_models.h"

namespace ferry {
namespace {

using namespace std::string_literals;  // NOLINT: UBJSON holds NUL bytes

std::string Json(const std::string& ubj) {
  auto r = UbjsonToJson(ubj);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : "";
}

TEST(UbjsonTest, ScalarsKeepTheirValues) {
  EXPECT_EQ(Json("Z"), "null");
  EXPECT_EQ(Json("T"), "true");
  EXPECT_EQ(Json("F"), "false");
  EXPECT_EQ(Json("i\xff"), "-1");
  EXPECT_EQ(Json("U\xff"), "255");
  EXPECT_EQ(Json("I\x80\x00"s), "-32768");
  EXPECT_EQ(Json("l\x7f\xff\xff\xff"), "2147483647");
  EXPECT_EQ(Json("L\x80\x00\x00\x00\x00\x00\x00\x00"s), "-9223372036854775808");
  EXPECT_EQ(Json("d\x3f\xc0\x00\x00"s), "1.5");           // float32, big-endian
  EXPECT_EQ(Json("D\x3f\xb9\x99\x99\x99\x99\x99\x9a"), "0.1");  // float64
  EXPECT_EQ(Json("d\x7f\xc0\x00\x00"s), "null");          // NaN has no JSON spelling
  EXPECT_EQ(Json("SU\x03" "a\"b"), R"("a\"b")");
  EXPECT_EQ(Json("SU\x01\x01"), R"("\u0001")");
  EXPECT_EQ(Json("Ca"), R"("a")");
  EXPECT_EQ(Json("NNT"), "true");  // no-ops are skipped
}

TEST(UbjsonTest, ContainersPlainCountedAndTyped) {
  EXPECT_EQ(Json("[]"), "[]");
  EXPECT_EQ(Json("[U\x01U\x02]"), "[1,2]");
  EXPECT_EQ(Json("[#U\x02U\x01T"), "[1,true]");
  EXPECT_EQ(Json("[$U#U\x03\x01\x02\x03"), "[1,2,3]");
  EXPECT_EQ(Json("[$d#U\x01\x3f\x80\x00\x00"s), "[1]");
  EXPECT_EQ(Json("{U\x01" "aU\x07}"), R"({"a":7})");
  EXPECT_EQ(Json("{L\x00\x00\x00\x00\x00\x00\x00\x01" "a[#L\x00\x00\x00\x00\x00\x00\x00\x00}"s), R"({"a":[]})");
  EXPECT_EQ(Json("{#U\x02U\x01" "aTU\x01" "bZ"), R"({"a":true,"b":null})");
  EXPECT_EQ(Json("{$U#U\x01U\x01" "k\x09"), R"({"k":9})");
}

TEST(UbjsonTest, RefusesWhatItCannotBack) {
  for (const std::string& bad : {
           ""s,                       // nothing
           "["s,                      // an array never closed
           "{U\x01" "a"s,             // a key without a value
           "SU\x05" "abc"s,           // a string longer than the data
           "[#L\x7f\xff\xff\xff\xff\xff\xff\xff"s,  // a count no data backs
           "[$d#U\x02\x00\x00\x00\x00"s,           // a typed array cut short
           "[$l"s,                    // a type without a count
           "[${#U\x01"s,              // container types are refused
           "H"s,                      // high-precision numbers are refused
           "q"s,                      // an unknown marker
           "TT"s,                     // trailing bytes
           "SI\xff\xff"s,             // a negative length
       }) {
    auto r = UbjsonToJson(bad);
    EXPECT_FALSE(r.ok()) << ::testing::PrintToString(bad);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(UbjsonTest, NestingIsBounded) {
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  auto r = UbjsonToJson(deep, 64);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper than 64"), std::string::npos) << r.status().message();
  EXPECT_TRUE(UbjsonToJson(deep, 100).ok());
}

TEST(UbjsonTest, TheSegmentExampleReadsAsTheSameModel) {
  const std::string ubj = ferry::testing::ReadText(ferry::testing::ModelDir("segment_xgb") / "1" / "model.ubj");
  ASSERT_FALSE(ubj.empty());
  auto json = UbjsonToJson(ubj);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->rfind(R"({"learner":{)", 0), 0u) << json->substr(0, 80);
  EXPECT_NE(json->find(R"("version":[1,7,4])"), std::string::npos);
  EXPECT_NE(json->find(R"("num_class":"4")"), std::string::npos);
}

}  // namespace
}  // namespace ferry
