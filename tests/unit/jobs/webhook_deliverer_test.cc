// WebhookDeliverer over a real SqliteJobStore and a scripted WebhookPost in place of the HTTP client.
#include "jobs/webhook_deliverer.h"

#include <gtest/gtest.h>

#include <condition_variable>

#include <deque>
#include <mutex>
#include <thread>

#include "jobs/sqlite_job_store.h"
#include "jobs/webhook_signature.h"
#include "testing/temp_repository.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

constexpr const char* kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// Answers each post with the next scripted status (the last one repeats) and records what it was sent.
class ScriptedReceiver {
 public:
  explicit ScriptedReceiver(std::vector<int> statuses) : statuses_(std::move(statuses)) {}
  WebhookPost Post() {
    return [this](WebhookHttpRequest request, std::function<void(WebhookHttpAnswer)> done) {
      WebhookHttpAnswer answer;
      {
        std::lock_guard lock(mu_);
        answer.status = statuses_[std::min(requests_.size(), statuses_.size() - 1)];
        requests_.push_back(std::move(request));
      }
      if (answer.status == 0) answer.error = "the connection was closed without an answer";
      done(answer);
    };
  }
  std::vector<WebhookHttpRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::vector<int> statuses_;
  std::vector<WebhookHttpRequest> requests_;
};

std::string Header(const WebhookHttpRequest& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

class WebhookDelivererTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteJobStoreOptions options;
    options.path = dir_.root() / "jobs.db";
    options.durability = SqliteJobStoreOptions::Durability::kFast;
    store_ = std::move(SqliteJobStore::Open(std::move(options))).value();
    options_.first_backoff = milliseconds(5);
    options_.poll_every = milliseconds(20);
    options_.max_attempts = 4;
  }
  // A succeeded job whose webhook goes to `url`.
  std::string FinishedJob(const std::string& url) {
    NewJob j;
    j.model = "m";
    j.request = "{}";
    j.webhook_url = url;
    j.webhook_secret = kSecret;
    const std::string id = store_->Submit(j)->id;
    EXPECT_EQ(store_->Lease("r", 1, milliseconds(10'000))->size(), 1u);
    EXPECT_TRUE(store_->Complete(id, "r", "{\"outputs\":[]}").ok());
    return id;
  }
  std::unique_ptr<WebhookDeliverer> Deliverer(ScriptedReceiver& receiver) {
    auto d = std::make_unique<WebhookDeliverer>(
        store_.get(), receiver.Post(),
        [this](const WebhookDelivery& d) -> Result<std::string> {
          ++renders_;
          return "{\"type\":\"" + d.event + "\",\"job\":\"" + d.job_id + "\"}";
        },
        options_, WebhookDelivererObserver{[this](const std::string& outcome, std::chrono::duration<double>) {
          {
            std::lock_guard lock(mu_);
            outcomes_.push_back(outcome);
          }
          outcome_cv_.notify_all();
        }});
    d->Start();
    return d;
  }
  // The delivery once it is no longer pending (or after 10 s).
  WebhookDelivery Settled(const std::string& job_id) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      WebhookDelivery d = store_->GetDelivery(job_id)->value();
      if (d.state != DeliveryState::kPending || std::chrono::steady_clock::now() > deadline) return d;
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  // The observer's outcomes once there are at least `count` (or after 10 s): it hears of an attempt
  // after the store has committed it, so a settled delivery may still be on its way to the observer.
  std::vector<std::string> outcomes(size_t count = 1) {
    std::unique_lock lock(mu_);
    outcome_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return outcomes_.size() >= count; });
    return outcomes_;
  }

  ferry::testing::TempRepository dir_;
  std::unique_ptr<SqliteJobStore> store_;
  WebhookDelivererOptions options_;
  std::atomic<int> renders_{0};
  std::mutex mu_;
  std::vector<std::string> outcomes_;
  std::condition_variable outcome_cv_;
};

TEST_F(WebhookDelivererTest, DeliversASignedRequestToThePinnedAddress) {
  options_.allowed = {ParseIpNetwork("127.0.0.0/8").value()};
  ScriptedReceiver receiver({204});
  const std::string id = FinishedJob("http://127.0.0.9:8080/hooks?x=1");
  auto deliverer = Deliverer(receiver);
  WebhookDelivery d = Settled(id);
  EXPECT_EQ(d.state, DeliveryState::kDelivered);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.last_status, 204);
  auto sent = receiver.requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].address.ToString(), "127.0.0.9");
  EXPECT_EQ(sent[0].port, 8080);
  EXPECT_EQ(sent[0].target, "/hooks?x=1");
  EXPECT_EQ(Header(sent[0], "webhook-id"), "msg_" + id);
  EXPECT_EQ(sent[0].body, "{\"type\":\"job.succeeded\",\"job\":\"" + id + "\"}");
  const int64_t timestamp = std::stoll(Header(sent[0], "webhook-timestamp"));
  EXPECT_EQ(Header(sent[0], "webhook-signature"),
            SignWebhook(*ParseWebhookSecret(kSecret), "msg_" + id, timestamp, sent[0].body));
  EXPECT_EQ(outcomes(), std::vector<std::string>{"delivered"});
}

TEST_F(WebhookDelivererTest, RetriesWithTheSameIdAndBodyUntilAnAttemptSucceeds) {
  options_.allowed = {ParseIpNetwork("127.0.0.1").value()};
  ScriptedReceiver receiver({500, 0, 302, 200});
  const std::string id = FinishedJob("http://127.0.0.1:9/h");
  auto deliverer = Deliverer(receiver);
  WebhookDelivery d = Settled(id);
  EXPECT_EQ(d.state, DeliveryState::kDelivered);
  EXPECT_EQ(d.attempts, 4);
  auto sent = receiver.requests();
  ASSERT_EQ(sent.size(), 4u);
  for (const auto& r : sent) {
    EXPECT_EQ(Header(r, "webhook-id"), "msg_" + id);
    EXPECT_EQ(r.body, sent[0].body);
  }
  EXPECT_EQ(renders_.load(), 1) << "the body is made once and stored";
  EXPECT_EQ(outcomes(4), (std::vector<std::string>{"retry", "retry", "retry", "delivered"}));
}

TEST_F(WebhookDelivererTest, GivesUpAfterMaxAttempts) {
  options_.allowed = {ParseIpNetwork("127.0.0.1").value()};
  ScriptedReceiver receiver({503});
  const std::string id = FinishedJob("http://127.0.0.1:9/h");
  auto deliverer = Deliverer(receiver);
  WebhookDelivery d = Settled(id);
  EXPECT_EQ(d.state, DeliveryState::kFailed);
  EXPECT_EQ(d.attempts, 4);
  EXPECT_EQ(d.last_status, 503);
  EXPECT_NE(d.last_error.find("attempt 4 of 4"), std::string::npos) << d.last_error;
  EXPECT_EQ(receiver.requests().size(), 4u);
}

TEST_F(WebhookDelivererTest, APermanentRedirectFailsAtOnce) {
  options_.allowed = {ParseIpNetwork("127.0.0.1").value()};
  ScriptedReceiver receiver({308});
  const std::string id = FinishedJob("http://127.0.0.1:9/moved");
  auto deliverer = Deliverer(receiver);
  WebhookDelivery d = Settled(id);
  EXPECT_EQ(d.state, DeliveryState::kFailed);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_NE(d.last_error.find("not followed"), std::string::npos) << d.last_error;
}

TEST_F(WebhookDelivererTest, A410DisablesTheEndpoint) {
  options_.allowed = {ParseIpNetwork("127.0.0.1").value()};
  ScriptedReceiver receiver({410});
  const std::string first = FinishedJob("http://127.0.0.1:9/gone");
  auto deliverer = Deliverer(receiver);
  EXPECT_EQ(Settled(first).state, DeliveryState::kDisabled);
  const std::string second = FinishedJob("http://127.0.0.1:9/gone");
  deliverer->Wake();
  EXPECT_EQ(Settled(second).state, DeliveryState::kDisabled);
  EXPECT_EQ(receiver.requests().size(), 1u) << "a disabled endpoint is not contacted again";
}

TEST_F(WebhookDelivererTest, ANameThatResolvesToAForbiddenAddressIsNeverContacted) {
  options_.resolve["canary.test"] = *ParseIpAddress("127.0.0.1");
  options_.resolve["ok.test"] = *ParseIpAddress("127.0.0.2");
  options_.allowed = {ParseIpNetwork("127.0.0.2").value()};
  ScriptedReceiver receiver({200});
  const std::string blocked = FinishedJob("http://canary.test:9/x");
  const std::string allowed = FinishedJob("http://OK.test.:9/x");
  auto deliverer = Deliverer(receiver);
  WebhookDelivery d = Settled(blocked);
  EXPECT_EQ(d.state, DeliveryState::kFailed);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_NE(d.last_error.find("127.0.0.1"), std::string::npos) << d.last_error;
  EXPECT_EQ(Settled(allowed).state, DeliveryState::kDelivered);
  auto sent = receiver.requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].address.ToString(), "127.0.0.2");
  EXPECT_EQ(sent[0].host, "OK.test.");
}

TEST(WebhookBackoffTest, EachWaitIsAtLeastTwiceTheLastAndCapped) {
  WebhookDelivererOptions options;
  options.first_backoff = milliseconds(1000);
  EXPECT_EQ(WebhookDeliverer::Backoff(options, 1, 0.0), milliseconds(1000));
  EXPECT_EQ(WebhookDeliverer::Backoff(options, 1, 0.999), milliseconds(1499));
  EXPECT_EQ(WebhookDeliverer::Backoff(options, 2, 0.0), milliseconds(3000));
  for (int64_t n = 1; n < 8; ++n) {
    // The shortest next wait against the longest one before it.
    EXPECT_GE(WebhookDeliverer::Backoff(options, n + 1, 0.0).count(),
              2 * WebhookDeliverer::Backoff(options, n, 0.9999).count() - 1);
  }
  EXPECT_EQ(WebhookDeliverer::Backoff(options, 30, 0.5), options.max_backoff);
}

}  // namespace
}  // namespace ferry
