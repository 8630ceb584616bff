#pragma once
// Asynchronous inference, transport-neutral: submit (validated now, committed before it is answered),
// status, long-poll, result, listing and cancel over a JobStore; and the executor the JobRunner uses to
// run a job through the same scheduler as online requests, at job priority. Calls block on the store
// (a commit can wait for an fsync): callers run them off the I/O threads. Thread-safe.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api/completion_service.h"
#include "api/inference_service.h"
#include "api/json_watcher.h"
#include "common/cancel_token.h"
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
  JobsService(JobStore* store, InferenceService* inference);
  ~JobsService();  // ends the watches still open
  // Called after each new job is committed (the server wakes its runner).
  void set_on_submitted(std::function<void()> f) { on_submitted_ = std::move(f); }
  // Called after a cancel made a job final (the server wakes its webhook deliverer).
  void set_on_cancelled(std::function<void()> f) { on_cancelled_ = std::move(f); }
  // Language models: jobs may then carry OpenAI completions or chat bodies.
  void set_completions(CompletionService* completions) { completions_ = completions; }
  // Address ranges a webhook URL may name although they are loopback, private or link-local.
  void set_webhook_allow_list(std::vector<IpNetwork> allowed) { webhook_allowed_ = std::move(allowed); }

  // POST /v1/jobs body: {"model": "cnn", "request": {<OIP v2 JSON inference request>},
  //                      "priority": 0, "max_attempts": 3,
  //                      "webhook_url": "https://...", "webhook_secret": "whsec_..."}
  // For a language model, "request" is an OpenAI chat ("messages") or completions ("prompt") body,
  // not streamed; the job's result is then OpenAI's response.
  // The request is decoded and checked against the model now, so a job that could never run is a 4xx
  // here rather than a failed job later. Unknown keys are errors.
  // The job runs as, and is charged to, `caller`; a caller whose budget is spent is refused (429).
  Result<SubmittedJob> Submit(std::string_view body, std::string_view idempotency_key,
                              const std::string& caller = "(none)");
  // Cost accounting (see InferenceService::SetUsage); may be null.
  void set_usage(UsageLedger* usage) { usage_ = usage; }
  // GET /v1/jobs/{id}: `done` gets the job now or, with `wait` > 0, once it is final or the wait is over
  // (from the watch thread: a long-poll holds no thread). kNotFound (and no call) without the job.
  Status JobJson(const std::string& id, std::chrono::milliseconds wait, std::function<void(Result<std::string>)> done);
  // GET /v1/jobs/{id}/events: calls `send` with the job (as JobJson shows it) now, then from the watch
  // thread after each change (an empty string every 15 s without one: a keep-alive), and `end` once it
  // is final, `send` returned false or `cancel` tripped. kNotFound (and no call) without the job;
  // kUnavailable when kMaxWatches are open. `send` must not block.
  Status WatchJob(const std::string& id, std::shared_ptr<CancelToken> cancel,
                  std::function<bool(const std::string&)> send, std::function<void()> end);
  static constexpr size_t kMaxWatches = 512;
  // GET /v1/jobs/{id}/result: the OIP v2 JSON inference response of a succeeded job.
  Result<std::string> ResultJson(const std::string& id);
  // GET /v1/jobs?status=&model=&page_size=&page_token=
  Result<std::string> ListJson(std::string_view status, std::string_view model, int64_t page_size,
                               std::string_view page_token);
  // DELETE /v1/jobs/{id}, POST /v1/jobs/{id}/cancel: the job afterwards.
  Result<std::string> Cancel(const std::string& id);

  // For the JobRunner: decodes the stored request and runs it at Priority::kJob.
  JobExecutor Executor();
  // For the WebhookDeliverer, the body of a delivery: {"type": "job.succeeded", "timestamp": ...,
  // "data": {<the job as JobJson shows it>, "result": {<the inference response, when succeeded>}}}.
  Result<std::string> WebhookPayload(const WebhookDelivery& delivery);

 private:
  JobStore* store_;
  InferenceService* inference_;
  UsageLedger* usage_ = nullptr;
  CompletionService* completions_ = nullptr;
  std::function<void()> on_submitted_;
  std::function<void()> on_cancelled_;

  std::vector<IpNetwork> webhook_allowed_;
  JsonWatcher watcher_;  // last: its thread stops before the rest goes
};

// "30s", "500ms", "2m" or plain seconds ("30") -> milliseconds; at most `max`.
Result<std::chrono::milliseconds> ParseWait(std::string_view text, std::chrono::milliseconds max);

}  // namespace ferry
