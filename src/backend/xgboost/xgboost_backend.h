#pragma once
// The xgboost backend: gradient-boosted tree models (and XGBoost's linear and DART boosters) served
// through XGBoost's C API, from Debian's libxgboost 1.7.4.
//
// What it promises:
//  - CreateInstance reads <version_dir>/<config.model_filename>, which must be a `.json` or `.ubj`
//    file as XGBoost's `Booster.save_model` writes it (the legacy binary format is refused: nothing
//    checks it), at most 1 GiB. The document is checked before XGBoost sees it
//    (xgboost_model_check.h: a model XGBoost would crash on, or one from an XGBoost newer than the
//    library, is a failed load with the reason), then loaded from the same bytes, so a file replaced
//    meanwhile cannot slip past the check.
//  - The config declares one FP32 input and one FP32 output. Batched (max_batch_size > 0): input dims
//    [features], output dims [values]; unbatched: [rows, features] and [rows, values] (rows may be
//    -1). `features` must equal the model's feature count (XGBoosterGetNumFeature) and `values` what
//    the model gives per row (1, or the classes of a multi-class model, found by a warm-up prediction
//    at load; -1 accepts it); a difference fails the load, naming both.
//  - Execute predicts the whole batch in one in-place call (XGBoosterPredictFromDense, strict shape;
//    a gblinear model, which 1.7 cannot predict in place, through a DMatrix of the rows):
//    NaN is a missing value (XGBoost's default); an infinite value is refused (InvalidArgument naming
//    the row and feature), as XGBoost's Python DMatrix refuses it. Request bytes are read in place
//    (copied only when not 4-byte aligned); outputs are copied out, since XGBoost reuses its buffer.
//  - Every C API failure becomes a Status with XGBoost's message (without its stack trace); nothing
//    throws out of here.
//
// Parameters (config.yaml `parameters:`; unknown keys are errors):
//   output: prediction   # prediction: what Booster.predict returns (a probability for binary:logistic
//                        #   and multi:softprob, the value for regression, the class for multi:softmax);
//                        # probability: the same, but the load fails unless the objective gives one;
//                        # margin: the raw sum of the trees (output_margin=True), before the link.
// `instance_group.threads` sets XGBoost's nthread for each instance (0: XGBoost uses every core).
#include <array>
#include <cstdint>
#include <memory>

#include "backend/backend.h"

namespace ferry {

std::unique_ptr<Backend> MakeXgboostBackend();

// The version of the linked libxgboost, [major, minor, patch].
std::array<int64_t, 3> XgboostLibraryVersion();

}  // namespace ferry
