#include "usage/usage_ledger.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

// 2026-12-03T10:00:00Z
constexpr int64_t kMorning = 1'796'292'000'000;
constexpr int64_t kDayMs = 86'400'000;

CostConfig Config(const std::string& budgets_yaml, bool email = true) {
  std::string text = "prices: {\"*\": {compute_second: 1.0}}\nbudgets:\n" + budgets_yaml;
  text += "alerts:\n  webhook: {url: 'http://hooks.example/a', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'}\n";
  if (email) text += "  email: {smtp_url: 'smtp://127.0.0.1:2525', from: ferry@example.com, to: [ops@example.com]}\n";
  Result<CostConfig> c = ParseCostConfig(text);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(c).value();
}

// One second of compute costs 1.0: a charge of `ms` milliseconds costs ms / 1000.
UsageCharge Use(const std::string& key, const std::string& model, int64_t ms) {
  return UsageCharge{key, model, UsageUnits{1, ms * 1000, 0, 0}};
}

class UsageLedgerTest : public ::testing::Test {
 protected:
  std::unique_ptr<UsageLedger> Open(CostConfig config) {
    UsageLedgerOptions o;
    o.path = dir_.root() / "usage.db";
    o.wall_clock = &clock_;
    o.flush_every = milliseconds(0);
    o.notify = [this](const BudgetAlert& a) {
      std::lock_guard lock(mu_);
      notified_.push_back(a.id);
      return Status::Ok();
    };
    auto ledger = UsageLedger::Open(std::move(o), std::move(config));
    EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
    return std::move(ledger).value();
  }
  std::vector<std::string> Notified() {
    std::lock_guard lock(mu_);
    return notified_;
  }

  ferry::testing::TempRepository dir_;
  FakeWallClock clock_{kMorning};
  std::mutex mu_;
  std::vector<std::string> notified_;
};

TEST(BudgetWindowTest, DaysAndMonthsAreUtcCalendarPeriods) {
  const BudgetWindow day = WindowOf(BudgetPeriod::kDay, kMorning);
  EXPECT_EQ(day.id, "2026-12-03");
  EXPECT_EQ(day.end_ms - day.start_ms, kDayMs);
  EXPECT_EQ(day.start_ms, kMorning - 10 * 3'600'000);
  const BudgetWindow month = WindowOf(BudgetPeriod::kMonth, kMorning);
  EXPECT_EQ(month.id, "2026-12");
  EXPECT_EQ(IsoTimeOf(month.start_ms), "2026-12-01T00:00:00Z");
  EXPECT_EQ(IsoTimeOf(month.end_ms), "2027-01-01T00:00:00Z");
  EXPECT_EQ(WindowOf(BudgetPeriod::kMonth, month.end_ms).id, "2027-01");
  EXPECT_EQ(DayOf(month.end_ms - 1), "2026-12-31");
  EXPECT_EQ(IsoTimeOf(kMorning + 3'723'000), "2026-12-03T11:02:03Z");
}

TEST_F(UsageLedgerTest, ChargesAddUpByDayCallerAndModelAndSurviveAReopen) {
  {
    auto ledger = Open(CostConfig{});
    ledger->Charge(Use("a", "cnn", 5));
    ledger->Charge(Use("a", "cnn", 7));
    ledger->Charge(Use("b", "cnn", 1));
    ledger->Charge(UsageCharge{"a", "llm", UsageUnits{1, 10, 3, 4}});
    auto rows = ledger->Rows("2026-12-01", "2026-12-31", std::nullopt);
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 3u);
    EXPECT_EQ((*rows)[0].caller, "a");
    EXPECT_EQ((*rows)[0].model, "cnn");
    EXPECT_EQ((*rows)[0].units.requests, 2);
    EXPECT_EQ((*rows)[0].units.compute_us, 12'000);
    ledger->Charge(Use("a", "cnn", 1));  // written at close
  }
  auto again = Open(CostConfig{});
  auto rows = again->Rows("2026-12-03", "2026-12-03", std::string("a"));
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].units.compute_us, 13'000);
  EXPECT_EQ((*rows)[1].units.prompt_tokens, 3);
  EXPECT_EQ((*rows)[1].units.completion_tokens, 4);
  EXPECT_TRUE(again->Rows("2026-12-04", "2026-12-31", std::nullopt)->empty());
}

TEST_F(UsageLedgerTest, EachThresholdAlertsOncePerPeriodWithItsWebhookAndEmail) {
  auto ledger = Open(Config("  - {name: b, key: k, period: day, limit: 1.0, alerts: [50, 80, 100], cap: soft}\n"));
  ledger->Charge(Use("k", "m", 400));
  EXPECT_TRUE(Notified().empty());
  ledger->Charge(Use("other", "m", 900));  // another caller's use does not count
  EXPECT_TRUE(Notified().empty());
  ledger->Charge(Use("k", "m", 450));  // 0.85: past 50 and 80 at once
  EXPECT_EQ(Notified(), (std::vector<std::string>{"alert_b_2026-12-03_50", "alert_b_2026-12-03_80"}));
  ledger->Charge(Use("k", "m", 10));
  ledger->Charge(Use("k", "m", 200));  // 1.06
  ASSERT_EQ(Notified().size(), 3u);
  EXPECT_EQ(Notified()[2], "alert_b_2026-12-03_100");
  ledger->Charge(Use("k", "m", 500));
  EXPECT_EQ(Notified().size(), 3u);
  EXPECT_TRUE(ledger->Admit("k", "m").ok());  // soft: alerts only
  auto mail = ledger->DueMail(kMorning, 10);
  ASSERT_TRUE(mail.ok());
  ASSERT_EQ(mail->size(), 3u);
  EXPECT_EQ((*mail)[0].to, (std::vector<std::string>{"ops@example.com"}));
  EXPECT_NE((*mail)[1].subject.find("80% of 1.00 USD a day"), std::string::npos) << (*mail)[1].subject;
  const std::vector<BudgetState> states = ledger->Budgets();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_NEAR(states[0].spent, 1.56, 1e-9);
  EXPECT_EQ(states[0].alerts_sent, (std::vector<int>{50, 80, 100}));

  // The next day is a new period: the thresholds alert again.
  clock_.Advance(milliseconds(kDayMs));
  ledger->Charge(Use("k", "m", 600));
  ASSERT_EQ(Notified().size(), 4u);
  EXPECT_EQ(Notified()[3], "alert_b_2026-12-04_50");
  EXPECT_NEAR(ledger->Budgets()[0].spent, 0.6, 1e-9);
}

TEST_F(UsageLedgerTest, AHardCapRefusesUntilThePeriodEndsWithRetryAfter) {
  auto ledger = Open(Config("  - {name: cap, key: k, model: m, period: day, limit: 0.5, cap: hard}\n"));
  EXPECT_TRUE(ledger->Admit("k", "m").ok());
  ledger->Charge(Use("k", "m", 499));
  EXPECT_TRUE(ledger->Admit("k", "m").ok());
  ledger->Charge(Use("k", "m", 1));
  Status refused = ledger->Admit("k", "m");
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.retry_after_s(), 14 * 3600);  // 10:00 until midnight UTC
  EXPECT_NE(refused.message().find("budget 'cap'"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("2026-12-04T00:00:00Z"), std::string::npos) << refused.message();
  EXPECT_TRUE(ledger->Admit("k", "other").ok());  // other models and callers are not covered
  EXPECT_TRUE(ledger->Admit("j", "m").ok());
  clock_.Advance(milliseconds(14 * 3'600'000));
  EXPECT_TRUE(ledger->Admit("k", "m").ok());
}

TEST_F(UsageLedgerTest, SpendAndSentAlertsAreKeptAcrossARestart) {
  const CostConfig config = Config("  - {name: cap, key: k, period: month, limit: 1.0, alerts: [50, 100], cap: hard}\n");
  {
    auto ledger = Open(config);
    ledger->Charge(Use("k", "m", 600));
    EXPECT_EQ(Notified().size(), 1u);
  }
  auto ledger = Open(config);
  EXPECT_NEAR(ledger->Budgets()[0].spent, 0.6, 1e-9);
  EXPECT_EQ(ledger->Budgets()[0].alerts_sent, (std::vector<int>{50}));
  EXPECT_EQ(Notified().size(), 1u);  // not sent again
  ledger->Charge(Use("k", "m", 400));
  EXPECT_EQ(Notified().size(), 2u);
  EXPECT_EQ(ledger->Admit("k", "m").code(), StatusCode::kResourceExhausted);
}

TEST_F(UsageLedgerTest, ANewConfigurationIsJudgedAtOnce) {
  auto ledger = Open(CostConfig{});
  ledger->Charge(Use("k", "m", 300));
  EXPECT_TRUE(ledger->Admit("k", "m").ok());
  ledger->SetConfig(Config("  - {name: small, key: k, period: day, limit: 0.2, alerts: [100], cap: hard}\n", false));
  EXPECT_EQ(Notified(), (std::vector<std::string>{"alert_small_2026-12-03_100"}));
  EXPECT_EQ(ledger->Admit("k", "m").code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(ledger->DueMail(kMorning, 10)->empty());  // no e-mail target: no mail
}

TEST_F(UsageLedgerTest, ConcurrentChargesAreCountedExactly) {
  auto ledger = Open(CostConfig{});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) ledger->Charge(Use(t % 2 ? "a" : "b", "m", 1 + i % 3));
      if (t == 0) ASSERT_TRUE(ledger->Flush().ok());  // a write in the middle loses nothing
    });
  }
  for (auto& th : threads) th.join();
  auto rows = ledger->Rows("2026-12-03", "2026-12-03", std::nullopt);
  ASSERT_TRUE(rows.ok());
  int64_t requests = 0, compute = 0;
  for (const UsageRow& r : *rows) {
    requests += r.units.requests;
    compute += r.units.compute_us;
  }
  EXPECT_EQ(requests, 8000);
  EXPECT_EQ(compute, 8 * (334 * 1 + 333 * 2 + 333 * 3) * 1000);
}

TEST_F(UsageLedgerTest, WithAFlusherAlertsAreHandedOnByItNotByTheChargingThread) {
  UsageLedgerOptions o;
  o.path = dir_.root() / "usage.db";
  o.wall_clock = &clock_;
  o.flush_every = std::chrono::hours(1);  // the flusher wakes for alerts, not for time, in this test
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread::id> notified_on;
  bool mail_queued = false;
  o.notify = [&](const BudgetAlert&) {
    std::lock_guard lock(mu);
    notified_on.push_back(std::this_thread::get_id());
    return Status::Ok();
  };
  o.mail_queued = [&] {  // after the alert and its e-mail are stored
    std::lock_guard lock(mu);
    mail_queued = true;
    cv.notify_all();
  };
  auto ledger = UsageLedger::Open(std::move(o), Config("  - {name: b, period: day, limit: 1.0, alerts: [50]}\n"));
  ASSERT_TRUE(ledger.ok());
  (*ledger)->Charge(Use("k", "m", 600));
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return mail_queued; }));
  ASSERT_EQ(notified_on.size(), 1u);
  EXPECT_NE(notified_on[0], std::this_thread::get_id());
  lock.unlock();
  EXPECT_EQ((*ledger)->DueMail(kMorning, 10)->size(), 1u);
}

TEST_F(UsageLedgerTest, ManyRowsAreSummedByTheGroupsAsked) {
  auto ledger = Open(CostConfig{});
  for (int day = 0; day < 3; ++day) {
    for (int k = 0; k < 5; ++k) ledger->Charge(Use("k" + std::to_string(k), "m", 1));
    clock_.Advance(milliseconds(kDayMs));
  }
  auto by_model = ledger->Rows("2026-12-01", "2026-12-31", std::nullopt, false, false);
  ASSERT_TRUE(by_model.ok());
  ASSERT_EQ(by_model->size(), 1u);
  EXPECT_EQ((*by_model)[0].units.requests, 15);
  EXPECT_EQ((*by_model)[0].day, "");
  EXPECT_EQ(ledger->Rows("2026-12-01", "2026-12-31", std::nullopt, true, false)->size(), 3u);
  EXPECT_EQ(ledger->Rows("2026-12-01", "2026-12-31", std::nullopt, false, true)->size(), 5u);
  EXPECT_EQ(ledger->Rows("2026-12-01", "2026-12-31", std::nullopt)->size(), 15u);
}

TEST_F(UsageLedgerTest, MailAttemptsAreRecordedAndRetriedWhenDue) {
  auto ledger = Open(Config("  - {name: b, period: day, limit: 1.0, alerts: [10]}\n"));
  ledger->Charge(Use("x", "m", 200));
  auto due = ledger->DueMail(kMorning, 10);
  ASSERT_EQ(due->size(), 1u);
  const std::string id = (*due)[0].id;
  ASSERT_TRUE(ledger->RecordMailAttempt(id, false, false, "relay down", kMorning + 5000).ok());
  EXPECT_TRUE(ledger->DueMail(kMorning + 4999, 10)->empty());
  due = ledger->DueMail(kMorning + 5000, 10);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].attempts, 1);
  ASSERT_TRUE(ledger->RecordMailAttempt(id, true, false, "", 0).ok());
  EXPECT_EQ(ledger->MailState(id).value(), "sent");
  EXPECT_TRUE(ledger->DueMail(kMorning + 99'000, 10)->empty());
}

}  // namespace
}  // namespace ferry
