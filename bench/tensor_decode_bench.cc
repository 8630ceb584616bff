// B5 (docs/benchmarks.md): server-side decode time of one 1x3x224x224 FP32 tensor (602,112 bytes).
//   BM_DecodeBinary        DecodeInferRequest on a binary-extension body (zero copy)
//   BM_DecodeJson          DecodeInferRequest on a JSON body (simdjson), into the tensor's bytes
//   BM_NlohmannJson        the peer: nlohmann::json parses the same body into a vector<float>
//   BM_Memcpy              the limit: copying the 602,112 bytes once
//   (context) BM_DecodeBinaryThenCopy, BM_DecodeJsonUnpadded, BM_EncodeJson
// JSON comes in two spellings: "shortest" (what Ferry's encoder writes, ~10 chars a number) and
// "python" (17 significant digits, what json.dumps(array.tolist()) sends from a float32 array).
#include <benchmark/benchmark.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/infer_codec.h"

namespace {

constexpr int64_t kCount = 1 * 3 * 224 * 224;
constexpr size_t kBytes = kCount * sizeof(float);

// A normalised image: (pixel / 255 - mean) / std, as a preprocessing step would produce.
const std::vector<float>& Pixels() {
  static const std::vector<float> pixels = [] {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<float> v(kCount);
    for (float& f : v) f = (static_cast<float>(byte(rng)) / 255.0f - 0.45f) / 0.225f;
    return v;
  }();
  return pixels;
}

std::string JsonBody(bool python_style) {
  std::string body = R"({"id":"b5","inputs":[{"name":"input","datatype":"FP32","shape":[1,3,224,224],"data":[)";
  char buffer[40];
  for (int64_t i = 0; i < kCount; ++i) {
    if (i) body += ',';
    const float f = Pixels()[i];
    if (python_style) {
      body.append(buffer, std::snprintf(buffer, sizeof(buffer), "%.17g", static_cast<double>(f)));
    } else {
      body.append(buffer, std::to_chars(buffer, buffer + sizeof(buffer), f).ptr);  // as the encoder writes it
    }
  }
  body += "]}]}";
  return body;
}

// Bodies as the HTTP layer should hand them over: with SIMDJSON_PADDING (64) bytes of spare capacity,
// so the JSON is parsed in place. `exact` bodies have none and pay for a copy first.
std::shared_ptr<const std::string> MakeBody(bool python_style, bool exact) {
  std::string json = JsonBody(python_style);
  std::string body;
  body.reserve(exact ? json.size() : json.size() + 64);
  body = json;
  if (exact) body.shrink_to_fit();
  return std::make_shared<const std::string>(std::move(body));
}

const std::shared_ptr<const std::string>& Body(bool python_style, bool exact = false) {
  static const auto shortest = MakeBody(false, false);
  static const auto python = MakeBody(true, false);
  static const auto shortest_exact = MakeBody(false, true);
  if (exact) return shortest_exact;
  return python_style ? python : shortest;
}

void BM_Memcpy(benchmark::State& state) {
  const std::vector<float>& src = Pixels();
  std::vector<float> dst(kCount);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBytes));
}
BENCHMARK(BM_Memcpy);

void BM_DecodeBinary(benchmark::State& state) {
  const std::string json = R"({"id":"b5","inputs":[{"name":"input","datatype":"FP32","shape":[1,3,224,224],)"
                           R"("parameters":{"binary_data_size":602112}}]})";
  std::string body = json;
  body.append(reinterpret_cast<const char*>(Pixels().data()), kBytes);
  const auto shared = std::make_shared<const std::string>(std::move(body));
  for (auto _ : state) {
    auto request = ferry::DecodeInferRequest(shared, json.size());
    if (!request.ok()) state.SkipWithError(request.status().message().c_str());
    benchmark::DoNotOptimize(request);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBytes));
}
BENCHMARK(BM_DecodeBinary);

// The binary tensor's bytes are a view; a backend that needs its own aligned copy pays one memcpy.
void BM_DecodeBinaryThenCopy(benchmark::State& state) {
  const std::string json = R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,3,224,224],)"
                           R"("parameters":{"binary_data_size":602112}}]})";
  std::string body = json;
  body.append(reinterpret_cast<const char*>(Pixels().data()), kBytes);
  const auto shared = std::make_shared<const std::string>(std::move(body));
  std::vector<float> dst(kCount);
  for (auto _ : state) {
    auto request = ferry::DecodeInferRequest(shared, json.size());
    std::memcpy(dst.data(), request->inputs[0].data.data(), kBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBytes));
}
BENCHMARK(BM_DecodeBinaryThenCopy);

void BM_DecodeJson(benchmark::State& state) {
  const auto& body = Body(state.range(0) != 0);
  state.SetLabel(state.range(0) ? "python" : "shortest");
  for (auto _ : state) {
    auto request = ferry::DecodeInferRequest(body, std::nullopt);
    if (!request.ok()) state.SkipWithError(request.status().message().c_str());
    benchmark::DoNotOptimize(request);
  }
  state.counters["json_MB"] = static_cast<double>(body->size()) / 1e6;
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body->size()));
}
BENCHMARK(BM_DecodeJson)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_DecodeJsonUnpadded(benchmark::State& state) {
  const auto& body = Body(false, true);
  state.SetLabel("shortest, no spare capacity");
  for (auto _ : state) {
    auto request = ferry::DecodeInferRequest(body, std::nullopt);
    if (!request.ok()) state.SkipWithError(request.status().message().c_str());
    benchmark::DoNotOptimize(request);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body->size()));
}
BENCHMARK(BM_DecodeJsonUnpadded)->Unit(benchmark::kMicrosecond);

void BM_NlohmannJson(benchmark::State& state) {
  const auto& body = Body(state.range(0) != 0);
  state.SetLabel(state.range(0) ? "python" : "shortest");
  for (auto _ : state) {
    const nlohmann::json parsed = nlohmann::json::parse(*body);
    const nlohmann::json& data = parsed.at("inputs").at(0).at("data");
    std::vector<float> values;
    values.reserve(data.size());
    for (const nlohmann::json& v : data) values.push_back(v.get<float>());
    benchmark::DoNotOptimize(values.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body->size()));
}
BENCHMARK(BM_NlohmannJson)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// The other direction, for context: the encoder writing the same tensor as JSON.
void BM_EncodeJson(benchmark::State& state) {
  ferry::InferResponse response;
  response.outputs.push_back(
      ferry::Tensor{"input", ferry::DataType::kFp32, {1, 3, 224, 224}, ferry::Buffer::Copy(Pixels().data(), kBytes)});
  for (auto _ : state) {
    auto encoded = ferry::EncodeInferResponse(response);
    benchmark::DoNotOptimize(encoded.body.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBytes));
}
BENCHMARK(BM_EncodeJson)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
