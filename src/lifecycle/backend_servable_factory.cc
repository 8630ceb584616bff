#include "lifecycle/backend_servable_factory.h"

#include <fmt/format.h>

#include "backend/reference_check.h"
#include "repository/reference_set.h"
#include "scheduling/dynamic_batcher.h"

namespace ferry {

Result<ModelHandle> BackendServableFactory::Load(const ModelConfig& declared, int64_t version,
                                                 const std::filesystem::path& version_dir) {
  ModelConfig config = declared;
  if (config.backend.empty()) config.backend = default_backend_;
  Backend* backend = backends_->Find(config.backend);
  if (backend == nullptr) {
    return InvalidArgument(fmt::format("model '{}' names backend '{}', which this build does not have", config.name,
                                       config.backend));
  }
  const std::string context = fmt::format("loading '{}' version {}", config.name, version);
  if (LanguageModelLoader* loader = backend->language_models()) {
    Result<std::unique_ptr<LanguageModel>> model = loader->Load(config, version_dir);
    if (!model.ok()) return model.status().WithContext(context);
    GenerationSchedulerOptions options;
    options.model_name = config.name;
    options.max_waiting = static_cast<size_t>(config.max_queue_size);
    if (observers_) options.observer = observers_(config.name);
    Result<std::unique_ptr<GenerationScheduler>> scheduler =
        GenerationScheduler::Create(std::move(options), std::move(model).value());
    if (!scheduler.ok()) return scheduler.status().WithContext(context);
    return std::make_shared<ServableModel>(config, version, std::move(scheduler).value());
  }
  std::shared_ptr<const InputTransform> transform;
  if (config.preprocess) {
    if (!transforms_) {
      return InvalidArgument(fmt::format("{}: this build has no image pre-processing (it needs OpenCV)", context));
    }
    Result<std::shared_ptr<const InputTransform>> made = transforms_(config);
    if (!made.ok()) return made.status().WithContext(context);
    transform = std::move(made).value();
  }
  // The backend and the reference samples see the model's side: pre-processing happens before them.
  const ModelConfig model_side = ModelSideConfig(config);
  Result<std::optional<ReferenceSet>> references = ReadReferenceSet(version_dir);
  if (!references.ok()) return references.status().WithContext(context);
  // Every instance, not just the first, passes the reference samples: instances may differ (device,
  // threads) in what they compute. The same for those autoscaling adds later.
  auto make_instance = [backend, model_side, version_dir, references = *references,
                        context = fmt::format("{} on {}", context, config.backend)]()
      -> Result<std::unique_ptr<ModelInstance>> {
    Result<std::unique_ptr<ModelInstance>> instance = backend->CreateInstance(model_side, version_dir);
    if (!instance.ok()) return instance.status().WithContext(context);
    if (references) FERRY_RETURN_IF_ERROR(RunReferenceCheck(**instance, model_side, *references).WithContext(context));
    return instance;
  };
  std::vector<std::unique_ptr<ModelInstance>> instances;
  for (int64_t i = 0; i < config.instance_count; ++i) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<ModelInstance> instance, make_instance());
    instances.push_back(std::move(instance));
  }
  DynamicBatcherOptions options;
  options.model_has_batch_dim = config.max_batch_size > 0;
  options.planner.max_batch_size = std::max<int64_t>(1, config.max_batch_size);
  options.planner.batching_enabled = config.dynamic_batching.enabled && config.max_batch_size > 1;
  options.planner.max_queue_delay = Micros(config.dynamic_batching.max_queue_delay_us);
  options.planner.preferred_batch_sizes = config.dynamic_batching.preferred_batch_sizes;
  options.max_queue_size = static_cast<size_t>(config.max_queue_size);
  options.max_queue_wait = Micros(config.max_queue_wait_us);
  if (config.instance_max > config.instance_min) {
    auto seconds = [](double s) { return Micros(static_cast<int64_t>(s * 1e6)); };
    options.scale = {static_cast<size_t>(config.instance_min), static_cast<size_t>(config.instance_max),
                     seconds(config.scale_up_after_s), seconds(config.scale_down_idle_s),
                     seconds(config.scale_cooldown_s)};
    options.make_instance = make_instance;
    if (on_scale_) {
      options.on_scale = [on_scale = on_scale_, name = config.name, version](int delta, size_t n, const std::string& why) {
        on_scale(name, version, delta, n, why);
      };
    }
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<DynamicBatcher> batcher,
                         DynamicBatcher::Create(std::move(options), std::move(instances)));
  return std::make_shared<ServableModel>(config, version, std::move(batcher), std::move(transform));
}

}  // namespace ferry
