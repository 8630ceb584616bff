// DecodeInferRequest: the OIP v2 request body (JSON, optionally followed by binary tensor data).
// The per-element "data" rules live in json_tensor_data.cc; this file owns the request structure,
// parameters and the binary extension.
#include <algorithm>
#include <exception>
#include <new>
#include <optional>
#include <string_view>
#include <tuple>
#include <unordered_set>

#include <fmt/format.h>
#include <simdjson.h>

#include "tensor/bytes_elements.h"
#include "tensor/infer_codec.h"
#include "tensor/json_tensor_data.h"

namespace ferry {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// A thread keeps its parser (and its buffers) between requests up to this JSON size; larger documents
// get a parser of their own so one huge request does not pin its memory to the thread forever.
constexpr size_t kKeepParserBytes = size_t{8} << 20;
// simdjson allocates per-level state up front, so an absurd configured depth is capped.
constexpr size_t kMaxSupportedDepth = 4096;

simdjson::dom::parser& ThreadParser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

Status JsonSyntaxError(simdjson::error_code code, size_t max_depth) {
  if (code == simdjson::DEPTH_ERROR) {
    return InvalidArgument(fmt::format("request JSON nests deeper than the limit of {} levels", max_depth));
  }
  if (code == simdjson::MEMALLOC) return Internal("out of memory while parsing the request JSON");
  return InvalidArgument(fmt::format("request body is not valid JSON: {}", simdjson::error_message(code)));
}

// Stores a known key's value in its slot; a second occurrence of the key is an error.
Status FillOnce(std::optional<element>* slot, const simdjson::dom::key_value_pair& field, std::string_view owner) {
  if (slot == nullptr) return Status::Ok();
  if (slot->has_value()) {
    return InvalidArgument(fmt::format("{} has the key '{}' more than once", owner, field.key));
  }
  *slot = field.value;
  return Status::Ok();
}

// OIP parameter values are scalars: string, integer, double or bool.
Status ParseParameters(element value, std::string_view owner, Parameters* out) {
  simdjson::dom::object object;
  if (value.get_object().get(object) != simdjson::SUCCESS) {
    return InvalidArgument(fmt::format("{} parameters must be an object", owner));
  }
  for (simdjson::dom::key_value_pair field : object) {
    const std::string key(field.key);
    const element v = field.value;
    ParameterValue parsed;
    switch (v.type()) {
      case element_type::STRING: parsed = std::string(v.get_string().value_unsafe()); break;
      case element_type::INT64: parsed = v.get_int64().value_unsafe(); break;
      case element_type::DOUBLE: parsed = v.get_double().value_unsafe(); break;
      case element_type::BOOL: parsed = v.get_bool().value_unsafe(); break;
      case element_type::UINT64:
        return InvalidArgument(fmt::format("{} parameter '{}' is out of the int64 range", owner, key));
      default:
        return InvalidArgument(
            fmt::format("{} parameter '{}' must be a string, number or boolean", owner, key));
    }
    if (!out->emplace(key, std::move(parsed)).second) {
      return InvalidArgument(fmt::format("{} parameter '{}' is given more than once", owner, key));
    }
  }
  return Status::Ok();
}

// Removes `key` from `params` and returns it as a bool; nullopt when absent.
Result<std::optional<bool>> TakeBoolParameter(Parameters* params, const char* key, std::string_view owner) {
  auto it = params->find(key);
  if (it == params->end()) return std::optional<bool>();
  const bool* value = std::get_if<bool>(&it->second);
  if (value == nullptr) return InvalidArgument(fmt::format("{} parameter '{}' must be a boolean", owner, key));
  const bool result = *value;
  params->erase(it);
  return std::optional<bool>(result);
}

// What is left of the body after the JSON part; inputs take consecutive slices of it in order.
struct BinaryPart {
  bool present = false;  // a JSON size was given
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t used = 0;
  int binary_inputs = 0;
};

class RequestDecoder {
 public:
  RequestDecoder(std::shared_ptr<const std::string> body, size_t json_size, bool has_binary,
                 const DecodeLimits& limits)
      : body_(std::move(body)), json_size_(json_size), limits_(limits) {
    binary_.present = has_binary;
    binary_.data = reinterpret_cast<const uint8_t*>(body_->data()) + json_size;
    binary_.size = body_->size() - json_size;
  }

  Result<InferRequest> Decode(element root);
  // A v2 response's JSON (outputs with "data", no binary part): the same tensor rules as inputs.
  Result<InferResponse> DecodeResponse(element root);

 private:
  Status DecodeInputs(element value);
  Status DecodeInput(element value, size_t index);
  Status DecodeOutputs(element value);
  Status CheckBinaryFullyUsed() const;
  Status TakeBinarySlice(Tensor* tensor, int64_t declared_size, int64_t element_count);

  std::shared_ptr<const std::string> body_;
  size_t json_size_;
  const DecodeLimits& limits_;
  BinaryPart binary_;
  InferRequest request_;
  // How tensors and their list are named in messages: a request's inputs or a response's outputs.
  const char* noun_ = "input";
  const char* list_ = "inputs";
  const char* owner_ = "request";
  // Names point into the parsed document, which outlives the decoder.
  std::unordered_set<std::string_view> input_names_;
};

Result<InferRequest> RequestDecoder::Decode(element root) {
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    return InvalidArgument("request body must be a JSON object");
  }
  std::optional<element> id, parameters, inputs, outputs;
  for (simdjson::dom::key_value_pair field : object) {
    // Unknown keys are ignored for forward compatibility with protocol extensions; a known key given
    // twice is refused, since parsers disagree on which one wins.
    std::optional<element>* slot = nullptr;
    if (field.key == "id") slot = &id;
    else if (field.key == "parameters") slot = &parameters;
    else if (field.key == "inputs") slot = &inputs;
    else if (field.key == "outputs") slot = &outputs;
    FERRY_RETURN_IF_ERROR(FillOnce(slot, field, "the request"));
  }
  if (id) {
    std::string_view text;
    if (id->get_string().get(text) != simdjson::SUCCESS) return InvalidArgument("request id must be a string");
    request_.id = std::string(text);
  }
  if (parameters) {
    FERRY_RETURN_IF_ERROR(ParseParameters(*parameters, "request", &request_.parameters));
    FERRY_ASSIGN_OR_RETURN(std::optional<bool> binary_output,
                           TakeBoolParameter(&request_.parameters, "binary_data_output", "request"));
    request_.binary_data_output = binary_output.value_or(false);
  }
  if (!inputs) return InvalidArgument("request has no inputs");
  FERRY_RETURN_IF_ERROR(DecodeInputs(*inputs));
  if (outputs) FERRY_RETURN_IF_ERROR(DecodeOutputs(*outputs));
  FERRY_RETURN_IF_ERROR(CheckBinaryFullyUsed());
  return std::move(request_);
}

Result<InferResponse> RequestDecoder::DecodeResponse(element root) {
  noun_ = "output";
  list_ = "outputs";
  owner_ = "response";
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) return InvalidArgument("a response must be a JSON object");
  std::optional<element> model_name, model_version, id, parameters, outputs;
  for (simdjson::dom::key_value_pair field : object) {
    std::optional<element>* slot = nullptr;
    if (field.key == "model_name") slot = &model_name;
    else if (field.key == "model_version") slot = &model_version;
    else if (field.key == "id") slot = &id;
    else if (field.key == "parameters") slot = &parameters;
    else if (field.key == "outputs") slot = &outputs;
    FERRY_RETURN_IF_ERROR(FillOnce(slot, field, "the response"));
  }
  InferResponse response;
  for (auto [value, target, key] : {std::tuple{&model_name, &response.model_name, "model_name"},
                                    std::tuple{&model_version, &response.model_version, "model_version"},
                                    std::tuple{&id, &response.id, "id"}}) {
    if (!*value) continue;
    std::string_view text;
    if ((*value)->get_string().get(text) != simdjson::SUCCESS) {
      return InvalidArgument(fmt::format("response {} must be a string", key));
    }
    *target = std::string(text);
  }
  if (parameters) FERRY_RETURN_IF_ERROR(ParseParameters(*parameters, "response", &response.parameters));
  if (!outputs) return InvalidArgument("response has no outputs");
  FERRY_RETURN_IF_ERROR(DecodeInputs(*outputs));
  if (binary_.binary_inputs > 0) return InvalidArgument("response outputs must carry their data as JSON");
  response.outputs = std::move(request_.inputs);
  response.binary_outputs.assign(response.outputs.size(), false);
  return response;
}

Status RequestDecoder::DecodeInputs(element value) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) return InvalidArgument(fmt::format("{} must be an array", list_));
  const size_t count = array.size();
  if (count == 0) return InvalidArgument(fmt::format("{} must not be empty", list_));
  if (count > limits_.max_tensors) {
    return InvalidArgument(fmt::format("{} has {} {}, over the limit of {}", owner_, count, list_, limits_.max_tensors));
  }
  request_.inputs.reserve(count);
  size_t index = 0;
  for (element input : array) FERRY_RETURN_IF_ERROR(DecodeInput(input, index++));
  return Status::Ok();
}

Status RequestDecoder::DecodeInput(element value, size_t index) {
  simdjson::dom::object object;
  if (value.get_object().get(object) != simdjson::SUCCESS) {
    return InvalidArgument(fmt::format("{}[{}] must be an object", list_, index));
  }
  std::optional<element> name_value, datatype_value, shape_value, parameters_value, data_value;
  for (simdjson::dom::key_value_pair field : object) {
    std::optional<element>* slot = nullptr;
    if (field.key == "name") slot = &name_value;
    else if (field.key == "datatype") slot = &datatype_value;
    else if (field.key == "shape") slot = &shape_value;
    else if (field.key == "parameters") slot = &parameters_value;
    else if (field.key == "data") slot = &data_value;
    FERRY_RETURN_IF_ERROR(FillOnce(slot, field, fmt::format("{}[{}]", list_, index)));
  }

  std::string_view name;
  if (!name_value) return InvalidArgument(fmt::format("{}[{}] has no name", list_, index));
  if (name_value->get_string().get(name) != simdjson::SUCCESS) {
    return InvalidArgument(fmt::format("{}[{}].name must be a string", list_, index));
  }
  if (name.empty()) return InvalidArgument(fmt::format("{}[{}].name is empty", list_, index));
  if (!input_names_.insert(name).second) {
    return InvalidArgument(fmt::format("{} \'{}\' appears more than once", noun_, name));
  }

  Tensor tensor;
  tensor.name = std::string(name);
  std::string_view datatype;
  if (!datatype_value) return InvalidArgument(fmt::format("{} \'{}\' has no datatype", noun_, name));
  if (datatype_value->get_string().get(datatype) != simdjson::SUCCESS) {
    return InvalidArgument(fmt::format("{} \'{}\': datatype must be a string", noun_, name));
  }
  const std::optional<DataType> dtype = DataTypeFromName(datatype);
  if (!dtype) return InvalidArgument(fmt::format("{} \'{}\': unknown datatype '{}'", noun_, name, datatype));
  tensor.dtype = *dtype;

  if (!shape_value) return InvalidArgument(fmt::format("{} \'{}\' has no shape", noun_, name));
  simdjson::dom::array shape_array;
  if (shape_value->get_array().get(shape_array) != simdjson::SUCCESS) {
    return InvalidArgument(fmt::format("{} \'{}\': shape must be an array of integers", noun_, name));
  }
  tensor.shape.reserve(shape_array.size());
  for (element dim : shape_array) {
    int64_t d = 0;
    if (dim.type() != element_type::INT64 || (d = dim.get_int64().value_unsafe()) < 0) {
      return InvalidArgument(fmt::format("{} \'{}\': shape must hold non-negative integers, found {}", noun_, name,
                                         simdjson::minify(dim)));
    }
    tensor.shape.push_back(d);
  }
  auto element_count = ElementCount(tensor.shape);
  if (!element_count.ok()) return element_count.status().WithContext(fmt::format("{} \'{}\'", noun_, name));
  if (*element_count > limits_.max_elements) {
    return InvalidArgument(fmt::format("{} \'{}\' has {} elements, over the limit of {}", noun_, name, *element_count,
                                       limits_.max_elements));
  }

  std::optional<int64_t> binary_size;
  if (parameters_value) {
    // Input parameters other than binary_data_size have no home in Tensor; they are validated and dropped.
    Parameters parameters;
    const std::string owner = fmt::format("{} \'{}\'", noun_, name);
    FERRY_RETURN_IF_ERROR(ParseParameters(*parameters_value, owner, &parameters));
    if (auto it = parameters.find("binary_data_size"); it != parameters.end()) {
      const int64_t* size = std::get_if<int64_t>(&it->second);
      if (size == nullptr || *size < 0) {
        return InvalidArgument(
            fmt::format("{} \'{}\': parameters.binary_data_size must be a non-negative integer", noun_, name));
      }
      binary_size = *size;
    }
  }

  if (binary_size && data_value) {
    return InvalidArgument(fmt::format("{} \'{}\' has both data and parameters.binary_data_size", noun_, name));
  }
  if (binary_size) {
    FERRY_RETURN_IF_ERROR(TakeBinarySlice(&tensor, *binary_size, *element_count));
  } else if (data_value) {
    // Every JSON scalar takes at least two bytes ("0,"), so a shape needing more elements than that can
    // never match; rejecting it here also keeps the allocation below bounded by the body size.
    if (static_cast<uint64_t>(*element_count) > json_size_ / 2 + 1) {
      return InvalidArgument(fmt::format("{} \'{}\': data has fewer elements than the {} that shape {} needs", noun_, name,
                                         *element_count, ShapeToString(tensor.shape)));
    }
    tensor_internal::JsonDataTarget target;
    target.tensor_name = name;
    target.noun = noun_;
    target.dtype = tensor.dtype;
    target.shape = &tensor.shape;
    target.expected_count = *element_count;
    target.max_nesting = limits_.max_json_depth;
    std::vector<uint8_t> bytes;
    FERRY_RETURN_IF_ERROR(tensor_internal::DecodeJsonTensorData(*data_value, target, &bytes));
    tensor.data = Buffer::Own(std::move(bytes));
  } else {
    return InvalidArgument(fmt::format("{} \'{}\' has neither data nor parameters.binary_data_size", noun_, name));
  }
  request_.inputs.push_back(std::move(tensor));
  return Status::Ok();
}

Status RequestDecoder::TakeBinarySlice(Tensor* tensor, int64_t declared_size, int64_t element_count) {
  const std::string& name = tensor->name;
  if (!binary_.present) {
    return InvalidArgument(fmt::format(
        "input '{}' has parameters.binary_data_size but the request has no binary part "
        "(Inference-Header-Content-Length missing)",
        name));
  }
  const size_t remaining = binary_.size - binary_.used;
  if (static_cast<uint64_t>(declared_size) > remaining) {
    return InvalidArgument(fmt::format("{} \'{}\': binary_data_size {} runs past the end of the body ({} bytes remain)",
                                       noun_, name, declared_size, remaining));
  }
  const auto size = static_cast<size_t>(declared_size);
  const uint8_t* slice = binary_.data + binary_.used;
  if (tensor->dtype == DataType::kBytes) {
    auto counted = CountBytesElements({slice, size});
    if (!counted.ok()) return counted.status().WithContext(fmt::format("{} \'{}\' binary data", noun_, name));
    if (*counted != element_count) {
      return InvalidArgument(fmt::format("{} \'{}\': binary data holds {} BYTES elements but shape {} needs {}", noun_, name,
                                         *counted, ShapeToString(tensor->shape), element_count));
    }
  } else {
    auto expected = FixedByteSize(tensor->dtype, tensor->shape);
    if (!expected.ok()) return expected.status().WithContext(fmt::format("{} \'{}\'", noun_, name));
    if (*expected != declared_size) {
      return InvalidArgument(fmt::format("{} \'{}\': binary_data_size is {} but {} {} needs {} bytes", noun_, name,
                                         declared_size, DataTypeName(tensor->dtype), ShapeToString(tensor->shape),
                                         *expected));
    }
    if (tensor->dtype == DataType::kBool) {
      // One byte per element, 0 or 1: any other byte is no boolean (and would not survive a JSON answer).
      const uint8_t* bad = std::find_if(slice, slice + size, [](uint8_t b) { return b > 1; });
      if (bad != slice + size) {
        return InvalidArgument(fmt::format("{} \'{}\': BOOL element {} is the byte {}; binary BOOL is 0 or 1", noun_, name,
                                           bad - slice, static_cast<int>(*bad)));
      }
    }
  }
  // A view, not a copy: the tensor keeps the whole body alive.
  tensor->data = Buffer::View(body_, slice, size);
  binary_.used += size;
  ++binary_.binary_inputs;
  return Status::Ok();
}

Status RequestDecoder::CheckBinaryFullyUsed() const {
  if (binary_.used == binary_.size) return Status::Ok();
  const size_t extra = binary_.size - binary_.used;
  if (binary_.binary_inputs == 0) {
    return InvalidArgument(fmt::format(
        "the body has {} bytes after the JSON part (Inference-Header-Content-Length {}) but no input declares "
        "parameters.binary_data_size",
        extra, json_size_));
  }
  return InvalidArgument(fmt::format("the body has {} bytes of binary data after the last binary input ({} of {} used)",
                                     extra, binary_.used, binary_.size));
}

Status RequestDecoder::DecodeOutputs(element value) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) return InvalidArgument("outputs must be an array");
  if (array.size() > limits_.max_tensors) {
    return InvalidArgument(
        fmt::format("request asks for {} outputs, over the limit of {}", array.size(), limits_.max_tensors));
  }
  std::unordered_set<std::string_view> names;
  request_.outputs.reserve(array.size());
  size_t index = 0;
  for (element output : array) {
    simdjson::dom::object object;
    if (output.get_object().get(object) != simdjson::SUCCESS) {
      return InvalidArgument(fmt::format("outputs[{}] must be an object", index));
    }
    std::string_view name;
    std::optional<element> name_slot, parameters_slot;
    for (simdjson::dom::key_value_pair field : object) {
      std::optional<element>* slot = field.key == "name" ? &name_slot : field.key == "parameters" ? &parameters_slot : nullptr;
      FERRY_RETURN_IF_ERROR(FillOnce(slot, field, fmt::format("outputs[{}]", index)));
    }
    if (!name_slot) return InvalidArgument(fmt::format("outputs[{}] has no name", index));
    element name_value = *name_slot;
    if (name_value.get_string().get(name) != simdjson::SUCCESS) {
      return InvalidArgument(fmt::format("outputs[{}].name must be a string", index));
    }
    if (name.empty()) return InvalidArgument(fmt::format("outputs[{}].name is empty", index));
    if (!names.insert(name).second) {
      return InvalidArgument(fmt::format("output '{}' is requested more than once", name));
    }
    RequestedOutput requested;
    requested.name = std::string(name);
    if (parameters_slot) {
      const std::string owner = fmt::format("output '{}'", name);
      FERRY_RETURN_IF_ERROR(ParseParameters(*parameters_slot, owner, &requested.parameters));
      FERRY_ASSIGN_OR_RETURN(requested.binary_data, TakeBoolParameter(&requested.parameters, "binary_data", owner));
    }
    request_.outputs.push_back(std::move(requested));
    ++index;
  }
  return Status::Ok();
}

Result<InferRequest> DecodeUnguarded(std::shared_ptr<const std::string> body, std::optional<size_t> json_size,
                                     const DecodeLimits& limits) {
  if (!body) return InvalidArgument("request has no body");
  const size_t json_length = json_size.value_or(body->size());
  if (json_length > body->size()) {
    return InvalidArgument(fmt::format("Inference-Header-Content-Length ({}) is larger than the body ({} bytes)",
                                       json_length, body->size()));
  }
  const size_t max_depth = std::clamp<size_t>(limits.max_json_depth, 1, kMaxSupportedDepth);

  std::optional<simdjson::dom::parser> own_parser;
  simdjson::dom::parser* parser = &ThreadParser();
  if (json_length > kKeepParserBytes) parser = &own_parser.emplace();
  // simdjson's max_depth counts one level more than the nesting it admits.
  const size_t parser_depth = max_depth + 1;
  if (parser->max_depth() != parser_depth) {
    const size_t capacity = std::max({parser->capacity(), json_length, size_t{64}});
    if (auto error = parser->allocate(capacity, parser_depth); error != simdjson::SUCCESS) {
      return JsonSyntaxError(error, max_depth);
    }
  }
  // simdjson reads up to SIMDJSON_PADDING bytes past the JSON (their values do not matter). When the
  // string's allocation extends that far (binary part and spare capacity together, the same test
  // simdjson applies to a std::string) the JSON is parsed in place; otherwise simdjson first copies it
  // into its own padded buffer, which is reused across calls but costs a pass over the JSON.
  const bool parse_in_place = body->capacity() - json_length >= simdjson::SIMDJSON_PADDING;
  element root;
  if (auto error = parser->parse(body->data(), json_length, !parse_in_place).get(root); error != simdjson::SUCCESS) {
    return JsonSyntaxError(error, max_depth);
  }
  RequestDecoder decoder(std::move(body), json_length, json_size.has_value(), limits);
  return decoder.Decode(root);
}

}  // namespace

Result<InferResponse> DecodeInferResponseJson(std::string_view json, const DecodeLimits& limits) {
  try {
    const size_t max_depth = std::clamp<size_t>(limits.max_json_depth, 1, kMaxSupportedDepth);
    simdjson::dom::parser parser(json.size() + 64);
    if (auto error = parser.allocate(std::max(json.size(), size_t{64}), max_depth + 1); error != simdjson::SUCCESS) {
      return JsonSyntaxError(error, max_depth);
    }
    // The decoder reads tensors relative to a body; here it is the JSON alone, with no binary part.
    auto body = std::make_shared<const std::string>(json);
    element root;
    if (auto error = parser.parse(body->data(), body->size(), true).get(root); error != simdjson::SUCCESS) {
      return JsonSyntaxError(error, max_depth);
    }
    RequestDecoder decoder(body, body->size(), /*has_binary=*/false, limits);
    return decoder.DecodeResponse(root);
  } catch (const std::bad_alloc&) {
    return Internal("out of memory while decoding a response");
  }
}

Result<InferRequest> DecodeInferRequest(std::shared_ptr<const std::string> body, std::optional<size_t> json_size,
                                        const DecodeLimits& limits) {
  // Decoding uses only error codes; this catches what the standard library may still throw
  // (allocation failure) so that no exception leaves the codec.
  try {
    return DecodeUnguarded(std::move(body), json_size, limits);
  } catch (const std::bad_alloc&) {
    return Internal("out of memory while decoding the request");
  } catch (const std::exception& e) {
    return Internal(fmt::format("unexpected error while decoding the request: {}", e.what()));
  }
}

}  // namespace ferry
