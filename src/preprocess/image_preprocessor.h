#pragma once
// The `preprocess` block of a model config, run with OpenCV: each element of the public BYTES input is
// raw pixels (exactly raw width x height x channels bytes; 3 channels are BGR) or an encoded image
// (anything cv::imdecode reads; JPEG and PNG are checked for truncation first), then colour-converted,
// cropped, resized and normalised into one FP32 NCHW plane set of the model's tensor.
#include <memory>

#include "backend/input_transform.h"

namespace ferry {

Result<std::shared_ptr<const InputTransform>> CreateImagePreprocessor(const ModelConfig& config);

}  // namespace ferry
