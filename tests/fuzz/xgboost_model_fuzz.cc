// Fuzzes the xgboost backend's model-file check: the first byte picks the format ('u': UBJSON, else
// JSON), the rest is the model file. Every refusal must be kInvalidArgument. A file the check accepts is
// then loaded by XGBoost 1.7 and predicts one row of missing values and one of zeros, as the backend
// does at load: the check exists so that this never crashes (XGBoost's own loader trusts its input).
#include <xgboost/c_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fuzz_check.h"
#include "backend/xgboost/ubjson.h"
#include "backend/xgboost/xgboost_model_check.h"

namespace {

using namespace ferry;

using fuzz::Check;

void LoadAndPredict(const std::string& bytes, const XgboostModelInfo& info) {
  BoosterHandle booster = nullptr;
  Check(XGBoosterCreate(nullptr, 0, &booster) == 0, "XGBoosterCreate failed");
  if (XGBoosterLoadModelFromBuffer(booster, bytes.data(), bytes.size()) == 0) {
    XGBoosterSetParam(booster, "nthread", "1");
    std::vector<float> rows(static_cast<size_t>(2 * info.num_feature), 0.0f);
    for (int64_t i = 0; i < info.num_feature; ++i) rows[static_cast<size_t>(i)] = std::nanf("");
    const std::string array = fmt::format(R"({{"data":[{},true],"shape":[2,{}],"typestr":"<f4","version":3}})",
                                          reinterpret_cast<uintptr_t>(rows.data()), info.num_feature);
    const char* config = R"({"type":0,"training":false,"iteration_begin":0,"iteration_end":0,)"
                         R"("strict_shape":true,"missing":NaN,"cache_id":0})";
    const bst_ulong* shape = nullptr;
    bst_ulong dims = 0;
    const float* out = nullptr;
    XGBoosterPredictFromDense(booster, array.c_str(), config, nullptr, &shape, &dims, &out);
  }
  XGBoosterFree(booster);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const XgboostFormat format = data[0] == 'u' ? XgboostFormat::kUbjson : XgboostFormat::kJson;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (format == XgboostFormat::kUbjson) {
    auto json = UbjsonToJson(bytes, 16);
    Check(json.ok() || json.status().code() == StatusCode::kInvalidArgument, "UBJSON: not kInvalidArgument");
  }
  auto info = CheckXgboostModel(bytes, format, {1, 7, 4});
  if (!info.ok()) {
    Check(info.status().code() == StatusCode::kInvalidArgument, "an error other than kInvalidArgument");
    Check(!info.status().message().empty(), "an error without a message");
    return 0;
  }
  Check(info->num_feature >= 1 && info->num_groups >= 1, "accepted a model without features or outputs");
  // Wide models would make every accepted input slow; their shape is not what is being fuzzed.
  if (info->num_feature <= 4096 && info->num_groups <= 4096) LoadAndPredict(bytes, *info);
  return 0;
}
