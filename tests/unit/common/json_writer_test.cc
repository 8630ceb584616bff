#include "common/json_writer.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ferry {
namespace {

std::string Quote(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

TEST(JsonWriterTest, WritesNestedStructureWithCommas) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("a").Int(1);
  w.Key("b").BeginArray().Int(1).Uint(2).Bool(true).Bool(false).Null().String("x").EndArray();
  w.Key("c").BeginObject().EndObject();
  w.Key("d").BeginArray().EndArray();
  w.Key("e").BeginArray().BeginObject().Key("k").Double(0.5).EndObject().BeginObject().EndObject().EndArray();
  w.EndObject();
  EXPECT_EQ(out, R"({"a":1,"b":[1,2,true,false,null,"x"],"c":{},"d":[],"e":[{"k":0.5},{}]})");
  EXPECT_TRUE(nlohmann::json::accept(out));
}

TEST(JsonWriterTest, RawAndRawWithAreOneValueEach) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray().Raw("{\"x\":1}").RawWith([](std::string* o) { o->append("[1,2]"); }).Int(3).EndArray();
  EXPECT_EQ(out, R"([{"x":1},[1,2],3])");
}

TEST(JsonWriterTest, IntegersAtTheirLimits) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray()
      .Int(std::numeric_limits<int64_t>::min())
      .Int(std::numeric_limits<int64_t>::max())
      .Uint(std::numeric_limits<uint64_t>::max())
      .Int(0)
      .EndArray();
  EXPECT_EQ(out, "[-9223372036854775808,9223372036854775807,18446744073709551615,0]");
}

TEST(JsonWriterTest, DoublesAreShortestRoundTrip) {
  const double values[] = {0.1, 1.0 / 3.0, 1e300, -1e-300, 5e-324, 1.7976931348623157e308, 123456789.0, -0.0,
                           2.5, 1e21, 1e-7};
  for (double v : values) {
    std::string out;
    AppendJsonDouble(&out, v);
    EXPECT_EQ(std::strtod(out.c_str(), nullptr), v) << out;
    EXPECT_TRUE(nlohmann::json::accept(out)) << out;
  }
  std::string out;
  AppendJsonDouble(&out, 0.1);
  EXPECT_EQ(out, "0.1");
  out.clear();
  AppendJsonDouble(&out, 1.0);
  EXPECT_EQ(out, "1");
  out.clear();
  AppendJsonDouble(&out, -0.0);
  EXPECT_EQ(out, "-0.0");
  out.clear();
  AppendJsonFloat(&out, -0.0f);
  EXPECT_EQ(out, "-0.0");
}

TEST(JsonWriterTest, FloatsAreShortestForFloat) {
  std::string out;
  JsonWriter(&out).BeginArray().Float(0.1f).Float(3.4028235e38f).Float(1e-45f).Float(-2.5f).EndArray();
  EXPECT_EQ(out, "[0.1,3.4028235e+38,1e-45,-2.5]");
  auto parsed = nlohmann::json::parse(out);
  EXPECT_EQ(parsed[0].get<float>(), 0.1f);
  EXPECT_EQ(parsed[1].get<float>(), 3.4028235e38f);
  EXPECT_EQ(parsed[2].get<float>(), 1e-45f);
}

TEST(JsonWriterTest, NonFiniteNumbersAreNull) {
  std::string out;
  JsonWriter(&out)
      .BeginArray()
      .Double(std::numeric_limits<double>::quiet_NaN())
      .Double(std::numeric_limits<double>::infinity())
      .Double(-std::numeric_limits<double>::infinity())
      .Float(std::numeric_limits<float>::quiet_NaN())
      .Float(-std::numeric_limits<float>::infinity())
      .EndArray();
  EXPECT_EQ(out, "[null,null,null,null,null]");
}

TEST(JsonStringTest, EscapesQuotesBackslashAndControls) {
  EXPECT_EQ(Quote(""), R"("")");
  EXPECT_EQ(Quote("plain"), R"("plain")");
  EXPECT_EQ(Quote("a\"b\\c/"), R"("a\"b\\c/")");
  EXPECT_EQ(Quote("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(Quote(std::string("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\x7f\"");
}

TEST(JsonStringTest, ValidUtf8PassesThrough) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF";
  EXPECT_EQ(Quote(text), "\"" + text + "\"");
  EXPECT_EQ(nlohmann::json::parse(Quote(text)).get<std::string>(), text);
}

TEST(JsonStringTest, InvalidUtf8BytesBecomeReplacementCharacters) {
  const std::string kFffd = "\xEF\xBF\xBD";
  // stray continuation, lone lead byte, overlong '/', encoded surrogate, past U+10FFFF, 0xFF, truncated
  EXPECT_EQ(Quote("a\x80z"), "\"a" + kFffd + "z\"");
  EXPECT_EQ(Quote("\xC3"), "\"" + kFffd + "\"");
  EXPECT_EQ(Quote("\xC0\xAF"), "\"" + kFffd + kFffd + "\"");
  EXPECT_EQ(Quote("\xED\xA0\x80"), "\"" + kFffd + kFffd + kFffd + "\"");
  EXPECT_EQ(Quote("\xF4\x90\x80\x80"), "\"" + kFffd + kFffd + kFffd + kFffd + "\"");
  EXPECT_EQ(Quote("\xFF"), "\"" + kFffd + "\"");
  EXPECT_EQ(Quote("\xE2\x82"), "\"" + kFffd + kFffd + "\"");
  EXPECT_EQ(Quote("\xE0\x80\x80"), "\"" + kFffd + kFffd + kFffd + "\"");  // overlong 3-byte
  EXPECT_EQ(Quote("\xF0\x80\x80\x80"), "\"" + kFffd + kFffd + kFffd + kFffd + "\"");  // overlong 4-byte
}

TEST(JsonStringTest, EveryByteStringGivesValidJson) {
  // Every pair of bytes, so lead/continuation mixtures and escapes are all covered.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; b += 7) {
      const std::string s = {static_cast<char>(a), static_cast<char>(b), '"'};
      const std::string quoted = Quote(s);
      ASSERT_TRUE(nlohmann::json::accept(quoted)) << a << " " << b;
    }
  }
}

TEST(JsonWriterTest, KeysAreEscaped) {
  std::string out;
  JsonWriter(&out).BeginObject().Key("a\"b").Int(1).EndObject();
  EXPECT_EQ(out, R"({"a\"b":1})");
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// A large value's shortest form can be a plain integer past 64 bits, which parsers refuse.
TEST(JsonNumberTest, LargeValuesUseTheExponentForm) {
  std::string out;
  AppendJsonDouble(&out, 222222222222222222220.1);
  EXPECT_EQ(out, "2.2222222222222223e+20");
  out.clear();
  AppendJsonFloat(&out, 1e30f);
  EXPECT_EQ(out, "1e+30");
  out.clear();
  AppendJsonDouble(&out, 123456789.0);  // small integers keep their plain form
  EXPECT_EQ(out, "123456789");
}

}  // namespace
}  // namespace ferry
