#pragma once
// Ferry's Prometheus metrics: a prometheus-cpp registry rendered as text by our own HTTP server.
// Names follow Triton's where they mean the same thing (success/failure counts, queue and compute
// durations). Thread-safe: prometheus-cpp metrics are atomic, and the per-model cache is locked.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ferry {

// The metric series of one model version.
struct ModelMetrics {
  prometheus::Counter* success = nullptr;
  prometheus::Counter* failure = nullptr;
  prometheus::Counter* inference_count = nullptr;   // rows inferred
  prometheus::Counter* execution_count = nullptr;   // backend runs (batches)
  prometheus::Histogram* queue_us = nullptr;
  prometheus::Histogram* compute_us = nullptr;
  prometheus::Histogram* request_us = nullptr;      // end to end inside the server
  prometheus::Histogram* batch_size = nullptr;
  prometheus::Gauge* queue_depth = nullptr;
};

// The metric series of one language model (vLLM's names where they mean the same).
struct LanguageModelMetrics {
  prometheus::Histogram* time_to_first_token = nullptr;  // seconds, submit -> first token
  prometheus::Histogram* inter_token_latency = nullptr;  // seconds between tokens of one request
  prometheus::Histogram* e2e_latency = nullptr;          // seconds, submit -> finish
  prometheus::Histogram* queue_time = nullptr;           // seconds waiting for a slot
  prometheus::Histogram* step_sequences = nullptr;       // sequences in each decode step
  prometheus::Histogram* step_tokens = nullptr;          // tokens in each decode step
  prometheus::Counter* prompt_tokens = nullptr;
  prometheus::Counter* generation_tokens = nullptr;
  prometheus::Counter* decode_steps = nullptr;
  prometheus::Gauge* running = nullptr;
  prometheus::Gauge* waiting = nullptr;
};

class ServingMetrics {
 public:
  ServingMetrics();
  ModelMetrics& For(const std::string& model, const std::string& version);
  void ObserveLoad(const std::string& model, const std::string& version, double seconds, bool ok);
  // A model woken from sleep (scale to zero): from the request that woke it to Ready.
  void ObserveColdStart(const std::string& model, double seconds);
  // A version's resident memory as measured at its load (0 while asleep or unloaded).
  void SetModelMemory(const std::string& model, const std::string& version, double bytes);
  // An autoscaling change: ferry_instance_scaling_total{model,direction} and ferry_model_instances.
  void ObserveScale(const std::string& model, const std::string& version, int delta, double instances);
  // HTTP requests by route class and status code (e.g. "infer", 200).
  void CountHttpRequest(const std::string& route, int status);
  // Asynchronous jobs: how many are in each state ("queued", ...), each attempt's wait from submit to
  // start, each attempt's run time and how it ended ("succeeded", "error", "dropped": lease lost,
  // "deferred": the model had no room, tried again later).
  void SetJobCount(const std::string& state, double count);
  void ObserveJobStart(const std::string& model, double submit_to_start_seconds);
  void ObserveJobEnd(const std::string& model, double run_seconds, const std::string& outcome);
  // Batches: records written by outcome ("completed", "failed"), runs that ended by the state they left
  // their batch in ("completed", "failed", "cancelled", or "in_progress" for a run stopped by a drain)
  // with their duration, and the batches running now.
  void CountBatchRecords(int64_t completed, int64_t failed);
  void ObserveBatchRun(const std::string& state, double seconds);
  void SetBatchesRunning(double count);
  // Schedules: slots by outcome ("fired", "missed", "skipped", "failed"), and each one's next slot
  // (Unix seconds; 0 when it has none). Triggers: entries by outcome ("seen", "started", "refused",
  // "completed", "failed").
  void CountScheduleSlots(const std::string& schedule, const std::string& outcome, int64_t count);
  void SetScheduleNextRun(const std::string& schedule, double unix_seconds);
  void CountTriggerFile(const std::string& trigger, const std::string& outcome);
  // One webhook delivery attempt: "delivered", "retry", "failed" or "disabled".
  void ObserveWebhookAttempt(const std::string& outcome, double seconds);
  // Hybrid serving: precomputed-table lookups by outcome ("hit", "miss", "stale_age", "stale_version",
  // "other_model", "error"), response-cache lookups by outcome ("hit", "miss", "joined", "bypass"), each table's
  // entries and age, and the memory both hold in front of their stores.
  void CountPrecomputedLookup(const std::string& model, const std::string& table, const std::string& outcome);
  void CountCacheLookup(const std::string& model, const std::string& outcome);
  void SetTable(const std::string& table, double entries, double age_seconds);
  struct HybridMemory {
    double table_bytes = 0, table_entries = 0, table_evictions = 0, write_backs = 0, write_backs_dropped = 0;
    double cache_bytes = 0, cache_entries = 0, cache_evictions = 0;
  };
  void SetHybridMemory(const HybridMemory& m);
  LanguageModelMetrics& ForLanguageModel(const std::string& model);
  void CountFinishedGeneration(const std::string& model, const std::string& finish_reason);
  // The Prometheus text exposition format.
  std::string Render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& success_;
  prometheus::Family<prometheus::Counter>& failure_;
  prometheus::Family<prometheus::Counter>& inference_count_;
  prometheus::Family<prometheus::Counter>& execution_count_;
  prometheus::Family<prometheus::Histogram>& queue_us_;
  prometheus::Family<prometheus::Histogram>& compute_us_;
  prometheus::Family<prometheus::Histogram>& request_us_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Histogram>& load_seconds_;
  prometheus::Family<prometheus::Counter>& load_failures_;
  prometheus::Family<prometheus::Histogram>& cold_start_seconds_;
  prometheus::Family<prometheus::Gauge>& model_memory_;
  prometheus::Family<prometheus::Counter>& scaling_;
  prometheus::Family<prometheus::Gauge>& instances_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Gauge>& jobs_;
  prometheus::Family<prometheus::Histogram>& job_start_delay_;
  prometheus::Family<prometheus::Histogram>& job_run_;
  prometheus::Family<prometheus::Counter>& job_attempts_;
  prometheus::Family<prometheus::Counter>& batch_records_;
  prometheus::Family<prometheus::Counter>& batch_runs_;
  prometheus::Family<prometheus::Histogram>& batch_run_seconds_;
  prometheus::Family<prometheus::Gauge>& batches_running_;
  prometheus::Family<prometheus::Counter>& schedule_slots_;
  prometheus::Family<prometheus::Gauge>& schedule_next_run_;
  prometheus::Family<prometheus::Counter>& trigger_files_;
  prometheus::Family<prometheus::Counter>& precomputed_lookups_;
  prometheus::Family<prometheus::Counter>& cache_lookups_;
  prometheus::Family<prometheus::Gauge>& table_entries_;
  prometheus::Family<prometheus::Gauge>& table_age_;
  prometheus::Family<prometheus::Gauge>& hybrid_memory_;
  prometheus::Family<prometheus::Gauge>& hybrid_events_;
  prometheus::Family<prometheus::Counter>& webhook_deliveries_;
  prometheus::Family<prometheus::Histogram>& webhook_attempt_;
  prometheus::Family<prometheus::Histogram>& llm_ttft_;
  prometheus::Family<prometheus::Histogram>& llm_itl_;
  prometheus::Family<prometheus::Histogram>& llm_e2e_;
  prometheus::Family<prometheus::Histogram>& llm_queue_;
  prometheus::Family<prometheus::Histogram>& llm_step_sequences_;
  prometheus::Family<prometheus::Histogram>& llm_step_tokens_;
  prometheus::Family<prometheus::Counter>& llm_prompt_tokens_;
  prometheus::Family<prometheus::Counter>& llm_generation_tokens_;
  prometheus::Family<prometheus::Counter>& llm_decode_steps_;
  prometheus::Family<prometheus::Gauge>& llm_running_;
  prometheus::Family<prometheus::Gauge>& llm_waiting_;
  prometheus::Family<prometheus::Counter>& llm_finished_;

  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, ModelMetrics> models_;
  std::map<std::string, LanguageModelMetrics> language_models_;
};

}  // namespace ferry
