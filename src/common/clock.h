#pragma once
// Injectable clock so that time-dependent logic (batching delays, timeouts) is tested without sleeping.
#include <atomic>
#include <chrono>

namespace ferry {

using SteadyTime = std::chrono::steady_clock::time_point;
using Micros = std::chrono::microseconds;

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime Now() const = 0;
  static const Clock& Real();
};

// Thread-safe: tests move it forward explicitly.
class FakeClock : public Clock {
 public:
  explicit FakeClock(SteadyTime start = SteadyTime{} + std::chrono::hours(1)) : now_(start.time_since_epoch().count()) {}
  SteadyTime Now() const override { return SteadyTime(SteadyTime::duration(now_.load())); }
  void Advance(SteadyTime::duration d) { now_ += d.count(); }

 private:
  std::atomic<SteadyTime::duration::rep> now_;
};

}  // namespace ferry
