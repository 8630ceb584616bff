#pragma once
// Where asynchronous jobs live. Every write returns only after it is committed with the store's
// durability (so a 202 is never sent for a job a crash could lose); failures to write are kUnavailable,
// never a silent success. Thread-safe.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "jobs/job.h"

namespace ferry {

struct JobCounts {
  int64_t queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Commits a new queued job, or returns the job an earlier submit with the same idempotency key made.
  // kUnavailable when the store is full (queued + running at the bound) or cannot write.
  virtual Result<SubmitOutcome> Submit(const NewJob& job) = 0;
  virtual Result<std::optional<Job>> Get(const std::string& id) = 0;
  // The stored result of a succeeded job: kNotFound without the job, kFailedPrecondition before it
  // succeeded.
  virtual Result<std::string> GetResult(const std::string& id) = 0;
  // Newest first. `page_token` is the one the previous page returned.
  virtual Result<JobPage> List(const JobFilter& filter, int64_t page_size, const std::string& page_token) = 0;
  virtual Result<JobCounts> Counts() = 0;

  // Hands out up to `max_jobs` queued jobs (highest priority, then oldest) to `owner` until now +
  // `lease`, counting an attempt each. Only these carry spec.request; Get and List leave it empty.
  virtual Result<std::vector<Job>> Lease(const std::string& owner, int64_t max_jobs,
                                         std::chrono::milliseconds lease) = 0;
  // Extends a lease; kFailedPrecondition when `owner` no longer holds it (expired and re-leased, or
  // cancelled), which tells the runner to drop the work.
  virtual Status Heartbeat(const std::string& id, const std::string& owner, std::chrono::milliseconds lease) = 0;
  // Ends an attempt held by `owner`: stores the result (succeeded), or records the error and requeues
  // while attempts remain and `retry` is true (failed otherwise: the dead letter; a request that can
  // never succeed is not retried). kFailedPrecondition when the lease was lost: nothing is stored.
  virtual Status Complete(const std::string& id, const std::string& owner, const std::string& result) = 0;
  virtual Status Fail(const std::string& id, const std::string& owner, const std::string& error, bool retry) = 0;
  // Puts an attempt that never ran (the model had no room: a full queue, a concurrency cap, a version
  // loading) back in the queue for `delay`, without spending an attempt; `why` is kept as its error.
  // kFailedPrecondition when the lease was lost.
  virtual Status Defer(const std::string& id, const std::string& owner, const std::string& why,
                       std::chrono::milliseconds delay) = 0;
  // Cancels a queued or running job and returns its state afterwards (a final job is left as it is).
  virtual Result<JobState> Cancel(const std::string& id) = 0;

  // Returns running jobs whose lease expired to the queue (or to failed with no attempts left).
  virtual Result<int64_t> ReapExpiredLeases() = 0;
  // Webhook outbox. Submit makes a job's delivery (waiting) in the same commit as the job, and the commit
  // that makes a job final makes its delivery pending, so a final job with a webhook always has one to
  // send, across crashes. LeaseDeliveries hands out pending deliveries that are due and not leased
  // (leased until now + `lease`, so a deliverer that dies leaves them to be sent again); deliveries to a
  // disabled endpoint are marked disabled instead. RecordDeliveryAttempt ends the lease: kGone also
  // disables the endpoint and every pending delivery to it.
  virtual Result<std::vector<WebhookDelivery>> LeaseDeliveries(int64_t max_deliveries, std::chrono::milliseconds lease) = 0;
  virtual Status RecordDeliveryAttempt(const std::string& delivery_id, const DeliveryAttempt& attempt) = 0;
  // The delivery of a job (without secret and payload), or nullopt when it has no webhook.
  virtual Result<std::optional<WebhookDelivery>> GetDelivery(const std::string& job_id) = 0;
  // The earliest next_attempt_ms of a pending delivery not leased now, or nullopt when there is none.
  virtual Result<std::optional<int64_t>> NextDeliveryDue() = 0;
  // A notice that belongs to no job (a budget alert) into the same outbox, pending now, its body fixed:
  // sent, signed and retried like a job's. Idempotent by `notice_id` (its webhook-id is "msg_" + it):
  // adding it again changes nothing, so a caller that cannot tell whether it was added adds it again.
  virtual Status AddNotice(const std::string& notice_id, const std::string& url, const std::string& secret,
                           const std::string& event, const std::string& payload) = 0;

  // Removes final jobs finished more than `retention` ago.
  virtual Result<int64_t> DeleteFinishedBefore(std::chrono::milliseconds retention) = 0;
};

}  // namespace ferry
