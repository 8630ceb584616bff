#pragma once
// The production ServableFactory: creates config.instance_count instances with the backend the config
// names (or the default ONNX backend when it names none), runs the version's reference samples through
// each (a version that fails them is not served), and puts a DynamicBatcher in front. Thread-safe.
#include <string>
#include <utility>

#include "backend/backend.h"
#include "lifecycle/servable_model.h"

namespace ferry {

class BackendServableFactory final : public ServableFactory {
 public:
  BackendServableFactory(const BackendRegistry* backends,
                         std::string default_backend = std::string(kDefaultOnnxBackend))
      : backends_(backends), default_backend_(std::move(default_backend)) {}
  Result<ModelHandle> Load(const ModelConfig& config, int64_t version,
                           const std::filesystem::path& version_dir) override;

 private:
  const BackendRegistry* backends_;
  std::string default_backend_;
};

}  // namespace ferry
