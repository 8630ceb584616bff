#include "jobs/webhook_deliverer.h"

#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <deque>
#include <fmt/format.h>
#include <optional>
#include <random>

#include "jobs/webhook_signature.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using Outcome = DeliveryAttempt::Outcome;

// An attempt in flight may hold its lease this much longer than its timeout before another takes it.
constexpr milliseconds kLeaseMargin{30'000};

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kDelivered: return "delivered";
    case Outcome::kRetry: return "retry";
    case Outcome::kFailed: return "failed";
    case Outcome::kGone: return "disabled";
  }
  return "unknown";
}

double UniformUnit() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

struct WebhookDeliverer::Shared {
  struct Finished {
    WebhookDelivery delivery;
    WebhookHttpAnswer answer;
    std::chrono::steady_clock::time_point started;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Finished> finished;
  size_t in_flight = 0;
  bool wake = false;
  bool stopping = false;
  std::chrono::steady_clock::time_point stop_deadline;
};

WebhookDeliverer::WebhookDeliverer(JobStore* store, WebhookPost post, WebhookPayloadRenderer render,
                                   WebhookDelivererOptions options, WebhookDelivererObserver observer)
    : store_(store),
      post_(std::move(post)),
      render_(std::move(render)),
      options_(std::move(options)),
      observer_(std::move(observer)),
      shared_(std::make_shared<Shared>()) {
  if (!options_.now_ms) {
    options_.now_ms = [] {
      return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  }
  options_.concurrency = std::max<size_t>(1, options_.concurrency);
}

WebhookDeliverer::~WebhookDeliverer() { Stop(milliseconds(0)); }

void WebhookDeliverer::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void WebhookDeliverer::Wake() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->wake = true;
  }
  shared_->cv.notify_all();
}

void WebhookDeliverer::Stop(milliseconds wait) {
  {
    std::lock_guard lock(shared_->mu);
    if (!shared_->stopping) {
      shared_->stopping = true;
      shared_->stop_deadline = std::chrono::steady_clock::now() + wait;
    }
  }
  shared_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

milliseconds WebhookDeliverer::Backoff(const WebhookDelivererOptions& options, int64_t failed_attempts, double unit) {
  const double growth = std::pow(options.backoff_factor, static_cast<double>(std::max<int64_t>(0, failed_attempts - 1)));
  const double ms = static_cast<double>(options.first_backoff.count()) * growth * (1.0 + options.jitter * unit);
  return milliseconds(static_cast<int64_t>(std::min(ms, static_cast<double>(options.max_backoff.count()))));
}

void WebhookDeliverer::Loop() {
  Shared& sh = *shared_;
  for (;;) {
    std::deque<Shared::Finished> finished;
    size_t in_flight = 0;
    bool stopping = false;
    {
      std::unique_lock lock(sh.mu);
      finished.swap(sh.finished);
      in_flight = sh.in_flight;
      stopping = sh.stopping;
    }
    for (const Shared::Finished& f : finished) Record(f.delivery, f.answer, f.started);
    if (stopping) {
      std::unique_lock lock(sh.mu);
      if ((sh.in_flight == 0 && sh.finished.empty()) || std::chrono::steady_clock::now() >= sh.stop_deadline) return;
      sh.cv.wait_until(lock, sh.stop_deadline, [&] { return !sh.finished.empty() || sh.in_flight == 0; });
      continue;
    }

    const size_t free = options_.concurrency - std::min(in_flight, options_.concurrency);
    size_t leased = 0;
    if (free > 0) {
      Result<std::vector<WebhookDelivery>> due =
          store_->LeaseDeliveries(static_cast<int64_t>(free), options_.timeout + kLeaseMargin);
      if (!due.ok()) {
        spdlog::warn("webhooks: cannot lease deliveries: {}", due.status().ToString());
      } else {
        leased = due->size();
        for (const WebhookDelivery& d : *due) Begin(d);
      }
    }
    if (free > 0 && leased == free) continue;  // more may be due

    milliseconds wait = options_.poll_every;
    if (free > 0) {
      Result<std::optional<int64_t>> next = store_->NextDeliveryDue();
      if (next.ok() && next->has_value()) {
        wait = std::clamp(milliseconds(**next - options_.now_ms() + 1), milliseconds(0), wait);
      }
    }
    std::unique_lock lock(sh.mu);
    sh.cv.wait_for(lock, wait, [&] { return sh.stopping || sh.wake || !sh.finished.empty(); });
    sh.wake = false;
  }
}

Result<IpAddress> WebhookDeliverer::Resolve(const WebhookTarget& target) const {
  if (target.address) return *target.address;  // a literal: CheckWebhookUrl checked it
  const std::string host = NormalizeHostName(target.host);
  std::vector<IpAddress> addresses;
  if (auto it = options_.resolve.find(host); it != options_.resolve.end()) {
    addresses.push_back(it->second);
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (rc != 0) return Unavailable(fmt::format("cannot resolve '{}': {}", host, gai_strerror(rc)));
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      IpAddress ip;
      if (a->ai_family == AF_INET) {
        ip.bytes[10] = ip.bytes[11] = 0xff;
        std::memcpy(&ip.bytes[12], &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, 4);
      } else if (a->ai_family == AF_INET6) {
        std::memcpy(ip.bytes.data(), &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, 16);
      } else {
        continue;
      }
      addresses.push_back(ip);
    }
    freeaddrinfo(found);
    if (addresses.empty()) return Unavailable(fmt::format("'{}' has no IP address", host));
  }
  // Every address is checked, not only the one used: a name that mixes in a forbidden one is refused.
  for (const IpAddress& ip : addresses) {
    if (auto reason = ForbiddenUnlessAllowed(ip, options_.allowed)) {
      return InvalidArgument(fmt::format("'{}' resolves to {}, a {} address; not contacted", host, ip.ToString(), *reason));
    }
  }
  return addresses.front();
}

void WebhookDeliverer::Begin(const WebhookDelivery& delivery) {
  Result<WebhookTarget> target = CheckWebhookUrl(delivery.url, options_.allowed);
  if (!target.ok()) return RecordFailure(delivery, target.status().message(), false);
  Result<IpAddress> address = Resolve(*target);
  if (!address.ok()) {
    return RecordFailure(delivery, address.status().message(), address.status().code() == StatusCode::kUnavailable);
  }
  Result<std::string> key = ParseWebhookSecret(delivery.secret);
  if (!key.ok()) return RecordFailure(delivery, key.status().message(), false);
  WebhookDelivery d = delivery;
  if (d.payload.empty()) {
    Result<std::string> payload = render_(d);
    if (!payload.ok()) return RecordFailure(delivery, payload.status().message(), false);
    d.payload = std::move(payload).value();
  }

  WebhookHttpRequest request;
  request.scheme = target->scheme;
  request.host = target->host;
  request.port = target->port;
  request.target = target->path_and_query;
  request.address = *address;
  request.timeout = options_.timeout;
  const int64_t timestamp = options_.now_ms() / 1000;
  request.headers = {{"content-type", "application/json"},
                     {"user-agent", "Ferry-Webhooks/1"},
                     {"webhook-id", d.id},
                     {"webhook-timestamp", std::to_string(timestamp)},
                     {"webhook-signature", SignWebhook(*key, d.id, timestamp, d.payload)}};
  request.body = d.payload;
  {
    std::lock_guard lock(shared_->mu);
    ++shared_->in_flight;
  }
  const auto started = std::chrono::steady_clock::now();
  post_(std::move(request), [shared = shared_, d = std::move(d), started](WebhookHttpAnswer answer) mutable {
    {
      std::lock_guard lock(shared->mu);
      --shared->in_flight;
      shared->finished.push_back({std::move(d), std::move(answer), started});
    }
    shared->cv.notify_all();
  });
}

void WebhookDeliverer::RecordFailure(const WebhookDelivery& delivery, const std::string& error, bool retry) {
  WebhookHttpAnswer answer;
  answer.error = error;
  if (retry) return Record(delivery, answer, std::chrono::steady_clock::now());
  Store(delivery, {Outcome::kFailed, 0, error, 0, delivery.payload}, std::chrono::duration<double>(0));
}

void WebhookDeliverer::Record(const WebhookDelivery& delivery, const WebhookHttpAnswer& answer,
                              std::chrono::steady_clock::time_point started) {
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  DeliveryAttempt attempt;
  attempt.http_status = answer.status;
  attempt.payload = delivery.payload;
  if (answer.status >= 200 && answer.status < 300) {
    attempt.outcome = Outcome::kDelivered;
    return Store(delivery, std::move(attempt), took);
  }
  if (answer.status == 410) {
    attempt.outcome = Outcome::kGone;
    attempt.error = "answered 410 Gone: the endpoint is disabled";
    return Store(delivery, std::move(attempt), took);
  }
  if (answer.status >= 300 && answer.status < 400) {
    attempt.error = fmt::format("answered {} (a redirect to '{}', not followed)", answer.status,
                                answer.location.substr(0, 256));
  } else if (answer.status != 0) {
    attempt.error = fmt::format("answered {}", answer.status);
  } else {
    attempt.error = answer.error;
  }
  const int64_t attempts = delivery.attempts + 1;
  // A permanent redirect will say the same next time, and is not followed.
  if (attempts >= options_.max_attempts || answer.status == 301 || answer.status == 308) {
    attempt.outcome = Outcome::kFailed;
    attempt.error += answer.status == 301 || answer.status == 308
                         ? std::string(" (permanent: no more attempts)")
                         : fmt::format(" (attempt {} of {}: no more)", attempts, options_.max_attempts);
    return Store(delivery, std::move(attempt), took);
  }
  milliseconds wait = Backoff(options_, attempts, UniformUnit());
  if (answer.retry_after_s > 0) {
    wait = std::max(wait, std::min<milliseconds>(std::chrono::seconds(answer.retry_after_s), options_.max_backoff));
  }
  attempt.outcome = Outcome::kRetry;
  attempt.next_attempt_ms = options_.now_ms() + wait.count();
  Store(delivery, std::move(attempt), took);
}

void WebhookDeliverer::Store(const WebhookDelivery& delivery, DeliveryAttempt attempt,
                             std::chrono::duration<double> took) {
  const Outcome outcome = attempt.outcome;
  Status s = store_->RecordDeliveryAttempt(delivery.id, attempt);
  if (!s.ok()) {
    // The lease stays and expires, and the attempt is made again: at least once.
    spdlog::warn("webhooks: cannot record the attempt on {} ({}): {}", delivery.id, OutcomeName(outcome), s.ToString());
    return;
  }
  if (outcome != Outcome::kDelivered) {
    spdlog::info("webhooks: {} to {} {}: {}", delivery.id, delivery.url.substr(0, 128), OutcomeName(outcome),
                 attempt.error);
  }
  if (observer_.attempted) observer_.attempted(std::string(OutcomeName(outcome)), took);
}

}  // namespace ferry
