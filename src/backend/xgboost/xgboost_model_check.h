#pragma once
// Checks an XGBoost model document (the JSON or UBJSON that `Booster.save_model` writes) before it is
// handed to XGBoost's C library.
//
// Why: XGBoost 1.7 trusts its model files. A tree whose child index or split feature is out of range
// crashes the process inside XGBoosterLoadModel (measured: a `left_children` entry of 70000000, or a
// `split_indices` entry past the feature count, is a segmentation fault), and a model written by a newer
// XGBoost loads without complaint and predicts wrong numbers (measured: a 3.2.0 model, whose base_score
// is spelled "[5.65E-1]", gives 0.787 where XGBoost 3.2 gives 0.827). So a model is served only when
// this check has proven that every walk through every tree stays inside its arrays, and that the
// writer's version is one the library reads.
//
// What it promises, for a document that passes (anything else is an InvalidArgument naming the first
// problem, with the path in the document, e.g. "learner.gradient_booster.model.trees[3]: ..."):
//  - `version` is [major, minor, patch] and not newer (major.minor) than `library_version`;
//  - the booster is gbtree, dart (its weight_drop has one weight per tree) or gblinear (its weights
//    are (num_feature + 1) * groups numbers);
//  - learner_model_param gives num_feature >= 1, num_class >= 0, num_target >= 1 (not both > 1), and
//    the objective's own num_class (multi-class objectives) equals the learner's;
//  - trees: their count equals num_trees and tree_info's; every tree_info entry is a group in
//    0..groups-1; each tree's `id` is its index; each node array has num_nodes entries; every child
//    index is -1 (a leaf has two) or 1..num_nodes-1; from the root, every node is reached once (no
//    cycle, no shared child) with its `parents` entry naming its parent, and every split reached tests a
//    feature in 0..num_feature-1; no categorical splits and no vector leaves (1.7 does not serve them);
//  - feature_names / feature_types, when given, have num_feature entries; no feature type "c".
// Numbers a model holds (thresholds, leaf values) are not judged: the reference check does that.
// Thread-safe (no shared state).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry {

enum class XgboostFormat { kJson, kUbjson };

struct XgboostModelInfo {
  std::array<int64_t, 3> version{};  // the XGBoost that wrote the model
  std::string booster;               // gbtree | dart | gblinear
  std::string objective;             // e.g. binary:logistic, multi:softprob, reg:squarederror
  int64_t num_feature = 0;
  int64_t num_groups = 1;            // values per row: classes of a multi-class model, else targets (1)
  int64_t num_trees = 0;             // 0 for gblinear
};

Result<XgboostModelInfo> CheckXgboostModel(std::string_view bytes, XgboostFormat format,
                                           std::array<int64_t, 3> library_version);

}  // namespace ferry
