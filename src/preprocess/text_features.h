#pragma once
// The `preprocess: {text: ...}` block of a model config (TextFeaturesConfig): each element of the
// public BYTES input is a text (any bytes; UTF-8 passes through byte by byte), turned into the unit-length
// vector of its hashed character n-gram counts, one FP32 row of the model's tensor. No OpenCV.
#include <memory>
#include <string_view>
#include <vector>

#include "backend/input_transform.h"

namespace ferry {

// The features of one text; the model's trainer computes the same (examples/feedback-sentiment).
std::vector<float> TextFeatureVector(const TextFeaturesConfig& config, std::string_view text);

Result<std::shared_ptr<const InputTransform>> CreateTextFeatures(const ModelConfig& config);

// The transform a config's `preprocess` block asks for: text features or image pre-processing.
Result<std::shared_ptr<const InputTransform>> CreatePreprocessor(const ModelConfig& config);

}  // namespace ferry
