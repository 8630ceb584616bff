#include "metrics/serving_metrics.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(ServingMetricsTest, RendersPerModelSeriesInTextFormat) {
  ServingMetrics metrics;
  ModelMetrics& m = metrics.For("cnn", "1");
  m.success->Increment();
  m.success->Increment();
  m.failure->Increment();
  m.queue_us->Observe(120);
  m.batch_size->Observe(4);
  m.queue_depth->Set(3);
  metrics.ObserveLoad("cnn", "1", 0.25, true);
  metrics.ObserveLoad("cnn", "2", 0.01, false);
  metrics.CountHttpRequest("infer", 200);
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("ferry_inference_request_success_total{model=\"cnn\",version=\"1\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_inference_request_failure_total{model=\"cnn\",version=\"1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ferry_inference_queue_depth{model=\"cnn\",version=\"1\"} 3"), std::string::npos);
  EXPECT_NE(text.find("ferry_inference_batch_size_bucket{model=\"cnn\",version=\"1\",le=\"4\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ferry_model_load_duration_seconds_count{model=\"cnn\",version=\"1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ferry_model_load_failure_total{model=\"cnn\",version=\"2\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ferry_http_requests_total{code=\"200\",route=\"infer\"} 1"), std::string::npos);
}

TEST(ServingMetricsTest, SameModelVersionSharesItsSeries) {
  ServingMetrics metrics;
  EXPECT_EQ(&metrics.For("a", "1"), &metrics.For("a", "1"));
  EXPECT_NE(&metrics.For("a", "1"), &metrics.For("a", "2"));
}

}  // namespace
}  // namespace ferry
