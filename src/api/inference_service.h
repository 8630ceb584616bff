#pragma once
// Online inference, transport-neutral: validates a decoded request against the model's config, hands
// it to the model's scheduler and builds the response. Also the per-model metadata views of OIP v2.
// Never calls a backend directly. Thread-safe.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/cancel_token.h"
#include "common/clock.h"
#include "hybrid/response_cache.h"
#include "hybrid/table_store.h"
#include "lifecycle/model_manager.h"
#include "metrics/serving_metrics.h"
#include "scheduling/concurrency_limit.h"
#include "tensor/infer_message.h"
#include "usage/usage_ledger.h"

namespace ferry {

// Parses a version path segment: a positive decimal integer without sign or leading zeros.
Result<int64_t> ParseVersion(std::string_view text);

// The input a model's pre-processing reads images from (for frame streams).
struct ImageInput {
  std::string name;
  bool batched = false;  // the model has a batch dimension: one image is shape [1, 1]
};

class InferenceService {
 public:
  using InferDone = std::function<void(Result<InferResponse>)>;

  InferenceService(ModelManager* manager, ServingMetrics* metrics) : manager_(manager), metrics_(metrics) {}

  // Hybrid serving (api/hybrid_answers.cc): a model whose config names a precomputed table is first
  // looked up there when the request carries parameters.key (a fresh entry answers; a miss or a stale
  // one goes to the model, and is written back when the config asks); a model with response_cache
  // set is answered from `cache` when the same request was answered before, and identical requests in
  // flight share one run. Every answer of such a model says where it came from in its parameters
  // (`ferry_source`: precomputed, cache or live; `ferry_age_s` for a table's). Either may be null.
  struct Hybrid {
    TableStore* tables = nullptr;
    ResponseCache* cache = nullptr;
    const WallClock* wall_clock = &WallClock::Real();
  };
  void SetHybrid(Hybrid hybrid) { hybrid_ = hybrid; }
  // Cost accounting: each request is first admitted by the caller's and the model's budgets
  // (request.caller), and each answer is charged with its compute time. May be null (no accounting).
  void SetUsage(UsageLedger* usage) { usage_ = usage; }
  // The per-model caps on concurrent requests, shared with the completion service; may be null.
  void SetConcurrencyLimits(ConcurrencyLimits* limits) { limits_ = limits; }

  // Calls `done` exactly once: inline for requests refused up front, else on an executor thread.
  // Job work passes Priority::kJob: it runs only while no online request waits for the model.
  // A model asleep (unloaded while idle) is loaded first and the request waits for it, bounded by its
  // timeout and the model's cold-start timeout; the answer then carries `ferry_cold_start_ms` (the
  // time this request waited for the load) in its parameters.
  void Infer(std::string_view model, std::optional<int64_t> version, InferRequest&& request,
             std::shared_ptr<CancelToken> cancel, InferDone done, Priority priority = Priority::kOnline);

  Status ModelReady(std::string_view model, std::optional<int64_t> version) const;
  // The image input of a model with a `preprocess` block; kInvalidArgument for one without.
  Result<ImageInput> ImageInputOf(std::string_view model) const;
  // The checks Infer makes before queueing (model ready, outputs known, inputs fit the config), without
  // running anything: for work accepted now and run later.
  Status Validate(std::string_view model, std::optional<int64_t> version, const InferRequest& request) const;
  // GET /v2/models/{m}[/versions/{v}]
  Result<std::string> ModelMetadataJson(std::string_view model, std::optional<int64_t> version) const;
  // GET /v2/models/{m}[/versions/{v}]/config: Triton's JSON model configuration.
  Result<std::string> ModelConfigJson(std::string_view model, std::optional<int64_t> version) const;
  // Refreshes queue-depth gauges (and the tables' and cache's) before a scrape.
  void UpdateGauges() const;

 private:
  // One request on its way to an answer.
  void InferWith(ModelHandle handle, std::string_view model, std::optional<int64_t> version,
                 InferRequest&& request, std::shared_ptr<CancelToken> cancel, InferDone done, Priority priority,
                 SteadyTime start);
  void InferCold(std::string_view model, std::optional<int64_t> version, InferRequest&& request,
                 std::shared_ptr<CancelToken> cancel, InferDone done, Priority priority, SteadyTime start);
  struct Live {
    ModelHandle handle;
    std::optional<int64_t> version;  // as the caller named it
    std::string model;
    InferRequest request;            // inputs validated and in config order
    int64_t batch = 1;
    std::shared_ptr<CancelToken> cancel;
    InferDone done;
    Priority priority = Priority::kOnline;
    SteadyTime start;
  };
  // Pre-processing, the deadline and the scheduler: the model answers.
  void RunLive(std::shared_ptr<Live> live);
  void InferHybrid(std::shared_ptr<Live> live);
  bool AnswerFromTable(const std::shared_ptr<Live>& live, const std::string& key);
  void AnswerThroughCache(std::shared_ptr<Live> live);
  void UpdateHybridGauges() const;

  ModelManager* manager_;
  ServingMetrics* metrics_;
  Hybrid hybrid_;
  ConcurrencyLimits* limits_ = nullptr;
  UsageLedger* usage_ = nullptr;
};

// parameters.key of a request (a string, or an integer as its decimal text), checked: nullopt without one.
Result<std::optional<std::string>> RequestKey(const Parameters& params);
// For a model fronted by a table: the key is well formed and the request holds the key's one row.
Status CheckRequestKey(const ModelConfig& config, const InferRequest& request, int64_t batch);

// The response a model's outputs make for `request`: the outputs it asked for, in its order, with
// their binary flags.
InferResponse BuildInferResponse(const ModelConfig& config, int64_t version, const InferRequest& request,
                                 std::vector<Tensor> outputs);

// Checks the request against the config and puts inputs in config order. Returns the batch size
// (1 for models without a batch dimension). Exposed for tests.
Result<int64_t> ValidateAndOrderInputs(const ModelConfig& config, std::vector<Tensor>* inputs);

}  // namespace ferry
