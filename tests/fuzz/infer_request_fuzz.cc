// Fuzzes DecodeInferRequest with arbitrary bodies and Inference-Header-Content-Length values, then
// encodes whatever decodes successfully. Crashes, sanitizer reports and broken invariants are bugs.
//
// Input layout: 4 bytes little-endian header, then the body. Header bit 31 clear: no JSON size (the
// whole body is JSON). Bit 31 set: json_size = (header & 0x7fffffff) % (body size + 2), so sizes one
// past the body are reached too. Inputs under 4 bytes are a JSON-only body.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <simdjson.h>

#include "fuzz_check.h"
#include "tensor/bytes_elements.h"
#include "tensor/float16.h"
#include "tensor/infer_codec.h"

namespace {

using fuzz::Check;

template <typename T, typename ToDouble>
bool AllFinite(const ferry::Buffer& data, ToDouble to_double) {
  for (size_t i = 0; i + sizeof(T) <= data.size(); i += sizeof(T)) {
    T v;
    std::memcpy(&v, data.data() + i, sizeof(T));
    if (!std::isfinite(to_double(v))) return false;
  }
  return true;
}

// Whether writing the tensor as JSON keeps every bit: NaN/Inf become null and invalid UTF-8 in BYTES
// becomes U+FFFD, by design; everything else must survive a trip through JSON.
bool JsonIsLossless(const ferry::Tensor& t) {
  switch (t.dtype) {
    case ferry::DataType::kFp16: return AllFinite<uint16_t>(t.data, ferry::HalfBitsToFloat);
    case ferry::DataType::kBf16: return AllFinite<uint16_t>(t.data, ferry::Bf16BitsToFloat);
    case ferry::DataType::kFp32: return AllFinite<float>(t.data, [](float v) { return v; });
    case ferry::DataType::kFp64: return AllFinite<double>(t.data, [](double v) { return v; });
    case ferry::DataType::kBytes: {
      ferry::BytesElementReader reader(t.data.span());
      std::string_view element;
      while (reader.Next(&element)) {
        if (!simdjson::validate_utf8(element.data(), element.size())) return false;
      }
      return true;
    }
    default: return true;
  }
}

// The encoded response read back as a request: output objects have the same keys as input objects,
// so {"inputs": <the outputs array>} followed by the same binary part is a valid request.
void CheckRoundTrip(const ferry::InferResponse& response, const ferry::EncodedResponse& encoded) {
  const std::string_view json(encoded.body.data(), encoded.json_size);
  // "outputs" is the last key written; inside strings a quote is always escaped, so this is the key.
  const size_t key = json.rfind("\"outputs\":[");
  Check(key != std::string_view::npos, "the response has outputs");
  const std::string_view array = json.substr(key + 10, json.size() - key - 11);
  std::string request = "{\"inputs\":";
  request.append(array);
  request += '}';
  const size_t request_json_size = request.size();
  request.append(encoded.body, encoded.json_size);
  auto decoded = ferry::DecodeInferRequest(std::make_shared<const std::string>(std::move(request)),
                                           request_json_size);
  bool lossless = true;
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    if (!response.binary_outputs[i] && !JsonIsLossless(response.outputs[i])) lossless = false;
  }
  if (!lossless) return;
  if (!decoded.ok()) std::fprintf(stderr, "%s\n", decoded.status().ToString().c_str());
  Check(decoded.ok(), "a lossless response decodes as a request");
  Check(decoded->inputs.size() == response.outputs.size(), "round trip keeps the tensor count");
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const ferry::Tensor& a = response.outputs[i];
    const ferry::Tensor& b = decoded->inputs[i];
    Check(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape, "round trip keeps metadata");
    Check(a.data.size() == b.data.size() && (a.data.empty() || std::memcmp(a.data.data(), b.data.data(),
                                                                            a.data.size()) == 0),
          "round trip keeps every bit");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<size_t> json_size;
  if (size >= 4) {
    const uint32_t header = uint32_t{data[0]} | uint32_t{data[1]} << 8 | uint32_t{data[2]} << 16 |
                            uint32_t{data[3]} << 24;
    data += 4;
    size -= 4;
    if (header & 0x80000000u) json_size = (header & 0x7fffffffu) % (size + 2);
  }
  auto body = std::make_shared<const std::string>(reinterpret_cast<const char*>(data), size);

  ferry::DecodeLimits limits;
  limits.max_json_depth = 32;
  auto request = ferry::DecodeInferRequest(body, json_size, limits);
  if (!request.ok()) {
    Check(request.status().code() == ferry::StatusCode::kInvalidArgument, "decode errors are kInvalidArgument");
    Check(!request.status().message().empty(), "errors have a message");
    const std::string error = ferry::EncodeErrorJson(request.status().message());
    Check(error.size() > 12, "error JSON is written");
    return 0;
  }

  ferry::InferResponse response;
  response.model_name = "fuzz";
  response.model_version = "1";
  response.id = request->id;
  response.parameters = request->parameters;
  size_t binary_total = 0;
  for (size_t i = 0; i < request->inputs.size(); ++i) {
    const ferry::Tensor& input = request->inputs[i];
    Check(input.ValidateData().ok(), "decoded inputs are consistent with their shape");
    response.outputs.push_back(input);
    // Exercise both output paths: binary as the request asks, otherwise alternate.
    const bool binary = request->binary_data_output || i % 2 == 1;
    response.binary_outputs.push_back(binary);
    if (binary) binary_total += input.data.size();
  }
  const ferry::EncodedResponse encoded = ferry::EncodeInferResponse(response);
  Check(encoded.json_size + binary_total == encoded.body.size(), "binary parts follow the JSON exactly");
  Check(encoded.json_size > 0 && encoded.body[0] == '{' && encoded.body[encoded.json_size - 1] == '}',
        "the JSON part is an object");
  CheckRoundTrip(response, encoded);
  return 0;
}
