#pragma once
// IEEE 754 binary16 (FP16) and bfloat16 (BF16) conversions on raw bits, so tensors never need a
// compiler half type. Narrowing rounds to nearest, ties to even, computed straight from the double so a
// JSON number is rounded once (double -> float -> half would round twice and can land on the wrong
// side of a tie). Overflow gives ±inf, values below half the smallest subnormal give ±0, NaN stays a
// quiet NaN with its sign. Widening is exact. Pure functions, thread-safe.
#include <cstdint>

namespace ferry {

uint16_t DoubleToHalfBits(double value);
uint16_t FloatToHalfBits(float value);  // exact widening to double, then DoubleToHalfBits
float HalfBitsToFloat(uint16_t bits);

uint16_t DoubleToBf16Bits(double value);
uint16_t FloatToBf16Bits(float value);
float Bf16BitsToFloat(uint16_t bits);

// Largest finite magnitudes, for range checks.
inline constexpr double kHalfMax = 65504.0;
inline constexpr double kBf16Max = 3.38953138925153547590470800371487866880e38;  // (2 - 2^-7) * 2^127

}  // namespace ferry
