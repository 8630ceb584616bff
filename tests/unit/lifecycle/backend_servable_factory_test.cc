#include "lifecycle/backend_servable_factory.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "backend/identity_backend.h"
#include "testing/temp_repository.h"

namespace ferry {
namespace {

using ferry::testing::TempRepository;

// The identity backend returns its input renamed, so a reference sample expecting anything else fails.
class BackendServableFactoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.Register(MakeIdentityBackend());
    config_.name = "echo";
    config_.backend = "identity";
    config_.inputs = {{"x", DataType::kFp32, {2}}};
    config_.outputs = {{"y", DataType::kFp32, {2}}};
    repo_.AddVersion("echo", 1);
  }

  void WriteReference(const std::vector<float>& in, const std::vector<float>& out) {
    const auto dir = repo_.root() / "echo" / "1" / "reference";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "x.bin", std::ios::binary).write(reinterpret_cast<const char*>(in.data()), 8);
    std::ofstream(dir / "y.bin", std::ios::binary).write(reinterpret_cast<const char*>(out.data()), 8);
    std::ofstream(dir / "reference.yaml") << "samples:\n"
                                             "  - name: pair\n"
                                             "    inputs: [{name: x, datatype: FP32, shape: [2], file: x.bin}]\n"
                                             "    outputs: [{name: y, datatype: FP32, shape: [2], file: y.bin}]\n";
  }

  BackendRegistry registry_;
  ModelConfig config_;
  TempRepository repo_;
};

TEST_F(BackendServableFactoryTest, ServesAVersionWhoseReferencesPass) {
  WriteReference({1, 2}, {1, 2});
  BackendServableFactory factory(&registry_);
  auto handle = factory.Load(config_, 1, repo_.root() / "echo" / "1");
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
}

TEST_F(BackendServableFactoryTest, RefusesAVersionWhoseReferencesFail) {
  WriteReference({1, 2}, {1, 3});
  BackendServableFactory factory(&registry_);
  auto handle = factory.Load(config_, 1, repo_.root() / "echo" / "1");
  ASSERT_FALSE(handle.ok());
  EXPECT_EQ(handle.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(handle.status().message().find("loading 'echo' version 1 on identity: reference check failed"),
            std::string::npos)
      << handle.status().message();
}

TEST_F(BackendServableFactoryTest, UnreadableReferencesRefuseTheVersion) {
  std::filesystem::create_directories(repo_.root() / "echo" / "1" / "reference");  // no reference.yaml
  BackendServableFactory factory(&registry_);
  auto handle = factory.Load(config_, 1, repo_.root() / "echo" / "1");
  ASSERT_FALSE(handle.ok());
  EXPECT_EQ(handle.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(BackendServableFactoryTest, AConfigWithoutABackendGetsTheDefault) {
  config_.backend.clear();
  BackendServableFactory factory(&registry_, "identity");
  auto handle = factory.Load(config_, 1, repo_.root() / "echo" / "1");
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
  EXPECT_EQ((*handle)->config().backend, "identity");

  BackendServableFactory other(&registry_, "openvino_missing");
  EXPECT_FALSE(other.Load(config_, 1, repo_.root() / "echo" / "1").ok());
}

}  // namespace
}  // namespace ferry
