#pragma once
// The OpenCV DNN backend: runs ONNX models with cv::dnn on the CPU.
//
// What it promises:
//  - CreateInstance reads <version_dir>/<config.model_filename>, loads it with cv::dnn::readNetFromONNX,
//    runs one warm-up forward with zero inputs of the declared shapes (batch 1 when batched; a -1 dim is
//    warmed as 1) and checks that every declared output exists and has the declared element count per
//    row. Any mismatch, unreadable file or OpenCV exception is a Status; nothing throws out of here.
//  - Each instance owns its own cv::dnn::Net (cv::dnn::Net is not thread-safe).
//  - Execute takes inputs of any numeric dtype (FP32 is wrapped without a copy when aligned; others are
//    converted to float, since OpenCV DNN computes in FP32) and returns outputs in the declared dtype
//    and the shape [batch] + declared dims (a -1 dim is taken from what the network returned). BYTES
//    tensors are rejected when the instance is created.
//
// Threads: cv::setNumThreads is process-wide (one TBB arena for all of OpenCV). When
// config.threads_per_instance > 0, CreateInstance sets it to that value, so the last model loaded wins;
// give every OpenCV model the same value (or leave it 0 and let the server set it once). Changing it
// waits for every forward pass in progress, because OpenCV rebuilds its thread pool underneath them.
#include <memory>

#include "backend/backend.h"

namespace ferry {

// Thread-safe: CreateInstance may be called from several loader threads at once.
class OpenCvDnnBackend : public Backend {
 public:
  std::string_view name() const override { return "opencv_dnn"; }
  Result<std::unique_ptr<ModelInstance>> CreateInstance(
      const ModelConfig& config, const std::filesystem::path& version_dir) override;
};

std::unique_ptr<Backend> MakeOpenCvDnnBackend();

}  // namespace ferry
