#include "schedules/folder_trigger.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using ferry::testing::TempRepository;
namespace fs = std::filesystem;

class FolderTriggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteScheduleStore::Open(dir_.root() / "data" / "schedules.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  BatchLauncher Launcher() {
    BatchLauncher l;
    l.launch = [this](const BatchOrder& o) -> Result<bool> {
      if (o.batch.input.ends_with("bad.csv")) return InvalidArgument("line 1: the header names no input 'a'");
      if (o.batch.input.ends_with("later.csv") && !ready_) return Unavailable("model 'm' is loading");
      if (made_.count(o.id)) return false;
      made_[o.id] = o;
      return true;
    };
    l.running = [this](const std::string& id) -> Result<bool> { return !done_.count(id); };
    l.outcome = [this](const std::string& id) -> Result<std::pair<std::string, std::string>> {
      if (!done_.count(id)) return std::pair<std::string, std::string>();
      return std::pair<std::string, std::string>(done_[id], done_[id] == "failed" ? "line 3: bad record" : "");
    };
    return l;
  }
  std::unique_ptr<FolderTriggers> Triggers(const char* complete = "renamed",
                                           std::chrono::milliseconds settle = std::chrono::milliseconds(0)) {
    FolderTriggerOptions o;
    o.input_root = dir_.root();
    o.settle = settle;
    auto t = std::make_unique<FolderTriggers>(store_.get(), Launcher(), o);
    const DefinitionFields f{{"name", "incoming"}, {"watch", "incoming"}, {"model", "m"}, {"complete", complete},
                             {"pattern", "*.csv"}, {"output", "out/{stem}.jsonl"}};
    const Status added = t->Add(f);
    EXPECT_TRUE(added.ok()) << added.ToString();
    return t;
  }
  void Drop(const std::string& name) { std::ofstream(dir_.root() / "incoming" / name) << "a\n1\n"; }
  std::map<std::string, int64_t> Counts(FolderTriggers& t) {
    auto v = t.Get("incoming", 10);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    std::map<std::string, int64_t> out;
    if (v.ok()) {
      for (const auto& [outcome, n] : v->counts) out[outcome] = n;
    }
    return out;
  }

  TempRepository dir_;
  std::unique_ptr<SqliteScheduleStore> store_;
  std::map<std::string, BatchOrder> made_;
  std::map<std::string, std::string> done_;
  bool ready_ = false;
};

TEST_F(FolderTriggerTest, EachCompleteEntryStartsOneBatchAcrossRescansAndRestarts) {
  auto triggers = Triggers();
  ASSERT_TRUE(fs::is_directory(dir_.root() / "incoming"));  // made when missing
  for (const char* name : {"a.csv", "b.csv", ".hidden.csv", "c.csv.part", "notes.txt"}) Drop(name);
  triggers->Rescan();
  triggers->Rescan();
  ASSERT_EQ(made_.size(), 2u);
  std::set<std::string> outputs;
  for (const auto& [id, o] : made_) outputs.insert(o.batch.output);
  EXPECT_EQ(outputs, (std::set<std::string>{"out/a.jsonl", "out/b.jsonl"}));
  triggers.reset();
  Drop("d.csv");
  auto restarted = Triggers();
  restarted->Rescan();
  restarted->Offer("incoming", "a.csv", true);
  EXPECT_EQ(made_.size(), 3u);
  EXPECT_EQ(Counts(*restarted)["started"], 3);
}

TEST_F(FolderTriggerTest, AListedFileStillChangingWaitsButARenamedOneIsTaken) {
  auto triggers = Triggers("renamed", std::chrono::hours(1));
  Drop("fresh.csv");
  triggers->Rescan();
  EXPECT_TRUE(made_.empty());  // written a moment ago, found by a listing: maybe still being written
  triggers->Offer("incoming", "fresh.csv", /*renamed=*/true);
  EXPECT_EQ(made_.size(), 1u);
}

TEST_F(FolderTriggerTest, AMarkedEntryWaitsForItsMarker) {
  auto triggers = Triggers("marker");
  Drop("a.csv");
  triggers->Rescan();
  triggers->Offer("incoming", "a.csv", false);
  EXPECT_TRUE(made_.empty());
  std::ofstream(dir_.root() / "incoming" / "a.csv.done").flush();
  triggers->Offer("incoming", "a.csv", false);
  EXPECT_EQ(made_.size(), 1u);
}

TEST_F(FolderTriggerTest, InvalidInputIsRefusedOnceAndListed) {
  auto triggers = Triggers();
  Drop("bad.csv");
  triggers->Rescan();
  triggers->Rescan();
  EXPECT_TRUE(made_.empty());
  auto v = triggers->Get("incoming", 10);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->failures.size(), 1u);
  EXPECT_EQ(v->failures[0].name, "bad.csv");
  EXPECT_EQ(v->failures[0].outcome, "refused");
  EXPECT_NE(v->failures[0].error.find("header"), std::string::npos);
}

TEST_F(FolderTriggerTest, AnEntryWhoseModelIsNotReadyIsTakenLater) {
  auto triggers = Triggers();
  Drop("later.csv");
  triggers->Rescan();
  EXPECT_TRUE(made_.empty());
  EXPECT_TRUE(Counts(*triggers).empty());
  ready_ = true;
  triggers->Rescan();
  EXPECT_EQ(made_.size(), 1u);
}

TEST_F(FolderTriggerTest, BatchEndsAreRecorded) {
  auto triggers = Triggers();
  Drop("a.csv");
  Drop("b.csv");
  triggers->Rescan();
  ASSERT_EQ(made_.size(), 2u);
  for (const auto& [id, o] : made_) done_[id] = o.batch.input.ends_with("a.csv") ? "completed" : "failed";
  triggers->CheckOutcomes();
  triggers->CheckOutcomes();
  auto counts = Counts(*triggers);
  EXPECT_EQ(counts["completed"], 1);
  EXPECT_EQ(counts["failed"], 1);
  EXPECT_EQ(counts.count("started"), 0u);
  auto v = triggers->Get("incoming", 10);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->failures.size(), 1u);
  EXPECT_EQ(v->failures[0].error, "line 3: bad record");
}

TEST_F(FolderTriggerTest, RefusesFoldersOutsideTheInputRootAndTwoTriggersOnOneFolder) {
  FolderTriggerOptions o;
  o.input_root = dir_.root();
  FolderTriggers t(store_.get(), Launcher(), o);
  EXPECT_EQ(t.Add({{"name", "up"}, {"watch", "../x"}, {"model", "m"}}).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(t.Add({{"name", "abs"}, {"watch", "/tmp"}, {"model", "m"}}).code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(t.Add({{"name", "noout"}, {"watch", "x"}, {"model", "m"}, {"output", "out/fixed.jsonl"}}).ok());
  ASSERT_TRUE(t.Add({{"name", "one"}, {"watch", "x"}, {"model", "m"}}).ok());
  EXPECT_FALSE(t.Add({{"name", "two"}, {"watch", "x/"}, {"model", "m"}}).ok());
}

}  // namespace
}  // namespace ferry
