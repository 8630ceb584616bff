// Precomputed tables' two parsers: a table file's line (a v2 response, DecodeInferResponseJson) and a
// stored entry's blob (DecodeEntryOutputs). The first byte picks one; neither may crash, and what each
// accepts must survive a round trip through its writer.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hybrid/table_entry.h"
#include "tensor/infer_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    ferry::Result<ferry::InferResponse> response = ferry::DecodeInferResponseJson(rest);
    if (!response.ok()) return 0;
    for (const ferry::Tensor& t : response->outputs) fuzz::Check(t.ValidateData().ok(), "a decoded output is whole");
    const ferry::EncodedResponse encoded = ferry::EncodeInferResponse(*response);
    ferry::Result<ferry::InferResponse> again = ferry::DecodeInferResponseJson(encoded.body);
    fuzz::Check(again.ok(), "an encoded response decodes");
    fuzz::Check(again->outputs.size() == response->outputs.size(), "the same outputs");
    fuzz::Check(again->id == response->id && again->model_version == response->model_version, "the same id");
    return 0;
  }
  ferry::Result<std::vector<ferry::Tensor>> outputs = ferry::DecodeEntryOutputs(rest);
  if (!outputs.ok()) return 0;
  fuzz::Check(ferry::EncodeEntryOutputs(*outputs) == rest, "an accepted blob is what its outputs encode to");
  return 0;
}
