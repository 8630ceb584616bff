#include "lifecycle/model_manager.h"

#include <gtest/gtest.h>

#include <set>

#include "scheduling/dynamic_batcher.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

// Loads succeed unless the fingerprint says "broken"; counts loads.
class FakeFactory : public ServableFactory {
 public:
  Result<ModelHandle> Load(const ModelConfig& config, int64_t version, const std::filesystem::path& dir) override {
    ++loads;
    if (dir.string().find("broken") != std::string::npos || broken_versions.count(version)) {
      return InvalidArgument("corrupt model file");
    }
    std::vector<std::unique_ptr<ModelInstance>> instances;
    instances.push_back(std::make_unique<testing::DoublingInstance>());
    auto batcher = DynamicBatcher::Create(DynamicBatcherOptions{}, std::move(instances));
    return std::make_shared<ServableModel>(config, version, std::move(batcher).value());
  }
  std::atomic<int> loads{0};
  std::set<int64_t> broken_versions;
};

WantedModel Want(std::string name, std::vector<int64_t> versions, std::string fingerprint = "a") {
  WantedModel w;
  w.name = name;
  ModelConfig config;
  config.name = name;
  w.config = config;
  w.path = "/repo/" + name;
  for (int64_t v : versions) w.versions.push_back({v, fingerprint});
  return w;
}

class ModelManagerTest : public ::testing::Test {
 protected:
  void Settle() { ASSERT_TRUE(manager_.WaitUntilIdle(10s)); }
  VersionState StateOf(const std::string& model, int64_t version) {
    for (const VersionStatus& s : manager_.Index()) {
      if (s.model == model && s.version == version) return s.state;
    }
    return VersionState::kNew;
  }
  FakeFactory factory_;
  ModelManager manager_{ModelManagerOptions{}, &factory_};
};

TEST_F(ModelManagerTest, LoadsWantedVersionsAndServesTheLatest) {
  manager_.ApplyAll({Want("m", {1, 2})});
  Settle();
  Result<ModelHandle> h = manager_.Get("m", std::nullopt);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ((*h)->version(), 2);
  EXPECT_EQ(manager_.Get("m", 1).value()->version(), 1);
}

TEST_F(ModelManagerTest, UnknownModelIsNotFoundAndMissingVersionToo) {
  manager_.ApplyAll({Want("m", {1})});
  Settle();
  EXPECT_EQ(manager_.Get("nope", std::nullopt).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_.Get("m", 7).status().code(), StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, NewVersionReplacesOldOnlyOnceReady) {
  manager_.ApplyAll({Want("m", {1})});
  Settle();
  ModelHandle v1 = manager_.Get("m", std::nullopt).value();
  manager_.ApplyAll({Want("m", {2})});  // policy latest-1 now wants only v2
  Settle();
  EXPECT_EQ(manager_.Get("m", std::nullopt).value()->version(), 2);
  EXPECT_TRUE(v1->retired());
  EXPECT_EQ(StateOf("m", 1), VersionState::kNew);  // gone from the index after unloading
}

TEST_F(ModelManagerTest, BrokenNewVersionKeepsTheOldOneServing) {
  manager_.ApplyAll({Want("m", {1})});
  Settle();
  factory_.broken_versions.insert(2);
  manager_.ApplyAll({Want("m", {2})});
  Settle();
  Result<ModelHandle> h = manager_.Get("m", std::nullopt);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ((*h)->version(), 1);
  EXPECT_EQ(StateOf("m", 2), VersionState::kError);
  EXPECT_EQ(StateOf("m", 1), VersionState::kReady);
}

TEST_F(ModelManagerTest, FailedLoadIsRetriedOnlyWhenFilesChange) {
  factory_.broken_versions.insert(1);
  manager_.ApplyAll({Want("m", {1}, "a")});
  Settle();
  const int loads = factory_.loads;
  manager_.ApplyAll({Want("m", {1}, "a")});
  Settle();
  EXPECT_EQ(factory_.loads, loads);
  factory_.broken_versions.clear();
  manager_.ApplyAll({Want("m", {1}, "b")});
  Settle();
  EXPECT_EQ(factory_.loads, loads + 1);
  EXPECT_TRUE(manager_.Get("m", std::nullopt).ok());
}

TEST_F(ModelManagerTest, ChangedFilesReloadAReadyVersionInTheBackground) {
  manager_.ApplyAll({Want("m", {1}, "a")});
  Settle();
  ModelHandle before = manager_.Get("m", 1).value();
  manager_.ApplyAll({Want("m", {1}, "b")});
  Settle();
  ModelHandle after = manager_.Get("m", 1).value();
  EXPECT_NE(before, after);
  EXPECT_TRUE(before->retired());
}

TEST_F(ModelManagerTest, InvalidConfigKeepsServingAndIsReported) {
  manager_.ApplyAll({Want("m", {1})});
  Settle();
  WantedModel bad = Want("m", {});
  bad.config = InvalidArgument("unknown key 'max_bach_size'");
  manager_.ApplyAll({bad});
  Settle();
  EXPECT_TRUE(manager_.Get("m", std::nullopt).ok());
  bool reported = false;
  for (const VersionStatus& s : manager_.Index()) reported |= s.reason.find("max_bach_size") != std::string::npos;
  EXPECT_TRUE(reported);
}

TEST_F(ModelManagerTest, RemovedModelIsUnloaded) {
  manager_.ApplyAll({Want("m", {1}), Want("n", {1})});
  Settle();
  manager_.ApplyAll({Want("n", {1})});
  Settle();
  EXPECT_EQ(manager_.Get("m", std::nullopt).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(manager_.Get("n", std::nullopt).ok());
}

TEST_F(ModelManagerTest, ExplicitRemoveAndApply) {
  manager_.Apply(Want("m", {1}));
  Settle();
  EXPECT_TRUE(manager_.Get("m", std::nullopt).ok());
  manager_.Remove("m");
  Settle();
  EXPECT_FALSE(manager_.Get("m", std::nullopt).ok());
  manager_.Apply(Want("m", {1}));
  Settle();
  EXPECT_TRUE(manager_.Get("m", std::nullopt).ok());
}

TEST_F(ModelManagerTest, ShutdownRetiresEverything) {
  manager_.ApplyAll({Want("m", {1})});
  Settle();
  ModelHandle h = manager_.Get("m", std::nullopt).value();
  manager_.Shutdown();
  EXPECT_TRUE(h->retired());
  EXPECT_FALSE(manager_.Get("m", std::nullopt).ok());
}

}  // namespace
}  // namespace ferry
