#pragma once
// Helpers shared by the codec tests: build bodies, decode, read typed values out of tensors.
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tensor/infer_codec.h"

namespace ferry::testing {

inline Result<InferRequest> DecodeJson(const std::string& json, const DecodeLimits& limits = {}) {
  return DecodeInferRequest(std::make_shared<const std::string>(json), std::nullopt, limits);
}

// JSON part followed by the binary part; the JSON size goes in as Inference-Header-Content-Length.
inline Result<InferRequest> DecodeBinary(const std::string& json, const std::string& binary,
                                         const DecodeLimits& limits = {}) {
  return DecodeInferRequest(std::make_shared<const std::string>(json + binary), json.size(), limits);
}

// A request with one input named "x".
inline std::string OneInput(const std::string& datatype, const std::string& shape, const std::string& data) {
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":)" + shape + R"(,"data":)" + data +
         "}]}";
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> out(t.data.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), t.data.data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

inline std::string BytesElement(const std::string& s) {
  const auto n = static_cast<uint32_t>(s.size());
  std::string out = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 24)};
  return out + s;
}

// Asserts that decoding failed with kInvalidArgument and that the message mentions `fragment`.
#define EXPECT_DECODE_ERROR(result, fragment)                                                     \
  do {                                                                                            \
    const auto& _r = (result);                                                                    \
    ASSERT_FALSE(_r.ok()) << "expected an error mentioning: " << (fragment);                     \
    EXPECT_EQ(_r.status().code(), ::ferry::StatusCode::kInvalidArgument) << _r.status().ToString(); \
    EXPECT_NE(_r.status().message().find(fragment), std::string::npos)                          \
        << "message: " << _r.status().message() << "\nexpected to contain: " << (fragment);      \
  } while (0)

}  // namespace ferry::testing
