#pragma once
// Transport-neutral inference request and response (the OIP v2 model, decoded). Value types.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "tensor/tensor.h"

namespace ferry {

// OIP "parameters": string, int64, double or bool values.
using ParameterValue = std::variant<std::string, int64_t, double, bool>;
using Parameters = std::map<std::string, ParameterValue>;

struct RequestedOutput {
  std::string name;
  // binary_data parameter of the output; nullopt means "follow the request's binary_data_output".
  std::optional<bool> binary_data;
  Parameters parameters;  // everything else, passed through
};

struct InferRequest {
  std::string id;
  Parameters parameters;  // request-level, minus binary_data_output which is lifted below
  bool binary_data_output = false;
  std::vector<Tensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty = all outputs
  // The transport asked not to be answered from the response cache (HTTP `Cache-Control: no-cache`).
  bool cache_bypass = false;
  // Who is charged for it (an API key's name, "(admin)", or "(none)" with keys off): the transport
  // sets it once the caller is authenticated.
  std::string caller = "(none)";
};

struct InferResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  Parameters parameters;
  std::vector<Tensor> outputs;
  // Parallel to outputs: whether each is sent in binary.
  std::vector<bool> binary_outputs;
  // Not part of the body: this request's share of the model's compute time (what it is charged for;
  // 0 for an answer from a table or the cache).
  int64_t compute_us = 0;
};

}  // namespace ferry
