#pragma once
// Asynchronous inference, transport-neutral: submit (validated now, committed before it is answered),
// status, long-poll, result, listing and cancel over a JobStore; and the executor the JobRunner uses to
// run a job through the same scheduler as online requests, at job priority. Calls block on the store
// (a commit can wait for an fsync): callers run them off the I/O threads. Thread-safe.
#include <chrono>
#include <string>
#include <string_view>

#include "api/inference_service.h"
#include "jobs/job_runner.h"
#include "jobs/job_store.h"
#include "jobs/webhook_target.h"

namespace ferry {

struct SubmittedJob {
  std::string id;
  bool created = true;   // false: an earlier submit with the same idempotency key made it
  std::string json;      // the job as GET /v1/jobs/{id} shows it
};

class JobsService {
 public:
  JobsService(JobStore* store, InferenceService* inference) : store_(store), inference_(inference) {}
  // Called after each new job is committed (the server wakes its runner).
  void set_on_submitted(std::function<void()> f) { on_submitted_ = std::move(f); }
  // Address ranges a webhook URL may name although they are loopback, private or link-local.
  void set_webhook_allow_list(std::vector<IpNetwork> allowed) { webhook_allowed_ = std::move(allowed); }

  // POST /v1/jobs body: {"model": "cnn", "request": {<OIP v2 JSON inference request>},
  //                      "priority": 0, "max_attempts": 3}
  // The request is decoded and checked against the model now, so a job that could never run is a 4xx
  // here rather than a failed job later. Unknown keys are errors.
  Result<SubmittedJob> Submit(std::string_view body, std::string_view idempotency_key);
  // GET /v1/jobs/{id}; with `wait` > 0, answers once the job is final or the wait is over.
  Result<std::string> JobJson(const std::string& id, std::chrono::milliseconds wait);
  // GET /v1/jobs/{id}/result: the OIP v2 JSON inference response of a succeeded job.
  Result<std::string> ResultJson(const std::string& id);
  // GET /v1/jobs?status=&model=&page_size=&page_token=
  Result<std::string> ListJson(std::string_view status, std::string_view model, int64_t page_size,
                               std::string_view page_token);
  // DELETE /v1/jobs/{id}, POST /v1/jobs/{id}/cancel: the job afterwards.
  Result<std::string> Cancel(const std::string& id);

  // For the JobRunner: decodes the stored request and runs it at Priority::kJob.
  JobExecutor Executor();

 private:
  JobStore* store_;
  InferenceService* inference_;
  std::function<void()> on_submitted_;
  std::vector<IpNetwork> webhook_allowed_;
};

// "30s", "500ms", "2m" or plain seconds ("30") -> milliseconds; at most `max`.
Result<std::chrono::milliseconds> ParseWait(std::string_view text, std::chrono::milliseconds max);

}  // namespace ferry
