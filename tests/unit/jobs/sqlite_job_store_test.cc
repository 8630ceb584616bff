#include "jobs/sqlite_job_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using ferry::testing::TempRepository;

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteJobStore> OpenStore(int64_t max_active = 1000) {
    SqliteJobStoreOptions options;
    options.path = dir_.root() / "data" / "jobs.db";
    options.max_active_jobs = max_active;
    options.now_ms = [this] { return now_.load(); };
    auto store = SqliteJobStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  static NewJob Spec(std::string key = "", int64_t priority = 0) {
    NewJob j;
    j.model = "cnn";
    j.request = std::string("{\"inputs\":[]}\0binary", 20);
    j.idempotency_key = std::move(key);
    j.priority = priority;
    return j;
  }

  TempRepository dir_;
  std::atomic<int64_t> now_{1'700'000'000'000};
};

TEST_F(SqliteJobStoreTest, SubmitThenGetRoundTripsEveryField) {
  auto store = OpenStore();
  NewJob spec = Spec("key-1", 5);
  spec.webhook_url = "http://127.0.0.1:9000/hook";
  spec.caller = "reporting";
  auto submitted = store->Submit(spec);
  ASSERT_TRUE(submitted.ok()) << submitted.status().ToString();
  EXPECT_TRUE(submitted->created);
  EXPECT_EQ(submitted->id.size(), 32u);
  auto job = store->Get(submitted->id);
  ASSERT_TRUE(job.ok() && job->has_value());
  const Job& j = **job;
  EXPECT_EQ(j.state, JobState::kQueued);
  EXPECT_EQ(j.spec.model, "cnn");
  EXPECT_EQ(j.spec.idempotency_key, "key-1");
  EXPECT_EQ(j.spec.webhook_url, "http://127.0.0.1:9000/hook");
  EXPECT_EQ(j.spec.priority, 5);
  EXPECT_EQ(j.spec.caller, "reporting");
  EXPECT_EQ(j.created_ms, now_.load());
  EXPECT_EQ(j.attempts, 0);
  EXPECT_FALSE(j.has_result);
  EXPECT_FALSE(store->Get("nope")->has_value());
}

TEST_F(SqliteJobStoreTest, AStoreFromBeforeCallersGetsTheColumnAndItsJobsRunAsNone) {
  std::filesystem::create_directories(dir_.root() / "data");
  {
    auto db = SqliteDb::Open(dir_.root() / "data" / "jobs.db", false).value();
    ASSERT_TRUE(db->Exec("CREATE TABLE jobs(id TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL, "
                         "request BLOB NOT NULL, idempotency_key TEXT UNIQUE, webhook_url TEXT, priority INTEGER "
                         "NOT NULL, max_attempts INTEGER NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL "
                         "DEFAULT 0, created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0, finished_ms "
                         "INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL, lease_owner TEXT, lease_expires_ms "
                         "INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', result BLOB);"
                         "INSERT INTO jobs(id, model, kind, request, priority, max_attempts, state, created_ms, "
                         "updated_ms) VALUES ('old', 'cnn', 'oip', '{}', 0, 3, 0, 1, 1);").ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto job = store->Get("old");
  ASSERT_TRUE(job.ok() && job->has_value()) << job.status().ToString();
  EXPECT_EQ((*job)->spec.caller, "(none)");
  auto leased = store->Lease("w", 1, milliseconds(1000));  // due at once: it was never put off
  ASSERT_TRUE(leased.ok()) << leased.status().ToString();
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_TRUE(store->Submit(Spec()).ok());
  EXPECT_TRUE(OpenStore() != nullptr);  // and again, with the column there
}

TEST_F(SqliteJobStoreTest, TheSameIdempotencyKeyReturnsTheSameJob) {
  auto store = OpenStore();
  auto first = store->Submit(Spec("k"));
  auto again = store->Submit(Spec("k"));
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->id, again->id);
  EXPECT_FALSE(again->created);
  auto other = store->Submit(Spec("k2"));
  EXPECT_NE(other->id, first->id);
  EXPECT_EQ(store->Counts()->queued, 2);
}

TEST_F(SqliteJobStoreTest, CommittedJobsSurviveReopening) {
  std::string id;
  {
    auto store = OpenStore();
    id = store->Submit(Spec("durable"))->id;
  }
  auto reopened = OpenStore();
  auto job = reopened->Get(id);
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ(reopened->Submit(Spec("durable"))->id, id);
}

TEST_F(SqliteJobStoreTest, LeaseTakesHighestPriorityThenOldestAndCountsAttempts) {
  auto store = OpenStore();
  const std::string low = store->Submit(Spec("", 0))->id;
  now_ += 10;
  const std::string high = store->Submit(Spec("", 9))->id;
  now_ += 10;
  const std::string low2 = store->Submit(Spec("", 0))->id;
  auto leased = store->Lease("w1", 2, milliseconds(1000));
  ASSERT_TRUE(leased.ok()) << leased.status().ToString();
  ASSERT_EQ(leased->size(), 2u);
  EXPECT_EQ((*leased)[0].id, high);
  EXPECT_EQ((*leased)[1].id, low);
  EXPECT_EQ((*leased)[0].state, JobState::kRunning);
  EXPECT_EQ((*leased)[0].attempts, 1);
  EXPECT_EQ((*leased)[0].lease_owner, "w1");
  EXPECT_EQ((*leased)[0].lease_expires_ms, now_.load() + 1000);
  EXPECT_EQ((*leased)[0].spec.request, Spec().request);  // the runner gets the body, binary bytes included
  auto rest = store->Lease("w2", 5, milliseconds(1000));
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].id, low2);
  EXPECT_TRUE(store->Lease("w3", 5, milliseconds(1000))->empty());
}

TEST_F(SqliteJobStoreTest, CompleteStoresTheResultOnlyForTheLeaseHolder) {
  auto store = OpenStore();
  const std::string id = store->Submit(Spec())->id;
  EXPECT_EQ(store->GetResult(id).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_EQ(store->Lease("w1", 1, milliseconds(1000))->size(), 1u);
  EXPECT_EQ(store->Complete(id, "intruder", "x").code(), StatusCode::kFailedPrecondition);
  const std::string result("{\"outputs\":[]}\0\x01\x02", 17);
  ASSERT_TRUE(store->Complete(id, "w1", result).ok());
  auto got = store->GetResult(id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, result);
  auto job = **store->Get(id);
  EXPECT_EQ(job.state, JobState::kSucceeded);
  EXPECT_TRUE(job.has_result);
  EXPECT_EQ(job.finished_ms, now_.load());
  // A second completion (a duplicate execution) cannot overwrite the result.
  EXPECT_EQ(store->Complete(id, "w1", "other").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(*store->GetResult(id), result);
  EXPECT_EQ(store->GetResult("missing").status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteJobStoreTest, FailedAttemptsRequeueUntilTheLastOneDeadLetters) {
  auto store = OpenStore();
  NewJob spec = Spec();
  spec.max_attempts = 2;
  const std::string id = store->Submit(spec)->id;
  ASSERT_EQ(store->Lease("w", 1, milliseconds(1000))->size(), 1u);
  ASSERT_TRUE(store->Fail(id, "w", "model exploded", /*retry=*/true).ok());
  Job j = **store->Get(id);
  EXPECT_EQ(j.state, JobState::kQueued);
  EXPECT_EQ(j.error, "model exploded");
  ASSERT_EQ(store->Lease("w", 1, milliseconds(1000))->size(), 1u);
  ASSERT_TRUE(store->Fail(id, "w", "exploded again", /*retry=*/true).ok());
  j = **store->Get(id);
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.attempts, 2);
  EXPECT_EQ(j.error, "exploded again");
  EXPECT_GT(j.finished_ms, 0);
  EXPECT_TRUE(store->Lease("w", 1, milliseconds(1000))->empty());

  const std::string hopeless = store->Submit(Spec("bad request"))->id;
  ASSERT_EQ(store->Lease("w", 1, milliseconds(1000))->size(), 1u);
  ASSERT_TRUE(store->Fail(hopeless, "w", "input 'x' has the wrong shape", /*retry=*/false).ok());
  EXPECT_EQ((**store->Get(hopeless)).state, JobState::kFailed);  // after one attempt of three
}

TEST_F(SqliteJobStoreTest, ADeferredJobWaitsItsDelayAndKeepsItsAttempts) {
  auto store = OpenStore();
  NewJob spec = Spec();
  spec.max_attempts = 1;
  const std::string id = store->Submit(spec)->id;
  now_ += 1;  // the older of the two: leased first
  const std::string other = store->Submit(Spec("other"))->id;
  auto first = store->Lease("w", 1, milliseconds(1000));
  ASSERT_EQ(first->size(), 1u);
  ASSERT_EQ(first->front().id, id);
  EXPECT_EQ(store->Defer(id, "someone else", "busy", milliseconds(500)).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->Defer(id, "w", "model 'm' is at its limit", milliseconds(500)).ok());
  Job j = **store->Get(id);
  EXPECT_EQ(j.state, JobState::kQueued);
  EXPECT_EQ(j.attempts, 0);
  EXPECT_EQ(j.error, "model 'm' is at its limit");
  // Not due yet: the next job is leased instead, and then nothing.
  auto next = store->Lease("w", 5, milliseconds(1000));
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ(next->front().id, other);
  now_ += 499;
  EXPECT_TRUE(store->Lease("w", 5, milliseconds(1000))->empty());
  now_ += 1;
  auto again = store->Lease("w", 5, milliseconds(1000));
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().id, id);
  EXPECT_EQ(again->front().attempts, 1);  // its single attempt is still there to spend
  ASSERT_TRUE(store->Complete(id, "w", "{}").ok());
}

TEST_F(SqliteJobStoreTest, ExpiredLeasesReturnToTheQueueAndHeartbeatsKeepThem) {
  auto store = OpenStore();
  const std::string kept = store->Submit(Spec("a"))->id;
  const std::string lost = store->Submit(Spec("b"))->id;
  ASSERT_EQ(store->Lease("w", 2, milliseconds(1000))->size(), 2u);
  now_ += 800;
  ASSERT_TRUE(store->Heartbeat(kept, "w", milliseconds(1000)).ok());
  now_ += 800;  // `lost` expired 600 ms ago; `kept` has 200 ms left
  EXPECT_EQ(*store->ReapExpiredLeases(), 1);
  EXPECT_EQ((**store->Get(kept)).state, JobState::kRunning);
  const Job requeued = **store->Get(lost);
  EXPECT_EQ(requeued.state, JobState::kQueued);
  EXPECT_NE(requeued.error.find("lease expired"), std::string::npos);
  // The old holder has lost it: its heartbeat and completion are refused.
  EXPECT_EQ(store->Heartbeat(lost, "w", milliseconds(1000)).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Complete(lost, "w", "late").code(), StatusCode::kFailedPrecondition);
}

TEST_F(SqliteJobStoreTest, CancelStopsQueuedAndRunningJobsAndLeavesFinalOnes) {
  auto store = OpenStore();
  const std::string queued = store->Submit(Spec("q"))->id;
  EXPECT_EQ(*store->Cancel(queued), JobState::kCancelled);
  const std::string running = store->Submit(Spec("r"))->id;
  ASSERT_EQ(store->Lease("w", 1, milliseconds(1000))->size(), 1u);
  EXPECT_EQ(*store->Cancel(running), JobState::kCancelled);
  EXPECT_EQ(store->Complete(running, "w", "too late").code(), StatusCode::kFailedPrecondition);
  const std::string done = store->Submit(Spec("d"))->id;
  ASSERT_EQ(store->Lease("w", 1, milliseconds(1000))->size(), 1u);
  ASSERT_TRUE(store->Complete(done, "w", "ok").ok());
  EXPECT_EQ(*store->Cancel(done), JobState::kSucceeded);
  EXPECT_EQ(store->Cancel("missing").status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteJobStoreTest, AFullQueueRefusesSubmitsButNotIdempotentRepeats) {
  auto store = OpenStore(/*max_active=*/2);
  ASSERT_TRUE(store->Submit(Spec("1")).ok());
  ASSERT_TRUE(store->Submit(Spec("2")).ok());
  auto full = store->Submit(Spec("3"));
  EXPECT_EQ(full.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(full.status().message().find("queue is full"), std::string::npos);
  EXPECT_TRUE(store->Submit(Spec("1")).ok());  // the same job again, not a new one
  ASSERT_EQ(store->Lease("w", 1, milliseconds(1000))->size(), 1u);
  ASSERT_TRUE(store->Complete(store->List({JobState::kRunning, ""}, 10, "")->jobs[0].id, "w", "r").ok());
  EXPECT_TRUE(store->Submit(Spec("3")).ok());  // a slot freed
}

TEST_F(SqliteJobStoreTest, ListPagesNewestFirstWithFilters) {
  auto store = OpenStore();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    NewJob spec = Spec(std::to_string(i));
    spec.model = i % 2 ? "odd" : "even";
    ids.push_back(store->Submit(spec)->id);
    now_ += 1;
  }
  auto first = store->List({}, 2, "");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->jobs.size(), 2u);
  EXPECT_EQ(first->jobs[0].id, ids[4]);
  EXPECT_EQ(first->jobs[1].id, ids[3]);
  auto second = store->List({}, 2, first->next_page_token);
  EXPECT_EQ(second->jobs[0].id, ids[2]);
  auto third = store->List({}, 2, second->next_page_token);
  ASSERT_EQ(third->jobs.size(), 1u);
  EXPECT_EQ(third->jobs[0].id, ids[0]);
  EXPECT_TRUE(third->next_page_token.empty());
  auto odd = store->List({std::nullopt, "odd"}, 10, "");
  EXPECT_EQ(odd->jobs.size(), 2u);
  EXPECT_EQ(store->List({JobState::kFailed, ""}, 10, "")->jobs.size(), 0u);
  EXPECT_EQ(store->List({}, 10, "garbage").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->List({}, 0, "").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteJobStoreTest, RetentionRemovesOnlyOldFinishedJobs) {
  auto store = OpenStore();
  const std::string old_done = store->Submit(Spec("a"))->id;
  ASSERT_EQ(store->Lease("w", 1, milliseconds(1000))->size(), 1u);
  ASSERT_TRUE(store->Complete(old_done, "w", "r").ok());
  const std::string queued = store->Submit(Spec("b"))->id;
  now_ += 60'000;
  EXPECT_EQ(*store->DeleteFinishedBefore(milliseconds(30'000)), 1);
  EXPECT_FALSE(store->Get(old_done)->has_value());
  EXPECT_TRUE(store->Get(queued)->has_value());
}

TEST_F(SqliteJobStoreTest, WritesWaitingTogetherShareOneCommit) {
  // The writer is held before its first group until all eight submits are waiting, so the group
  // commit is shown without depending on timing.
  constexpr size_t kWriters = 8;
  std::atomic<bool> first{true};
  std::atomic<SqliteJobStore*> raw{nullptr};
  SqliteJobStoreOptions options;
  options.path = dir_.root() / "grouped.db";
  options.before_group = [&] {
    if (!first.exchange(false)) return;
    while (raw.load() == nullptr || raw.load()->pending_writes() < kWriters) {
      std::this_thread::sleep_for(milliseconds(1));
    }
  };
  auto opened = SqliteJobStore::Open(std::move(options));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<SqliteJobStore> store = std::move(opened).value();
  const int64_t commits_before = store->commit_count();
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> ids;
  for (size_t t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      auto r = store->Submit(Spec("grouped-" + std::to_string(t)));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      std::lock_guard lock(mu);
      ids.insert(r->id);
    });
  }
  while (store->pending_writes() < kWriters) std::this_thread::sleep_for(milliseconds(1));
  raw.store(store.get());
  for (auto& th : threads) th.join();
  EXPECT_EQ(ids.size(), kWriters);
  EXPECT_EQ(store->commit_count() - commits_before, 1);
  EXPECT_EQ(store->Counts()->queued, static_cast<int64_t>(kWriters));
}

TEST_F(SqliteJobStoreTest, AnUnwritableLocationIsUnavailable) {
  SqliteJobStoreOptions options;
  options.path = "/proc/ferry-cannot-write-here/jobs.db";
  auto store = SqliteJobStore::Open(std::move(options));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
}

}  // namespace
}  // namespace ferry
