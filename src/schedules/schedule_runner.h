#pragma once
// Fires schedules: on its thread, at each slot (and at least every `max_sleep`, since the wall clock may
// jump), decides every schedule's due slots (DecideSlots) and starts the fired slot's batches through
// the BatchLauncher, then commits the slot. A slot is decided once: the stored last slot only moves
// forward, and a batch's id derives from its schedule, slot and input, so a crash between starting a
// batch and committing its slot starts nothing twice. A slot that comes while the last fired slot's
// batches still run is skipped under `overlap: skip`. Thread-safe.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "schedules/batch_launcher.h"
#include "schedules/sqlite_schedule_store.h"

namespace ferry {

struct ScheduleRunnerOptions {
  std::filesystem::path input_root;                 // inputs resolve against it and must stay inside
  std::filesystem::path zoneinfo = "/usr/share/zoneinfo";
  const WallClock* clock = &WallClock::Real();
  std::chrono::milliseconds max_sleep{15'000};
};

struct ScheduleRunnerObserver {
  // outcome: "fired", "missed", "skipped" (overlap), "failed" (a fired slot started nothing)
  std::function<void(const std::string& schedule, std::string_view outcome, int64_t count)> ticked;
  std::function<void(const std::string& schedule, std::optional<int64_t> next_unix_seconds)> next_run;
};

struct ScheduleView {
  ScheduleSpec spec;
  DefinitionFields fields;
  ScheduleRecord record;
  std::optional<int64_t> next;  // Unix seconds
};

class ScheduleRunner {
 public:
  ScheduleRunner(SqliteScheduleStore* store, BatchLauncher launcher, ScheduleRunnerOptions options,
                 ScheduleRunnerObserver observer = {});
  ~ScheduleRunner();  // Stop()

  // Reads the api schedules the store keeps (those made through POST /v1/schedules before a restart).
  // One that no longer parses is listed with its error and does not run.
  Status LoadStored();
  // Validates and registers a definition. source "file": a definition file (its stored state is kept,
  // its definition replaced); "api": a new name only (kAlreadyExists otherwise).
  Result<ScheduleView> Add(const DefinitionFields& fields, const std::string& source);
  Status Remove(const std::string& name);  // api schedules; a file's is kFailedPrecondition
  // Drops the stored state of file schedules whose file is gone (neither added nor refused).
  Status ForgetRemovedFileSchedules();
  Result<std::vector<ScheduleView>> List();
  Result<ScheduleView> Get(const std::string& name);
  // Definitions that were refused (a file's bad cron, an unknown zone): name and reason.
  std::vector<std::pair<std::string, std::string>> Refused() const;
  void Refuse(const std::string& name, const std::string& reason);

  // Decides every schedule at the clock's now. Returns the earliest next slot (Unix seconds).
  std::optional<int64_t> Evaluate();

  void Start();
  void Stop();

 private:
  struct Entry {
    ScheduleSpec spec;
    DefinitionFields fields;
    std::string source;
  };
  Result<ScheduleSpec> Validate(const DefinitionFields& fields, const std::string& source);
  // Returns the schedule's last decided slot afterwards (now, when the store cannot be read).
  int64_t EvaluateOne(const Entry& entry, int64_t now);
  Result<std::optional<ScheduleView>> View(const Entry& entry, int64_t now);
  Result<std::vector<BatchOrder>> Orders(const ScheduleSpec& spec, int64_t slot) const;
  Result<bool> StillRunning(const std::string& batches);
  void Loop();

  SqliteScheduleStore* store_;
  BatchLauncher launcher_;
  ScheduleRunnerOptions options_;
  ScheduleRunnerObserver observer_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> refused_;
  std::mutex evaluate_mu_;  // one evaluation at a time (the thread, an API call's wake)
  std::condition_variable cv_;
  bool wake_ = false;
  std::atomic<bool> stopping_{false};  // set under mu_ (for cv_); read between launches without it
  std::thread thread_;
};

}  // namespace ferry
