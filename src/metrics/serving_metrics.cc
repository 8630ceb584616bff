#include "metrics/serving_metrics.h"

#include <prometheus/text_serializer.h>

namespace ferry {
namespace {

prometheus::Histogram::BucketBoundaries MicrosecondBuckets() {
  // 50 us .. ~26 s, doubling: fine enough for overhead, wide enough for slow models.
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 50; v < 3e7; v *= 2) b.push_back(v);
  return b;
}

prometheus::Histogram::BucketBoundaries SecondBuckets() {
  // 1 ms .. ~9 h, quadrupling: jobs wait and run from milliseconds to hours.
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 0.001; v < 4e4; v *= 4) b.push_back(v);
  return b;
}

prometheus::Histogram::BucketBoundaries TokenLatencyBuckets() {
  // 100 us .. ~52 s, doubling: a tiny model's tokens take 0.1 ms, a long prompt seconds.
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 1e-4; v < 60; v *= 2) b.push_back(v);
  return b;
}

prometheus::Histogram::BucketBoundaries BatchBuckets() { return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128}; }

}  // namespace

ServingMetrics::ServingMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      success_(prometheus::BuildCounter().Name("ferry_inference_request_success_total")
                   .Help("Inference requests that completed successfully").Register(*registry_)),
      failure_(prometheus::BuildCounter().Name("ferry_inference_request_failure_total")
                   .Help("Inference requests that failed (any reason)").Register(*registry_)),
      inference_count_(prometheus::BuildCounter().Name("ferry_inference_count_total")
                           .Help("Rows (batch elements) inferred").Register(*registry_)),
      execution_count_(prometheus::BuildCounter().Name("ferry_inference_exec_count_total")
                           .Help("Backend executions (batches) run").Register(*registry_)),
      queue_us_(prometheus::BuildHistogram().Name("ferry_inference_queue_duration_us")
                    .Help("Time requests waited in the model queue").Register(*registry_)),
      compute_us_(prometheus::BuildHistogram().Name("ferry_inference_compute_duration_us")
                      .Help("Backend execution time of the batch a request ran in").Register(*registry_)),
      request_us_(prometheus::BuildHistogram().Name("ferry_inference_request_duration_us")
                      .Help("Time from decoded request to response ready, inside the server").Register(*registry_)),
      batch_size_(prometheus::BuildHistogram().Name("ferry_inference_batch_size")
                      .Help("Rows per backend execution, as seen by each request").Register(*registry_)),
      queue_depth_(prometheus::BuildGauge().Name("ferry_inference_queue_depth")
                       .Help("Requests waiting in the model queue").Register(*registry_)),
      load_seconds_(prometheus::BuildHistogram().Name("ferry_model_load_duration_seconds")
                        .Help("Time to load a model version").Register(*registry_)),
      load_failures_(prometheus::BuildCounter().Name("ferry_model_load_failure_total")
                         .Help("Model version loads that failed").Register(*registry_)),
      cold_start_seconds_(prometheus::BuildHistogram().Name("ferry_model_cold_start_duration_seconds")
                              .Help("Time from the request that woke a sleeping model to the model ready")
                              .Register(*registry_)),
      model_memory_(prometheus::BuildGauge().Name("ferry_model_memory_bytes")
                        .Help("Resident memory of a loaded model version, measured at its load; 0 while asleep")
                        .Register(*registry_)),
      scaling_(prometheus::BuildCounter().Name("ferry_instance_scaling_total")
                   .Help("Autoscaling changes of a model's instances, by direction (up, down)")
                   .Register(*registry_)),
      instances_(prometheus::BuildGauge().Name("ferry_model_instances")
                     .Help("Instances of an autoscaled model version after its last change")
                     .Register(*registry_)),
      http_requests_(prometheus::BuildCounter().Name("ferry_http_requests_total")
                         .Help("HTTP requests by route and status code").Register(*registry_)),
      jobs_(prometheus::BuildGauge().Name("ferry_jobs").Help("Jobs in the store by state").Register(*registry_)),
      job_start_delay_(prometheus::BuildHistogram().Name("ferry_job_start_delay_seconds")
                           .Help("Time from a job's submit to the start of each attempt").Register(*registry_)),
      job_run_(prometheus::BuildHistogram().Name("ferry_job_run_duration_seconds")
                   .Help("Run time of each job attempt").Register(*registry_)),
      job_attempts_(prometheus::BuildCounter().Name("ferry_job_attempts_total")
                        .Help("Job attempts by how they ended").Register(*registry_)),
      batch_records_(prometheus::BuildCounter().Name("ferry_batch_records_total")
                         .Help("Batch records written, by outcome (completed, failed)").Register(*registry_)),
      batch_runs_(prometheus::BuildCounter().Name("ferry_batch_runs_total")
                      .Help("Batch runs that ended, by the state they left the batch in").Register(*registry_)),
      batch_run_seconds_(prometheus::BuildHistogram().Name("ferry_batch_run_duration_seconds")
                             .Help("Duration of each batch run").Register(*registry_)),
      batches_running_(prometheus::BuildGauge().Name("ferry_batches_running")
                           .Help("Batches running now").Register(*registry_)),
      schedule_slots_(prometheus::BuildCounter().Name("ferry_schedule_slots_total")
                          .Help("Schedule slots by outcome (fired, missed, skipped, failed)").Register(*registry_)),
      schedule_next_run_(prometheus::BuildGauge().Name("ferry_schedule_next_run_timestamp_seconds")
                             .Help("Each schedule's next slot, Unix seconds").Register(*registry_)),
      trigger_files_(prometheus::BuildCounter().Name("ferry_trigger_files_total")
                         .Help("Trigger entries by outcome (seen, started, refused, completed, failed)")
                         .Register(*registry_)),
      precomputed_lookups_(prometheus::BuildCounter().Name("ferry_precomputed_lookups_total")
                               .Help("Precomputed-table lookups by model, table and outcome (hit, miss, stale_age, "
                                     "stale_version, other_model, error)")
                               .Register(*registry_)),
      cache_lookups_(prometheus::BuildCounter().Name("ferry_response_cache_lookups_total")
                         .Help("Response-cache lookups by model and outcome (hit, miss, joined, bypass)")
                         .Register(*registry_)),
      table_entries_(prometheus::BuildGauge().Name("ferry_precomputed_table_entries")
                         .Help("Entries in each precomputed table's current generation")
                         .Register(*registry_)),
      table_age_(prometheus::BuildGauge().Name("ferry_precomputed_table_age_seconds")
                     .Help("Seconds since each precomputed table was published")
                     .Register(*registry_)),
      hybrid_memory_(prometheus::BuildGauge().Name("ferry_hybrid_memory")
                         .Help("What the precomputed tables' and the response cache's memory holds (what: bytes, "
                               "entries)")
                         .Register(*registry_)),
      hybrid_events_(prometheus::BuildGauge().Name("ferry_hybrid_events")
                         .Help("Counts since start: evictions from the table memory and the response cache, "
                               "write-backs written and dropped")
                         .Register(*registry_)),
      webhook_deliveries_(prometheus::BuildCounter().Name("ferry_webhook_deliveries_total")
                              .Help("Webhook delivery attempts by outcome (delivered, retry, failed, disabled)")
                              .Register(*registry_)),
      webhook_attempt_(prometheus::BuildHistogram().Name("ferry_webhook_attempt_duration_seconds")
                           .Help("Time from a webhook attempt's start to its answer").Register(*registry_)),
      llm_ttft_(prometheus::BuildHistogram().Name("ferry_llm_time_to_first_token_seconds")
                    .Help("Time from a generation's submit to its first token").Register(*registry_)),
      llm_itl_(prometheus::BuildHistogram().Name("ferry_llm_inter_token_latency_seconds")
                   .Help("Time between consecutive tokens of one generation").Register(*registry_)),
      llm_e2e_(prometheus::BuildHistogram().Name("ferry_llm_e2e_request_latency_seconds")
                   .Help("Time from a generation's submit to its end").Register(*registry_)),
      llm_queue_(prometheus::BuildHistogram().Name("ferry_llm_queue_time_seconds")
                     .Help("Time a generation waited for a slot").Register(*registry_)),
      llm_step_sequences_(prometheus::BuildHistogram().Name("ferry_llm_decode_step_sequences")
                              .Help("Sequences in each decode step (continuous batching width)").Register(*registry_)),
      llm_step_tokens_(prometheus::BuildHistogram().Name("ferry_llm_decode_step_tokens")
                           .Help("Tokens in each decode step (prompt chunks plus one per generating sequence)")
                           .Register(*registry_)),
      llm_prompt_tokens_(prometheus::BuildCounter().Name("ferry_llm_prompt_tokens_total")
                             .Help("Prompt tokens of finished generations").Register(*registry_)),
      llm_generation_tokens_(prometheus::BuildCounter().Name("ferry_llm_generation_tokens_total")
                                 .Help("Tokens generated").Register(*registry_)),
      llm_decode_steps_(prometheus::BuildCounter().Name("ferry_llm_decode_steps_total")
                            .Help("Decode steps run").Register(*registry_)),
      llm_running_(prometheus::BuildGauge().Name("ferry_llm_num_requests_running")
                       .Help("Generations holding a slot").Register(*registry_)),
      llm_waiting_(prometheus::BuildGauge().Name("ferry_llm_num_requests_waiting")
                       .Help("Generations waiting for a slot").Register(*registry_)),
      llm_finished_(prometheus::BuildCounter().Name("ferry_llm_request_finished_total")
                        .Help("Generations that finished, by finish reason").Register(*registry_)) {}

ModelMetrics& ServingMetrics::For(const std::string& model, const std::string& version) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = models_.try_emplace({model, version});
  if (inserted) {
    const prometheus::Labels labels{{"model", model}, {"version", version}};
    ModelMetrics& m = it->second;
    m.success = &success_.Add(labels);
    m.failure = &failure_.Add(labels);
    m.inference_count = &inference_count_.Add(labels);
    m.execution_count = &execution_count_.Add(labels);
    m.queue_us = &queue_us_.Add(labels, MicrosecondBuckets());
    m.compute_us = &compute_us_.Add(labels, MicrosecondBuckets());
    m.request_us = &request_us_.Add(labels, MicrosecondBuckets());
    m.batch_size = &batch_size_.Add(labels, BatchBuckets());
    m.queue_depth = &queue_depth_.Add(labels);
  }
  return it->second;
}

void ServingMetrics::ObserveLoad(const std::string& model, const std::string& version, double seconds, bool ok) {
  const prometheus::Labels labels{{"model", model}, {"version", version}};
  std::lock_guard lock(mu_);
  if (ok) {
    load_seconds_.Add(labels, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300})
        .Observe(seconds);
  } else {
    load_failures_.Add(labels).Increment();
  }
}

void ServingMetrics::ObserveColdStart(const std::string& model, double seconds) {
  std::lock_guard lock(mu_);
  cold_start_seconds_
      .Add({{"model", model}}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})
      .Observe(seconds);
}

void ServingMetrics::SetModelMemory(const std::string& model, const std::string& version, double bytes) {
  std::lock_guard lock(mu_);
  model_memory_.Add({{"model", model}, {"version", version}}).Set(bytes);
}

void ServingMetrics::ObserveScale(const std::string& model, const std::string& version, int delta,
                                  double instances) {
  scaling_.Add({{"model", model}, {"direction", delta > 0 ? "up" : "down"}}).Increment();
  instances_.Add({{"model", model}, {"version", version}}).Set(instances);
}

void ServingMetrics::CountHttpRequest(const std::string& route, int status) {
  http_requests_.Add({{"route", route}, {"code", std::to_string(status)}}).Increment();
}

void ServingMetrics::SetJobCount(const std::string& state, double count) {
  std::lock_guard lock(mu_);
  jobs_.Add({{"state", state}}).Set(count);
}

void ServingMetrics::ObserveJobStart(const std::string& model, double submit_to_start_seconds) {
  std::lock_guard lock(mu_);
  job_start_delay_.Add({{"model", model}}, SecondBuckets()).Observe(submit_to_start_seconds);
}

void ServingMetrics::CountBatchRecords(int64_t completed, int64_t failed) {
  std::lock_guard lock(mu_);
  if (completed > 0) batch_records_.Add({{"outcome", "completed"}}).Increment(static_cast<double>(completed));
  if (failed > 0) batch_records_.Add({{"outcome", "failed"}}).Increment(static_cast<double>(failed));
}

void ServingMetrics::ObserveBatchRun(const std::string& state, double seconds) {
  std::lock_guard lock(mu_);
  batch_runs_.Add({{"state", state}}).Increment();
  batch_run_seconds_.Add({}, prometheus::Histogram::BucketBoundaries{1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600})
      .Observe(seconds);
}

void ServingMetrics::SetBatchesRunning(double count) {
  std::lock_guard lock(mu_);
  batches_running_.Add({}).Set(count);
}

void ServingMetrics::CountScheduleSlots(const std::string& schedule, const std::string& outcome, int64_t count) {
  std::lock_guard lock(mu_);
  schedule_slots_.Add({{"schedule", schedule}, {"outcome", outcome}}).Increment(static_cast<double>(count));
}

void ServingMetrics::SetScheduleNextRun(const std::string& schedule, double unix_seconds) {
  std::lock_guard lock(mu_);
  schedule_next_run_.Add({{"schedule", schedule}}).Set(unix_seconds);
}

void ServingMetrics::CountTriggerFile(const std::string& trigger, const std::string& outcome) {
  std::lock_guard lock(mu_);
  trigger_files_.Add({{"trigger", trigger}, {"outcome", outcome}}).Increment();
}

void ServingMetrics::CountPrecomputedLookup(const std::string& model, const std::string& table,
                                            const std::string& outcome) {
  std::lock_guard lock(mu_);
  precomputed_lookups_.Add({{"model", model}, {"table", table}, {"outcome", outcome}}).Increment();
}

void ServingMetrics::CountCacheLookup(const std::string& model, const std::string& outcome) {
  std::lock_guard lock(mu_);
  cache_lookups_.Add({{"model", model}, {"outcome", outcome}}).Increment();
}

void ServingMetrics::SetTable(const std::string& table, double entries, double age_seconds) {
  std::lock_guard lock(mu_);
  table_entries_.Add({{"table", table}}).Set(entries);
  table_age_.Add({{"table", table}}).Set(age_seconds);
}

void ServingMetrics::SetHybridMemory(const HybridMemory& m) {
  std::lock_guard lock(mu_);
  hybrid_memory_.Add({{"store", "tables"}, {"what", "bytes"}}).Set(m.table_bytes);
  hybrid_memory_.Add({{"store", "tables"}, {"what", "entries"}}).Set(m.table_entries);
  hybrid_memory_.Add({{"store", "response_cache"}, {"what", "bytes"}}).Set(m.cache_bytes);
  hybrid_memory_.Add({{"store", "response_cache"}, {"what", "entries"}}).Set(m.cache_entries);
  hybrid_events_.Add({{"event", "table_evictions"}}).Set(m.table_evictions);
  hybrid_events_.Add({{"event", "cache_evictions"}}).Set(m.cache_evictions);
  hybrid_events_.Add({{"event", "write_backs"}}).Set(m.write_backs);
  hybrid_events_.Add({{"event", "write_backs_dropped"}}).Set(m.write_backs_dropped);
}

void ServingMetrics::ObserveWebhookAttempt(const std::string& outcome, double seconds) {
  std::lock_guard lock(mu_);
  webhook_deliveries_.Add({{"outcome", outcome}}).Increment();
  webhook_attempt_.Add({}, SecondBuckets()).Observe(seconds);
}

void ServingMetrics::ObserveJobEnd(const std::string& model, double run_seconds, const std::string& outcome) {
  std::lock_guard lock(mu_);
  job_run_.Add({{"model", model}}, SecondBuckets()).Observe(run_seconds);
  job_attempts_.Add({{"model", model}, {"outcome", outcome}}).Increment();
}

LanguageModelMetrics& ServingMetrics::ForLanguageModel(const std::string& model) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = language_models_.try_emplace(model);
  if (inserted) {
    const prometheus::Labels labels{{"model", model}};
    LanguageModelMetrics& m = it->second;
    m.time_to_first_token = &llm_ttft_.Add(labels, TokenLatencyBuckets());
    m.inter_token_latency = &llm_itl_.Add(labels, TokenLatencyBuckets());
    m.e2e_latency = &llm_e2e_.Add(labels, TokenLatencyBuckets());
    m.queue_time = &llm_queue_.Add(labels, TokenLatencyBuckets());
    m.step_sequences = &llm_step_sequences_.Add(labels, BatchBuckets());
    m.step_tokens = &llm_step_tokens_.Add(labels, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048});
    m.prompt_tokens = &llm_prompt_tokens_.Add(labels);
    m.generation_tokens = &llm_generation_tokens_.Add(labels);
    m.decode_steps = &llm_decode_steps_.Add(labels);
    m.running = &llm_running_.Add(labels);
    m.waiting = &llm_waiting_.Add(labels);
  }
  return it->second;
}

void ServingMetrics::CountFinishedGeneration(const std::string& model, const std::string& finish_reason) {
  std::lock_guard lock(mu_);
  llm_finished_.Add({{"model", model}, {"finish_reason", finish_reason}}).Increment();
}

std::string ServingMetrics::Render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace ferry
