#pragma once
// OIP v2 REST codecs: JSON body (simdjson) and the binary tensor extension, both directions.
// Pure functions, thread-safe. Inputs from the network are validated, never asserted.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "tensor/infer_message.h"

namespace ferry {

struct DecodeLimits {
  // Nesting of the whole JSON document (objects and arrays; the root object is level 1, so "data" of an
  // input sits at level 4). Values above 4096 are treated as 4096.
  size_t max_json_depth = 64;
  int64_t max_elements = int64_t{1} << 31;  // per tensor
  size_t max_tensors = 1024;                // inputs, and requested outputs, each
};

// Decodes an inference request body.
// Binary tensors become Buffer views into `body` and share its ownership (no copy).
// `json_size` is the Inference-Header-Content-Length value (nullopt: the whole body is JSON).
// Errors are kInvalidArgument with a message naming the offending field/tensor.
// Checks: JSON well-formed; inputs present; each input has name, known datatype, shape of non-negative
// dims, and exactly one of "data" (flat or nested, element count == shape product, values fit the
// type) or parameters.binary_data_size (sizes sum exactly to the binary part, in order);
// json_size <= body size.
// Value rules for "data" (see json_tensor_data.h): BOOL takes true/false; integer types take integers
// (or integral numbers like 2.0) that fit exactly; FP16/BF16/FP32/FP64 take any number that stays
// finite after rounding to nearest-even; BYTES takes strings. null, NaN and Inf are not accepted (JSON
// cannot spell the latter two). Nested data is flattened row-major; only the total count must match.
// The "id" must be a string; unknown top-level keys are ignored; parameters must be scalars. Input
// parameters other than binary_data_size are validated and dropped (Tensor has no place for them).
// Binary inputs are unaligned views into `body`. Allocation failure gives kInternal; nothing throws.
// Speed: a body string with 64 bytes of spare capacity (reserve(size + 64) before reading into it)
// lets the JSON be parsed in place instead of copied first.
Result<InferRequest> DecodeInferRequest(std::shared_ptr<const std::string> body,
                                        std::optional<size_t> json_size,
                                        const DecodeLimits& limits = {});

// Decodes the JSON of a v2 inference response (what EncodeInferResponse writes with every output in
// JSON, and what a batch writes per line): model_name, model_version, id, parameters and outputs, each
// output under the same rules as a request's JSON input. Binary outputs are refused (there is no binary
// part); unknown keys are ignored. kInvalidArgument naming the field otherwise.
Result<InferResponse> DecodeInferResponseJson(std::string_view json, const DecodeLimits& limits = {});

struct EncodedResponse {
  std::string body;      // JSON part followed by binary parts
  size_t json_size = 0;  // goes into Inference-Header-Content-Length when body.size() > json_size
};

// Encodes a response; outputs with binary_outputs[i] carry parameters.binary_data_size and their
// bytes follow the JSON in order (binary_outputs shorter than outputs means JSON for the rest).
// JSON data is flat (row-major): BOOL as true/false, FP16/BF16 as the shortest float text, NaN/Inf
// as null, BYTES as strings (invalid UTF-8 bytes become U+FFFD; see json_writer.h).
// "model_version" is always written, "id" and "parameters" only when non-empty.
// Outputs are expected to pass Tensor::ValidateData(); if one does not, the JSON data holds what its
// buffer holds (never reads past it) and the shape is written as given.
EncodedResponse EncodeInferResponse(const InferResponse& response);

// {"error": "<message>"} with proper escaping.
std::string EncodeErrorJson(std::string_view message);

}  // namespace ferry
