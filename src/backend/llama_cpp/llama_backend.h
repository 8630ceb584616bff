#pragma once
// The llama.cpp backend: GGUF language models on the CPU (or a GPU in a GGML_CUDA build), behind the
// LanguageModel interface. One model file, one context holding `slots` independent sequences, each with
// its own part of the KV cache; the generation scheduler fills a decode batch from all of them.
//
// Parameters (config.yaml `parameters:`; unknown keys are errors):
//   slots: 4                 # sequences decoded together (continuous batching width)
//   context_per_slot: 2048   # positions each sequence may use (prompt + output); capped by the model's
//                            #   training context; llama.cpp rounds it up to a multiple of 256
//   batch_tokens: 512        # tokens one decode step takes (prompt chunks + one per generating slot)
//   gpu_layers: 0            # layers offloaded in a GPU build (-1: all); ignored on a CPU build
// `instance_group.threads` sets the compute threads (0: all cores). `instance_group.count` must be 1:
// the slots are the parallelism.
#include <memory>

#include "backend/backend.h"

namespace ferry {

std::unique_ptr<Backend> MakeLlamaBackend();

}  // namespace ferry
