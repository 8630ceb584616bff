#include "hybrid/sqlite_table_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using ferry::testing::TempRepository;

TableEntry Entry(const std::string& key, float value, const std::string& version = "1", int64_t produced_ms = 1000) {
  TableEntry e;
  e.key = key;
  e.model_version = version;
  e.produced_ms = produced_ms;
  Tensor t;
  t.name = "score";
  t.dtype = DataType::kFp32;
  t.shape = {1, 1};
  t.data = Buffer::Copy(&value, sizeof(value));
  e.outputs.push_back(std::move(t));
  return e;
}

float ValueOf(const TableEntry& e) {
  float v = 0;
  std::memcpy(&v, e.outputs.at(0).data.data(), sizeof(v));
  return v;
}

std::function<Status(TableSink&)> Entries(int count, float value, const std::string& prefix = "u") {
  return [=](TableSink& sink) {
    for (int i = 0; i < count; ++i) FERRY_RETURN_IF_ERROR(sink.Add(Entry(prefix + std::to_string(i), value)));
    return Status::Ok();
  };
}

class SqliteTableStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteTableStore> Open(size_t budget = size_t{1} << 20) {
    SqliteTableStoreOptions options;
    options.memory_budget_bytes = budget;
    options.clock = &clock_;
    options.wall_clock = &wall_;
    options.start_writer = false;
    Result<std::unique_ptr<SqliteTableStore>> store = SqliteTableStore::Open(dir_.root() / "tables.db", options);
    EXPECT_TRUE(store.ok()) << store.status().message();
    return std::move(store).value();
  }
  TempRepository dir_;
  FakeClock clock_;
  FakeWallClock wall_{1'700'000'000'000};
};

TEST_F(SqliteTableStoreTest, APublishedEntryIsFoundAndAnAbsentKeyIsNot) {
  auto store = Open();
  Result<TableInfo> info = store->Publish("recs", "ranker", "test", Entries(10, 7.0f));
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->entries, 10);
  EXPECT_EQ(info->model, "ranker");
  EXPECT_EQ(info->published_ms, wall_.NowUnixMs());
  Result<std::optional<TableEntry>> hit = store->Lookup("recs", "u3");
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ(ValueOf(**hit), 7.0f);
  EXPECT_EQ((*hit)->model_version, "1");
  EXPECT_FALSE(store->Lookup("recs", "nobody")->has_value());
  EXPECT_FALSE(store->Lookup("other", "u3")->has_value());
}

TEST_F(SqliteTableStoreTest, AFailedPublishLeavesTheOldGenerationServing) {
  auto store = Open();
  ASSERT_TRUE(store->Publish("recs", "ranker", "first", Entries(5, 1.0f)).ok());
  Result<TableInfo> failed = store->Publish("recs", "ranker", "second", [](TableSink& sink) {
    FERRY_RETURN_IF_ERROR(sink.Add(Entry("u0", 2.0f)));
    return InvalidArgument("line 2: bad");
  });
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValueOf(**store->Lookup("recs", "u0")), 1.0f);
  EXPECT_EQ(store->Get("recs")->source, "first");
  // A bad key fails the publish too.
  EXPECT_FALSE(store->Publish("recs", "ranker", "third", [](TableSink& sink) { return sink.Add(Entry("", 3.0f)); }).ok());
  EXPECT_EQ(ValueOf(**store->Lookup("recs", "u0")), 1.0f);
}

TEST_F(SqliteTableStoreTest, ANewGenerationReplacesTheWholeTable) {
  auto store = Open();
  ASSERT_TRUE(store->Publish("recs", "ranker", "a", Entries(5, 1.0f)).ok());
  ASSERT_TRUE(store->Lookup("recs", "u4")->has_value());  // now in memory too
  ASSERT_TRUE(store->Publish("recs", "ranker", "b", Entries(3, 2.0f)).ok());
  EXPECT_EQ(ValueOf(**store->Lookup("recs", "u0")), 2.0f);
  EXPECT_FALSE(store->Lookup("recs", "u4")->has_value()) << "an entry of the old generation answered";
  EXPECT_EQ(store->Get("recs")->entries, 3);
}

TEST_F(SqliteTableStoreTest, ReadersDuringPublishesSeeOneGenerationOrTheOther) {
  auto store = Open(/*budget=*/16 * 1024);  // small: most lookups go to SQLite
  ASSERT_TRUE(store->Publish("recs", "ranker", "g", Entries(200, 0.0f)).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> backwards{0}, missing{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      float last = 0;
      for (int i = 0; !stop; ++i) {
        // Every entry of generation g holds g: a reader may move to a newer generation, never back.
        Result<std::optional<TableEntry>> e = store->Lookup("recs", "u" + std::to_string((r * 37 + i) % 200));
        if (!e.ok() || !e->has_value()) {
          ++missing;
          continue;
        }
        ++lookups;
        if (ValueOf(**e) < last) ++backwards;
        last = ValueOf(**e);
      }
    });
  }
  for (int g = 1; g <= 20; ++g) {
    ASSERT_TRUE(store->Publish("recs", "ranker", "g", Entries(200, static_cast<float>(g))).ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(missing.load(), 0) << "a lookup during a publish found no entry";
  EXPECT_EQ(backwards.load(), 0) << "a lookup answered from an older generation than one before it";
  EXPECT_GT(lookups.load(), 0);
  EXPECT_EQ(ValueOf(**store->Lookup("recs", "u199")), 20.0f);
}

TEST_F(SqliteTableStoreTest, ATableLargerThanItsMemoryBudgetStillAnswersEveryKey) {
  auto store = Open(/*budget=*/8 * 1024);
  ASSERT_TRUE(store->Publish("recs", "ranker", "big", Entries(2000, 5.0f)).ok());
  for (int i = 0; i < 2000; i += 7) {
    Result<std::optional<TableEntry>> e = store->Lookup("recs", "u" + std::to_string(i));
    ASSERT_TRUE(e.ok() && e->has_value()) << i;
  }
  const TableStats stats = store->Stats();
  EXPECT_LE(stats.memory_bytes, 8 * 1024);
  EXPECT_GT(stats.memory_evictions, 0);
}

TEST_F(SqliteTableStoreTest, WriteBacksLandInTheCurrentGeneration) {
  auto store = Open();
  store->WriteBack("recs", Entry("late", 1.0f));  // no table yet: dropped quietly
  ASSERT_TRUE(store->FlushWriteBacks().ok());
  EXPECT_FALSE(store->Get("recs").ok());
  ASSERT_TRUE(store->Publish("recs", "ranker", "a", Entries(2, 1.0f)).ok());
  ASSERT_FALSE(store->Lookup("recs", "new-user")->has_value());
  store->WriteBack("recs", Entry("new-user", 9.0f, "2", wall_.NowUnixMs()));
  store->WriteBack("recs", Entry("u0", 8.0f, "2", wall_.NowUnixMs()));
  ASSERT_TRUE(store->FlushWriteBacks().ok());
  Result<std::optional<TableEntry>> written = store->Lookup("recs", "new-user");
  ASSERT_TRUE(written.ok() && written->has_value());
  EXPECT_EQ(ValueOf(**written), 9.0f);
  EXPECT_EQ((*written)->model_version, "2");
  EXPECT_EQ(ValueOf(**store->Lookup("recs", "u0")), 8.0f);
  EXPECT_EQ(store->Get("recs")->entries, 3);
  EXPECT_EQ(store->Stats().write_backs, 3);
}

TEST_F(SqliteTableStoreTest, TheWriteBackQueueIsBounded) {
  SqliteTableStoreOptions options;
  options.write_back_queue = 4;
  options.start_writer = false;
  auto store = std::move(SqliteTableStore::Open(dir_.root() / "bounded.db", options)).value();
  ASSERT_TRUE(store->Publish("recs", "ranker", "a", Entries(1, 1.0f)).ok());
  for (int i = 0; i < 10; ++i) store->WriteBack("recs", Entry("w" + std::to_string(i), 1.0f));
  EXPECT_EQ(store->Stats().write_backs_dropped, 6);
}

TEST_F(SqliteTableStoreTest, APublishByAnotherConnectionIsSeenAfterTheRefreshInterval) {
  auto server = Open();
  auto loader = Open();
  ASSERT_FALSE(server->Lookup("recs", "u0")->has_value());
  ASSERT_TRUE(loader->Publish("recs", "ranker", "cli", Entries(3, 4.0f)).ok());
  EXPECT_FALSE(server->Lookup("recs", "u0")->has_value());  // not re-read yet
  clock_.Advance(std::chrono::seconds(2));
  Result<std::optional<TableEntry>> e = server->Lookup("recs", "u0");
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_EQ(ValueOf(**e), 4.0f);
}

TEST_F(SqliteTableStoreTest, DropForgetsTheTableAndARepublishStartsClean) {
  auto store = Open();
  ASSERT_TRUE(store->Publish("recs", "ranker", "a", Entries(3, 1.0f)).ok());
  ASSERT_TRUE(store->Lookup("recs", "u2")->has_value());
  ASSERT_TRUE(store->Drop("recs").ok());
  EXPECT_EQ(store->Drop("recs").code(), StatusCode::kNotFound);
  EXPECT_FALSE(store->Lookup("recs", "u2")->has_value());
  ASSERT_TRUE(store->Publish("recs", "ranker", "b", Entries(1, 2.0f)).ok());
  EXPECT_FALSE(store->Lookup("recs", "u2")->has_value()) << "an entry of the dropped table came back from memory";
  EXPECT_EQ(ValueOf(**store->Lookup("recs", "u0")), 2.0f);
}

TEST_F(SqliteTableStoreTest, ATableHoldsOneModelsAnswers) {
  auto store = Open();
  ASSERT_TRUE(store->Publish("recs", "ranker", "a", Entries(2, 1.0f)).ok());
  EXPECT_EQ(store->Lookup("recs", "u0")->value().model, "ranker");
  EXPECT_EQ(store->Publish("recs", "other", "b", Entries(2, 2.0f)).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ValueOf(**store->Lookup("recs", "u0")), 1.0f);
  ASSERT_TRUE(store->Drop("recs").ok());
  EXPECT_TRUE(store->Publish("recs", "other", "c", Entries(2, 3.0f)).ok());
}

TEST_F(SqliteTableStoreTest, TableNamesAreChecked) {
  auto store = Open();
  for (const char* bad : {"", "../x", "a b", "-x"}) {
    EXPECT_EQ(store->Publish(bad, "m", "s", Entries(1, 1.0f)).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace ferry
