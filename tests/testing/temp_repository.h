#pragma once
// A model repository in a fresh temporary folder, removed on destruction.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace ferry::testing {

class TempRepository {
 public:
  TempRepository() {
    std::random_device rd;
    root_ = std::filesystem::temp_directory_path() / ("ferry-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(root_);
  }
  ~TempRepository() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  const std::filesystem::path& root() const { return root_; }

  void WriteConfig(const std::string& model, const std::string& yaml) {
    std::filesystem::create_directories(root_ / model);
    std::ofstream(root_ / model / "config.yaml") << yaml;
  }
  void AddVersion(const std::string& model, int version, const std::string& file = "model.onnx",
                  const std::string& contents = "") {
    std::filesystem::create_directories(root_ / model / std::to_string(version));
    std::ofstream(root_ / model / std::to_string(version) / file, std::ios::binary) << contents;
  }

 private:
  std::filesystem::path root_;
};

}  // namespace ferry::testing
