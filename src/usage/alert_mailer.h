#pragma once
// Sends the alert e-mails a UsageLedger queued, through the relay its configuration names: one thread,
// woken when mail is queued and every `poll_every` otherwise. A failed attempt is tried again after a
// growing wait (as webhooks are), up to `max_attempts`, then marked failed; every outcome is stored
// before the next attempt, so a restart resumes. A message cut off by a crash is sent again (at least
// once; its Message-ID is the alert's, for receivers that deduplicate). Thread-safe.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "usage/usage_ledger.h"

namespace ferry {

// Sends one message through one relay (the SMTP client lives with the transports).
using MailSend = std::function<Status(const AlertMail& mail, const EmailAlertTarget& relay)>;

struct AlertMailerOptions {
  std::chrono::milliseconds poll_every{1'000};
  std::chrono::milliseconds first_backoff{5'000};
  double backoff_factor = 3.0;
  std::chrono::milliseconds max_backoff{std::chrono::hours(1)};
  int64_t max_attempts = 8;
  const WallClock* wall_clock = &WallClock::Real();
};

class AlertMailer {
 public:
  AlertMailer(UsageLedger* ledger, MailSend send, AlertMailerOptions options = {});
  ~AlertMailer();  // Stop()
  void Start();
  void Wake();
  // Waits for the attempt in progress, if any, and ends the thread.
  void Stop();
  // One pass over the due messages (what the thread does each time it wakes); for tests.
  void SendDue();

 private:
  void Loop();
  UsageLedger* ledger_;
  MailSend send_;
  AlertMailerOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ferry
