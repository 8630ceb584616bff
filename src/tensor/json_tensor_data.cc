#include "tensor/json_tensor_data.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "tensor/float16.h"

// flatten makes GCC's ASan build of this file take over 20 minutes and gigabytes of memory (it
// inlines through sanitizer instrumentation); sanitizer builds measure correctness, not speed.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define FERRY_FLATTEN
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define FERRY_FLATTEN
#endif
#endif
#ifndef FERRY_FLATTEN
#define FERRY_FLATTEN __attribute__((flatten))
#endif

namespace ferry::tensor_internal {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Why a JSON value does not fit the tensor's type; kFits when it does.
enum class Fit : uint8_t { kFits, kWrongKind, kOutOfRange, kNotInteger };

// Magnitudes at or beyond these round to infinity (the halfway point above the largest finite value
// rounds to even, which is infinity because the largest finite mantissa is odd).
constexpr double kFloatOverflow = 0x1.ffffffp127;  // FLT_MAX + half an ulp
constexpr double kHalfOverflow = 65520.0;           // 65504 + half an ulp (16)
constexpr double kBf16Overflow = 0x1.ffp127;        // largest BF16 + half an ulp

// An integer magnitude as a double rounded to odd: exact below 2^53, otherwise the dropped bits are
// folded into the lowest kept bit. Rounding that double to a format of at most 51 mantissa bits then
// gives the correctly rounded result, which rounding the integer to nearest first would not.
double MagnitudeRoundedToOdd(uint64_t magnitude) {
  if (magnitude < (uint64_t{1} << 53)) return static_cast<double>(magnitude);
  const int shift = std::bit_width(magnitude) - 53;
  const uint64_t dropped = magnitude & ((uint64_t{1} << shift) - 1);
  const uint64_t kept = (magnitude >> shift) | (dropped != 0 ? 1 : 0);
  return std::ldexp(static_cast<double>(kept), shift);
}

// The value of an integer JSON element as a double rounded to odd (see above).
double IntegerRoundedToOdd(const element& e) {
  if (e.type() == element_type::UINT64) return MagnitudeRoundedToOdd(e.get_uint64().value_unsafe());
  const int64_t v = e.get_int64().value_unsafe();
  const uint64_t magnitude = v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  const double rounded = MagnitudeRoundedToOdd(magnitude);
  return v < 0 ? -rounded : rounded;
}

template <typename T>
Fit ToInteger(const element& e, T* out) {
  using Limits = std::numeric_limits<T>;
  switch (e.type()) {
    case element_type::INT64: {
      const int64_t v = e.get_int64().value_unsafe();
      if constexpr (std::is_signed_v<T>) {
        if (v < Limits::min() || v > Limits::max()) return Fit::kOutOfRange;
      } else {
        if (v < 0 || static_cast<uint64_t>(v) > Limits::max()) return Fit::kOutOfRange;
      }
      *out = static_cast<T>(v);
      return Fit::kFits;
    }
    case element_type::UINT64: {
      // simdjson uses UINT64 only for values above INT64_MAX.
      const uint64_t v = e.get_uint64().value_unsafe();
      if (v > static_cast<uint64_t>(Limits::max())) return Fit::kOutOfRange;
      *out = static_cast<T>(v);
      return Fit::kFits;
    }
    case element_type::DOUBLE: {
      const double d = e.get_double().value_unsafe();
      if (std::trunc(d) != d) return Fit::kNotInteger;
      // max + 1 is a power of two, so it is exact even where max itself is not representable.
      constexpr double kLow = static_cast<double>(Limits::min());
      constexpr double kHighExclusive = static_cast<double>(Limits::max() / 2 + 1) * 2.0;
      if (!(d >= kLow && d < kHighExclusive)) return Fit::kOutOfRange;
      *out = static_cast<T>(d);
      return Fit::kFits;
    }
    default:
      return Fit::kWrongKind;
  }
}

Fit ToBool(const element& e, uint8_t* out) {
  if (e.type() != element_type::BOOL) return Fit::kWrongKind;
  *out = e.get_bool().value_unsafe() ? 1 : 0;
  return Fit::kFits;
}

Fit ToFp32(const element& e, float* out) {
  switch (e.type()) {
    case element_type::DOUBLE: {
      const double d = e.get_double().value_unsafe();
      // Checked before the cast: converting an out-of-range double to float is undefined behaviour.
      if (!(std::fabs(d) < kFloatOverflow)) return Fit::kOutOfRange;
      *out = static_cast<float>(d);
      return Fit::kFits;
    }
    case element_type::INT64:
      *out = static_cast<float>(e.get_int64().value_unsafe());  // one correct rounding
      return Fit::kFits;
    case element_type::UINT64:
      *out = static_cast<float>(e.get_uint64().value_unsafe());
      return Fit::kFits;
    default:
      return Fit::kWrongKind;
  }
}

Fit ToFp64(const element& e, double* out) {
  switch (e.type()) {
    case element_type::DOUBLE: *out = e.get_double().value_unsafe(); return Fit::kFits;
    case element_type::INT64: *out = static_cast<double>(e.get_int64().value_unsafe()); return Fit::kFits;
    case element_type::UINT64: *out = static_cast<double>(e.get_uint64().value_unsafe()); return Fit::kFits;
    default: return Fit::kWrongKind;
  }
}

// Traits rather than a double template parameter, which clang 14 (the fuzz build) does not accept.
struct HalfTraits {
  static constexpr double kOverflow = kHalfOverflow;
  static uint16_t Round(double d) { return DoubleToHalfBits(d); }
};
struct Bf16Traits {
  static constexpr double kOverflow = kBf16Overflow;
  static uint16_t Round(double d) { return DoubleToBf16Bits(d); }
};

template <typename Traits>
Fit ToSmallFloat(const element& e, uint16_t* out) {
  double d = 0;
  switch (e.type()) {
    case element_type::DOUBLE: d = e.get_double().value_unsafe(); break;
    case element_type::INT64:
    case element_type::UINT64: d = IntegerRoundedToOdd(e); break;
    default: return Fit::kWrongKind;
  }
  if (!(std::fabs(d) < Traits::kOverflow)) return Fit::kOutOfRange;
  *out = Traits::Round(d);
  return Fit::kFits;
}

std::string_view KindName(element_type type) {
  switch (type) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE: return "a number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "a value";
}

// The element as JSON text for a message, cut short so a huge string cannot bloat the error.
std::string Excerpt(const element& e) {
  std::string text = simdjson::minify(e);
  constexpr size_t kMax = 40;
  if (text.size() > kMax) {
    text.resize(kMax);
    text += "...";
  }
  return text;
}

std::string_view ExpectedKind(DataType dtype) {
  switch (dtype) {
    case DataType::kBool: return "true or false";
    case DataType::kBytes: return "a string";
    default: return "a number";
  }
}

// Walks the (possibly nested) data arrays in row-major order and converts each scalar with `convert`.
// The output bytes are sized up front and written in place, so the hot loop has no reallocation.
template <typename T, Fit (*kConvert)(const element&, T*)>
class FixedWidthFiller {
 public:
  FixedWidthFiller(const JsonDataTarget& target, uint8_t* out) : target_(target), out_(out) {}

  // flatten: inlines simdjson's element accessors, which the compiler otherwise leaves as calls in this
  // loop (a quarter of the decode time outside simdjson's own parse).
  FERRY_FLATTEN Status Fill(simdjson::dom::array array, size_t nesting) {
    for (element e : array) {
      if (e.type() == element_type::ARRAY) {
        if (nesting >= target_.max_nesting) return TooDeep();
        FERRY_RETURN_IF_ERROR(Fill(e.get_array().value_unsafe(), nesting + 1));
        continue;
      }
      if (count_ >= target_.expected_count) return TooMany();
      T value;
      const Fit fit = kConvert(e, &value);
      if (fit != Fit::kFits) return Misfit(e, fit);
      std::memcpy(out_ + static_cast<size_t>(count_) * sizeof(T), &value, sizeof(T));
      ++count_;
    }
    return Status::Ok();
  }

  int64_t count() const { return count_; }

 private:
  Status TooDeep() const {
    return InvalidArgument(fmt::format("{} \'{}\': data is nested deeper than {} levels", target_.noun, target_.tensor_name,
                                       target_.max_nesting + 1));
  }
  Status TooMany() const {
    return InvalidArgument(fmt::format("{} \'{}\': data has more than the {} elements that shape {} needs",
                                       target_.noun, target_.tensor_name, target_.expected_count, ShapeToString(*target_.shape)));
  }
  Status Misfit(const element& e, Fit fit) const {
    const std::string_view type = DataTypeName(target_.dtype);
    switch (fit) {
      case Fit::kOutOfRange:
        return InvalidArgument(fmt::format("{} \'{}\': data element {} ({}) is out of range for {}",
                                           target_.noun, target_.tensor_name, count_, Excerpt(e), type));
      case Fit::kNotInteger:
        return InvalidArgument(fmt::format("{} \'{}\': data element {} ({}) is not an integer, as {} requires",
                                           target_.noun, target_.tensor_name, count_, Excerpt(e), type));
      default:
        return InvalidArgument(fmt::format("{} \'{}\': data element {} is {} ({}), but {} needs {}",
                                           target_.noun, target_.tensor_name, count_, KindName(e.type()), Excerpt(e), type,
                                           ExpectedKind(target_.dtype)));
    }
  }

  const JsonDataTarget& target_;
  uint8_t* out_;
  int64_t count_ = 0;
};

template <typename T, Fit (*kConvert)(const element&, T*)>
Status FillFixedWidth(simdjson::dom::array array, const JsonDataTarget& target, std::vector<uint8_t>* out) {
  // expected_count was bounded by the caller (limits and body size), so this allocation is bounded.
  out->resize(static_cast<size_t>(target.expected_count) * sizeof(T));
  FixedWidthFiller<T, kConvert> filler(target, out->data());
  FERRY_RETURN_IF_ERROR(filler.Fill(array, 0));
  if (filler.count() != target.expected_count) {
    return InvalidArgument(fmt::format("{} \'{}\': data has {} elements but shape {} needs {}", target.noun, target.tensor_name,
                                       filler.count(), ShapeToString(*target.shape), target.expected_count));
  }
  return Status::Ok();
}

// BYTES elements vary in size, so they are appended rather than written in place.
class BytesFiller {
 public:
  BytesFiller(const JsonDataTarget& target, std::vector<uint8_t>* out) : target_(target), out_(out) {}

  Status Fill(simdjson::dom::array array, size_t nesting) {
    for (element e : array) {
      if (e.type() == element_type::ARRAY) {
        if (nesting >= target_.max_nesting) {
          return InvalidArgument(fmt::format("{} \'{}\': data is nested deeper than {} levels",
                                             target_.noun, target_.tensor_name, target_.max_nesting + 1));
        }
        FERRY_RETURN_IF_ERROR(Fill(e.get_array().value_unsafe(), nesting + 1));
        continue;
      }
      if (count_ >= target_.expected_count) {
        return InvalidArgument(fmt::format("{} \'{}\': data has more than the {} elements that shape {} needs",
                                           target_.noun, target_.tensor_name, target_.expected_count,
                                           ShapeToString(*target_.shape)));
      }
      if (e.type() != element_type::STRING) {
        return InvalidArgument(fmt::format("{} \'{}\': data element {} is {} ({}), but BYTES needs a string",
                                           target_.noun, target_.tensor_name, count_, KindName(e.type()), Excerpt(e)));
      }
      const std::string_view text = e.get_string().value_unsafe();
      if (text.size() > std::numeric_limits<uint32_t>::max()) {
        return InvalidArgument(fmt::format("{} \'{}\': data element {} is longer than 4 GiB", target_.noun, target_.tensor_name,
                                           count_));
      }
      const auto length = static_cast<uint32_t>(text.size());
      const uint8_t prefix[4] = {static_cast<uint8_t>(length), static_cast<uint8_t>(length >> 8),
                                 static_cast<uint8_t>(length >> 16), static_cast<uint8_t>(length >> 24)};
      out_->insert(out_->end(), prefix, prefix + 4);
      out_->insert(out_->end(), text.begin(), text.end());
      ++count_;
    }
    return Status::Ok();
  }

  int64_t count() const { return count_; }

 private:
  const JsonDataTarget& target_;
  std::vector<uint8_t>* out_;
  int64_t count_ = 0;
};

Status FillBytes(simdjson::dom::array array, const JsonDataTarget& target, std::vector<uint8_t>* out) {
  out->clear();
  out->reserve(static_cast<size_t>(target.expected_count) * 4);
  BytesFiller filler(target, out);
  FERRY_RETURN_IF_ERROR(filler.Fill(array, 0));
  if (filler.count() != target.expected_count) {
    return InvalidArgument(fmt::format("{} \'{}\': data has {} elements but shape {} needs {}", target.noun, target.tensor_name,
                                       filler.count(), ShapeToString(*target.shape), target.expected_count));
  }
  return Status::Ok();
}

}  // namespace

Status DecodeJsonTensorData(element data, const JsonDataTarget& target, std::vector<uint8_t>* out) {
  simdjson::dom::array array;
  if (data.get_array().get(array) != simdjson::SUCCESS) {
    return InvalidArgument(fmt::format("{} \'{}\': data must be an array, not {}", target.noun, target.tensor_name,
                                       KindName(data.type())));
  }
  switch (target.dtype) {
    case DataType::kBool: return FillFixedWidth<uint8_t, ToBool>(array, target, out);
    case DataType::kUint8: return FillFixedWidth<uint8_t, ToInteger<uint8_t>>(array, target, out);
    case DataType::kUint16: return FillFixedWidth<uint16_t, ToInteger<uint16_t>>(array, target, out);
    case DataType::kUint32: return FillFixedWidth<uint32_t, ToInteger<uint32_t>>(array, target, out);
    case DataType::kUint64: return FillFixedWidth<uint64_t, ToInteger<uint64_t>>(array, target, out);
    case DataType::kInt8: return FillFixedWidth<int8_t, ToInteger<int8_t>>(array, target, out);
    case DataType::kInt16: return FillFixedWidth<int16_t, ToInteger<int16_t>>(array, target, out);
    case DataType::kInt32: return FillFixedWidth<int32_t, ToInteger<int32_t>>(array, target, out);
    case DataType::kInt64: return FillFixedWidth<int64_t, ToInteger<int64_t>>(array, target, out);
    case DataType::kFp16:
      return FillFixedWidth<uint16_t, ToSmallFloat<HalfTraits>>(array, target, out);
    case DataType::kBf16:
      return FillFixedWidth<uint16_t, ToSmallFloat<Bf16Traits>>(array, target, out);
    case DataType::kFp32: return FillFixedWidth<float, ToFp32>(array, target, out);
    case DataType::kFp64: return FillFixedWidth<double, ToFp64>(array, target, out);
    case DataType::kBytes: return FillBytes(array, target, out);
  }
  return InvalidArgument(fmt::format("{} \'{}\': unsupported datatype", target.noun, target.tensor_name));
}

}  // namespace ferry::tensor_internal
