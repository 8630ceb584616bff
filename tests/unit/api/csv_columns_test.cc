#include <gtest/gtest.h>

#include <cstring>

#include "api/batch_records.h"
#include "repository/model_config.h"

namespace ferry {
namespace {

ModelConfig Tabular(const std::string& columns_line) {
  auto config = ParseModelConfig(R"(
name: fraud
backend: xgboost
max_batch_size: 64
inputs:
  - {name: features, datatype: FP32, dims: [3])" + columns_line + R"(}
outputs:
  - {name: probability, datatype: FP32, dims: [1]}
)", "fraud");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : ModelConfig{};
}

TEST(CsvColumnsTest, NamedFeaturesAreTakenByNameInAnyOrderAndOtherColumnsIgnored) {
  const ModelConfig config = Tabular(", columns: [amount, hour, merchant_risk]");
  auto map = MapCsvColumns(config, {"merchant_risk", "label", "id", "amount", "timestamp", "hour"});
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->key_column, 2);
  ASSERT_EQ(map->inputs.size(), 1u);
  EXPECT_EQ(map->inputs[0].columns, (std::vector<int>{3, 5, 0}));
  auto request = CsvRowToRequest(*map, {"0.9", "1", "tx-7", "12.5", "2026-12-02", "23"}, "tx-7");
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  ASSERT_EQ(request->inputs.size(), 1u);
  float values[3];
  std::memcpy(values, request->inputs[0].data.data(), sizeof(values));
  EXPECT_EQ(values[0], 12.5f);
  EXPECT_EQ(values[1], 23.0f);
  EXPECT_EQ(values[2], 0.9f);
}

TEST(CsvColumnsTest, AMissingNamedFeatureIsNamed) {
  auto map = MapCsvColumns(Tabular(", columns: [amount, hour, merchant_risk]"), {"id", "amount", "merchant_risk"});
  ASSERT_FALSE(map.ok());
  EXPECT_NE(map.status().message().find("no column 'hour' (a feature of input 'features')"), std::string::npos)
      << map.status().message();
}

TEST(CsvColumnsTest, WithoutNamesTheOtherColumnsAreTheFeaturesInHeaderOrder) {
  auto map = MapCsvColumns(Tabular(""), {"id", "c", "a", "b"});
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->inputs[0].columns, (std::vector<int>{1, 2, 3}));
  EXPECT_FALSE(MapCsvColumns(Tabular(""), {"id", "a", "b", "c", "label"}).ok());  // one too many
}

TEST(CsvColumnsTest, BadColumnListsAreRefusedAtLoad) {
  struct Case {
    const char* line;
    const char* says;
  } cases[] = {
      {", columns: [a, b]", "columns has 2"},
      {", columns: [a, b, a]", "named twice"},
      {", columns: [a, id, b]", "not id or custom_id"},
      {", columns: a", "expected a list"},
  };
  for (const Case& c : cases) {
    auto config = ParseModelConfig(std::string(R"(
name: m
max_batch_size: 8
inputs:
  - {name: features, datatype: FP32, dims: [3])") + c.line + R"(}
outputs:
  - {name: p, datatype: FP32, dims: [1]}
)", "m");
    ASSERT_FALSE(config.ok()) << c.line;
    EXPECT_NE(config.status().message().find(c.says), std::string::npos) << c.line << ": " << config.status().message();
  }
  auto on_output = ParseModelConfig(R"(
name: m
max_batch_size: 8
inputs:
  - {name: features, datatype: FP32, dims: [1]}
outputs:
  - {name: p, datatype: FP32, dims: [1], columns: [p]}
)", "m");
  ASSERT_FALSE(on_output.ok());
  EXPECT_NE(on_output.status().message().find("only inputs name columns"), std::string::npos);
}

}  // namespace
}  // namespace ferry
