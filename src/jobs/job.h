#pragma once
// An asynchronous inference job as the store keeps it. Value types, thread-compatible.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

// queued -> running -> succeeded | failed | cancelled; running -> queued when a lease expires or an
// attempt fails with attempts left; queued -> cancelled.
enum class JobState { kQueued = 0, kRunning = 1, kSucceeded = 2, kFailed = 3, kCancelled = 4 };

std::string_view JobStateName(JobState state);  // "queued", "running", ...
std::optional<JobState> JobStateFromName(std::string_view name);
inline bool IsFinal(JobState s) { return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled; }

// What a client submits.
struct NewJob {
  std::string model;
  std::string kind = "oip";          // how `request` is encoded: "oip" (KServe v2 JSON) or "openai"
  std::string request;               // the inference request body, kept as sent
  std::string idempotency_key;       // empty: none
  std::string webhook_url;           // empty: pull only
  int64_t priority = 0;              // higher first among jobs
  int64_t max_attempts = 3;
};

struct Job {
  std::string id;
  NewJob spec;
  JobState state = JobState::kQueued;
  int64_t attempts = 0;              // leases handed out so far
  int64_t created_ms = 0;            // Unix milliseconds
  int64_t started_ms = 0;            // first lease; 0: never started
  int64_t finished_ms = 0;           // 0: not final
  int64_t updated_ms = 0;
  std::string lease_owner;           // while running
  int64_t lease_expires_ms = 0;
  std::string error;                 // the last attempt's error, or why it was cancelled
  bool has_result = false;
};

struct SubmitOutcome {
  std::string id;
  bool created = true;  // false: the idempotency key named an existing job, which is returned instead
};

struct JobFilter {
  std::optional<JobState> state;
  std::string model;                 // empty: any
};

struct JobPage {
  std::vector<Job> jobs;
  std::string next_page_token;       // empty: no more
};

}  // namespace ferry
