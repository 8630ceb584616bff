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
  std::string webhook_secret;        // "whsec_..." (Standard Webhooks); with webhook_url only
  int64_t priority = 0;              // higher first among jobs
  int64_t max_attempts = 3;
  std::string caller = "(none)";     // who submitted it, and is charged for it (an API key's name)
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

// A job's webhook delivery (its outbox entry, made with the job): waiting until the job is final, then
// pending until an attempt is answered 2xx (delivered), the attempts run out (failed) or the endpoint
// answered 410 Gone, now or for an earlier job (disabled).
enum class DeliveryState { kWaiting = 0, kPending = 1, kDelivered = 2, kFailed = 3, kDisabled = 4 };

std::string_view DeliveryStateName(DeliveryState state);

struct WebhookDelivery {
  std::string id;                    // the webhook-id header, the same on every attempt: "msg_<job id>"
  std::string job_id;
  std::string event;                 // "job.succeeded", "job.failed", "job.cancelled"; empty while waiting
  std::string url;
  std::string secret;
  DeliveryState state = DeliveryState::kWaiting;
  int64_t attempts = 0;
  int64_t next_attempt_ms = 0;
  int64_t last_status = 0;           // the last answer's HTTP status; 0: none
  std::string last_error;
  int64_t delivered_ms = 0;
  std::string payload;               // the body, fixed by the first attempt so every retry sends the same
};

// What one attempt came to, as the deliverer records it.
struct DeliveryAttempt {
  enum class Outcome { kDelivered, kRetry, kFailed, kGone };
  Outcome outcome = Outcome::kRetry;
  int64_t http_status = 0;           // 0: no answer (connect error, timeout, reset)
  std::string error;
  int64_t next_attempt_ms = 0;       // kRetry: when to try again
  std::string payload;               // stored with the first attempt
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
