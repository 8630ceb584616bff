#include "api/generation_metrics.h"

namespace ferry {
namespace {

class MetricsObserver final : public GenerationObserver {
 public:
  MetricsObserver(ServingMetrics* metrics, std::string model)
      : metrics_(metrics), model_(std::move(model)), m_(metrics->ForLanguageModel(model_)) {}

  void OnDecodeStep(int32_t sequences, int32_t tokens) override {
    m_.step_sequences->Observe(sequences);
    m_.step_tokens->Observe(tokens);
    m_.decode_steps->Increment();
  }
  void OnFirstToken(double seconds_since_submit) override {
    m_.time_to_first_token->Observe(seconds_since_submit);
    m_.generation_tokens->Increment();
  }
  void OnNextToken(double seconds_since_previous) override {
    m_.inter_token_latency->Observe(seconds_since_previous);
    m_.generation_tokens->Increment();
  }
  void OnFinished(const GenerationStats& stats, double seconds_since_submit) override {
    m_.e2e_latency->Observe(seconds_since_submit);
    m_.queue_time->Observe(stats.queue_ms / 1000.0);
    m_.prompt_tokens->Increment(stats.prompt_tokens);
    metrics_->CountFinishedGeneration(model_, stats.finish_reason);
  }
  void OnOccupancy(int32_t running, int32_t waiting) override {
    m_.running->Set(running);
    m_.waiting->Set(waiting);
  }

 private:
  ServingMetrics* metrics_;
  const std::string model_;
  LanguageModelMetrics& m_;
};

}  // namespace

std::shared_ptr<GenerationObserver> MakeGenerationMetricsObserver(ServingMetrics* metrics, const std::string& model) {
  return std::make_shared<MetricsObserver>(metrics, model);
}

}  // namespace ferry
