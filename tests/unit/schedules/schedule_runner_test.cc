#include "schedules/schedule_runner.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using ferry::testing::TempRepository;
using std::chrono::minutes;

constexpr int64_t kDec2Midnight = 1796169600;  // 2026-12-02T00:00Z
constexpr int64_t kHour = 3600;

// The batch API as the runner sees it: batches made, and which still run.
struct FakeBatches {
  std::map<std::string, BatchOrder> made;
  std::set<std::string> running;
  int launches = 0;
  BatchLauncher Launcher() {
    BatchLauncher l;
    l.launch = [this](const BatchOrder& o) -> Result<bool> {
      ++launches;
      if (made.count(o.id)) return false;
      made[o.id] = o;
      running.insert(o.id);
      return true;
    };
    l.running = [this](const std::string& id) -> Result<bool> { return running.count(id) > 0; };
    l.outcome = [this](const std::string& id) -> Result<std::pair<std::string, std::string>> {
      return std::pair<std::string, std::string>(running.count(id) ? "" : "completed", "");
    };
    l.check = [](const BatchTemplate& b) -> Status {
      return b.model == "missing" ? NotFound("model 'missing' is not in the repository") : Status::Ok();
    };
    return l;
  }
};

class ScheduleRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.root() / "in");
    for (const char* day : {"2026-12-01", "2026-12-02", "2026-12-03"}) {
      std::ofstream(dir_.root() / "in" / (std::string(day) + ".csv")) << "a\n1\n";
    }
    auto store = SqliteScheduleStore::Open(dir_.root() / "data" / "schedules.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  std::unique_ptr<ScheduleRunner> Runner() {
    ScheduleRunnerOptions o;
    o.input_root = dir_.root();
    o.clock = &clock_;
    return std::make_unique<ScheduleRunner>(store_.get(), batches_.Launcher(), o);
  }
  static DefinitionFields Hourly(std::string missed = "skip") {
    return {{"name", "hourly"}, {"cron", "0 * * * *"}, {"model", "m"}, {"input", "in/{date}.csv"},
            {"output", "out/{date}-{time}.jsonl"}, {"missed", std::move(missed)}};
  }
  ScheduleRecord Record(const std::string& name) {
    auto r = store_->Get(name);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? **r : ScheduleRecord{};
  }
  void At(int64_t unix_seconds) { clock_.Set(unix_seconds * 1000); }

  TempRepository dir_;
  FakeWallClock clock_{(kDec2Midnight + 30 * 60) * 1000};
  FakeBatches batches_;
  std::unique_ptr<SqliteScheduleStore> store_;
};

TEST_F(ScheduleRunnerTest, ASlotStartsItsBatchOnceWithItsInputAndOutput) {
  auto runner = Runner();
  ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
  EXPECT_EQ(runner->Evaluate(), kDec2Midnight + kHour);
  EXPECT_TRUE(batches_.made.empty());
  At(kDec2Midnight + kHour + 1);
  runner->Evaluate();
  runner->Evaluate();
  ASSERT_EQ(batches_.made.size(), 1u);
  const BatchOrder& o = batches_.made.begin()->second;
  EXPECT_EQ(o.batch.input, (dir_.root() / "in" / "2026-12-02.csv").string());
  EXPECT_EQ(o.batch.output, "out/2026-12-02-0100.jsonl");
  EXPECT_NE(o.metadata_json.find(R"("schedule":"hourly")"), std::string::npos);
  const ScheduleRecord r = Record("hourly");
  EXPECT_EQ(r.fires, 1);
  EXPECT_EQ(r.last_fired_slot, kDec2Midnight + kHour);
  EXPECT_EQ(r.last_batches, o.id);
}

TEST_F(ScheduleRunnerTest, ClockJumpsAroundATickFireNoSlotTwice) {
  auto runner = Runner();
  ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
  At(kDec2Midnight + kHour + 5);
  runner->Evaluate();
  ASSERT_EQ(batches_.made.size(), 1u);
  batches_.running.clear();
  // Back ten minutes, then forward again across 01:00: nothing new.
  At(kDec2Midnight + kHour + 5 - 600);
  runner->Evaluate();
  At(kDec2Midnight + kHour + 30);
  runner->Evaluate();
  EXPECT_EQ(batches_.made.size(), 1u);
  // Forward an hour past 02:00 and 03:00: 03:00 is on time and runs, 02:00 is missed.
  At(kDec2Midnight + 3 * kHour + 20);
  runner->Evaluate();
  EXPECT_EQ(batches_.made.size(), 2u);
  const ScheduleRecord r = Record("hourly");
  EXPECT_EQ(r.last_fired_slot, kDec2Midnight + 3 * kHour);
  EXPECT_EQ(r.fires, 2);
  EXPECT_EQ(r.misses, 1);
}

TEST_F(ScheduleRunnerTest, ARestartAcrossASlotFiresItOnce) {
  {
    auto runner = Runner();
    ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
    At(kDec2Midnight + kHour - 1);
    runner->Evaluate();
  }
  At(kDec2Midnight + kHour + 40);  // the process was down over 01:00, back within the grace
  {
    auto runner = Runner();
    ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
    runner->Evaluate();
  }
  {
    auto runner = Runner();  // and once more, at the same instant
    ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
    runner->Evaluate();
  }
  EXPECT_EQ(batches_.made.size(), 1u);
  EXPECT_EQ(Record("hourly").fires, 1);
}

TEST_F(ScheduleRunnerTest, SlotsMissedWhileDownAreSkippedOrRunOnce) {
  for (const char* policy : {"skip", "run_once"}) {
    DefinitionFields f = Hourly(policy);
    f["name"] = std::string("down-") + policy;
    At(kDec2Midnight + kHour + 1800);
    {
      auto runner = Runner();
      ASSERT_TRUE(runner->Add(f, "file").ok());
    }
    At(kDec2Midnight + 5 * kHour + 600);  // down over 02:00 .. 05:00
    auto runner = Runner();
    ASSERT_TRUE(runner->Add(f, "file").ok());
    runner->Evaluate();
    runner->Evaluate();
    const ScheduleRecord r = Record(f["name"]);
    EXPECT_EQ(r.last_slot, kDec2Midnight + 5 * kHour) << policy;
    if (std::string(policy) == "skip") {
      EXPECT_EQ(r.fires, 0);
      EXPECT_EQ(r.misses, 4);
    } else {
      EXPECT_EQ(r.fires, 1);
      EXPECT_EQ(r.misses, 3);
      EXPECT_EQ(r.last_fired_slot, kDec2Midnight + 5 * kHour);
    }
  }
  EXPECT_EQ(batches_.made.size(), 1u);
}

TEST_F(ScheduleRunnerTest, ASlotWhileTheLastRunStillRunsIsSkipped) {
  auto runner = Runner();
  ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
  At(kDec2Midnight + kHour + 1);
  runner->Evaluate();
  At(kDec2Midnight + 2 * kHour + 1);  // the 01:00 batch still runs
  runner->Evaluate();
  EXPECT_EQ(batches_.made.size(), 1u);
  EXPECT_EQ(Record("hourly").skips, 1);
  batches_.running.clear();
  At(kDec2Midnight + 3 * kHour + 1);
  runner->Evaluate();
  EXPECT_EQ(batches_.made.size(), 2u);
}

TEST_F(ScheduleRunnerTest, ABatchStartedBeforeACrashIsNotStartedAgain) {
  auto runner = Runner();
  ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
  At(kDec2Midnight + kHour + 1);
  runner->Evaluate();
  ASSERT_EQ(batches_.made.size(), 1u);
  const std::string id = batches_.made.begin()->first;
  // As if the slot's commit had been lost: a fresh store row for the same schedule at 00:30.
  ASSERT_TRUE(store_->Delete("hourly").ok());
  At(kDec2Midnight + 1800);
  auto again = Runner();
  ASSERT_TRUE(again->Add(Hourly(), "file").ok());
  At(kDec2Midnight + kHour + 1);
  again->Evaluate();
  EXPECT_EQ(batches_.made.size(), 1u);
  EXPECT_EQ(batches_.launches, 2);
  EXPECT_EQ(Record("hourly").last_batches, id);
}

TEST_F(ScheduleRunnerTest, BadDefinitionsAreRefusedAndTheOthersRun) {
  auto runner = Runner();
  DefinitionFields missing_model = Hourly();
  missing_model["name"] = "ghost";
  missing_model["model"] = "missing";
  auto ghost = runner->Add(missing_model, "api");
  ASSERT_FALSE(ghost.ok());
  EXPECT_EQ(ghost.status().code(), StatusCode::kNotFound);
  DefinitionFields outside = Hourly();
  outside["name"] = "outside";
  outside["input"] = "/etc/{date}.csv";
  auto out = runner->Add(outside, "api");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kPermissionDenied);
  DefinitionFields link_out = Hourly();
  link_out["name"] = "link";
  std::filesystem::create_directory_symlink("/etc", dir_.root() / "etc-link");
  link_out["input"] = "etc-link/{date}.csv";
  EXPECT_EQ(runner->Add(link_out, "api").status().code(), StatusCode::kPermissionDenied);
  ASSERT_TRUE(runner->Add(Hourly(), "api").ok());
  EXPECT_EQ(runner->Add(Hourly(), "api").status().code(), StatusCode::kAlreadyExists);
  At(kDec2Midnight + kHour + 1);
  runner->Evaluate();
  EXPECT_EQ(batches_.made.size(), 1u);
  auto listed = runner->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().next, kDec2Midnight + 2 * kHour);
}

TEST_F(ScheduleRunnerTest, AFireWithNoInputIsRecordedAsFailed) {
  DefinitionFields f = Hourly();
  f["input"] = "in/{date}-absent.csv";
  auto runner = Runner();
  ASSERT_TRUE(runner->Add(f, "file").ok());
  At(kDec2Midnight + kHour + 1);
  runner->Evaluate();
  const ScheduleRecord r = Record("hourly");
  EXPECT_EQ(r.fires, 0);
  EXPECT_NE(r.last_error.find("no input matched"), std::string::npos) << r.last_error;
  EXPECT_EQ(r.last_slot, kDec2Midnight + kHour);
}

TEST_F(ScheduleRunnerTest, AGlobStartsOneBatchPerFile) {
  DefinitionFields f = Hourly();
  f["input"] = "in/*.csv";
  f["output"] = "out/{date}-{time}/{stem}.jsonl";
  auto runner = Runner();
  ASSERT_TRUE(runner->Add(f, "file").ok());
  At(kDec2Midnight + kHour + 1);
  runner->Evaluate();
  ASSERT_EQ(batches_.made.size(), 3u);
  std::set<std::string> outputs;
  for (const auto& [id, o] : batches_.made) outputs.insert(o.batch.output);
  EXPECT_EQ(outputs, (std::set<std::string>{"out/2026-12-02-0100/2026-12-01.jsonl",
                                            "out/2026-12-02-0100/2026-12-02.jsonl",
                                            "out/2026-12-02-0100/2026-12-03.jsonl"}));
  EXPECT_EQ(Record("hourly").last_batches.size(), 3 * 30u + 2u);
}

TEST_F(ScheduleRunnerTest, AGlobNeverReachesOutOfTheInputRoot) {
  std::filesystem::create_directory_symlink("/etc", dir_.root() / "in" / "etc-link");
  DefinitionFields f = Hourly();
  f["input"] = "in/*/passwd";
  f["output"] = "out/{date}-{time}-{stem}.jsonl";
  auto runner = Runner();
  ASSERT_TRUE(runner->Add(f, "file").ok());
  At(kDec2Midnight + kHour + 1);
  runner->Evaluate();
  EXPECT_TRUE(batches_.made.empty());
  const ScheduleRecord r = Record("hourly");
  EXPECT_EQ(r.last_error.find("/etc"), std::string::npos) << r.last_error;  // not even named
  DefinitionFields dots = Hourly();
  dots["name"] = "dots";
  dots["input"] = "in/.*/x.csv";
  EXPECT_EQ(runner->Add(dots, "api").status().code(), StatusCode::kPermissionDenied);
}

TEST_F(ScheduleRunnerTest, OutputsThatRepeatAcrossSlotsAndNameClashesAreRefused) {
  DefinitionFields same = Hourly();
  same["output"] = "out/{date}.jsonl";  // every hourly slot of a day would write the same file
  auto runner = Runner();
  auto refused = runner->Add(same, "file");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("consecutive slots"), std::string::npos);
  ASSERT_TRUE(runner->Add(Hourly(), "api").ok());
  auto runner2 = Runner();
  auto clash = runner2->Add(Hourly(), "file");  // a file may not take over the API's schedule
  EXPECT_EQ(clash.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(runner->Add(Hourly(), "file").status().code(), StatusCode::kAlreadyExists);
}

TEST_F(ScheduleRunnerTest, TheStateOfARemovedDefinitionFileIsDropped) {
  {
    auto runner = Runner();
    ASSERT_TRUE(runner->Add(Hourly(), "file").ok());
  }
  auto runner = Runner();
  ASSERT_TRUE(runner->ForgetRemovedFileSchedules().ok());
  EXPECT_FALSE(store_->Get("hourly")->has_value());
  EXPECT_TRUE(runner->Add(Hourly(), "api").ok());
}

TEST_F(ScheduleRunnerTest, ApiSchedulesSurviveARestartAndFileOnesCannotBeRemoved) {
  DefinitionFields api = Hourly();
  api["name"] = "by-api";
  DefinitionFields file = Hourly();
  file["name"] = "by-file";
  {
    auto runner = Runner();
    ASSERT_TRUE(runner->Add(api, "api").ok());
    ASSERT_TRUE(runner->Add(file, "file").ok());
    EXPECT_EQ(runner->Remove("by-file").code(), StatusCode::kFailedPrecondition);
  }
  auto runner = Runner();
  ASSERT_TRUE(runner->LoadStored().ok());
  auto got = runner->Get("by-api");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->spec.cron.text(), "0 * * * *");
  EXPECT_FALSE(runner->Get("by-file").ok());  // files are read again by whoever starts the runner
  EXPECT_TRUE(runner->Remove("by-api").ok());
  EXPECT_EQ(runner->Remove("by-api").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ferry
