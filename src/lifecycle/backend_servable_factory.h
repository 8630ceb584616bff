#pragma once
// The production ServableFactory: creates config.instance_count instances with the backend the config
// names, and puts a DynamicBatcher in front of them. Thread-safe.
#include "backend/backend.h"
#include "lifecycle/servable_model.h"

namespace ferry {

class BackendServableFactory final : public ServableFactory {
 public:
  explicit BackendServableFactory(const BackendRegistry* backends) : backends_(backends) {}
  Result<ModelHandle> Load(const ModelConfig& config, int64_t version,
                           const std::filesystem::path& version_dir) override;

 private:
  const BackendRegistry* backends_;
};

}  // namespace ferry
