#include "tensor/float16.h"

#include <bit>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(HalfTest, ExactValues) {
  EXPECT_EQ(DoubleToHalfBits(0.0), 0x0000);
  EXPECT_EQ(DoubleToHalfBits(-0.0), 0x8000);
  EXPECT_EQ(DoubleToHalfBits(1.0), 0x3c00);
  EXPECT_EQ(DoubleToHalfBits(-2.0), 0xc000);
  EXPECT_EQ(DoubleToHalfBits(0.5), 0x3800);
  EXPECT_EQ(DoubleToHalfBits(65504.0), 0x7bff);        // largest finite
  EXPECT_EQ(DoubleToHalfBits(0x1p-14), 0x0400);        // smallest normal
  EXPECT_EQ(DoubleToHalfBits(0x1p-24), 0x0001);        // smallest subnormal
  EXPECT_EQ(DoubleToHalfBits(0x3ffp-24), 0x03ff);      // largest subnormal
}

TEST(HalfTest, RoundsToNearestEven) {
  // Between 1 and 1 + 2^-10: exactly half way rounds to the even mantissa (1.0).
  EXPECT_EQ(DoubleToHalfBits(1.0 + 0x1p-11), 0x3c00);
  // Half way between 1 + 2^-10 (odd) and 1 + 2^-9 (even) rounds up.
  EXPECT_EQ(DoubleToHalfBits(1.0 + 3 * 0x1p-11), 0x3c02);
  // Just above half way rounds up, just below rounds down.
  EXPECT_EQ(DoubleToHalfBits(1.0 + 0x1p-11 + 0x1p-30), 0x3c01);
  EXPECT_EQ(DoubleToHalfBits(1.0 + 0x1p-11 - 0x1p-30), 0x3c00);
  // 0.1 -> 0x2e66 (the nearest half is 0.0999755859375).
  EXPECT_EQ(DoubleToHalfBits(0.1), 0x2e66);
}

TEST(HalfTest, OverflowAndUnderflow) {
  EXPECT_EQ(DoubleToHalfBits(65519.99), 0x7bff);  // rounds down to max
  EXPECT_EQ(DoubleToHalfBits(65520.0), 0x7c00);   // the tie goes to even, which is infinity
  EXPECT_EQ(DoubleToHalfBits(1e10), 0x7c00);
  EXPECT_EQ(DoubleToHalfBits(-1e300), 0xfc00);
  EXPECT_EQ(DoubleToHalfBits(0x1p-25), 0x0000);                // half the smallest subnormal: tie to 0
  EXPECT_EQ(DoubleToHalfBits(0x1p-25 + 0x1p-40), 0x0001);      // just above: rounds up
  EXPECT_EQ(DoubleToHalfBits(3 * 0x1p-25), 0x0002);            // 1.5 subnormal ulps: tie to even (2)
  EXPECT_EQ(DoubleToHalfBits(-0x1p-30), 0x8000);               // underflow keeps the sign
  EXPECT_EQ(DoubleToHalfBits(5e-324), 0x0000);                 // double subnormal
  // A subnormal that rounds up into the smallest normal.
  EXPECT_EQ(DoubleToHalfBits(0x3ffp-24 + 0x1p-25 + 0x1p-40), 0x0400);
}

TEST(HalfTest, InfinityAndNan) {
  EXPECT_EQ(DoubleToHalfBits(std::numeric_limits<double>::infinity()), 0x7c00);
  EXPECT_EQ(DoubleToHalfBits(-std::numeric_limits<double>::infinity()), 0xfc00);
  const uint16_t nan = DoubleToHalfBits(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(nan)));
  // A signalling NaN whose payload sits only in low bits must not become infinity.
  const double snan = std::bit_cast<double>(uint64_t{0x7ff0000000000001});
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(DoubleToHalfBits(snan))));
  EXPECT_TRUE(std::isinf(HalfBitsToFloat(0x7c00)));
  EXPECT_LT(HalfBitsToFloat(0xfc00), 0);
}

TEST(HalfTest, WideningIsExactForEveryPattern) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    const float f = HalfBitsToFloat(h);
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7c00, 0x7c00);
      continue;
    }
    // Every half is exactly a float, so narrowing it back is the identity.
    ASSERT_EQ(FloatToHalfBits(f), h) << std::hex << bits;
    ASSERT_EQ(DoubleToHalfBits(f), h) << std::hex << bits;
  }
  EXPECT_EQ(HalfBitsToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(HalfBitsToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfBitsToFloat(0x8000), 0.0f);
  EXPECT_TRUE(std::signbit(HalfBitsToFloat(0x8000)));
}

TEST(HalfTest, RoundingMatchesMidpointRuleForEveryPair) {
  // For each pair of adjacent positive halves, values just below / at / above the midpoint.
  for (uint16_t h = 0; h < 0x7bff; ++h) {
    const double lo = HalfBitsToFloat(h);
    const double hi = HalfBitsToFloat(static_cast<uint16_t>(h + 1));
    const double mid = (lo + hi) / 2;
    const double eps = (hi - lo) / 1024;
    ASSERT_EQ(DoubleToHalfBits(mid - eps), h);
    ASSERT_EQ(DoubleToHalfBits(mid + eps), h + 1);
    ASSERT_EQ(DoubleToHalfBits(mid), (h & 1) ? h + 1 : h) << std::hex << h;
  }
}

TEST(Bf16Test, ExactValuesAndRounding) {
  EXPECT_EQ(DoubleToBf16Bits(1.0), 0x3f80);
  EXPECT_EQ(DoubleToBf16Bits(-2.0), 0xc000);
  EXPECT_EQ(DoubleToBf16Bits(0.0), 0x0000);
  EXPECT_EQ(DoubleToBf16Bits(-0.0), 0x8000);
  EXPECT_EQ(DoubleToBf16Bits(1.0 + 0x1p-8), 0x3f80);      // tie to even
  EXPECT_EQ(DoubleToBf16Bits(1.0 + 3 * 0x1p-8), 0x3f82);  // tie to even (up)
  EXPECT_EQ(DoubleToBf16Bits(1.0 + 0x1p-8 + 0x1p-20), 0x3f81);
  EXPECT_EQ(DoubleToBf16Bits(3.3895313892515355e38), 0x7f7f);  // largest finite
  EXPECT_EQ(DoubleToBf16Bits(3.4e38), 0x7f80);                 // rounds to infinity
  EXPECT_EQ(DoubleToBf16Bits(0x1p-133), 0x0001);               // smallest subnormal
  EXPECT_EQ(DoubleToBf16Bits(0x1p-134), 0x0000);               // tie to zero
  EXPECT_EQ(DoubleToBf16Bits(std::numeric_limits<double>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(Bf16BitsToFloat(DoubleToBf16Bits(std::numeric_limits<double>::quiet_NaN()))));
}

TEST(Bf16Test, FloatAgreesWithTheBitTrick) {
  // The usual float -> bf16 rounding: add 0x7fff plus the lowest kept bit, then truncate.
  uint32_t state = 12345;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    const float f = std::bit_cast<float>(state);
    if (std::isnan(f)) continue;
    const uint32_t bits = std::bit_cast<uint32_t>(f);
    const uint32_t expected = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
    ASSERT_EQ(FloatToBf16Bits(f), expected) << std::hex << bits;
    ASSERT_EQ(Bf16BitsToFloat(static_cast<uint16_t>(expected)), std::bit_cast<float>(expected << 16));
  }
}

TEST(Bf16Test, WideningIsExactForEveryPattern) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float f = Bf16BitsToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToBf16Bits(f), bits) << std::hex << bits;
  }
}

TEST(HalfTest, FloatNarrowingMatchesDouble) {
  uint32_t state = 99;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    const float f = std::bit_cast<float>(state);
    ASSERT_EQ(FloatToHalfBits(f), DoubleToHalfBits(static_cast<double>(f)));
  }
}

}  // namespace
}  // namespace ferry
