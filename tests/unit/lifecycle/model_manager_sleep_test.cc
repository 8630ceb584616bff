// Scale to zero: idle versions sleep, requests wake them and wait, under a fake clock.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <set>

#include "lifecycle/model_manager.h"
#include "scheduling/dynamic_batcher.h"
#include "testing/fake_instance.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

// Loads succeed unless the version is listed as broken; while `hold` is set, loads wait for Release().
class GatedFactory : public ServableFactory {
 public:
  Result<ModelHandle> Load(const ModelConfig& config, int64_t version, const std::filesystem::path&) override {
    {
      std::unique_lock lock(mu_);
      ++loads_started;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !hold; });
    }
    ++loads;
    if (broken_versions.count(version)) return InvalidArgument("corrupt model file");
    std::vector<std::unique_ptr<ModelInstance>> instances;
    instances.push_back(std::make_unique<testing::DoublingInstance>());
    auto batcher = DynamicBatcher::Create(DynamicBatcherOptions{}, std::move(instances));
    return std::make_shared<ServableModel>(config, version, std::move(batcher).value());
  }
  void Hold() {
    std::lock_guard lock(mu_);
    hold = true;
  }
  void Release() {
    std::lock_guard lock(mu_);
    hold = false;
    cv_.notify_all();
  }
  void WaitForLoadStarts(int n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return loads_started >= n; });
  }
  std::atomic<int> loads{0};
  std::set<int64_t> broken_versions;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold = false;
  int loads_started = 0;
};

WantedModel Want(std::string name, std::optional<double> idle_s = std::nullopt,
                 std::optional<double> cold_timeout_s = std::nullopt) {
  WantedModel w;
  w.name = name;
  ModelConfig config;
  config.name = name;
  config.idle_unload_s = idle_s;
  config.cold_start_timeout_s = cold_timeout_s;
  w.config = config;
  w.path = "/repo/" + name;
  w.versions.push_back({1, "a"});
  return w;
}

// Collects what an Acquire answered.
struct Answer {
  void Set(Result<AcquiredModel> r) {
    std::lock_guard lock(mu);
    result = std::move(r);
    cv.notify_all();
  }
  Result<AcquiredModel> Wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return result.has_value(); });
    return *result;
  }
  bool Answered() {
    std::lock_guard lock(mu);
    return result.has_value();
  }
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Result<AcquiredModel>> result;
};

class ModelManagerSleepTest : public ::testing::Test {
 protected:
  static ModelManagerOptions Options(FakeClock* clock) {
    ModelManagerOptions o;
    o.clock = clock;
    o.housekeeping_period = 0ms;  // Tick by hand
    o.default_idle_unload = 10s;
    o.default_cold_start_timeout = 5s;
    o.on_cold_start = [](const std::string&, int64_t, double, const Status&) {};
    return o;
  }
  void Settle() { ASSERT_TRUE(manager_.WaitUntilIdle(10s)); }
  VersionStatus StatusOf(const std::string& model) {
    for (const VersionStatus& s : manager_.Index()) {
      if (s.model == model) return s;
    }
    return {};
  }
  void Sleep(const std::string& model) {
    clock_.Advance(11s);
    manager_.Tick();
    Settle();
    ASSERT_EQ(StatusOf(model).state, VersionState::kAsleep);
  }
  // The usual start: `model` (default config) loaded, then put to sleep.
  void LoadAsleep(const std::string& model) {
    manager_.ApplyAll({Want(model)});
    Settle();
    Sleep(model);
  }
  std::shared_ptr<Answer> Acquire(const std::string& model, std::optional<SteadyTime> deadline = std::nullopt) {
    auto answer = std::make_shared<Answer>();
    manager_.Acquire(model, std::nullopt, deadline, [answer](Result<AcquiredModel> r) { answer->Set(std::move(r)); });
    return answer;
  }

  FakeClock clock_;
  GatedFactory factory_;
  ModelManager manager_{Options(&clock_), &factory_};
};

TEST_F(ModelManagerSleepTest, AnIdleVersionSleepsOnlyAfterItsIdleTime) {
  manager_.ApplyAll({Want("m")});
  Settle();
  clock_.Advance(9s);
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kReady);
  clock_.Advance(2s);
  manager_.Tick();
  Settle();
  VersionStatus s = StatusOf("m");
  EXPECT_EQ(s.state, VersionState::kAsleep);
  EXPECT_TRUE(s.asleep);
  EXPECT_EQ(VersionStateName(s.state), "READY");  // it answers requests, after a load
  EXPECT_NE(s.reason.find("asleep"), std::string::npos);
}

TEST_F(ModelManagerSleepTest, ReadsOfConfigAndReadinessNeverWakeIt) {
  LoadAsleep("m");
  EXPECT_TRUE(manager_.Servable("m", std::nullopt).ok());
  EXPECT_TRUE(manager_.Servable("m", 1).ok());
  ASSERT_TRUE(manager_.ConfigOf("m", std::nullopt).ok());
  EXPECT_EQ(manager_.ConfigOf("m", std::nullopt)->name, "m");
  EXPECT_TRUE(manager_.ReadyHandles().empty());
  (void)manager_.Index();
  Settle();
  EXPECT_EQ(factory_.loads, 1);
  EXPECT_EQ(manager_.Servable("nope", std::nullopt).code(), StatusCode::kNotFound);
}

TEST_F(ModelManagerSleepTest, AcquireWakesItAndWaits) {
  LoadAsleep("m");
  factory_.Hold();
  std::shared_ptr<Answer> answer = Acquire("m");
  factory_.WaitForLoadStarts(2);
  EXPECT_FALSE(answer->Answered());
  EXPECT_EQ(StatusOf("m").state, VersionState::kLoading);
  clock_.Advance(1500ms);  // the load takes 1.5 s of the fake clock
  factory_.Release();
  Result<AcquiredModel> got = answer->Wait();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->handle->version(), 1);
  EXPECT_DOUBLE_EQ(got->cold_start_ms, 1500.0);
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kReady);
  EXPECT_EQ(factory_.loads, 2);
}

TEST_F(ModelManagerSleepTest, GetWakesItButAnswersUnavailableUntilReady) {
  LoadAsleep("m");
  Result<ModelHandle> h = manager_.Get("m", std::nullopt);
  EXPECT_EQ(h.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(h.status().message().find("unloaded while idle"), std::string::npos) << h.status().message();
  Settle();
  EXPECT_TRUE(manager_.Get("m", std::nullopt).ok());
}

TEST_F(ModelManagerSleepTest, ManyWaitersShareOneLoad) {
  LoadAsleep("m");
  factory_.Hold();
  std::vector<std::shared_ptr<Answer>> answers;
  for (int i = 0; i < 50; ++i) answers.push_back(Acquire("m"));
  factory_.WaitForLoadStarts(2);
  factory_.Release();
  for (auto& a : answers) EXPECT_TRUE(a->Wait().ok());
  Settle();
  EXPECT_EQ(factory_.loads, 2);
}

TEST_F(ModelManagerSleepTest, AHeldHandleKeepsItAwake) {
  manager_.ApplyAll({Want("m")});
  Settle();
  ModelHandle held = manager_.Get("m", std::nullopt).value();
  clock_.Advance(60s);
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kReady);
  held.reset();
  clock_.Advance(1s);  // idle counts from the last Get, 61 s ago
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kAsleep);
}

TEST_F(ModelManagerSleepTest, EachGetRestartsTheIdleTime) {
  manager_.ApplyAll({Want("m")});
  Settle();
  clock_.Advance(8s);
  ASSERT_TRUE(manager_.Get("m", std::nullopt).ok());
  clock_.Advance(8s);
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kReady);
}

TEST_F(ModelManagerSleepTest, TheConfigWinsOverTheDefault) {
  manager_.ApplyAll({Want("never", 0.0), Want("quick", 2.0)});
  Settle();
  clock_.Advance(3s);
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("quick").state, VersionState::kAsleep);
  EXPECT_EQ(StatusOf("never").state, VersionState::kReady);
  clock_.Advance(1h);
  manager_.Tick();
  Settle();
  EXPECT_EQ(StatusOf("never").state, VersionState::kReady);
}

TEST_F(ModelManagerSleepTest, AWaiterGivesUpAfterTheColdStartTimeout) {
  manager_.ApplyAll({Want("m", std::nullopt, 2.0)});
  Settle();
  Sleep("m");
  factory_.Hold();
  std::shared_ptr<Answer> answer = Acquire("m");
  std::shared_ptr<Answer> patient = Acquire("m", clock_.Now() + 1h);  // its deadline is later: 2 s still bounds it
  std::shared_ptr<Answer> hurried = Acquire("m", clock_.Now() + 500ms);
  factory_.WaitForLoadStarts(2);
  clock_.Advance(600ms);
  manager_.Tick();
  Result<AcquiredModel> h = hurried->Wait();
  EXPECT_EQ(h.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(answer->Answered());
  clock_.Advance(1500ms);
  manager_.Tick();
  Result<AcquiredModel> a = answer->Wait();
  EXPECT_EQ(a.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(a.status().message().find("still loading"), std::string::npos) << a.status().message();
  EXPECT_EQ(patient->Wait().status().code(), StatusCode::kUnavailable);
  factory_.Release();
  Settle();
  EXPECT_EQ(StatusOf("m").state, VersionState::kReady);  // the load itself goes on
}

TEST_F(ModelManagerSleepTest, AFailedWakeAnswersItsWaitersAndTheNextRequestTriesAgain) {
  LoadAsleep("m");
  factory_.broken_versions.insert(1);
  Result<AcquiredModel> got = Acquire("m")->Wait();
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find("failed to load after sleeping: corrupt model file"), std::string::npos)
      << got.status().message();
  Settle();
  VersionStatus s = StatusOf("m");
  EXPECT_EQ(s.state, VersionState::kAsleep);  // it served before: not broken for good
  EXPECT_NE(s.reason.find("its last wake failed: corrupt model file"), std::string::npos) << s.reason;
  factory_.broken_versions.clear();  // whatever failed has passed
  EXPECT_TRUE(Acquire("m")->Wait().ok());
}

TEST_F(ModelManagerSleepTest, ASleepingVersionServesUntilItsReplacementIsReady) {
  LoadAsleep("m");
  factory_.broken_versions.insert(2);
  WantedModel v2 = Want("m");
  v2.versions = {{2, "a"}};
  manager_.ApplyAll({v2});  // a new version that fails to load
  Settle();
  Result<AcquiredModel> got = Acquire("m")->Wait();  // version 1 wakes and answers
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->handle->version(), 1);
  factory_.broken_versions.clear();
  got->handle.reset();
  v2.versions = {{2, "b"}};  // fixed
  manager_.ApplyAll({v2});
  Settle();
  EXPECT_EQ(manager_.Get("m", std::nullopt).value()->version(), 2);
  EXPECT_EQ(manager_.Get("m", 1).status().code(), StatusCode::kNotFound);  // replaced, so gone
}

TEST_F(ModelManagerSleepTest, ASleepingModelRemovedLeavesTheIndex) {
  manager_.ApplyAll({Want("m"), Want("keep", 0.0)});
  Settle();
  Sleep("m");
  manager_.ApplyAll({Want("keep", 0.0)});
  Settle();
  EXPECT_EQ(manager_.Get("m", std::nullopt).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_.Servable("m", std::nullopt).code(), StatusCode::kNotFound);
}

TEST_F(ModelManagerSleepTest, ShutdownAnswersWaiters) {
  LoadAsleep("m");
  factory_.Hold();
  std::shared_ptr<Answer> answer = Acquire("m");
  factory_.WaitForLoadStarts(2);
  std::thread stopper([&] { manager_.Shutdown(); });
  EXPECT_EQ(answer->Wait().status().code(), StatusCode::kUnavailable);
  factory_.Release();
  stopper.join();
}

TEST_F(ModelManagerSleepTest, AcquireOfAReadyVersionAnswersAtOnce) {
  manager_.ApplyAll({Want("m")});
  Settle();
  std::shared_ptr<Answer> answer = Acquire("m");
  ASSERT_TRUE(answer->Answered());
  Result<AcquiredModel> got = answer->Wait();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->cold_start_ms, 0);
  EXPECT_EQ(Acquire("nope")->Wait().status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ferry
