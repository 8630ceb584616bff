// EncodeInferResponse and EncodeErrorJson: the OIP v2 response body, JSON with binary tensors appended.
#include <charconv>
#include <cmath>
#include <cstring>

#include "common/json_writer.h"
#include "tensor/bytes_elements.h"
#include "tensor/float16.h"
#include "tensor/infer_codec.h"
#include "tensor/unaligned.h"

namespace ferry {
namespace {

// Elements are formatted into space reserved in the output string a chunk at a time: one resize per
// chunk instead of one append per element. kMaxChars bounds one element's text (the longest shortest
// double is 24 characters; int64/uint64 at most 20) plus its comma.
constexpr size_t kChunk = 1024;
constexpr size_t kMaxChars = kMaxJsonNumberChars;

char* WriteNumber(char* p, char* end, double v) { return WriteJsonNumber(p, end, v); }
char* WriteNumber(char* p, char* end, float v) { return WriteJsonNumber(p, end, v); }
template <typename T>
char* WriteNumber(char* p, char* end, T v) {
  return std::to_chars(p, end, v).ptr;
}

template <typename Stored, typename Convert>
void AppendNumberArray(std::string* out, const Buffer& data, Convert convert) {
  const size_t count = data.size() / sizeof(Stored);
  out->push_back('[');
  for (size_t start = 0; start < count; start += kChunk) {
    const size_t n = std::min(kChunk, count - start);
    const size_t old_size = out->size();
    out->resize(old_size + n * kMaxChars);
    char* p = out->data() + old_size;
    char* const end = out->data() + out->size();
    for (size_t i = start; i < start + n; ++i) {
      p = WriteNumber(p, end, convert(LoadUnaligned<Stored>(data.data() + i * sizeof(Stored))));
      *p++ = ',';
    }
    out->resize(static_cast<size_t>(p - out->data()));
  }
  if (count > 0) out->pop_back();  // the last comma
  out->push_back(']');
}

template <typename T>
void AppendPlainArray(std::string* out, const Buffer& data) {
  AppendNumberArray<T>(out, data, [](T v) { return v; });
}

void AppendBoolArray(std::string* out, const Buffer& data) {
  out->push_back('[');
  for (size_t i = 0; i < data.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(data.data()[i] != 0 ? "true" : "false");
  }
  out->push_back(']');
}

void AppendBytesArray(std::string* out, const Buffer& data) {
  out->push_back('[');
  BytesElementReader reader(data.span());
  std::string_view element;
  bool first = true;
  while (reader.Next(&element)) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(out, element);
  }
  out->push_back(']');
}

// Writes the tensor's data as a flat JSON array. The buffer decides how many elements are written, so a
// tensor that breaks its shape contract can never make this read past its data.
void AppendTensorData(std::string* out, const Tensor& tensor) {
  const Buffer& d = tensor.data;
  switch (tensor.dtype) {
    case DataType::kBool: return AppendBoolArray(out, d);
    case DataType::kUint8: return AppendPlainArray<uint8_t>(out, d);
    case DataType::kUint16: return AppendPlainArray<uint16_t>(out, d);
    case DataType::kUint32: return AppendPlainArray<uint32_t>(out, d);
    case DataType::kUint64: return AppendPlainArray<uint64_t>(out, d);
    case DataType::kInt8: return AppendPlainArray<int8_t>(out, d);
    case DataType::kInt16: return AppendPlainArray<int16_t>(out, d);
    case DataType::kInt32: return AppendPlainArray<int32_t>(out, d);
    case DataType::kInt64: return AppendPlainArray<int64_t>(out, d);
    case DataType::kFp16: return AppendNumberArray<uint16_t>(out, d, HalfBitsToFloat);
    case DataType::kBf16: return AppendNumberArray<uint16_t>(out, d, Bf16BitsToFloat);
    case DataType::kFp32: return AppendPlainArray<float>(out, d);
    case DataType::kFp64: return AppendPlainArray<double>(out, d);
    case DataType::kBytes: return AppendBytesArray(out, d);
  }
  out->append("[]");
}

void WriteParameters(JsonWriter& w, const Parameters& parameters) {
  w.BeginObject();
  for (const auto& [key, value] : parameters) {
    w.Key(key);
    std::visit(
        [&w](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string>) w.String(v);
          else if constexpr (std::is_same_v<V, int64_t>) w.Int(v);
          else if constexpr (std::is_same_v<V, double>) w.Double(v);
          else w.Bool(v);
        },
        value);
  }
  w.EndObject();
}

bool IsBinary(const InferResponse& response, size_t i) {
  return i < response.binary_outputs.size() && response.binary_outputs[i];
}

// A rough upper bound of the JSON size so the body is allocated about once.
size_t EstimateSize(const InferResponse& response, size_t* binary_bytes) {
  size_t json = 256 + response.model_name.size() + response.id.size() + response.parameters.size() * 64;
  *binary_bytes = 0;
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const Tensor& t = response.outputs[i];
    json += 128 + t.name.size() + t.shape.size() * 21;
    if (IsBinary(response, i)) {
      *binary_bytes += t.data.size();
    } else if (t.dtype == DataType::kBytes) {
      json += t.data.size() * 2;
    } else {
      const size_t element_size = ElementSize(t.dtype);
      json += element_size == 0 ? 0 : t.data.size() / element_size * 16;
    }
  }
  return json;
}

}  // namespace

EncodedResponse EncodeInferResponse(const InferResponse& response) {
  EncodedResponse encoded;
  size_t binary_bytes = 0;
  const size_t estimate = EstimateSize(response, &binary_bytes);
  encoded.body.reserve(estimate + binary_bytes);

  JsonWriter w(&encoded.body);
  w.BeginObject();
  w.Key("model_name").String(response.model_name);
  w.Key("model_version").String(response.model_version);
  if (!response.id.empty()) w.Key("id").String(response.id);
  if (!response.parameters.empty()) {
    w.Key("parameters");
    WriteParameters(w, response.parameters);
  }
  w.Key("outputs").BeginArray();
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const Tensor& t = response.outputs[i];
    w.BeginObject();
    w.Key("name").String(t.name);
    w.Key("datatype").String(DataTypeName(t.dtype));
    w.Key("shape").BeginArray();
    for (int64_t dim : t.shape) w.Int(dim);
    w.EndArray();
    if (IsBinary(response, i)) {
      w.Key("parameters").BeginObject().Key("binary_data_size").Uint(t.data.size()).EndObject();
    } else {
      w.Key("data").RawWith([&t](std::string* out) { AppendTensorData(out, t); });
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  encoded.json_size = encoded.body.size();

  for (size_t i = 0; i < response.outputs.size(); ++i) {
    if (!IsBinary(response, i)) continue;
    const Buffer& data = response.outputs[i].data;
    if (data.empty()) continue;
    encoded.body.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  return encoded;
}

std::string EncodeErrorJson(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 16);
  JsonWriter(&out).BeginObject().Key("error").String(message).EndObject();
  return out;
}

}  // namespace ferry
