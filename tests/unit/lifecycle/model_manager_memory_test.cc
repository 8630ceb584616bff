// The memory budget: loads measured, least recently used idle versions put to sleep, a version larger
// than the budget refused; under a fake clock and a fake resident-memory probe.
#include <gtest/gtest.h>

#include <atomic>

#include "lifecycle/model_manager.h"
#include "scheduling/dynamic_batcher.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kMiB = 1024 * 1024;

// Each load grows the fake resident memory by the config's `mb` option.
class SizedFactory : public ServableFactory {
 public:
  explicit SizedFactory(std::atomic<int64_t>* resident) : resident_(resident) {}
  Result<ModelHandle> Load(const ModelConfig& config, int64_t version, const std::filesystem::path&) override {
    for (const auto& [key, value] : config.backend_options) {
      if (key == "mb") *resident_ += std::stoll(value) * kMiB;
    }
    std::vector<std::unique_ptr<ModelInstance>> instances;
    instances.push_back(std::make_unique<testing::DoublingInstance>());
    auto batcher = DynamicBatcher::Create(DynamicBatcherOptions{}, std::move(instances));
    return std::make_shared<ServableModel>(config, version, std::move(batcher).value());
  }

 private:
  std::atomic<int64_t>* resident_;
};

WantedModel Sized(const std::string& name, int64_t mb) {
  WantedModel w;
  w.name = name;
  ModelConfig config;
  config.name = name;
  config.idle_unload_s = 0.0;  // never for idleness: only the budget puts these to sleep
  config.backend_options = {{"mb", std::to_string(mb)}};
  w.config = config;
  w.path = "/repo/" + name;
  w.versions.push_back({1, "a"});
  return w;
}

class ModelManagerMemoryTest : public ::testing::Test {
 protected:
  ModelManagerOptions Options() {
    ModelManagerOptions o;
    o.clock = &clock_;
    o.housekeeping_period = 0ms;
    o.memory_budget_bytes = 100 * kMiB;
    o.resident_bytes = [this] { return resident_.load(); };
    return o;
  }
  void Settle() { ASSERT_TRUE(manager_.WaitUntilIdle(10s)); }
  void Load(const std::string& name, int64_t mb) {
    manager_.Apply(Sized(name, mb));
    Settle();
    clock_.Advance(1s);
  }
  VersionStatus StatusOf(const std::string& model) {
    for (const VersionStatus& s : manager_.Index()) {
      if (s.model == model) return s;
    }
    return {};
  }

  FakeClock clock_;
  std::atomic<int64_t> resident_{0};
  SizedFactory factory_{&resident_};
  ModelManager manager_{Options(), &factory_};
};

TEST_F(ModelManagerMemoryTest, EachVersionIsMeasuredAtLoad) {
  Load("a", 40);
  EXPECT_EQ(StatusOf("a").memory_bytes, 40 * kMiB);
  EXPECT_EQ(StatusOf("a").state, VersionState::kReady);
}

TEST_F(ModelManagerMemoryTest, GoingOverPutsTheLeastRecentlyUsedIdleVersionToSleep) {
  Load("a", 40);
  Load("b", 40);
  ASSERT_TRUE(manager_.Get("a", std::nullopt).ok());  // a used after b loaded: b is the least recent
  clock_.Advance(1s);
  Load("c", 40);
  EXPECT_EQ(StatusOf("b").state, VersionState::kAsleep);
  EXPECT_EQ(StatusOf("b").memory_bytes, 0);
  EXPECT_EQ(StatusOf("a").state, VersionState::kReady);
  EXPECT_EQ(StatusOf("c").state, VersionState::kReady);

  // Waking b makes room before its load: a (used before c loaded) goes to sleep.
  Result<AcquiredModel> b = manager_.AcquireBlocking("b", std::nullopt, std::nullopt);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  b->handle.reset();
  Settle();
  EXPECT_EQ(StatusOf("a").state, VersionState::kAsleep);
  EXPECT_EQ(StatusOf("b").state, VersionState::kReady);
  EXPECT_EQ(StatusOf("c").state, VersionState::kReady);
}

TEST_F(ModelManagerMemoryTest, AVersionLargerThanTheBudgetIsRefusedWithBothSizes) {
  Load("small", 10);
  Load("huge", 150);
  VersionStatus s = StatusOf("huge");
  EXPECT_EQ(s.state, VersionState::kError);
  EXPECT_NE(s.reason.find("needs 150.0 MiB"), std::string::npos) << s.reason;
  EXPECT_NE(s.reason.find("budget of 100.0 MiB"), std::string::npos) << s.reason;
  EXPECT_EQ(manager_.Get("huge", std::nullopt).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusOf("small").state, VersionState::kReady);  // nothing evicted for a model that cannot fit
}

TEST_F(ModelManagerMemoryTest, ARefusedVersionLoadsOnceItsNewContentFits) {
  Load("m", 150);
  ASSERT_EQ(StatusOf("m").state, VersionState::kError);
  WantedModel smaller = Sized("m", 30);
  smaller.versions[0].fingerprint = "b";  // its files changed
  manager_.Apply(smaller);
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kReady);
  EXPECT_EQ(StatusOf("m").memory_bytes, 30 * kMiB);
}

TEST_F(ModelManagerMemoryTest, ATooLargeReloadLeavesTheServingVersionAndItsSizeAlone) {
  Load("m", 30);
  Load("other", 30);
  WantedModel bigger = Sized("m", 150);
  bigger.versions[0].fingerprint = "b";
  manager_.Apply(bigger);  // a background reload of the Ready version
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kReady);
  EXPECT_EQ(StatusOf("m").memory_bytes, 30 * kMiB);
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("other").state, VersionState::kReady);  // nothing evicted for it
}

TEST_F(ModelManagerMemoryTest, ABusyVersionIsNotEvictedUntilItIsIdle) {
  Load("a", 60);
  ModelHandle held = manager_.Get("a", std::nullopt).value();
  clock_.Advance(1s);  // b's load comes later than a's last use
  Load("b", 60);  // over: a is busy, so both stay for now
  EXPECT_EQ(StatusOf("a").state, VersionState::kReady);
  EXPECT_EQ(StatusOf("b").state, VersionState::kReady);
  held.reset();
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("a").state, VersionState::kAsleep);
  EXPECT_EQ(StatusOf("b").state, VersionState::kReady);
}

}  // namespace
}  // namespace ferry
