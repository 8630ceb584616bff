#include "jobs/sqlite_batch_store.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <filesystem>

#include "jobs/sqlite_db.h"
#include "testing/temp_repository.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using ferry::testing::TempRepository;

class SqliteBatchStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteBatchStore> Open() {
    SqliteBatchStoreOptions options;
    options.path = dir_.root() / "data" / "batches.db";
    options.now_ms = [this] { return now_.load(); };
    auto store = SqliteBatchStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  static BatchSpec Spec(int64_t priority = 0) {
    BatchSpec s;
    s.model = "identity";
    s.format = BatchFormat::kCsv;
    s.input_path = "/in.csv";
    s.output_path = "/out.jsonl";
    s.errors_path = "/out.jsonl.errors.jsonl";
    s.metadata_json = R"({"k":"v"})";
    s.priority = priority;
    s.caller = "reporting";
    return s;
  }
  TempRepository dir_;
  std::atomic<int64_t> now_{1'700'000'000'000};
};

TEST_F(SqliteBatchStoreTest, CreateThenGetRoundTripsTheSpec) {
  auto store = Open();
  auto created = store->Create(Spec(3));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(created->id.starts_with("batch_"));
  auto got = store->Get(created->id);
  ASSERT_TRUE(got.ok() && got->has_value());
  const Batch& b = **got;
  EXPECT_EQ(b.state, BatchState::kValidating);
  EXPECT_EQ(b.spec.format, BatchFormat::kCsv);
  EXPECT_EQ(b.spec.metadata_json, R"({"k":"v"})");
  EXPECT_EQ(b.spec.priority, 3);
  EXPECT_EQ(b.spec.caller, "reporting");
  EXPECT_EQ(b.created_ms, now_.load());
  EXPECT_EQ(b.progress.total, -1);
  auto missing = store->Get("batch_nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(SqliteBatchStoreTest, ListPagesNewestFirstAfterACursor) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    now_ += 1000;
    ids.push_back(store->Create(Spec())->id);
  }
  auto first = store->List("", 2);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->batches.size(), 2u);
  EXPECT_EQ(first->batches[0].id, ids[4]);
  EXPECT_TRUE(first->has_more);
  auto rest = store->List(first->batches.back().id, 10);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->batches.size(), 3u);
  EXPECT_EQ(rest->batches[0].id, ids[2]);
  EXPECT_FALSE(rest->has_more);
}

TEST_F(SqliteBatchStoreTest, LeaseTakesPriorityFirstAndNotTwice) {
  auto store = Open();
  const std::string low = store->Create(Spec(0))->id;
  const std::string high = store->Create(Spec(5))->id;
  auto leased = store->Lease("a", 1, milliseconds(1000));
  ASSERT_TRUE(leased.ok());
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_EQ((*leased)[0].id, high);
  auto second = store->Lease("b", 5, milliseconds(1000));
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].id, low);
  EXPECT_TRUE(store->Lease("c", 5, milliseconds(1000))->empty());
  now_ += 1001;  // both leases expired: another runner may take them
  EXPECT_EQ(store->Lease("c", 5, milliseconds(1000))->size(), 2u);
}

TEST_F(SqliteBatchStoreTest, ALostLeaseRefusesCheckpointsAndHeartbeats) {
  auto store = Open();
  const std::string id = store->Create(Spec())->id;
  ASSERT_EQ(store->Lease("a", 1, milliseconds(100))->size(), 1u);
  now_ += 200;
  ASSERT_EQ(store->Lease("b", 1, milliseconds(100))->size(), 1u);
  BatchProgress p;
  p.records_done = 10;
  EXPECT_EQ(store->Checkpoint(id, "a", p).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Heartbeat(id, "a", milliseconds(100)).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store->Checkpoint(id, "b", p).ok());
  EXPECT_EQ((*store->Get(id))->progress.records_done, 10);
}

TEST_F(SqliteBatchStoreTest, CheckpointStoresEveryProgressField) {
  auto store = Open();
  const std::string id = store->Create(Spec())->id;
  store->Lease("a", 1, milliseconds(1000));
  BatchProgress p{100, 5000, 101, 4000, 300, 97, 3, 1000};
  ASSERT_TRUE(store->Checkpoint(id, "a", p).ok());
  const Batch b = **store->Get(id);
  EXPECT_EQ(b.progress.records_done, 100);
  EXPECT_EQ(b.progress.input_offset, 5000);
  EXPECT_EQ(b.progress.input_line, 101);
  EXPECT_EQ(b.progress.output_bytes, 4000);
  EXPECT_EQ(b.progress.errors_bytes, 300);
  EXPECT_EQ(b.progress.completed, 97);
  EXPECT_EQ(b.progress.failed, 3);
  EXPECT_EQ(b.progress.total, 1000);
  EXPECT_EQ(b.checkpoints, 1);
}

TEST_F(SqliteBatchStoreTest, TransitionsFollowTheStateMachineAndStampTheirTime) {
  auto store = Open();
  const std::string id = store->Create(Spec())->id;
  store->Lease("a", 1, milliseconds(1000));
  EXPECT_EQ(store->Transition(id, "a", BatchState::kCompleted).code(), StatusCode::kFailedPrecondition);
  now_ += 10;
  ASSERT_TRUE(store->Transition(id, "a", BatchState::kInProgress).ok());
  EXPECT_EQ((*store->Get(id))->in_progress_ms, now_.load());
  ASSERT_TRUE(store->Transition(id, "a", BatchState::kFailed, "input vanished").ok());
  const Batch b = **store->Get(id);
  EXPECT_EQ(b.state, BatchState::kFailed);
  EXPECT_EQ(b.error, "input vanished");
  EXPECT_TRUE(b.lease_owner.empty());  // a final batch holds no lease
}

TEST_F(SqliteBatchStoreTest, FinishRegistersTheOutputFilesInTheSameCommit) {
  auto store = Open();
  const std::string id = store->Create(Spec())->id;
  store->Lease("a", 1, milliseconds(1000));
  ASSERT_TRUE(store->Transition(id, "a", BatchState::kInProgress).ok());
  ASSERT_TRUE(store->Transition(id, "a", BatchState::kFinalizing).ok());
  StoredFile out{"file-out", "out.jsonl", "batch_output", "/out.jsonl", 10, 0};
  StoredFile err{"file-err", "err.jsonl", "batch_output", "/err.jsonl", 0, 0};
  ASSERT_TRUE(store->Finish(id, "a", BatchState::kCompleted, out, err).ok());
  const Batch b = **store->Get(id);
  EXPECT_EQ(b.state, BatchState::kCompleted);
  EXPECT_EQ(b.output_file_id, "file-out");
  EXPECT_EQ(b.error_file_id, "file-err");
  auto f = store->GetFile("file-out");
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->bytes, 10);
}

TEST_F(SqliteBatchStoreTest, CancelMovesOnlyValidatingOrRunningBatches) {
  auto store = Open();
  const std::string id = store->Create(Spec())->id;
  auto cancelled = store->RequestCancel(id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, BatchState::kCancelling);
  EXPECT_GT(cancelled->cancelling_ms, 0);
  EXPECT_EQ(store->RequestCancel("batch_nope").status().code(), StatusCode::kNotFound);
  store->Lease("a", 1, milliseconds(1000));
  ASSERT_TRUE(store->Transition(id, "a", BatchState::kCancelled).ok());
  EXPECT_EQ(store->RequestCancel(id)->state, BatchState::kCancelled);  // final: left as it is
}

TEST_F(SqliteBatchStoreTest, ReleaseAllLeasesLetsANewOwnerTakeThemAtOnce) {
  auto store = Open();
  store->Create(Spec());
  ASSERT_EQ(store->Lease("dead", 1, milliseconds(60'000))->size(), 1u);
  EXPECT_TRUE(store->Lease("new", 1, milliseconds(60'000))->empty());
  ASSERT_TRUE(store->ReleaseAllLeases().ok());
  EXPECT_EQ(store->Lease("new", 1, milliseconds(60'000))->size(), 1u);
}

TEST_F(SqliteBatchStoreTest, TakeOverIgnoresTheLease) {
  auto store = Open();
  const std::string id = store->Create(Spec())->id;
  store->Lease("dead", 1, milliseconds(60'000));
  auto taken = store->TakeOver(id, "me", milliseconds(1000));
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken->lease_owner, "me");
  EXPECT_EQ(store->TakeOver("batch_nope", "me", milliseconds(1)).status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteBatchStoreTest, FilesAreAddedListedAndDeleted) {
  auto store = Open();
  ASSERT_TRUE(store->AddFile({"file-1", "a.jsonl", "batch", "/a", 5, 0}).ok());
  now_ += 1;
  ASSERT_TRUE(store->AddFile({"file-2", "b.jsonl", "batch_output", "/b", 7, 0}).ok());
  EXPECT_EQ(store->ListFiles("", 10)->size(), 2u);
  auto batch_files = store->ListFiles("batch", 10);
  ASSERT_EQ(batch_files->size(), 1u);
  EXPECT_EQ((*batch_files)[0].id, "file-1");
  ASSERT_TRUE(store->DeleteFile("file-1").ok());
  EXPECT_EQ(store->DeleteFile("file-1").code(), StatusCode::kNotFound);
  EXPECT_FALSE(store->GetFile("file-1")->has_value());
}

TEST_F(SqliteBatchStoreTest, ACommittedCheckpointSurvivesReopening) {
  std::string id;
  {
    auto store = Open();
    id = store->Create(Spec())->id;
    store->Lease("a", 1, milliseconds(1000));
    BatchProgress p;
    p.records_done = 42;
    ASSERT_TRUE(store->Checkpoint(id, "a", p).ok());
  }
  auto store = Open();
  EXPECT_EQ((*store->Get(id))->progress.records_done, 42);
}

TEST_F(SqliteBatchStoreTest, AStoreFromBeforeCallersGetsTheColumnsAndItsBatchesRunAsNone) {
  std::filesystem::create_directories(dir_.root() / "data");
  {
    auto db = SqliteDb::Open(dir_.root() / "data" / "batches.db", false).value();
    std::string columns;  // the first stored shape: no publish_table, no caller
    for (const char* c : {"state", "records_done", "input_offset", "input_line", "output_bytes", "errors_bytes",
                          "completed", "failed", "in_progress_ms", "finalizing_ms", "completed_ms", "failed_ms",
                          "cancelling_ms", "cancelled_ms", "lease_expires_ms", "checkpoints", "resumes",
                          "records_redone", "output_format"}) {
      columns += fmt::format(", {} INTEGER NOT NULL DEFAULT 0", c);
    }
    ASSERT_TRUE(db->Exec("CREATE TABLE batches(id TEXT PRIMARY KEY, model TEXT NOT NULL, endpoint TEXT NOT NULL, "
                         "format INTEGER NOT NULL, input_path TEXT NOT NULL, input_file_id TEXT NOT NULL, "
                         "output_path TEXT NOT NULL, errors_path TEXT NOT NULL, metadata TEXT NOT NULL, "
                         "completion_window TEXT NOT NULL, priority INTEGER NOT NULL, total INTEGER NOT NULL "
                         "DEFAULT -1, created_ms INTEGER NOT NULL, error TEXT NOT NULL DEFAULT '', output_file_id "
                         "TEXT NOT NULL DEFAULT '', error_file_id TEXT NOT NULL DEFAULT '', lease_owner TEXT NOT "
                         "NULL DEFAULT ''" + columns + ");"
                         "INSERT INTO batches(id, model, endpoint, format, input_path, input_file_id, output_path, "
                         "errors_path, metadata, completion_window, priority, created_ms) VALUES ('batch_old', "
                         "'identity', '', 2, '/in.csv', '', '/o', '/e', '{}', '24h', 0, 1);").ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto old = store->Get("batch_old");
  ASSERT_TRUE(old.ok() && old->has_value()) << old.status().ToString();
  EXPECT_EQ((*old)->spec.caller, "(none)");
  EXPECT_EQ((*old)->spec.publish_table, "");
  auto created = store->Create(Spec());
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->spec.caller, "reporting");
  EXPECT_NE(Open(), nullptr);  // and again, with the columns there
}

}  // namespace
}  // namespace ferry
