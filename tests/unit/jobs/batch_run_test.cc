#include "jobs/batch_run.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "jobs/sqlite_batch_store.h"
#include "testing/temp_repository.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using ferry::testing::TempRepository;

// Answers "ok <line>" for each record, or an error for a line that starts with "bad". With `async`, a
// thread answers the pending records in reverse order of submission, so answers arrive out of order.
class FakeExecutor : public RecordExecutor {
 public:
  explicit FakeExecutor(bool async = false, int retries_per_record = 0)
      : async_(async), retries_(retries_per_record) {
    if (async_) thread_ = std::thread([this] { Loop(); });
  }
  ~FakeExecutor() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
           std::function<void(RecordOutcome)> done) override {
    {
      std::lock_guard lock(mu_);
      ++runs_;
      if (attempts_[record.index]++ < retries_) return done({RecordOutcome::Kind::kRetry, ""});
    }
    RecordOutcome outcome = record.text.starts_with("bad")
                                ? RecordOutcome{RecordOutcome::Kind::kError, "error " + record.text}
                                : RecordOutcome{RecordOutcome::Kind::kOk, "ok " + record.text};
    if (!async_) return done(std::move(outcome));
    std::lock_guard lock(mu_);
    pending_.emplace_back(std::move(outcome), std::move(done));
    cv_.notify_all();
  }
  std::string ErrorLine(const BatchRecord& record, const Status& error) override {
    return "unreadable line " + std::to_string(record.line);
  }
  int runs() {
    std::lock_guard lock(mu_);
    return runs_;
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, milliseconds(1), [&] { return stop_ || pending_.size() >= 8; });
      auto batch = std::move(pending_);
      pending_.clear();
      lock.unlock();
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) it->second(std::move(it->first));
      lock.lock();
    }
  }
  bool async_;
  int retries_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<RecordOutcome, std::function<void(RecordOutcome)>>> pending_;
  std::map<int64_t, int> attempts_;
  int runs_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

class BatchRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteBatchStoreOptions options;
    options.path = dir_.root() / "batches.db";
    store_ = std::move(SqliteBatchStore::Open(options)).value();
    options_.clock = &clock_;
    options_.checkpoint_every_records = 10;
    options_.max_in_flight = 16;
    options_.retry_after = milliseconds(0);
  }
  std::string WriteInput(int n, int bad_every = 0) {
    std::ostringstream text;
    for (int i = 0; i < n; ++i) text << ((bad_every && i % bad_every == 0) ? "bad" : "rec") << i << "\n";
    const auto p = dir_.root() / "in.jsonl";
    std::ofstream(p) << text.str();
    return p.string();
  }
  Batch NewBatch(const std::string& input, const std::string& name = "out.jsonl") {
    BatchSpec spec;
    spec.model = "m";
    spec.input_path = input;
    spec.output_path = (dir_.root() / name).string();
    spec.errors_path = spec.output_path + ".errors.jsonl";
    const std::string id = store_->Create(spec)->id;
    return std::move(store_->Lease("me", 1, milliseconds(60'000))).value().at(0);
  }
  Batch Reload(const std::string& id) { return std::move(store_->Get(id)).value().value(); }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  Result<BatchRunResult> Run(const Batch& b, RecordExecutor& e, std::shared_ptr<CancelToken> stop = nullptr,
                             BatchRunObserver observer = {}) {
    return RunBatch(b, "me", store_.get(), &e, options_, std::move(stop), std::move(observer));
  }

  TempRepository dir_;
  std::unique_ptr<SqliteBatchStore> store_;
  FakeClock clock_;
  BatchRunOptions options_;
};

TEST_F(BatchRunTest, RunsEveryRecordInInputOrderAndPublishesTheFiles) {
  FakeExecutor executor(/*async=*/true);
  Batch b = NewBatch(WriteInput(100, /*bad_every=*/10));
  auto result = Run(b, executor);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->state, BatchState::kCompleted);
  std::string expected_out, expected_err;
  for (int i = 0; i < 100; ++i) {
    (i % 10 == 0 ? expected_err : expected_out) += (i % 10 == 0 ? "error bad" : "ok rec") + std::to_string(i) + "\n";
  }
  EXPECT_EQ(Read(b.spec.output_path), expected_out);
  EXPECT_EQ(Read(b.spec.errors_path), expected_err);
  EXPECT_FALSE(std::filesystem::exists(PartialPath(b.spec.output_path)));
  const Batch done = Reload(b.id);
  EXPECT_EQ(done.state, BatchState::kCompleted);
  EXPECT_EQ(done.progress.total, 100);
  EXPECT_EQ(done.progress.completed, 90);
  EXPECT_EQ(done.progress.failed, 10);
  EXPECT_FALSE(done.output_file_id.empty());
  EXPECT_GE(done.checkpoints, 5);  // every 10 records or more (answers arrive in groups)
}

TEST_F(BatchRunTest, AStoppedRunResumesFromItsCheckpointWithTheSameOutput) {
  const std::string input = WriteInput(200, 7);
  FakeExecutor reference_executor;
  Batch reference = NewBatch(input, "reference.jsonl");
  ASSERT_TRUE(Run(reference, reference_executor).ok());

  FakeExecutor executor(/*async=*/true);
  Batch b = NewBatch(input);
  auto stop = CancelToken::Create();
  int64_t written = 0;
  BatchRunObserver observer;
  observer.records = [&](int64_t c, int64_t f) {
    written += c + f;
    if (written >= 55) stop->Cancel();
  };
  auto first = Run(b, executor, stop, observer);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->state, BatchState::kInProgress);
  const Batch stopped = Reload(b.id);
  EXPECT_GE(stopped.progress.records_done, 55);
  EXPECT_LT(stopped.progress.records_done, 200);
  // What a process killed after the checkpoint leaves: lines past the committed length.
  std::ofstream(PartialPath(b.spec.output_path), std::ios::app) << "ok rec-half-written\nok rec-x\n";
  std::ofstream(PartialPath(b.spec.errors_path), std::ios::app) << "error bad-x\n";

  FakeExecutor second_executor(/*async=*/true);
  auto second = Run(stopped, second_executor);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->state, BatchState::kCompleted);
  EXPECT_TRUE(second->resumed);
  EXPECT_EQ(second->redone, 3);
  EXPECT_EQ(second_executor.runs(), 200 - stopped.progress.records_done);  // nothing before it runs again
  EXPECT_EQ(Read(b.spec.output_path), Read(reference.spec.output_path));
  EXPECT_EQ(Read(b.spec.errors_path), Read(reference.spec.errors_path));
  const Batch done = Reload(b.id);
  EXPECT_EQ(done.resumes, 1);
  EXPECT_EQ(done.records_redone, 3);
  EXPECT_EQ(done.progress.completed + done.progress.failed, 200);
}

// A FakeExecutor whose output starts with a header line.
class HeaderExecutor final : public FakeExecutor {
 public:
  std::string OutputHeader() const override { return "id,value"; }
};

TEST_F(BatchRunTest, AnOutputHeaderIsWrittenOnceEvenAcrossAResume) {
  Batch b = NewBatch(WriteInput(40));
  HeaderExecutor first;
  auto stop = CancelToken::Create();
  BatchRunObserver observer;
  observer.records = [&](int64_t, int64_t) { stop->Cancel(); };
  ASSERT_TRUE(Run(b, first, stop, observer).ok());
  HeaderExecutor second;
  auto result = Run(Reload(b.id), second);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const std::string out = Read(b.spec.output_path);
  EXPECT_EQ(out.rfind("id,value\nok rec0\n", 0), 0u) << out.substr(0, 40);
  EXPECT_EQ(out.find("id,value", 1), std::string::npos);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 41);
}

TEST_F(BatchRunTest, RetriedRecordsAreRunAgainUntilTheyAnswer) {
  FakeExecutor executor(/*async=*/false, /*retries_per_record=*/2);
  Batch b = NewBatch(WriteInput(30));
  auto result = Run(b, executor);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->progress.completed, 30);
  EXPECT_EQ(executor.runs(), 90);
}

TEST_F(BatchRunTest, ACancelledBatchKeepsTheRecordsWrittenSoFar) {
  FakeExecutor executor(/*async=*/true);
  Batch b = NewBatch(WriteInput(500));
  options_.heartbeat_every = milliseconds(0);  // look for the cancel at every step
  BatchRunObserver observer;
  bool requested = false;
  observer.records = [&](int64_t, int64_t) {
    if (!requested) requested = store_->RequestCancel(b.id).ok();
  };
  auto result = Run(b, executor, nullptr, observer);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->state, BatchState::kCancelled);
  const Batch done = Reload(b.id);
  EXPECT_EQ(done.state, BatchState::kCancelled);
  EXPECT_LT(done.progress.records_done, 500);
  std::string out = Read(b.spec.output_path);
  EXPECT_EQ(static_cast<int64_t>(std::count(out.begin(), out.end(), '\n')), done.progress.completed);
}

TEST_F(BatchRunTest, AMissingInputFailsTheBatch) {
  FakeExecutor executor;
  Batch b = NewBatch((dir_.root() / "nope.jsonl").string());
  auto result = Run(b, executor);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->state, BatchState::kFailed);
  const Batch done = Reload(b.id);
  EXPECT_EQ(done.state, BatchState::kFailed);
  EXPECT_NE(done.error.find("does not exist"), std::string::npos);
}

TEST_F(BatchRunTest, CheckpointsFollowTheInjectedClockToo) {
  FakeExecutor executor;
  options_.checkpoint_every_records = 1'000'000;
  options_.checkpoint_every = milliseconds(1000);
  Batch b = NewBatch(WriteInput(50));
  BatchRunObserver observer;
  observer.records = [&](int64_t, int64_t) { clock_.Advance(milliseconds(400)); };
  ASSERT_TRUE(Run(b, executor, nullptr, observer).ok());
  // Validation's checkpoint, the final one, and one for each 1 s of fake time in between.
  EXPECT_GE(Reload(b.id).checkpoints, 3);
}

}  // namespace
}  // namespace ferry
