#pragma once
// The OpenVINO backend: runs ONNX models (and OpenVINO IR, model.xml + model.bin, e.g. int8 models made
// by NNCF) with OpenVINO's runtime, on the CPU here; other devices OpenVINO supports (GPU, NPU) are a
// `device` parameter away but untested.
//
// What it promises:
//  - CreateInstance reads <version_dir>/<config.model_filename>, checks every declared input and output
//    exists in the model with a compatible rank and static dims, gives the inputs a dynamic batch
//    dimension (1..max_batch_size) when the model is batched, converts the declared dtypes to the
//    model's own inside the compiled graph (so a UINT8 image can feed an FP32 model), compiles one
//    model with one infer request per instance, and runs one warm-up inference with zero inputs.
//  - Computes in FP32 unless the config asks otherwise: OpenVINO's CPU plugin defaults to BF16 on CPUs
//    with AVX512-BF16/AMX, which silently changes answers (measured: 0.0134 vs 0.0120 on a softmax
//    output of the example CNN).
//  - Execute wraps the request's bytes without copying and copies the outputs out (the request reuses
//    its output memory on the next call). Nothing throws out of here; OpenVINO's exceptions become
//    Status.
//
// Parameters (config.yaml `parameters:`; unknown keys are errors):
//   device: CPU                   # OpenVINO device name
//   inference_precision: f32      # f32 | bf16 | f16
//   performance_hint: latency     # latency | throughput
//   num_streams: 1                # streams inside each instance
// `instance_group.threads` sets the inference threads of each instance (0: OpenVINO decides).
#include <memory>

#include "backend/backend.h"

namespace ferry {

std::unique_ptr<Backend> MakeOpenVinoBackend();

}  // namespace ferry
