// The webhook outbox of SqliteJobStore: deliveries made with their job, armed in the commit that makes
// the job final, leased, recorded, disabled by a 410, and removed with their job.
#include <gtest/gtest.h>

#include <atomic>

#include "jobs/sqlite_job_store.h"
#include "testing/temp_repository.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using Outcome = DeliveryAttempt::Outcome;

class WebhookOutboxTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = Open(); }
  std::unique_ptr<SqliteJobStore> Open() {
    SqliteJobStoreOptions options;
    options.path = dir_.root() / "jobs.db";
    options.now_ms = [this] { return now_.load(); };
    auto store = SqliteJobStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return std::move(store).value();
  }
  std::string Submit(const std::string& url = "http://hooks.example/a") {
    ++now_;  // jobs lease oldest first
    NewJob j;
    j.model = "m";
    j.request = "{}";
    j.webhook_url = url;
    j.webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    return store_->Submit(j)->id;
  }
  // Leases the job and completes it.
  void Finish(const std::string& id) {
    auto leased = store_->Lease("r", 10, milliseconds(1000));
    ASSERT_TRUE(leased.ok());
    ASSERT_TRUE(store_->Complete(id, "r", "{\"outputs\":[]}").ok());
  }
  WebhookDelivery Delivery(const std::string& job_id) { return store_->GetDelivery(job_id)->value(); }

  ferry::testing::TempRepository dir_;
  std::atomic<int64_t> now_{1'700'000'000'000};
  std::unique_ptr<SqliteJobStore> store_;
};

TEST_F(WebhookOutboxTest, ADeliveryWaitsForItsJobAndIsArmedWhenTheJobSucceeds) {
  const std::string id = Submit();
  WebhookDelivery d = Delivery(id);
  EXPECT_EQ(d.id, "msg_" + id);
  EXPECT_EQ(d.state, DeliveryState::kWaiting);
  EXPECT_TRUE(d.secret.empty()) << "GetDelivery must not expose the secret";
  EXPECT_TRUE(store_->LeaseDeliveries(10, milliseconds(1000))->empty());
  EXPECT_FALSE(store_->NextDeliveryDue()->has_value());

  Finish(id);
  d = Delivery(id);
  EXPECT_EQ(d.state, DeliveryState::kPending);
  EXPECT_EQ(d.event, "job.succeeded");
  EXPECT_EQ(store_->NextDeliveryDue()->value_or(-1), now_.load());
  auto leased = store_->LeaseDeliveries(10, milliseconds(1000));
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_EQ((*leased)[0].secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  EXPECT_EQ((*leased)[0].url, "http://hooks.example/a");
  // Leased: not handed out again until the lease expires.
  EXPECT_TRUE(store_->LeaseDeliveries(10, milliseconds(1000))->empty());
  now_ += 1001;
  EXPECT_EQ(store_->LeaseDeliveries(10, milliseconds(1000))->size(), 1u);
}

TEST_F(WebhookOutboxTest, JobsWithoutAWebhookHaveNoDelivery) {
  NewJob j;
  j.model = "m";
  j.request = "{}";
  const std::string id = store_->Submit(j)->id;
  EXPECT_FALSE(store_->GetDelivery(id)->has_value());
}

TEST_F(WebhookOutboxTest, CancelledFailedAndReapedJobsAreArmedWithTheirEvent) {
  const std::string cancelled = Submit();
  ASSERT_TRUE(store_->Cancel(cancelled).ok());
  EXPECT_EQ(Delivery(cancelled).event, "job.cancelled");

  const std::string failed = Submit();
  store_->Lease("r", 10, milliseconds(1000));
  ASSERT_TRUE(store_->Fail(failed, "r", "bad input", /*retry=*/false).ok());
  EXPECT_EQ(Delivery(failed).event, "job.failed");
  EXPECT_EQ(Delivery(failed).state, DeliveryState::kPending);

  NewJob once;
  once.model = "m";
  once.request = "{}";
  once.max_attempts = 1;
  once.webhook_url = "http://hooks.example/b";
  once.webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::string reaped = store_->Submit(once)->id;
  store_->Lease("dead-runner", 10, milliseconds(10));
  now_ += 20;
  ASSERT_EQ(*store_->ReapExpiredLeases(), 1);
  EXPECT_EQ(Delivery(reaped).event, "job.failed");
  EXPECT_EQ(Delivery(reaped).state, DeliveryState::kPending);
}

TEST_F(WebhookOutboxTest, RetriesKeepTheFirstPayloadAndTheirSchedule) {
  const std::string id = Submit();
  Finish(id);
  auto leased = store_->LeaseDeliveries(1, milliseconds(1000));
  ASSERT_EQ(leased->size(), 1u);
  ASSERT_TRUE(store_->RecordDeliveryAttempt((*leased)[0].id, {Outcome::kRetry, 500, "answered 500", now_ + 5000, "first"}).ok());
  WebhookDelivery d = Delivery(id);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.last_status, 500);
  EXPECT_EQ(d.last_error, "answered 500");
  EXPECT_TRUE(store_->LeaseDeliveries(1, milliseconds(1000))->empty()) << "not due yet";
  now_ += 5000;
  leased = store_->LeaseDeliveries(1, milliseconds(1000));
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_EQ((*leased)[0].payload, "first");
  ASSERT_TRUE(store_->RecordDeliveryAttempt((*leased)[0].id, {Outcome::kDelivered, 204, "", 0, "second"}).ok());
  d = Delivery(id);
  EXPECT_EQ(d.state, DeliveryState::kDelivered);
  EXPECT_EQ(d.attempts, 2);
  EXPECT_EQ(d.delivered_ms, now_.load());
  // A final delivery takes no further attempt.
  EXPECT_FALSE(store_->RecordDeliveryAttempt(d.id, {Outcome::kDelivered, 200, "", 0, ""}).ok());
}

TEST_F(WebhookOutboxTest, A410DisablesTheEndpointForPendingAndLaterDeliveries) {
  const std::string first = Submit("http://gone.example/x");
  const std::string second = Submit("http://gone.example/x");
  const std::string waiting = Submit("http://gone.example/x");
  const std::string elsewhere = Submit("http://fine.example/x");
  auto leased = store_->Lease("r", 2, milliseconds(1000));
  ASSERT_EQ(leased->size(), 2u);
  ASSERT_TRUE(store_->Complete(first, "r", "{}").ok());
  ASSERT_TRUE(store_->Complete(second, "r", "{}").ok());
  auto due = store_->LeaseDeliveries(1, milliseconds(1000));
  ASSERT_EQ(due->size(), 1u);
  ASSERT_TRUE(store_->RecordDeliveryAttempt((*due)[0].id, {Outcome::kGone, 410, "gone", 0, "p"}).ok());
  EXPECT_EQ(Delivery(first).state, DeliveryState::kDisabled);
  EXPECT_EQ(Delivery(second).state, DeliveryState::kDisabled);
  EXPECT_EQ(Delivery(second).attempts, 0);

  store_->Lease("r", 10, milliseconds(1000));
  ASSERT_TRUE(store_->Complete(waiting, "r", "{}").ok());
  ASSERT_TRUE(store_->Complete(elsewhere, "r", "{}").ok());
  EXPECT_EQ(Delivery(waiting).state, DeliveryState::kDisabled);
  EXPECT_EQ(Delivery(elsewhere).state, DeliveryState::kPending);
}

TEST_F(WebhookOutboxTest, PendingDeliveriesSurviveReopeningAndLeaveWithTheirJob) {
  const std::string id = Submit();
  Finish(id);
  store_.reset();
  store_ = Open();
  EXPECT_EQ(Delivery(id).state, DeliveryState::kPending);
  EXPECT_EQ(store_->LeaseDeliveries(10, milliseconds(1000))->size(), 1u);
  now_ += 10'000;
  ASSERT_EQ(*store_->DeleteFinishedBefore(milliseconds(5000)), 1);
  EXPECT_FALSE(store_->GetDelivery(id)->has_value());
}

TEST_F(WebhookOutboxTest, ANoticeIsPendingAtOnceWithItsBodyAndAddingItAgainChangesNothing) {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  ASSERT_TRUE(store_->AddNotice("alert_b_2026-12-03_50", "http://hooks.example/b", secret, "budget.alert", "{\"n\":1}").ok());
  ASSERT_TRUE(store_->AddNotice("alert_b_2026-12-03_50", "http://hooks.example/b", secret, "budget.alert", "{\"n\":2}").ok());
  auto leased = store_->LeaseDeliveries(10, milliseconds(1000));
  ASSERT_TRUE(leased.ok());
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_EQ((*leased)[0].id, "msg_alert_b_2026-12-03_50");
  EXPECT_EQ((*leased)[0].event, "budget.alert");
  EXPECT_EQ((*leased)[0].payload, "{\"n\":1}");  // the first add's body: retries resend it
  DeliveryAttempt delivered;
  delivered.outcome = Outcome::kDelivered;
  delivered.http_status = 204;
  ASSERT_TRUE(store_->RecordDeliveryAttempt((*leased)[0].id, delivered).ok());
  // Added again after delivery (a restart that re-fired the alert): not sent twice.
  ASSERT_TRUE(store_->AddNotice("alert_b_2026-12-03_50", "http://hooks.example/b", secret, "budget.alert", "{}").ok());
  EXPECT_TRUE(store_->LeaseDeliveries(10, milliseconds(1000))->empty());
  EXPECT_EQ(store_->GetDelivery("alert_b_2026-12-03_50")->value().state, DeliveryState::kDelivered);
}

}  // namespace
}  // namespace ferry
