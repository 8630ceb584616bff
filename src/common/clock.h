#pragma once
// Injectable clock so that time-dependent logic (batching delays, timeouts) is tested without sleeping.
#include <atomic>
#include <chrono>
#include <cstdint>

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

// Wall-clock time (Unix milliseconds), for what follows the calendar (schedules). Unlike the steady
// Clock it may jump either way (NTP, a VM resumed); callers must cope. Thread-safe.
class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual int64_t NowUnixMs() const = 0;
  static const WallClock& Real();
};

// Thread-safe: tests set it, forward or back.
class FakeWallClock : public WallClock {
 public:
  explicit FakeWallClock(int64_t unix_ms) : now_(unix_ms) {}
  int64_t NowUnixMs() const override { return now_.load(); }
  void Set(int64_t unix_ms) { now_ = unix_ms; }
  void Advance(std::chrono::milliseconds d) { now_ += d.count(); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace ferry
