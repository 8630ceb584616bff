#pragma once
// Reports a language model's generation measurements as Prometheus metrics.
#include <memory>
#include <string>

#include "metrics/serving_metrics.h"
#include "scheduling/generation_scheduler.h"

namespace ferry {

std::shared_ptr<GenerationObserver> MakeGenerationMetricsObserver(ServingMetrics* metrics, const std::string& model);

}  // namespace ferry
