#pragma once
// Sends the webhook outbox of a JobStore: leases due deliveries, resolves each URL's host once and pins
// the address it checked (a host name cannot be re-pointed between the check and the connection), signs
// each attempt as Standard Webhooks asks and posts it through a WebhookPost (the HTTP client lives in
// the HTTP layer), then stores what the attempt came to:
//   2xx: delivered. 410: the endpoint is disabled. 301 and 308 (permanent redirects, never followed):
//   failed. Anything else (another status, a temporary redirect, a timeout, a refused or dropped
//   connection): tried again after
//   first_backoff x factor^(n-1) x jitter in [1, 1 + jitter), so each wait is at least factor / (1 +
//   jitter) times the one before, until max_attempts, then failed. A host that resolves to a forbidden
//   address fails at once, with no connection.
// Every decision is committed before the next attempt, so a restart resumes where the last one stopped;
// an attempt cut off by a crash is sent again when its lease expires (delivery is at least once, and
// receivers deduplicate on webhook-id). Thread-safe.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "jobs/job_store.h"
#include "jobs/webhook_target.h"

namespace ferry {

struct WebhookHttpRequest {
  std::string scheme;                  // "http" or "https"
  std::string host;                    // for the Host header and TLS (SNI and certificate name)
  uint16_t port = 0;
  std::string target;                  // path and query
  IpAddress address;                   // where to connect: the pinned address
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};  // connect, send and the answer's head, together
};

struct WebhookHttpAnswer {
  int status = 0;                      // 0: no answer; `error` says why
  std::string error;
  std::string location;                // of a redirect, for the error message
  int64_t retry_after_s = -1;          // Retry-After in seconds, when given
};

// Posts one request and calls `done` exactly once, from any thread.
using WebhookPost = std::function<void(WebhookHttpRequest request, std::function<void(WebhookHttpAnswer)> done)>;
// The body of a delivery's first attempt (later attempts resend the stored one).
using WebhookPayloadRenderer = std::function<Result<std::string>(const WebhookDelivery& delivery)>;

struct WebhookDelivererOptions {
  size_t concurrency = 8;                                 // attempts in flight at once
  std::chrono::milliseconds timeout{10'000};
  std::chrono::milliseconds first_backoff{5'000};
  double backoff_factor = 3.0;
  double jitter = 0.5;
  std::chrono::milliseconds max_backoff{std::chrono::hours(6)};
  int64_t max_attempts = 8;
  std::chrono::milliseconds poll_every{1'000};           // how often an idle deliverer looks for work
  std::vector<IpNetwork> allowed;                         // forbidden ranges allowed all the same
  std::map<std::string, IpAddress> resolve;               // NormalizeHostName(host) -> address, ahead of DNS
  std::function<int64_t()> now_ms;                        // Unix milliseconds; default: the system clock
};

struct WebhookDelivererObserver {
  // An attempt ended: "delivered", "retry", "failed" or "disabled"; `took` from start to answer.
  std::function<void(const std::string& outcome, std::chrono::duration<double> took)> attempted;
};

class WebhookDeliverer {
 public:
  WebhookDeliverer(JobStore* store, WebhookPost post, WebhookPayloadRenderer render, WebhookDelivererOptions options,
                   WebhookDelivererObserver observer = {});
  ~WebhookDeliverer();  // Stop(0)

  void Start();
  // Looks for due deliveries now (a job just became final) instead of at the next poll.
  void Wake();
  // Stops leasing, waits up to `wait` for attempts in flight and stores their outcomes. Attempts still
  // unanswered keep their lease and are sent again after it expires (in this process or the next).
  void Stop(std::chrono::milliseconds wait);

  // The wait before attempt n + 1 after n failed ones (n >= 1), with `unit` a uniform draw in [0, 1).
  static std::chrono::milliseconds Backoff(const WebhookDelivererOptions& options, int64_t failed_attempts, double unit);

 private:
  struct Shared;  // what the HTTP callbacks reach; it outlives the deliverer while they are pending
  void Loop();
  void Begin(const WebhookDelivery& delivery);
  void Record(const WebhookDelivery& delivery, const WebhookHttpAnswer& answer, std::chrono::steady_clock::time_point started);
  void RecordFailure(const WebhookDelivery& delivery, const std::string& error, bool retry);
  void Store(const WebhookDelivery& delivery, DeliveryAttempt attempt, std::chrono::duration<double> took);
  Result<IpAddress> Resolve(const WebhookTarget& target) const;

  JobStore* store_;
  WebhookPost post_;
  WebhookPayloadRenderer render_;
  WebhookDelivererOptions options_;
  WebhookDelivererObserver observer_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace ferry
