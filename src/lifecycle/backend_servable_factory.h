#pragma once
// The production ServableFactory: creates config.instance_count instances with the backend the config
// names (or the default ONNX backend when it names none), runs the version's reference samples through
// each (a version that fails them is not served), and puts a DynamicBatcher in front. A backend that
// generates text (llama_cpp) gets its language model loaded behind a GenerationScheduler instead.
// Thread-safe.
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "backend/backend.h"
#include "backend/input_transform.h"
#include "lifecycle/servable_model.h"
#include "scheduling/generation_scheduler.h"

namespace ferry {

class BackendServableFactory final : public ServableFactory {
 public:
  // Gives each language model's scheduler somewhere to report its measurements (may return null).
  using ObserverFactory = std::function<std::shared_ptr<GenerationObserver>(const std::string& model)>;

  // `transforms` makes the pre-processing of configs with a `preprocess` block (null: such configs
  // are refused, as in a build without OpenCV).
  BackendServableFactory(const BackendRegistry* backends,
                         std::string default_backend = std::string(kDefaultOnnxBackend),
                         ObserverFactory observers = nullptr, InputTransformFactory transforms = nullptr)
      : backends_(backends),
        default_backend_(std::move(default_backend)),
        observers_(std::move(observers)),
        transforms_(std::move(transforms)) {}
  Result<ModelHandle> Load(const ModelConfig& config, int64_t version,
                           const std::filesystem::path& version_dir) override;

  // Told of every autoscaling change (instance_group min/max): +1 or -1, the count after it, why.
  using ScaleObserver = std::function<void(const std::string& model, int64_t version, int delta, size_t instances,
                                           const std::string& reason)>;
  void set_on_scale(ScaleObserver on_scale) { on_scale_ = std::move(on_scale); }

 private:
  ScaleObserver on_scale_;
  const BackendRegistry* backends_;
  std::string default_backend_;
  ObserverFactory observers_;
  InputTransformFactory transforms_;
};

}  // namespace ferry
