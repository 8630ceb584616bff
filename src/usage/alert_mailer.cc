#include "usage/alert_mailer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace ferry {

AlertMailer::AlertMailer(UsageLedger* ledger, MailSend send, AlertMailerOptions options)
    : ledger_(ledger), send_(std::move(send)), options_(options) {}

AlertMailer::~AlertMailer() { Stop(); }

void AlertMailer::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void AlertMailer::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void AlertMailer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AlertMailer::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    SendDue();
    lock.lock();
    cv_.wait_for(lock, options_.poll_every, [&] { return stopping_ || woken_; });
    woken_ = false;
  }
}

void AlertMailer::SendDue() {
  const int64_t now = options_.wall_clock->NowUnixMs();
  Result<std::vector<AlertMail>> due = ledger_->DueMail(now, 16);
  if (!due.ok()) {
    spdlog::error("alert mail: reading the outbox failed: {}", due.status().message());
    return;
  }
  const std::optional<EmailAlertTarget> relay = ledger_->config().email;
  for (const AlertMail& mail : *due) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;  // the rest wait for the next start
    }
    Status sent = relay ? send_(mail, *relay) : FailedPrecondition("no e-mail relay is configured any more");
    const int64_t attempts = mail.attempts + 1;
    const bool give_up = !sent.ok() && (attempts >= options_.max_attempts || !relay ||
                                        sent.code() == StatusCode::kInvalidArgument);
    const double wait_ms = std::min<double>(
        static_cast<double>(options_.first_backoff.count()) * std::pow(options_.backoff_factor, static_cast<double>(attempts - 1)),
        static_cast<double>(options_.max_backoff.count()));
    if (sent.ok()) {
      spdlog::info("alert mail '{}' sent to {} recipient(s)", mail.id, mail.to.size());
    } else {
      spdlog::warn("alert mail '{}' attempt {} failed{}: {}", mail.id, attempts, give_up ? " (giving up)" : "",
                   sent.message());
    }
    Status stored = ledger_->RecordMailAttempt(mail.id, sent.ok(), give_up, sent.ok() ? "" : sent.message(),
                                               now + static_cast<int64_t>(wait_ms));
    if (!stored.ok()) spdlog::error("alert mail '{}': storing the attempt failed: {}", mail.id, stored.message());
  }
}

}  // namespace ferry
