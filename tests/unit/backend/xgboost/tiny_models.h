#pragma once
// Hand-written XGBoost 1.7 models (the JSON schema Booster.save_model writes), small enough that their
// predictions can be worked out by hand, and easy to break one field at a time.
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ferry::testing {

// One tree. The default: the root splits feature 0 at 0.5; below goes left to a leaf of -0.4, at or
// above goes right to a leaf of 0.6; a missing value goes left (default_left of the root is 1).
struct TinyTree {
  std::vector<int64_t> left{1, -1, -1};
  std::vector<int64_t> right{2, -1, -1};
  std::vector<int64_t> parents{2147483647, 0, 0};
  std::vector<int64_t> split{0, 0, 0};
  std::vector<int64_t> default_left{1, 0, 0};
  std::vector<double> conditions{0.5, -0.4, 0.6};  // a leaf's entry is its value
  // (floats are written with an exponent: XGBoost refuses an integer where it keeps a float)
  std::vector<int64_t> split_type{0, 0, 0};
  int64_t id = -1;  // -1: its index
  int64_t num_nodes = -1;  // -1: the arrays' length
};

struct TinyModel {
  std::string version = "[1,7,4]";
  std::string objective = "binary:logistic";
  int64_t num_class = 0;
  int64_t num_feature = 2;
  int64_t num_trees = -1;  // -1: the trees' count
  std::string base_score = "5E-1";
  std::vector<TinyTree> trees{TinyTree{}};
  std::vector<int64_t> tree_info{0};
  std::vector<std::string> feature_types;
};

inline std::string TreeJson(const TinyTree& t, size_t index) {
  const auto n = static_cast<int64_t>(t.left.size());
  const std::vector<double> zeros(t.left.size(), 0.0);
  return fmt::format(
      R"({{"base_weights":[{:.6e}],"categories":[],"categories_nodes":[],"categories_segments":[],)"
      R"("categories_sizes":[],"default_left":[{}],"id":{},"left_children":[{}],"loss_changes":[{:.6e}],)"
      R"("parents":[{}],"right_children":[{}],"split_conditions":[{:.6e}],"split_indices":[{}],)"
      R"("split_type":[{}],"sum_hessian":[{:.6e}],"tree_param":{{"num_deleted":"0","num_feature":"2",)"
      R"("num_nodes":"{}","size_leaf_vector":"0"}}}})",
      fmt::join(zeros, ","), fmt::join(t.default_left, ","), t.id >= 0 ? t.id : static_cast<int64_t>(index),
      fmt::join(t.left, ","), fmt::join(zeros, ","), fmt::join(t.parents, ","), fmt::join(t.right, ","),
      fmt::join(t.conditions, ","), fmt::join(t.split, ","), fmt::join(t.split_type, ","), fmt::join(zeros, ","),
      t.num_nodes >= 0 ? t.num_nodes : n);
}

inline std::string ModelJson(const TinyModel& m) {
  std::string trees;
  for (size_t i = 0; i < m.trees.size(); ++i) {
    if (i > 0) trees += ',';
    trees += TreeJson(m.trees[i], i);
  }
  std::string types;
  for (size_t i = 0; i < m.feature_types.size(); ++i) types += fmt::format("{}\"{}\"", i ? "," : "", m.feature_types[i]);
  const std::string objective =
      m.num_class > 1 ? fmt::format(R"({{"name":"{}","softmax_multiclass_param":{{"num_class":"{}"}}}})",
                                    m.objective, m.num_class)
                      : fmt::format(R"({{"name":"{}","reg_loss_param":{{"scale_pos_weight":"1"}}}})", m.objective);
  return fmt::format(
      R"({{"learner":{{"attributes":{{}},"feature_names":[],"feature_types":[{}],"gradient_booster":{{"model":)"
      R"({{"gbtree_model_param":{{"num_parallel_tree":"1","num_trees":"{}","size_leaf_vector":"0"}},)"
      R"("tree_info":[{}],"trees":[{}]}},"name":"gbtree"}},"learner_model_param":{{"base_score":"{}",)"
      R"("boost_from_average":"1","num_class":"{}","num_feature":"{}","num_target":"1"}},"objective":{}}},)"
      R"("version":{}}})",
      types, m.num_trees >= 0 ? m.num_trees : static_cast<int64_t>(m.trees.size()), fmt::join(m.tree_info, ","),
      trees, m.base_score, m.num_class, m.num_feature, objective, m.version);
}

}  // namespace ferry::testing
