#include "backend/xgboost/xgboost_model_check.h"

#include <gtest/gtest.h>

#include <string>

#include "testing/example_models.h"
#include "unit/backend/xgboost/tiny_models.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using namespace ferry::testing;  // NOLINT: the example-model and tiny-model helpers

constexpr std::array<int64_t, 3> kLibrary{1, 7, 4};

Result<XgboostModelInfo> Check(const TinyModel& m) {
  return CheckXgboostModel(ModelJson(m), XgboostFormat::kJson, kLibrary);
}

// The check fails and its message contains `want`.
void ExpectRefused(const TinyModel& m, const std::string& want) {
  auto r = Check(m);
  ASSERT_FALSE(r.ok()) << "accepted: " << ModelJson(m);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
}

// A five-node tree: 0 splits into 1 and 2, 1 splits into 3 and 4.
TinyTree FiveNodes() {
  TinyTree t;
  t.left = {1, 3, -1, -1, -1};
  t.right = {2, 4, -1, -1, -1};
  t.parents = {2147483647, 0, 0, 1, 1};
  t.split = {0, 1, 0, 0, 0};
  t.default_left = {1, 0, 0, 0, 0};
  t.conditions = {0.5, 0.25, 0.6, -0.1, -0.7};
  t.split_type = {0, 0, 0, 0, 0};
  return t;
}

TEST(XgboostModelCheckTest, AcceptsAWellFormedModelAndReportsIt) {
  TinyModel m;
  m.trees = {TinyTree{}, FiveNodes()};
  m.tree_info = {0, 0};
  auto r = Check(m);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->booster, "gbtree");
  EXPECT_EQ(r->objective, "binary:logistic");
  EXPECT_EQ(r->num_feature, 2);
  EXPECT_EQ(r->num_groups, 1);
  EXPECT_EQ(r->num_trees, 2);
  EXPECT_EQ(r->version, (std::array<int64_t, 3>{1, 7, 4}));
}

TEST(XgboostModelCheckTest, AcceptsTheCommittedExamples) {
  for (const auto& [name, file, format, groups] :
       {std::tuple{"fraud_xgb", "model.json", XgboostFormat::kJson, 1},
        std::tuple{"segment_xgb", "model.ubj", XgboostFormat::kUbjson, 4},
        std::tuple{"demand_xgb", "model.json", XgboostFormat::kJson, 1}}) {
    const std::string bytes = ReadText(ModelDir(name) / "1" / file);
    ASSERT_FALSE(bytes.empty()) << name;
    auto r = CheckXgboostModel(bytes, format, kLibrary);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    EXPECT_EQ(r->num_groups, groups) << name;
    EXPECT_GT(r->num_trees, 0) << name;
  }
}

// tests/fuzz/corpus/xgboost_model: gbtree, dart and gblinear models in both formats (from
// tools/make_xgboost_models.py), each file its format's letter and the model.
TEST(XgboostModelCheckTest, AcceptsEveryBoosterInBothFormats) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(SourceDir() / "tests" / "fuzz" / "corpus" / "xgboost_model")) {
    const std::string file = ReadText(entry.path());
    ASSERT_GT(file.size(), 1u);
    const XgboostFormat format = file[0] == 'u' ? XgboostFormat::kUbjson : XgboostFormat::kJson;
    auto r = CheckXgboostModel(std::string_view(file).substr(1), format, kLibrary);
    ASSERT_TRUE(r.ok()) << entry.path() << ": " << r.status().ToString();
    const std::string name = entry.path().filename().string();
    EXPECT_EQ(r->booster, name.find("dart") != std::string::npos      ? "dart"
                          : name.find("gblinear") != std::string::npos ? "gblinear"
                                                                        : "gbtree")
        << name;
    EXPECT_EQ(r->num_groups, name.find("multiclass") != std::string::npos ? 3 : 1) << name;
    ++seen;
  }
  EXPECT_EQ(seen, 8);
}

TEST(XgboostModelCheckTest, RefusesChildrenOutOfRange) {
  TinyModel m;
  m.trees[0].left[0] = 70000000;  // XGBoost 1.7 itself crashes loading this
  ExpectRefused(m, "node 0 has children (70000000, 2)");
  m.trees[0].left[0] = 0;  // the root as its own child
  ExpectRefused(m, "node 0 has children (0, 2)");
  m.trees[0].left[0] = 2;  // both children the same node
  ExpectRefused(m, "node 0 has children (2, 2)");
  m.trees[0].left[0] = -1;  // half a leaf
  ExpectRefused(m, "node 0 has children (-1, 2)");
  m.trees[0] = FiveNodes();
  std::swap(m.trees[0].left[0], m.trees[0].right[0]);  // XGBoost finds the right child at left + 1
  ExpectRefused(m, "the right child must follow the left one");
}

TEST(XgboostModelCheckTest, RefusesACycleAndASharedChild) {
  TinyModel m;
  m.trees = {FiveNodes()};
  m.trees[0].left[3] = 3;  // node 3 leads back to itself and on to node 4
  m.trees[0].right[3] = 4;
  ExpectRefused(m, "reached twice");

  TinyModel shared;
  shared.trees = {FiveNodes()};
  shared.trees[0].left[1] = 2;  // node 2 would be both 0's and 1's child
  shared.trees[0].right[1] = 3;
  ExpectRefused(shared, "reached twice");
}

TEST(XgboostModelCheckTest, RefusesWrongParents) {
  TinyModel m;
  m.trees = {FiveNodes()};
  m.trees[0].parents[4] = 0;
  ExpectRefused(m, "node 4 records parent 0, but node 1 is its parent");
  TinyModel root;
  root.trees[0].parents[0] = 5;
  ExpectRefused(root, "the root's parent is 5");
}

TEST(XgboostModelCheckTest, RefusesASplitOnAFeatureTheModelLacks) {
  TinyModel m;
  m.trees[0].split[0] = 2;  // num_feature is 2
  ExpectRefused(m, "node 0 splits on feature 2; the model has 2 features");
  m.trees[0].split[0] = -3;
  ExpectRefused(m, "node 0 splits on feature -3");
  // A leaf's split index means nothing and is not judged.
  TinyModel leaf;
  leaf.trees[0].split[2] = 99;
  EXPECT_TRUE(Check(leaf).ok());
}

TEST(XgboostModelCheckTest, RefusesArraysOfTheWrongLength) {
  TinyModel m;
  m.trees[0].num_nodes = 4;
  ExpectRefused(m, "left_children: has 3 entries, expected 4");
  TinyModel short_conditions;
  short_conditions.trees[0].conditions = {0.5, -0.4};
  ExpectRefused(short_conditions, "split_conditions: has 2 entries, expected 3");
  TinyModel zero;
  zero.trees[0].num_nodes = 0;
  ExpectRefused(zero, "num_nodes is 0");
}

TEST(XgboostModelCheckTest, RefusesTreeCountsAndGroupsThatDisagree) {
  TinyModel count;
  count.num_trees = 2;
  ExpectRefused(count, "num_trees is 2 but there are 1 trees");
  TinyModel info;
  info.tree_info = {0, 0};
  ExpectRefused(info, "tree_info: has 2 entries, expected 1");
  TinyModel group;
  group.tree_info = {1};  // a binary model has one output group
  ExpectRefused(group, "tree 0 adds to output 1; the model has 1");
  TinyModel id;
  id.trees[0].id = 3;
  ExpectRefused(id, "has id 3, expected its index 0");
}

TEST(XgboostModelCheckTest, MultiClassGroupsComeFromNumClass) {
  TinyModel m;
  m.objective = "multi:softprob";
  m.num_class = 3;
  m.trees = {TinyTree{}, TinyTree{}, TinyTree{}};
  m.tree_info = {0, 1, 2};
  auto r = Check(m);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_groups, 3);
  m.tree_info = {0, 1, 3};
  ExpectRefused(m, "tree 2 adds to output 3; the model has 3");
}

TEST(XgboostModelCheckTest, RefusesCategoricalSplitsAndFeatures) {
  TinyModel split;
  split.trees[0].split_type = {1, 0, 0};
  ExpectRefused(split, "categorical splits");
  TinyModel types;
  types.feature_types = {"float", "c"};
  ExpectRefused(types, "categorical features");
  TinyModel wrong_count;
  wrong_count.feature_types = {"float"};
  ExpectRefused(wrong_count, "feature_types: has 1 entries for 2 features");
  TinyModel fine;
  fine.feature_types = {"float", "int"};
  EXPECT_TRUE(Check(fine).ok());
}

TEST(XgboostModelCheckTest, RefusesAModelFromANewerXgboost) {
  TinyModel m;
  m.version = "[3,2,0]";
  m.base_score = "[5E-1]";  // how 2.0 and later spell it; 1.7 misreads it
  ExpectRefused(m, "written by XGBoost 3.2.0, newer than this server's library (1.7.4)");
  m.version = "[1,8,0]";
  ExpectRefused(m, "written by XGBoost 1.8.0");
  m.version = "[1,7,9]";  // a later patch of the same minor reads the same
  EXPECT_TRUE(Check(m).ok());
  m.version = "[1,3,0]";  // older models load (XGBoost reads its older JSON)
  EXPECT_TRUE(Check(m).ok());
  m.version = "[1,7]";
  ExpectRefused(m, "version: has 2 entries, expected 3");
}

TEST(XgboostModelCheckTest, RefusesWhatIsNotAnXgboostModel) {
  for (const std::string& text : {std::string(""), std::string("not json"), std::string("[1,2,3]"),
                                  std::string(R"({"learner":{}})"), std::string(R"({"version":[1,7,4]})"),
                                  std::string(R"({"learner":{"x":1},"version":[1,7,4]})")}) {
    auto r = CheckXgboostModel(text, XgboostFormat::kJson, kLibrary);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << text;
  }
  // A parameter that is not a number.
  std::string json = ModelJson(TinyModel{});
  const std::string from = R"("num_feature":"2","num_target")";
  json.replace(json.find(from), from.size(), R"("num_feature":"two","num_target")");
  auto r = CheckXgboostModel(json, XgboostFormat::kJson, kLibrary);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'two' is not an integer"), std::string::npos) << r.status().message();
}

TEST(XgboostModelCheckTest, EveryTruncationOfAModelIsRefused) {
  const std::string json = ReadText(ModelDir("fraud_xgb") / "1" / "model.json");
  const std::string ubj = ReadText(ModelDir("segment_xgb") / "1" / "model.ubj");
  ASSERT_FALSE(json.empty());
  ASSERT_FALSE(ubj.empty());
  for (const auto& [bytes, format] : {std::pair{&json, XgboostFormat::kJson}, std::pair{&ubj, XgboostFormat::kUbjson}}) {
    const size_t step = bytes->size() / 300 + 1;
    for (size_t n = 0; n < bytes->size(); n += (n < 256 ? 1 : step)) {
      EXPECT_FALSE(CheckXgboostModel(bytes->substr(0, n), format, kLibrary).ok()) << n;
    }
    EXPECT_TRUE(CheckXgboostModel(*bytes, format, kLibrary).ok());
  }
}

TEST(XgboostModelCheckDuplicatesTest, RefusesAnObjectThatNamesAKeyTwice) {
  TinyModel m;
  const std::string good = ModelJson(m);
  ASSERT_TRUE(CheckXgboostModel(good, XgboostFormat::kJson, kLibrary).ok());
  // A second "learner" after the first: the check would read one and XGBoost another.
  const std::string twice = good.substr(0, good.size() - 1) + R"(,"learner":{}})";
  auto r = CheckXgboostModel(twice, XgboostFormat::kJson, kLibrary);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("names 'learner' twice"), std::string::npos) << r.status().message();
  // At any depth: fuzz_xgboost_model found a second "gradient_booster" whose two trees shared an id,
  // which passed the check and made XGBoost's loader free a tree twice.
  const std::string nested = R"({"learner":{"a":1,"b":{"k":1,"k":2}},"version":[1,7,4]})";
  r = CheckXgboostModel(nested, XgboostFormat::kJson, kLibrary);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("names 'k' twice"), std::string::npos) << r.status().message();
}

TEST(XgboostModelCheckDuplicatesTest, RefusesWhatXgboostWouldReadAsItsBinaryFormat) {
  TinyModel m;
  for (const std::string& lead : {std::string("\n"), std::string(" "), std::string("\xEF\xBB\xBF")}) {
    auto r = CheckXgboostModel(lead + ModelJson(m), XgboostFormat::kJson, kLibrary);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("must start with '{'"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace ferry
