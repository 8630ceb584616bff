#include "preprocess/image_preprocessor.h"

#include <fmt/format.h>

#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

using Color = PreprocessConfig::Color;

int CvInterpolation(PreprocessConfig::Interpolation i) {
  switch (i) {
    case PreprocessConfig::Interpolation::kArea: return cv::INTER_AREA;
    case PreprocessConfig::Interpolation::kNearest: return cv::INTER_NEAREST;
    case PreprocessConfig::Interpolation::kLinear: break;
  }
  return cv::INTER_LINEAR;
}

// Why an encoded image is cut short, for the formats whose end is marked; empty when it is whole.
std::string TruncationOf(std::string_view bytes) {
  const auto u = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  if (bytes.size() >= 2 && u(0) == 0xFF && u(1) == 0xD8) {
    size_t end = bytes.size();
    while (end > 2 && u(end - 1) == 0x00) --end;  // some encoders pad after the end marker
    if (end < 4 || u(end - 2) != 0xFF || u(end - 1) != 0xD9) return "a truncated JPEG (no end-of-image marker)";
  }
  static constexpr char kPng[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0 &&
      (bytes.size() < 20 || bytes.substr(bytes.size() - 8, 4) != "IEND")) {
    return "a truncated PNG (no IEND chunk)";
  }
  return "";
}

class ImagePreprocessor final : public InputTransform {
 public:
  ImagePreprocessor(PreprocessConfig p, size_t input_index, bool batched)
      : p_(std::move(p)), input_index_(input_index), batched_(batched) {
    const size_t c_at = batched_ ? 0 : 1;
    height_ = p_.tensor.dims[c_at + 1];
    width_ = p_.tensor.dims[c_at + 2];
  }

  Result<std::vector<Tensor>> Apply(std::vector<Tensor> inputs, int64_t batch) const override {
    const Tensor& in = inputs[input_index_];
    const int64_t channels = p_.channels();
    const size_t plane = static_cast<size_t>(height_ * width_);
    std::vector<uint8_t> out(static_cast<size_t>(batch * channels) * plane * sizeof(float));
    BytesElementReader reader(in.data.span());
    std::string_view element;
    int64_t index = 0;
    while (reader.Next(&element)) {
      if (index >= batch) break;
      auto* dst = reinterpret_cast<float*>(out.data()) + static_cast<size_t>(index * channels) * plane;
      FERRY_RETURN_IF_ERROR(Convert(element, dst).WithContext(
          fmt::format("input '{}'{}", in.name, batch > 1 ? fmt::format(" element {}", index) : "")));
      ++index;
    }
    if (index != batch) {
      return InvalidArgument(fmt::format("input '{}' holds {} images for a batch of {}", in.name, index, batch));
    }
    Tensor t;
    t.name = p_.tensor.name;
    t.dtype = DataType::kFp32;
    t.shape = batched_ ? Shape{batch, channels, height_, width_} : Shape{1, channels, height_, width_};
    t.data = Buffer::Own(std::move(out));
    inputs[input_index_] = std::move(t);
    return inputs;
  }

 private:
  Status Convert(std::string_view bytes, float* dst) const {
    cv::Mat image;
    const size_t raw_size = static_cast<size_t>(p_.raw_width * p_.raw_height * p_.raw_channels);
    if (raw_size > 0 && bytes.size() == raw_size) {
      // Read only: the Mat is a view of the request's bytes.
      image = cv::Mat(static_cast<int>(p_.raw_height), static_cast<int>(p_.raw_width),
                      p_.raw_channels == 1 ? CV_8UC1 : CV_8UC3, const_cast<char*>(bytes.data()));
    } else {
      if (std::string why = TruncationOf(bytes); !why.empty()) return InvalidArgument(why);
      try {
        image = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
                             cv::IMREAD_COLOR);
      } catch (const cv::Exception&) {
        image = cv::Mat();
      }
      if (image.empty()) {
        return InvalidArgument(raw_size > 0 ? fmt::format("{} bytes are neither a raw {}x{}x{} frame ({} bytes) nor an "
                                                          "image OpenCV can decode",
                                                          bytes.size(), p_.raw_width, p_.raw_height, p_.raw_channels,
                                                          raw_size)
                                            : fmt::format("{} bytes are not an image OpenCV can decode", bytes.size()));
      }
    }
    if (!p_.crop.empty()) {
      const cv::Rect crop(static_cast<int>(p_.crop[0]), static_cast<int>(p_.crop[1]), static_cast<int>(p_.crop[2]),
                          static_cast<int>(p_.crop[3]));
      if (crop.x + crop.width > image.cols || crop.y + crop.height > image.rows) {
        return InvalidArgument(fmt::format("the image is {}x{}; the crop [{}, {}, {}, {}] reaches outside it", image.cols,
                                           image.rows, crop.x, crop.y, crop.width, crop.height));
      }
      image = image(crop);
    }
    cv::Mat converted;
    const int from = image.channels();
    if (p_.color == Color::kGrey) {
      if (from == 3) {
        cv::cvtColor(image, converted, cv::COLOR_BGR2GRAY);
      } else {
        converted = image;
      }
    } else if (from == 1) {
      cv::cvtColor(image, converted, p_.color == Color::kRgb ? cv::COLOR_GRAY2RGB : cv::COLOR_GRAY2BGR);
    } else if (p_.color == Color::kRgb) {
      cv::cvtColor(image, converted, cv::COLOR_BGR2RGB);
    } else {
      converted = image;
    }
    cv::Mat sized;
    if (p_.resize_width > 0) {
      cv::resize(converted, sized, cv::Size(static_cast<int>(p_.resize_width), static_cast<int>(p_.resize_height)), 0,
                 0, CvInterpolation(p_.interpolation));
    } else {
      sized = converted;
    }
    if (sized.cols != width_ || sized.rows != height_) {
      return InvalidArgument(fmt::format("the image comes out {}x{}; the model takes {}x{}", sized.cols, sized.rows,
                                         width_, height_));
    }
    const int channels = sized.channels();
    const size_t plane = static_cast<size_t>(height_ * width_);
    for (int c = 0; c < channels; ++c) {
      const double mean = p_.mean.empty() ? 0.0 : p_.mean[static_cast<size_t>(c)];
      const double stddev = p_.stddev.empty() ? 1.0 : p_.stddev[static_cast<size_t>(c)];
      const float a = static_cast<float>(p_.scale / stddev);
      const float b = static_cast<float>(-mean / stddev);
      float* out = dst + static_cast<size_t>(c) * plane;
      for (int y = 0; y < sized.rows; ++y) {
        const uint8_t* row = sized.ptr<uint8_t>(y);
        for (int x = 0; x < sized.cols; ++x) *out++ = a * row[x * channels + c] + b;
      }
    }
    return Status::Ok();
  }

  PreprocessConfig p_;
  size_t input_index_;
  bool batched_;
  int64_t height_ = 0;
  int64_t width_ = 0;
};

}  // namespace

Result<std::shared_ptr<const InputTransform>> CreateImagePreprocessor(const ModelConfig& config) {
  if (!config.preprocess) return InvalidArgument("the config has no preprocess block");
  FERRY_RETURN_IF_ERROR(ValidateModelConfig(config));
  for (size_t i = 0; i < config.inputs.size(); ++i) {
    if (config.inputs[i].name == config.preprocess->input) {
      return std::shared_ptr<const InputTransform>(
          std::make_shared<ImagePreprocessor>(*config.preprocess, i, config.max_batch_size > 0));
    }
  }
  return InvalidArgument("the preprocess input is not one of the model's inputs");
}

}  // namespace ferry
