#include "usage/alert_mailer.h"

#include <gtest/gtest.h>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

constexpr int64_t kMorning = 1'796'292'000'000;  // 2026-12-03T10:00:00Z

class AlertMailerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UsageLedgerOptions o;
    o.path = dir_.root() / "usage.db";
    o.wall_clock = &clock_;
    o.flush_every = std::chrono::milliseconds(0);
    Result<CostConfig> config = ParseCostConfig(
        "prices: {\"*\": {compute_second: 1}}\n"
        "budgets: [{name: b, period: day, limit: 1, alerts: [50]}]\n"
        "alerts: {email: {smtp_url: 'smtp://127.0.0.1:1', from: f@example.com, to: [a@example.com, b@example.com]}}\n");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    ledger_ = std::move(UsageLedger::Open(std::move(o), std::move(config).value())).value();
    ledger_->Charge(UsageCharge{"k", "m", UsageUnits{1, 600'000, 0, 0}});
  }
  AlertMailerOptions Options() {
    AlertMailerOptions o;
    o.wall_clock = &clock_;
    o.first_backoff = std::chrono::milliseconds(1000);
    o.backoff_factor = 2;
    o.max_attempts = 3;
    return o;
  }
  ferry::testing::TempRepository dir_;
  FakeWallClock clock_{kMorning};
  std::unique_ptr<UsageLedger> ledger_;
};

TEST_F(AlertMailerTest, SendsEachQueuedMailOnceThroughTheConfiguredRelay) {
  std::vector<std::string> sent;
  AlertMailer mailer(ledger_.get(), [&](const AlertMail& m, const EmailAlertTarget& relay) {
    EXPECT_EQ(relay.smtp_url, "smtp://127.0.0.1:1");
    EXPECT_EQ(m.to.size(), 2u);
    sent.push_back(m.id);
    return Status::Ok();
  }, Options());
  mailer.SendDue();
  mailer.SendDue();
  EXPECT_EQ(sent, (std::vector<std::string>{"alert_b_2026-12-03_50"}));
  EXPECT_EQ(ledger_->MailState("alert_b_2026-12-03_50").value(), "sent");
}

TEST_F(AlertMailerTest, FailuresAreRetriedAfterAGrowingWaitThenGivenUp) {
  int attempts = 0;
  AlertMailer mailer(ledger_.get(), [&](const AlertMail&, const EmailAlertTarget&) {
    ++attempts;
    return Unavailable("connection refused");
  }, Options());
  mailer.SendDue();
  EXPECT_EQ(attempts, 1);
  clock_.Advance(std::chrono::milliseconds(999));
  mailer.SendDue();
  EXPECT_EQ(attempts, 1);  // not due yet
  clock_.Advance(std::chrono::milliseconds(1));
  mailer.SendDue();
  EXPECT_EQ(attempts, 2);
  clock_.Advance(std::chrono::milliseconds(1999));
  mailer.SendDue();
  EXPECT_EQ(attempts, 2);  // the second wait is twice the first
  clock_.Advance(std::chrono::milliseconds(1));
  mailer.SendDue();
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(ledger_->MailState("alert_b_2026-12-03_50").value(), "failed");  // max_attempts
  clock_.Advance(std::chrono::hours(1));
  mailer.SendDue();
  EXPECT_EQ(attempts, 3);
}

TEST_F(AlertMailerTest, ARelayThatRefusesTheMessageForGoodIsNotRetried) {
  int attempts = 0;
  AlertMailer mailer(ledger_.get(), [&](const AlertMail&, const EmailAlertTarget&) {
    ++attempts;
    return InvalidArgument("550 no such user");
  }, Options());
  mailer.SendDue();
  EXPECT_EQ(ledger_->MailState("alert_b_2026-12-03_50").value(), "failed");
  EXPECT_EQ(attempts, 1);
}

}  // namespace
}  // namespace ferry
