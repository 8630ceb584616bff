#include "preprocess/text_features.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "preprocess/image_preprocessor.h"
#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

constexpr uint32_t kFnvOffset = 2166136261u;
constexpr uint32_t kFnvPrime = 16777619u;

class TextFeatures final : public InputTransform {
 public:
  TextFeatures(TextFeaturesConfig config, std::string tensor_name, size_t input_index)
      : config_(config), tensor_name_(std::move(tensor_name)), input_index_(input_index) {}

  Result<std::vector<Tensor>> Apply(std::vector<Tensor> inputs, int64_t batch) const override {
    const Tensor& in = inputs[input_index_];
    const size_t width = static_cast<size_t>(config_.buckets);
    std::vector<uint8_t> out(static_cast<size_t>(batch) * width * sizeof(float));
    BytesElementReader reader(in.data.span());
    std::string_view element;
    int64_t index = 0;
    while (index < batch && reader.Next(&element)) {
      const std::vector<float> row = TextFeatureVector(config_, element);
      std::memcpy(out.data() + static_cast<size_t>(index) * width * sizeof(float), row.data(), width * sizeof(float));
      ++index;
    }
    if (index != batch) {
      return InvalidArgument(fmt::format("input '{}' holds {} texts for a batch of {}", in.name, index, batch));
    }
    Tensor t;
    t.name = tensor_name_;
    t.dtype = DataType::kFp32;
    t.shape = Shape{batch, config_.buckets};
    t.data = Buffer::Own(std::move(out));
    inputs[input_index_] = std::move(t);
    return inputs;
  }

 private:
  TextFeaturesConfig config_;
  std::string tensor_name_;
  size_t input_index_;
};

}  // namespace

std::vector<float> TextFeatureVector(const TextFeaturesConfig& config, std::string_view text) {
  std::string padded;
  padded.reserve(text.size() + 2);
  padded += ' ';
  for (char c : text) padded += config.lowercase && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  padded += ' ';
  std::vector<float> counts(static_cast<size_t>(config.buckets), 0.0f);
  for (int64_t n = config.ngram_min; n <= config.ngram_max; ++n) {
    for (size_t at = 0; at + static_cast<size_t>(n) <= padded.size(); ++at) {
      uint32_t h = (kFnvOffset ^ static_cast<uint32_t>(n)) * kFnvPrime;
      for (size_t k = 0; k < static_cast<size_t>(n); ++k) {
        h = (h ^ static_cast<uint8_t>(padded[at + k])) * kFnvPrime;
      }
      counts[h % static_cast<uint32_t>(config.buckets)] += 1.0f;
    }
  }
  double norm = 0;
  for (float c : counts) norm += static_cast<double>(c) * c;
  if (norm > 0) {
    const float scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& c : counts) c *= scale;
  }
  return counts;
}

Result<std::shared_ptr<const InputTransform>> CreateTextFeatures(const ModelConfig& config) {
  if (!config.preprocess || !config.preprocess->text) return InvalidArgument("the config has no preprocess text block");
  size_t index = 0;
  while (index < config.inputs.size() && config.inputs[index].name != config.preprocess->input) ++index;
  if (index == config.inputs.size()) return InvalidArgument("the preprocess input is not an input");
  return std::shared_ptr<const InputTransform>(
      std::make_shared<TextFeatures>(*config.preprocess->text, config.preprocess->tensor.name, index));
}

Result<std::shared_ptr<const InputTransform>> CreatePreprocessor(const ModelConfig& config) {
  if (config.preprocess && config.preprocess->text) return CreateTextFeatures(config);
  return CreateImagePreprocessor(config);
}

}  // namespace ferry
