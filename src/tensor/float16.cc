#include "tensor/float16.h"

#include <bit>
#include <cstring>

namespace ferry {
namespace {

// Rounds a double to a binary format with kExpBits exponent bits and kManBits stored mantissa bits
// (FP16: 5/10, BF16: 8/7) and returns its bit pattern.
template <int kExpBits, int kManBits>
uint16_t RoundDouble(double value) {
  constexpr int kBias = (1 << (kExpBits - 1)) - 1;
  constexpr uint32_t kExpMask = ((1u << kExpBits) - 1) << kManBits;
  constexpr int kMaxBiasedExp = (1 << kExpBits) - 1;  // all ones: inf / NaN

  const auto bits = std::bit_cast<uint64_t>(value);
  const auto sign = static_cast<uint32_t>(bits >> 63) << (kExpBits + kManBits);
  const int exp = static_cast<int>((bits >> 52) & 0x7ff);
  const uint64_t man = bits & ((uint64_t{1} << 52) - 1);

  if (exp == 0x7ff) {
    if (man == 0) return static_cast<uint16_t>(sign | kExpMask);
    // Keep the top payload bits and force the quiet bit, so a NaN never turns into inf.
    const auto payload = static_cast<uint32_t>(man >> (52 - kManBits));
    return static_cast<uint16_t>(sign | kExpMask | (1u << (kManBits - 1)) | payload);
  }
  // Zero, or a double subnormal (< 2^-1022): far below the smallest subnormal of either target.
  if (exp == 0) return static_cast<uint16_t>(sign);

  int target_exp = exp - 1023 + kBias;
  if (target_exp >= kMaxBiasedExp) return static_cast<uint16_t>(sign | kExpMask);

  const uint64_t significand = man | (uint64_t{1} << 52);  // 53 bits with the implicit one
  int shift = 52 - kManBits;                               // bits dropped for a normal result
  if (target_exp <= 0) {
    // Subnormal result: the implicit one moves into the stored mantissa, one more bit per step below.
    shift += 1 - target_exp;
    target_exp = 0;
    if (shift > 53) return static_cast<uint16_t>(sign);  // below half the smallest subnormal
  }
  uint64_t kept = significand >> shift;
  const uint64_t rest = significand & ((uint64_t{1} << shift) - 1);
  const uint64_t half = uint64_t{1} << (shift - 1);
  if (rest > half || (rest == half && (kept & 1))) ++kept;

  // For a normal result `kept` still carries the implicit one at bit kManBits, which adds exactly one to
  // the exponent field; a rounding carry adds one more. A subnormal that rounds up to 2^kManBits becomes
  // the smallest normal the same way.
  const uint64_t magnitude =
      target_exp > 0 ? (static_cast<uint64_t>(target_exp - 1) << kManBits) + kept : kept;
  if (magnitude >= kExpMask) return static_cast<uint16_t>(sign | kExpMask);
  return static_cast<uint16_t>(sign | static_cast<uint32_t>(magnitude));
}

}  // namespace

uint16_t DoubleToHalfBits(double value) { return RoundDouble<5, 10>(value); }
uint16_t FloatToHalfBits(float value) { return RoundDouble<5, 10>(static_cast<double>(value)); }

float HalfBitsToFloat(uint16_t bits) {
  const uint32_t sign = uint32_t{bits & 0x8000u} << 16;
  const uint32_t exp = (bits >> 10) & 0x1f;
  const uint32_t man = bits & 0x3ff;
  if (exp == 0) {
    // Subnormal or zero: man * 2^-24 is exact in float.
    const float magnitude = static_cast<float>(man) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  const uint32_t out = exp == 0x1f ? sign | 0x7f800000u | (man << 13) : sign | ((exp - 15 + 127) << 23) | (man << 13);
  return std::bit_cast<float>(out);
}

uint16_t DoubleToBf16Bits(double value) { return RoundDouble<8, 7>(value); }
uint16_t FloatToBf16Bits(float value) { return RoundDouble<8, 7>(static_cast<double>(value)); }

float Bf16BitsToFloat(uint16_t bits) { return std::bit_cast<float>(uint32_t{bits} << 16); }

}  // namespace ferry
