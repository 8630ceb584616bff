#include "common/clock.h"

namespace ferry {
namespace {
class RealClock final : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
};
class RealWallClock final : public WallClock {
 public:
  int64_t NowUnixMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};
}  // namespace

const Clock& Clock::Real() {
  static const RealClock clock;
  return clock;
}
const WallClock& WallClock::Real() {
  static const RealWallClock clock;
  return clock;
}
}  // namespace ferry
