#include "backend/xgboost/xgboost_model_check.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "backend/xgboost/ubjson.h"

namespace ferry {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// XGBoost writes the root's parent as 2^31 - 1 (its "no node" id with the left-child bit masked off).
constexpr int64_t kRootParent = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxNodes = std::numeric_limits<int32_t>::max() - 1;

Status Bad(std::string_view path, std::string_view what) {
  return InvalidArgument(fmt::format("{}: {}", path, what));
}

std::string Join(std::string_view path, std::string_view key) { return fmt::format("{}.{}", path, key); }

Result<object> Object(element e, std::string_view path) {
  object o;
  if (e.get(o) != simdjson::SUCCESS) return Bad(path, "expected an object");
  return o;
}

Result<element> Member(object o, std::string_view path, std::string_view key) {
  element e;
  if (o.at_key(key).get(e) != simdjson::SUCCESS) return Bad(path, fmt::format("missing '{}'", key));
  return e;
}

bool Has(object o, std::string_view key) {
  element e;
  return o.at_key(key).get(e) == simdjson::SUCCESS;
}

Result<object> MemberObject(object o, std::string_view path, std::string_view key) {
  FERRY_ASSIGN_OR_RETURN(element e, Member(o, path, key));
  return Object(e, Join(path, key));
}

Result<array> MemberArray(object o, std::string_view path, std::string_view key) {
  FERRY_ASSIGN_OR_RETURN(element e, Member(o, path, key));
  array a;
  if (e.get(a) != simdjson::SUCCESS) return Bad(Join(path, key), "expected an array");
  return a;
}

Result<std::string> MemberString(object o, std::string_view path, std::string_view key) {
  FERRY_ASSIGN_OR_RETURN(element e, Member(o, path, key));
  std::string_view s;
  if (e.get(s) != simdjson::SUCCESS) return Bad(Join(path, key), "expected a string");
  return std::string(s);
}

// XGBoost keeps its parameters as strings of decimal digits ("num_feature": "5").
Result<int64_t> MemberIntParam(object o, std::string_view path, std::string_view key) {
  FERRY_ASSIGN_OR_RETURN(std::string s, MemberString(o, path, key));
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return Bad(Join(path, key), fmt::format("'{}' is not an integer", s));
  }
  return v;
}

Result<int64_t> Int(element e, std::string_view path) {
  if (e.type() == element_type::INT64) return e.get_int64().value();
  if (e.type() == element_type::UINT64) return Bad(path, "integer out of range");
  return Bad(path, "expected an integer");
}

// An array of exactly `want` integers (want < 0: any length).
Result<std::vector<int64_t>> IntArray(object o, std::string_view path, std::string_view key, int64_t want) {
  FERRY_ASSIGN_OR_RETURN(array a, MemberArray(o, path, key));
  const std::string where = Join(path, key);
  if (want >= 0 && static_cast<int64_t>(a.size()) != want) {
    return Bad(where, fmt::format("has {} entries, expected {}", a.size(), want));
  }
  std::vector<int64_t> out;
  out.reserve(a.size());
  for (element e : a) {
    FERRY_ASSIGN_OR_RETURN(int64_t v, Int(e, where));
    out.push_back(v);
  }
  return out;
}

// An array of exactly `want` numbers (null stands for a float UBJSON could not spell in JSON).
Status NumberArray(object o, std::string_view path, std::string_view key, int64_t want) {
  FERRY_ASSIGN_OR_RETURN(array a, MemberArray(o, path, key));
  const std::string where = Join(path, key);
  if (static_cast<int64_t>(a.size()) != want) {
    return Bad(where, fmt::format("has {} entries, expected {}", a.size(), want));
  }
  for (element e : a) {
    if (!e.is_number() && !e.is_null()) return Bad(where, "expected numbers");
  }
  return Status::Ok();
}

Status EmptyOrAbsent(object o, std::string_view path, std::string_view key, std::string_view why) {
  if (!Has(o, key)) return Status::Ok();
  FERRY_ASSIGN_OR_RETURN(array a, MemberArray(o, path, key));
  if (a.size() != 0) return Bad(path, why);
  return Status::Ok();
}

struct Nodes {
  std::vector<int64_t> left, right, parents, split_index, default_left;
};

Result<Nodes> ReadNodes(object tree, std::string_view path, int64_t n) {
  Nodes nodes;
  FERRY_ASSIGN_OR_RETURN(nodes.left, IntArray(tree, path, "left_children", n));
  FERRY_ASSIGN_OR_RETURN(nodes.right, IntArray(tree, path, "right_children", n));
  FERRY_ASSIGN_OR_RETURN(nodes.parents, IntArray(tree, path, "parents", n));
  FERRY_ASSIGN_OR_RETURN(nodes.split_index, IntArray(tree, path, "split_indices", n));
  FERRY_ASSIGN_OR_RETURN(nodes.default_left, IntArray(tree, path, "default_left", n));
  for (std::string_view key : {"split_conditions", "base_weights", "loss_changes", "sum_hessian"}) {
    FERRY_RETURN_IF_ERROR(NumberArray(tree, path, key, n));
  }
  if (Has(tree, "split_type")) {
    FERRY_ASSIGN_OR_RETURN(std::vector<int64_t> types, IntArray(tree, path, "split_type", n));
    if (std::any_of(types.begin(), types.end(), [](int64_t t) { return t != 0; })) {
      return Bad(path, "has categorical splits, which this backend does not serve");
    }
  }
  for (std::string_view key : {"categories", "categories_nodes", "categories_segments", "categories_sizes"}) {
    FERRY_RETURN_IF_ERROR(EmptyOrAbsent(tree, path, key, "has categorical splits, which this backend does not serve"));
  }
  return nodes;
}

// Every child index in range; from the root each node reached once, with its parent recorded, and
// every split reached on a feature the model has.
Status CheckStructure(const Nodes& nodes, std::string_view path, int64_t num_feature) {
  const auto n = static_cast<int64_t>(nodes.left.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t l = nodes.left[i], r = nodes.right[i];
    const bool leaf = l == -1 && r == -1;
    if (!leaf && (l < 1 || l >= n || r < 1 || r >= n || l == r)) {
      return Bad(path, fmt::format("node {} has children ({}, {}); expected -1 for both or two of 1..{}", i, l, r, n - 1));
    }
    if (!leaf && r != l + 1) {
      // XGBoost 1.7's predictor finds the right child as the left one plus one (found by
      // fuzz_xgboost_model: swapped children read past the tree), and its trainer always writes them so.
      return Bad(path, fmt::format("node {} has children ({}, {}); the right child must follow the left one", i, l, r));
    }
    if (nodes.default_left[i] != 0 && nodes.default_left[i] != 1) {
      return Bad(path, fmt::format("node {}: default_left is {}, expected 0 or 1", i, nodes.default_left[i]));
    }
  }
  if (nodes.parents[0] != kRootParent && nodes.parents[0] != -1) {
    return Bad(path, fmt::format("the root's parent is {}, expected {}", nodes.parents[0], kRootParent));
  }
  std::vector<char> seen(static_cast<size_t>(n), 0);
  std::vector<int64_t> stack{0};
  seen[0] = 1;
  while (!stack.empty()) {
    const int64_t i = stack.back();
    stack.pop_back();
    if (nodes.left[i] == -1) continue;
    if (nodes.split_index[i] < 0 || nodes.split_index[i] >= num_feature) {
      return Bad(path, fmt::format("node {} splits on feature {}; the model has {} features", i,
                                   nodes.split_index[i], num_feature));
    }
    for (int64_t child : {nodes.left[i], nodes.right[i]}) {
      if (seen[child] != 0) return Bad(path, fmt::format("node {} is reached twice: not a tree", child));
      if (nodes.parents[child] != i) {
        return Bad(path, fmt::format("node {} records parent {}, but node {} is its parent", child,
                                     nodes.parents[child], i));
      }
      seen[child] = 1;
      stack.push_back(child);
    }
  }
  return Status::Ok();
}

Status CheckTree(element e, std::string_view path, int64_t index, int64_t num_feature) {
  FERRY_ASSIGN_OR_RETURN(object tree, Object(e, path));
  FERRY_ASSIGN_OR_RETURN(element id_element, Member(tree, path, "id"));
  FERRY_ASSIGN_OR_RETURN(int64_t id, Int(id_element, Join(path, "id")));
  if (id != index) return Bad(path, fmt::format("has id {}, expected its index {}", id, index));
  FERRY_ASSIGN_OR_RETURN(object param, MemberObject(tree, path, "tree_param"));
  const std::string param_path = Join(path, "tree_param");
  FERRY_ASSIGN_OR_RETURN(int64_t n, MemberIntParam(param, param_path, "num_nodes"));
  if (n < 1 || n > kMaxNodes) return Bad(param_path, fmt::format("num_nodes is {}", n));
  if (Has(param, "size_leaf_vector")) {
    FERRY_ASSIGN_OR_RETURN(int64_t leaf_vector, MemberIntParam(param, param_path, "size_leaf_vector"));
    if (leaf_vector != 0) return Bad(param_path, "vector leaves are not served by XGBoost 1.7");
  }
  FERRY_ASSIGN_OR_RETURN(Nodes nodes, ReadNodes(tree, path, n));
  return CheckStructure(nodes, path, num_feature);
}

// The gbtree model: {gbtree_model_param, trees, tree_info}. Returns the number of trees.
Result<int64_t> CheckTrees(object model, std::string_view path, int64_t num_feature, int64_t groups) {
  FERRY_ASSIGN_OR_RETURN(object param, MemberObject(model, path, "gbtree_model_param"));
  const std::string param_path = Join(path, "gbtree_model_param");
  FERRY_ASSIGN_OR_RETURN(int64_t num_trees, MemberIntParam(param, param_path, "num_trees"));
  if (Has(param, "num_parallel_tree")) {
    FERRY_ASSIGN_OR_RETURN(int64_t parallel, MemberIntParam(param, param_path, "num_parallel_tree"));
    if (parallel < 1) return Bad(param_path, fmt::format("num_parallel_tree is {}", parallel));
  }
  FERRY_ASSIGN_OR_RETURN(array trees, MemberArray(model, path, "trees"));
  if (num_trees < 0 || static_cast<int64_t>(trees.size()) != num_trees) {
    return Bad(path, fmt::format("num_trees is {} but there are {} trees", num_trees, trees.size()));
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<int64_t> info, IntArray(model, path, "tree_info", num_trees));
  for (size_t i = 0; i < info.size(); ++i) {
    if (info[i] < 0 || info[i] >= groups) {
      return Bad(Join(path, "tree_info"), fmt::format("tree {} adds to output {}; the model has {}", i, info[i], groups));
    }
  }
  int64_t index = 0;
  for (element tree : trees) {
    FERRY_RETURN_IF_ERROR(CheckTree(tree, fmt::format("{}.trees[{}]", path, index), index, num_feature));
    ++index;
  }
  return num_trees;
}

Status CheckBooster(object learner, XgboostModelInfo& info) {
  const std::string path = "learner.gradient_booster";
  FERRY_ASSIGN_OR_RETURN(object booster, MemberObject(learner, "learner", "gradient_booster"));
  FERRY_ASSIGN_OR_RETURN(info.booster, MemberString(booster, path, "name"));
  if (info.booster == "gbtree") {
    FERRY_ASSIGN_OR_RETURN(object model, MemberObject(booster, path, "model"));
    FERRY_ASSIGN_OR_RETURN(info.num_trees, CheckTrees(model, Join(path, "model"), info.num_feature, info.num_groups));
  } else if (info.booster == "dart") {
    FERRY_ASSIGN_OR_RETURN(object inner, MemberObject(booster, path, "gbtree"));
    FERRY_ASSIGN_OR_RETURN(object model, MemberObject(inner, Join(path, "gbtree"), "model"));
    FERRY_ASSIGN_OR_RETURN(info.num_trees,
                           CheckTrees(model, path + ".gbtree.model", info.num_feature, info.num_groups));
    FERRY_RETURN_IF_ERROR(NumberArray(booster, path, "weight_drop", info.num_trees));
  } else if (info.booster == "gblinear") {
    FERRY_ASSIGN_OR_RETURN(object model, MemberObject(booster, path, "model"));
    FERRY_RETURN_IF_ERROR(NumberArray(model, Join(path, "model"), "weights", (info.num_feature + 1) * info.num_groups));
  } else {
    return Bad(Join(path, "name"), fmt::format("unknown booster '{}' (known: gbtree, dart, gblinear)", info.booster));
  }
  return Status::Ok();
}

// learner_model_param, the objective and the feature lists.
Status CheckLearnerParams(object learner, XgboostModelInfo& info) {
  FERRY_ASSIGN_OR_RETURN(object param, MemberObject(learner, "learner", "learner_model_param"));
  const std::string path = "learner.learner_model_param";
  FERRY_ASSIGN_OR_RETURN(info.num_feature, MemberIntParam(param, path, "num_feature"));
  FERRY_ASSIGN_OR_RETURN(int64_t num_class, MemberIntParam(param, path, "num_class"));
  int64_t num_target = 1;
  if (Has(param, "num_target")) {
    FERRY_ASSIGN_OR_RETURN(num_target, MemberIntParam(param, path, "num_target"));
  }
  constexpr int64_t kMaxCount = int64_t{1} << 24;
  if (info.num_feature < 1 || info.num_feature > kMaxCount) return Bad(path, fmt::format("num_feature is {}", info.num_feature));
  if (num_class < 0 || num_class > kMaxCount) return Bad(path, fmt::format("num_class is {}", num_class));
  if (num_target < 1 || num_target > kMaxCount) return Bad(path, fmt::format("num_target is {}", num_target));
  if (num_class > 1 && num_target > 1) return Bad(path, "both num_class and num_target are above 1");
  info.num_groups = std::max({num_class, num_target, int64_t{1}});

  FERRY_ASSIGN_OR_RETURN(object objective, MemberObject(learner, "learner", "objective"));
  FERRY_ASSIGN_OR_RETURN(info.objective, MemberString(objective, "learner.objective", "name"));
  element softmax;
  if (objective.at_key("softmax_multiclass_param").get(softmax) == simdjson::SUCCESS) {
    const std::string softmax_path = "learner.objective.softmax_multiclass_param";
    FERRY_ASSIGN_OR_RETURN(object softmax_param, Object(softmax, softmax_path));
    FERRY_ASSIGN_OR_RETURN(int64_t objective_classes, MemberIntParam(softmax_param, softmax_path, "num_class"));
    if (objective_classes != num_class) {
      return Bad(softmax_path, fmt::format("num_class is {}, the learner's is {}", objective_classes, num_class));
    }
  }

  for (std::string_view key : {"feature_names", "feature_types"}) {
    if (!Has(learner, key)) continue;
    FERRY_ASSIGN_OR_RETURN(array names, MemberArray(learner, "learner", key));
    if (names.size() != 0 && static_cast<int64_t>(names.size()) != info.num_feature) {
      return Bad(Join("learner", key), fmt::format("has {} entries for {} features", names.size(), info.num_feature));
    }
    for (element e : names) {
      std::string_view s;
      if (e.get(s) != simdjson::SUCCESS) return Bad(Join("learner", key), "expected strings");
      if (key == "feature_types" && s == "c") {
        return Bad("learner.feature_types", "has categorical features, which this backend does not serve");
      }
    }
  }
  return Status::Ok();
}

Status CheckVersion(object root, std::array<int64_t, 3> library, XgboostModelInfo& info) {
  FERRY_ASSIGN_OR_RETURN(std::vector<int64_t> version, IntArray(root, "model", "version", 3));
  std::copy(version.begin(), version.end(), info.version.begin());
  const bool newer = version[0] > library[0] || (version[0] == library[0] && version[1] > library[1]);
  if (newer) {
    return InvalidArgument(fmt::format(
        "the model was written by XGBoost {}.{}.{}, newer than this server's library ({}.{}.{}), which "
        "misreads such models; save it with XGBoost {}.{} or older",
        version[0], version[1], version[2], library[0], library[1], library[2], library[0], library[1]));
  }
  return Status::Ok();
}

// XGBoost's parser and this check could read different members of an object that names one twice
// (found by fuzz_xgboost_model: a second "gradient_booster" holding two trees of one id passed the
// check and made XGBoost's loader free a tree twice), so no object may name a key twice.
Status RefuseDuplicateKeys(element root) {
  std::vector<element> stack{root};
  std::vector<std::string_view> keys;
  auto nested = [](element e) {
    return e.type() == element_type::OBJECT || e.type() == element_type::ARRAY;
  };
  while (!stack.empty()) {
    const element e = stack.back();
    stack.pop_back();
    object o;
    array a;
    if (e.get_object().get(o) == simdjson::SUCCESS) {
      keys.clear();
      for (simdjson::dom::key_value_pair field : o) {
        keys.push_back(field.key);
        if (nested(field.value)) stack.push_back(field.value);
      }
      std::sort(keys.begin(), keys.end());
      if (auto it = std::adjacent_find(keys.begin(), keys.end()); it != keys.end()) {
        return InvalidArgument(fmt::format("an object of the model names '{}' twice", std::string(*it).substr(0, 64)));
      }
    } else if (e.get_array().get(a) == simdjson::SUCCESS) {
      for (element child : a) {
        if (nested(child)) stack.push_back(child);
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<XgboostModelInfo> CheckXgboostModel(std::string_view bytes, XgboostFormat format,
                                           std::array<int64_t, 3> library_version) {
  // XGBoost 1.7 takes a file for JSON or UBJSON only when its first byte is '{'; anything else (leading
  // white space included) goes to its legacy binary reader, which trusts lengths it reads from the file
  // (found by fuzz_xgboost_model: an allocation of 2^61 bytes). So the check refuses what XGBoost would
  // not read as the format checked here.
  if (bytes.empty() || bytes.front() != '{') {
    return InvalidArgument(fmt::format("not a {} document XGBoost reads as one: the file must start with '{{' "
                                       "(no white space before it)",
                                       format == XgboostFormat::kUbjson ? "UBJSON" : "JSON"));
  }
  std::string transcoded;
  if (format == XgboostFormat::kUbjson) {
    FERRY_ASSIGN_OR_RETURN(transcoded, UbjsonToJson(bytes));
    bytes = transcoded;
  }
  const simdjson::padded_string text(bytes);
  simdjson::dom::parser parser;
  element root_element;
  if (const auto error = parser.parse(text).get(root_element); error != simdjson::SUCCESS) {
    return InvalidArgument(fmt::format("not a JSON document: {}", simdjson::error_message(error)));
  }
  FERRY_RETURN_IF_ERROR(RefuseDuplicateKeys(root_element));
  FERRY_ASSIGN_OR_RETURN(object root, Object(root_element, "model"));
  if (!Has(root, "learner")) return InvalidArgument("not an XGBoost model: no 'learner' object");
  XgboostModelInfo info;
  FERRY_RETURN_IF_ERROR(CheckVersion(root, library_version, info));
  FERRY_ASSIGN_OR_RETURN(object learner, MemberObject(root, "model", "learner"));
  FERRY_RETURN_IF_ERROR(CheckLearnerParams(learner, info));
  FERRY_RETURN_IF_ERROR(CheckBooster(learner, info));
  return info;
}

}  // namespace ferry
