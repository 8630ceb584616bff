#include "backend/opencv_dnn/opencv_dnn_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include "backend/tensor_checks.h"
#include "tensor/float16.h"
#include "tensor/unaligned.h"

namespace ferry {
namespace {

constexpr size_t kMaxCvDims = 32;  // CV_MAX_DIM, which only the C API header defines

// cv::setNumThreads rebuilds OpenCV's process-wide TBB arena; doing that while another thread is inside
// a forward pass is not safe. Forward passes hold this shared, a thread-count change holds it exclusive.
std::shared_mutex& ThreadPoolMutex() {
  static std::shared_mutex mutex;
  return mutex;
}

void ApplyThreadCount(int64_t threads) {
  if (threads <= 0) return;
  const int wanted = static_cast<int>(std::min<int64_t>(threads, 1024));
  std::unique_lock lock(ThreadPoolMutex());
  if (cv::getNumThreads() != wanted) cv::setNumThreads(wanted);
}

// OpenCV's own message without the source-file location that cv::Exception::what() adds.
std::string CvMessage(const cv::Exception& e) {
  std::string msg = e.err.empty() ? std::string(e.what()) : e.err;
  if (!e.func.empty()) msg += " (in " + e.func + ")";
  return msg;
}

bool IsBatched(const ModelConfig& config) { return config.max_batch_size > 0; }

// ------------------------------------------------------------------------------------- dtype helpers

template <typename T>
void WidenAll(const uint8_t* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(LoadUnaligned<T>(src + i * sizeof(T)));
}

// Widens `n` elements of `type` to float. False for BYTES (no numeric meaning).
bool ToFloat(DataType type, const uint8_t* src, size_t n, float* dst) {
  switch (type) {
    case DataType::kBool:
      for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
      return true;
    case DataType::kUint8: WidenAll<uint8_t>(src, n, dst); return true;
    case DataType::kUint16: WidenAll<uint16_t>(src, n, dst); return true;
    case DataType::kUint32: WidenAll<uint32_t>(src, n, dst); return true;
    case DataType::kUint64: WidenAll<uint64_t>(src, n, dst); return true;
    case DataType::kInt8: WidenAll<int8_t>(src, n, dst); return true;
    case DataType::kInt16: WidenAll<int16_t>(src, n, dst); return true;
    case DataType::kInt32: WidenAll<int32_t>(src, n, dst); return true;
    case DataType::kInt64: WidenAll<int64_t>(src, n, dst); return true;
    case DataType::kFp32: WidenAll<float>(src, n, dst); return true;
    case DataType::kFp64: WidenAll<double>(src, n, dst); return true;
    case DataType::kFp16:
      for (size_t i = 0; i < n; ++i) {
        dst[i] = HalfBitsToFloat(LoadUnaligned<uint16_t>(src + 2 * i));
      }
      return true;
    case DataType::kBf16:
      for (size_t i = 0; i < n; ++i) {
        dst[i] = Bf16BitsToFloat(LoadUnaligned<uint16_t>(src + 2 * i));
      }
      return true;
    case DataType::kBytes:
      return false;
  }
  return false;
}

// Rounds to nearest and clamps to T's range; NaN becomes 0. (cv::saturate_cast<int64>(float) is a
// plain cast, undefined out of range.)
template <typename T>
T SaturateFromFloat(float v) {
  if (std::isnan(v)) return T{0};
  const double r = std::nearbyint(static_cast<double>(v));
  if (r <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
  if (r >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(r);
}

template <typename T>
void NarrowAllInt(const float* src, size_t n, uint8_t* dst) {
  for (size_t i = 0; i < n; ++i) StoreUnaligned<T>(dst + i * sizeof(T), SaturateFromFloat<T>(src[i]));
}

// Narrows `n` floats to `type`; `dst` holds n * ElementSize(type) bytes. False for BYTES.
bool FromFloat(DataType type, const float* src, size_t n, uint8_t* dst) {
  switch (type) {
    case DataType::kBool:
      for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0.0f ? 1 : 0;
      return true;
    case DataType::kUint8: NarrowAllInt<uint8_t>(src, n, dst); return true;
    case DataType::kUint16: NarrowAllInt<uint16_t>(src, n, dst); return true;
    case DataType::kUint32: NarrowAllInt<uint32_t>(src, n, dst); return true;
    case DataType::kUint64: NarrowAllInt<uint64_t>(src, n, dst); return true;
    case DataType::kInt8: NarrowAllInt<int8_t>(src, n, dst); return true;
    case DataType::kInt16: NarrowAllInt<int16_t>(src, n, dst); return true;
    case DataType::kInt32: NarrowAllInt<int32_t>(src, n, dst); return true;
    case DataType::kInt64: NarrowAllInt<int64_t>(src, n, dst); return true;
    case DataType::kFp32: std::memcpy(dst, src, n * sizeof(float)); return true;
    case DataType::kFp64:
      for (size_t i = 0; i < n; ++i) StoreUnaligned<double>(dst + 8 * i, static_cast<double>(src[i]));
      return true;
    case DataType::kFp16:
      for (size_t i = 0; i < n; ++i) StoreUnaligned<uint16_t>(dst + 2 * i, FloatToHalfBits(src[i]));
      return true;
    case DataType::kBf16:
      for (size_t i = 0; i < n; ++i) StoreUnaligned<uint16_t>(dst + 2 * i, FloatToBf16Bits(src[i]));
      return true;
    case DataType::kBytes:
      return false;
  }
  return false;
}

// ------------------------------------------------------------------------------------- shape helpers

std::string DimsToString(const Shape& s) { return ShapeToString(s); }

// cv::Mat sizes for `shape`; OpenCV wants int dims and at least one of them.
Result<std::vector<int>> CvSizes(const Shape& shape, std::string_view tensor_name) {
  std::vector<int> sizes;
  sizes.reserve(std::max<size_t>(shape.size(), 1));
  for (int64_t d : shape) {
    if (d < 0 || d > std::numeric_limits<int>::max()) {
      return InvalidArgument("input '" + std::string(tensor_name) + "' has a dimension OpenCV cannot hold: " +
                             DimsToString(shape));
    }
    sizes.push_back(static_cast<int>(d));
  }
  if (sizes.empty()) sizes.push_back(1);  // a scalar is a one-element blob
  if (sizes.size() > kMaxCvDims) {
    return InvalidArgument("input '" + std::string(tensor_name) + "' has more than " +
                           std::to_string(kMaxCvDims) + " dimensions");
  }
  return sizes;
}

// The shape an output is reported with: [batch] + declared dims. A -1 dim takes the network's own value
// when its rank matches, or is solved from the element count when it is the only unknown one.
Result<Shape> ResolveOutputShape(const TensorSpec& spec, std::optional<int64_t> batch, const cv::Mat& out,
                                 int64_t total) {
  Shape declared;
  if (batch) declared.push_back(*batch);
  declared.insert(declared.end(), spec.dims.begin(), spec.dims.end());

  int unknown = 0;
  int64_t known_product = 1;
  for (int64_t d : declared) {
    if (d < 0) {
      ++unknown;
    } else {
      known_product *= d;
    }
  }
  const auto mismatch = [&](std::string why) {
    return Internal("output '" + spec.name + "': the network returned " + std::to_string(total) +
                    " values " + DimsToString(Shape(out.size.p, out.size.p + out.dims)) +
                    ", the config declares " + DimsToString(declared) + why);
  };
  if (unknown == 0) {
    if (known_product != total) return mismatch("");
    return declared;
  }
  if (out.dims == static_cast<int>(declared.size())) {
    Shape actual(out.size.p, out.size.p + out.dims);
    bool agrees = true;
    for (size_t i = 0; i < declared.size(); ++i) agrees = agrees && (declared[i] < 0 || declared[i] == actual[i]);
    if (agrees) return actual;
  }
  if (unknown == 1 && known_product > 0 && total % known_product == 0) {
    for (int64_t& d : declared) {
      if (d < 0) d = total / known_product;
    }
    return declared;
  }
  return mismatch(" (cannot resolve its -1 dims)");
}

// --------------------------------------------------------------------------------------- the instance

// Confined to one thread at a time (the scheduler runs one Execute per instance); owns its Net.
class OpenCvDnnInstance final : public ModelInstance {
 public:
  OpenCvDnnInstance(ModelConfig config, cv::dnn::Net net) : config_(std::move(config)), net_(std::move(net)) {
    for (const auto& out : config_.outputs) output_names_.push_back(out.name);
  }

  // One forward pass with zero inputs of the declared shapes; checks the declared outputs against it.
  Status WarmUp() {
    std::vector<cv::Mat> mats;
    const std::optional<int64_t> batch = IsBatched(config_) ? std::optional<int64_t>(1) : std::nullopt;
    for (const auto& spec : config_.inputs) {
      FERRY_ASSIGN_OR_RETURN(std::vector<int> sizes, CvSizes(WarmUpShape(config_, spec), spec.name));
      mats.emplace_back(static_cast<int>(sizes.size()), sizes.data(), CV_32F, cv::Scalar(0));
    }
    auto outputs = Run(mats, batch);
    if (!outputs.ok()) {
      return InvalidArgument("warm-up with the declared input shapes failed: " + outputs.status().message());
    }
    return Status::Ok();
  }

  Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    // Building blobs allocates through OpenCV, which reports failure by throwing.
    try {
      return ExecuteImpl(inputs);
    } catch (const cv::Exception& e) {
      return Internal("opencv_dnn: " + CvMessage(e));
    } catch (const std::exception& e) {
      return Internal(std::string("opencv_dnn: ") + e.what());
    } catch (...) {
      return Internal("opencv_dnn: unknown exception");
    }
  }

 private:
  Result<std::vector<Tensor>> ExecuteImpl(const std::vector<Tensor>& inputs) {
    FERRY_RETURN_IF_ERROR(CheckInputCount(inputs, config_));
    std::optional<int64_t> batch;
    std::vector<cv::Mat> mats;
    mats.reserve(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(cv::Mat mat, InputToMat(inputs[i], config_.inputs[i], batch));
      mats.push_back(std::move(mat));
    }
    return Run(mats, batch);
  }

  // Checks `t` against `spec` (dtype, rank, known dims, byte size, one batch size for all inputs) and
  // returns a CV_32F blob: a view of t's bytes for aligned FP32, a converted copy otherwise.
  Result<cv::Mat> InputToMat(const Tensor& t, const TensorSpec& spec, std::optional<int64_t>& batch) const {
    const std::string what = "input '" + spec.name + "'";
    if (t.dtype == DataType::kBytes) return InvalidArgument(what + ": BYTES tensors are not supported by opencv_dnn");
    FERRY_RETURN_IF_ERROR(CheckInputTensor(t, spec, config_, batch));
    FERRY_ASSIGN_OR_RETURN(std::vector<int> sizes, CvSizes(t.shape, spec.name));
    const int ndims = static_cast<int>(sizes.size());
    const auto* data = t.data.data();
    if (t.dtype == DataType::kFp32 && reinterpret_cast<uintptr_t>(data) % alignof(float) == 0) {
      // setInput copies the blob into the network, so a read-only view is enough here.
      return cv::Mat(ndims, sizes.data(), CV_32F, const_cast<uint8_t*>(data));
    }
    cv::Mat mat(ndims, sizes.data(), CV_32F);
    ToFloat(t.dtype, data, mat.total(), mat.ptr<float>());
    return mat;
  }

  // setInput + forward + output conversion. `batch` is nullopt for an unbatched model.
  Result<std::vector<Tensor>> Run(const std::vector<cv::Mat>& mats, std::optional<int64_t> batch) {
    std::vector<cv::Mat> outs;
    try {
      std::shared_lock lock(ThreadPoolMutex());
      for (size_t i = 0; i < mats.size(); ++i) net_.setInput(mats[i], config_.inputs[i].name);
      net_.forward(outs, output_names_);
    } catch (const cv::Exception& e) {
      return Internal("OpenCV forward failed: " + CvMessage(e));
    } catch (const std::exception& e) {
      return Internal(std::string("OpenCV forward failed: ") + e.what());
    } catch (...) {
      return Internal("OpenCV forward failed with an unknown exception");
    }
    if (outs.size() != config_.outputs.size()) {
      return Internal("the network returned " + std::to_string(outs.size()) + " outputs, expected " +
                      std::to_string(config_.outputs.size()));
    }
    std::vector<Tensor> result;
    result.reserve(outs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(Tensor t, OutputToTensor(outs[i], config_.outputs[i], batch));
      result.push_back(std::move(t));
    }
    return result;
  }

  // Copies one output blob (it aliases the network's memory, which the next forward overwrites).
  static Result<Tensor> OutputToTensor(const cv::Mat& out, const TensorSpec& spec, std::optional<int64_t> batch) {
    try {
      cv::Mat f = out;
      if (f.depth() != CV_32F) out.convertTo(f, CV_32F);
      if (!f.isContinuous()) f = f.clone();
      const int64_t total = static_cast<int64_t>(f.total()) * f.channels();
      FERRY_ASSIGN_OR_RETURN(Shape shape, ResolveOutputShape(spec, batch, f, total));
      Tensor t;
      t.name = spec.name;
      t.dtype = spec.dtype;
      t.shape = std::move(shape);
      std::vector<uint8_t> bytes(static_cast<size_t>(total) * ElementSize(spec.dtype));
      if (!FromFloat(spec.dtype, f.ptr<float>(), static_cast<size_t>(total), bytes.data())) {
        return Internal("output '" + spec.name + "' has a dtype opencv_dnn cannot produce");
      }
      t.data = Buffer::Own(std::move(bytes));
      return t;
    } catch (const cv::Exception& e) {
      return Internal("converting output '" + spec.name + "': " + CvMessage(e));
    }
  }

  ModelConfig config_;
  cv::dnn::Net net_;
  std::vector<std::string> output_names_;
};

Result<std::vector<char>> ReadModelFile(const std::filesystem::path& path, const std::string& shown_name) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return NotFound("model file '" + shown_name + "' not found");
  if (!std::filesystem::is_regular_file(status)) {
    return InvalidArgument("model file '" + shown_name + "' is not a regular file");
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Internal("cannot read the size of model file '" + shown_name + "'");
  if (size == 0) return InvalidArgument("model file '" + shown_name + "' is empty");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Internal("cannot open model file '" + shown_name + "'");
  std::vector<char> bytes(static_cast<size_t>(size));
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(bytes.size())) {
    return Internal("error reading model file '" + shown_name + "'");
  }
  return bytes;
}

Status CheckConfig(const ModelConfig& config) {
  if (config.inputs.empty()) return InvalidArgument("opencv_dnn needs at least one declared input");
  if (config.outputs.empty()) return InvalidArgument("opencv_dnn needs at least one declared output");
  for (const auto* list : {&config.inputs, &config.outputs}) {
    for (const auto& spec : *list) {
      if (spec.dtype == DataType::kBytes) {
        return InvalidArgument("tensor '" + spec.name + "' is BYTES; opencv_dnn handles numeric tensors only");
      }
    }
  }
  if (config.model_filename.empty() || config.model_filename.find('/') != std::string::npos) {
    return InvalidArgument("model_filename must be a plain file name");
  }
  return Status::Ok();
}

// Names an output the network can be asked for, for the error message when a declared one is missing.
std::string KnownOutputs(const cv::dnn::Net& net) {
  std::string list;
  for (const auto& n : net.getUnconnectedOutLayersNames()) list += (list.empty() ? "" : ", ") + n;
  return list.empty() ? "(none)" : list;
}

Result<std::unique_ptr<ModelInstance>> CreateInstanceImpl(const ModelConfig& config,
                                                          const std::filesystem::path& version_dir) {
  FERRY_RETURN_IF_ERROR(CheckConfig(config));
  const std::string& file = config.model_filename;
  FERRY_ASSIGN_OR_RETURN(std::vector<char> bytes, ReadModelFile(version_dir / file, file));

  cv::dnn::Net net;
  try {
    // From memory, not from the path, so that OpenCV's messages carry no server paths.
    net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
  } catch (const cv::Exception& e) {
    return InvalidArgument("'" + file + "' is not an ONNX model OpenCV DNN can load: " + CvMessage(e));
  }
  if (net.empty()) return InvalidArgument("'" + file + "' has no layers OpenCV DNN can run");
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);

  for (const auto& spec : config.outputs) {
    if (net.getLayerId(spec.name) < 0) {
      return InvalidArgument("the model has no output named '" + spec.name + "'; its outputs are: " +
                             KnownOutputs(net));
    }
  }

  ApplyThreadCount(config.threads_per_instance);
  auto instance = std::make_unique<OpenCvDnnInstance>(config, std::move(net));
  FERRY_RETURN_IF_ERROR(instance->WarmUp());
  return std::unique_ptr<ModelInstance>(std::move(instance));
}

}  // namespace

Result<std::unique_ptr<ModelInstance>> OpenCvDnnBackend::CreateInstance(const ModelConfig& config,
                                                                        const std::filesystem::path& version_dir) {
  try {
    auto result = CreateInstanceImpl(config, version_dir);
    if (!result.ok()) return result.status().WithContext("opencv_dnn: loading '" + config.name + "'");
    return result;
  } catch (const cv::Exception& e) {
    return Internal("opencv_dnn: loading '" + config.name + "': " + CvMessage(e));
  } catch (const std::exception& e) {
    return Internal("opencv_dnn: loading '" + config.name + "': " + e.what());
  } catch (...) {
    return Internal("opencv_dnn: loading '" + config.name + "': unknown exception");
  }
}

std::unique_ptr<Backend> MakeOpenCvDnnBackend() {
  // OpenCV logs its own view of a failed load to stderr even when we catch the exception and report
  // the failure ourselves; keep only its fatal messages.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_FATAL);
  return std::make_unique<OpenCvDnnBackend>();
}

}  // namespace ferry
