#include "api/inference_service.h"

#include <fmt/format.h>

#include <charconv>

#include "common/json_writer.h"

namespace ferry {
namespace {

int64_t MicrosSince(SteadyTime start) {
  return std::chrono::duration_cast<Micros>(std::chrono::steady_clock::now() - start).count();
}

bool DimsMatch(const Shape& declared, const Shape& actual, size_t offset) {
  if (actual.size() != declared.size() + offset) return false;
  for (size_t i = 0; i < declared.size(); ++i) {
    if (declared[i] != -1 && declared[i] != actual[i + offset]) return false;
  }
  return true;
}

// A request timeout, in microseconds, from the OIP "timeout" parameter (Triton's spelling).
Result<std::optional<int64_t>> RequestTimeoutUs(const Parameters& params) {
  auto it = params.find("timeout");
  if (it == params.end()) return std::optional<int64_t>();
  const int64_t* value = std::get_if<int64_t>(&it->second);
  if (value == nullptr || *value < 0) return InvalidArgument("parameter 'timeout' must be a non-negative integer (us)");
  return std::optional<int64_t>(*value);
}

void WriteTensorSpecs(JsonWriter& w, const ModelConfig& config, const std::vector<TensorSpec>& specs) {
  w.BeginArray();
  for (const TensorSpec& spec : specs) {
    w.BeginObject().Key("name").String(spec.name).Key("datatype").String(DataTypeName(spec.dtype)).Key("shape");
    w.BeginArray();
    if (config.max_batch_size > 0) w.Int(-1);
    for (int64_t d : spec.dims) w.Int(d);
    w.EndArray().EndObject();
  }
  w.EndArray();
}

}  // namespace

Result<int64_t> ParseVersion(std::string_view text) {
  int64_t v = 0;
  if (text.empty() || text.size() > 18 || text[0] == '0') {
    return InvalidArgument(fmt::format("version must be a positive integer, got '{}'", text.substr(0, 64)));
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) {
    return InvalidArgument(fmt::format("version must be a positive integer, got '{}'", text.substr(0, 64)));
  }
  return v;
}

Result<int64_t> ValidateAndOrderInputs(const ModelConfig& config, std::vector<Tensor>* inputs) {
  const bool batched = config.max_batch_size > 0;
  std::vector<Tensor> ordered;
  ordered.reserve(config.inputs.size());
  for (const Tensor& t : *inputs) {
    bool known = std::any_of(config.inputs.begin(), config.inputs.end(),
                             [&](const TensorSpec& s) { return s.name == t.name; });
    if (!known) return InvalidArgument(fmt::format("unexpected input '{}' for model '{}'", t.name, config.name));
  }
  int64_t batch = 1;
  for (size_t i = 0; i < config.inputs.size(); ++i) {
    const TensorSpec& spec = config.inputs[i];
    auto it = std::find_if(inputs->begin(), inputs->end(), [&](const Tensor& t) { return t.name == spec.name; });
    if (it == inputs->end()) return InvalidArgument(fmt::format("missing input '{}' for model '{}'", spec.name, config.name));
    if (it->dtype != spec.dtype) {
      return InvalidArgument(fmt::format("input '{}' has datatype {}, the model expects {}", spec.name,
                                         DataTypeName(it->dtype), DataTypeName(spec.dtype)));
    }
    if (!DimsMatch(spec.dims, it->shape, batched ? 1 : 0)) {
      return InvalidArgument(fmt::format("input '{}' has shape {}, the model expects {}", spec.name,
                                         ShapeToString(it->shape), ShapeToString(FullShape(config, spec, std::nullopt))));
    }
    if (batched) {
      const int64_t rows = it->shape[0];
      if (rows < 1 || rows > config.max_batch_size) {
        return InvalidArgument(fmt::format("input '{}' has batch size {}, the model accepts 1 to {}", spec.name, rows,
                                           config.max_batch_size));
      }
      if (i > 0 && rows != batch) {
        return InvalidArgument(fmt::format("input '{}' has batch size {}, other inputs have {}", spec.name, rows, batch));
      }
      batch = rows;
    }
    ordered.push_back(std::move(*it));
  }
  *inputs = std::move(ordered);
  return batch;
}

namespace {

Status CheckRequestedOutputs(const ModelConfig& config, const InferRequest& request, std::string_view model) {
  for (const RequestedOutput& out : request.outputs) {
    bool known = std::any_of(config.outputs.begin(), config.outputs.end(),
                             [&](const TensorSpec& s) { return s.name == out.name; });
    if (!known) return InvalidArgument(fmt::format("unknown output '{}' requested from model '{}'", out.name, model));
  }
  return Status::Ok();
}

}  // namespace

Status InferenceService::Validate(std::string_view model, std::optional<int64_t> version,
                                  const InferRequest& request) const {
  Result<ModelHandle> handle = manager_->Get(model, version);  // wakes a sleeping model: work is coming
  // Asleep or waking: the config's checks only; the pre-processing is checked when the job runs.
  FERRY_ASSIGN_OR_RETURN(const ModelConfig config,
                         handle.ok() ? Result<ModelConfig>((*handle)->config()) : manager_->ConfigOf(model, version));
  FERRY_RETURN_IF_ERROR(CheckRequestedOutputs(config, request, model));
  std::vector<Tensor> inputs = request.inputs;  // shares the buffers; ordering works on the copy
  FERRY_ASSIGN_OR_RETURN(int64_t batch, ValidateAndOrderInputs(config, &inputs));
  FERRY_RETURN_IF_ERROR(CheckRequestKey(config, request, batch));
  // Pre-processing too, so that a job whose image cannot be decoded is refused when submitted.
  if (const InputTransform* transform = handle.ok() ? (*handle)->transform() : nullptr) {
    FERRY_RETURN_IF_ERROR(transform->Apply(std::move(inputs), batch).status());
  }
  return Status::Ok();
}

InferResponse BuildInferResponse(const ModelConfig& config, int64_t version, const InferRequest& request,
                                 std::vector<Tensor> outputs) {
  InferResponse response;
  response.model_name = config.name;
  response.model_version = std::to_string(version);
  response.id = request.id;
  if (request.outputs.empty()) {
    response.outputs = std::move(outputs);
    response.binary_outputs.assign(response.outputs.size(), request.binary_data_output);
    return response;
  }
  for (const RequestedOutput& wanted : request.outputs) {
    for (Tensor& produced : outputs) {
      if (produced.name == wanted.name) {
        response.outputs.push_back(produced);
        response.binary_outputs.push_back(wanted.binary_data.value_or(request.binary_data_output));
      }
    }
  }
  return response;
}

void InferenceService::Infer(std::string_view model, std::optional<int64_t> version, InferRequest&& request,
                             std::shared_ptr<CancelToken> cancel, InferDone done, Priority priority) {
  const SteadyTime start = std::chrono::steady_clock::now();
  if (usage_ != nullptr) {
    if (Status admitted = usage_->Admit(request.caller, std::string(model)); !admitted.ok()) return done(admitted);
    // Every answer with a result is charged, whoever produced it (a table, the cache, the model).
    done = [usage = usage_, caller = request.caller, name = std::string(model),
            done = std::move(done)](Result<InferResponse> r) {
      if (r.ok()) usage->Charge(UsageCharge{caller, name, UsageUnits{1, r->compute_us, 0, 0}});
      done(std::move(r));
    };
  }
  Result<ModelHandle> handle = manager_->Get(model, version);
  if (!handle.ok()) {
    if (handle.status().code() != StatusCode::kUnavailable) return done(handle.status());
    return InferCold(model, version, std::move(request), std::move(cancel), std::move(done), priority, start);
  }
  InferWith(std::move(handle).value(), model, version, std::move(request), std::move(cancel), std::move(done),
            priority, start);
}

void InferenceService::InferCold(std::string_view model, std::optional<int64_t> version, InferRequest&& request,
                                 std::shared_ptr<CancelToken> cancel, InferDone done, Priority priority,
                                 SteadyTime start) {
  Result<std::optional<int64_t>> timeout_us = RequestTimeoutUs(request.parameters);
  if (!timeout_us.ok()) return done(timeout_us.status());
  // The request's timeout, else its model's default: a wait longer than that would only end in a 504.
  int64_t bound_us = timeout_us->value_or(0);
  if (!timeout_us->has_value()) {
    if (Result<ModelConfig> config = manager_->ConfigOf(model, version); config.ok()) bound_us = config->default_timeout_us;
  }
  std::optional<SteadyTime> deadline;
  if (bound_us > 0) deadline = start + Micros(bound_us);
  auto pending = std::make_shared<InferRequest>(std::move(request));
  std::string name(model);
  // Waits only for a model asleep or waking; anything else not ready answers its error at once.
  manager_->Acquire(model, version, deadline,
                    [this, name, version, pending, cancel, done, priority, start](Result<AcquiredModel> got) {
                      if (!got.ok()) return done(got.status());
                      const int64_t waited_ms = MicrosSince(start) / 1000;
                      InferDone tagged = [done, waited_ms](Result<InferResponse> r) {
                        if (r.ok()) r->parameters["ferry_cold_start_ms"] = waited_ms;
                        done(std::move(r));
                      };
                      InferWith(std::move(got->handle), name, version, std::move(*pending), cancel,
                                std::move(tagged), priority, start);
                    });
}

void InferenceService::InferWith(ModelHandle servable, std::string_view model, std::optional<int64_t> version,
                                 InferRequest&& request, std::shared_ptr<CancelToken> cancel, InferDone done,
                                 Priority priority, SteadyTime start) {
  const ModelConfig& config = servable->config();  // the Live below keeps the servable alive

  if (Status outputs = CheckRequestedOutputs(config, request, model); !outputs.ok()) return done(outputs);
  Result<int64_t> batch = ValidateAndOrderInputs(config, &request.inputs);
  if (!batch.ok()) return done(batch.status());
  if (limits_ != nullptr && config.max_concurrent_requests > 0) {
    Result<ConcurrencyLimits::Slot> slot = limits_->Enter(config.name, config.max_concurrent_requests);
    if (!slot.ok()) return done(slot.status());
    // Held until the answer is out (released before the caller hears it, so it may send the next one).
    done = [slot = std::move(slot).value(), done = std::move(done)](Result<InferResponse> r) mutable {
      slot.reset();
      done(std::move(r));
    };
  }
  const bool hybrid = config.precomputed.has_value() || config.response_cache;
  auto live = std::make_shared<Live>(Live{std::move(servable), version, std::string(model), std::move(request),
                                          *batch, std::move(cancel), std::move(done), priority, start});
  if (hybrid) return InferHybrid(std::move(live));
  RunLive(std::move(live));
}

void InferenceService::RunLive(std::shared_ptr<Live> live) {
  ModelHandle handle = live->handle;
  const ModelConfig& config = handle->config();
  InferRequest& request = live->request;
  if (const InputTransform* transform = handle->transform()) {
    // On the caller's thread, per request: a frame that cannot be decoded fails alone, not a batch.
    Result<std::vector<Tensor>> transformed = transform->Apply(std::move(request.inputs), live->batch);
    if (!transformed.ok()) return live->done(transformed.status());
    request.inputs = std::move(transformed).value();
  }
  Result<std::optional<int64_t>> timeout_us = RequestTimeoutUs(request.parameters);
  if (!timeout_us.ok()) return live->done(timeout_us.status());
  const int64_t effective_timeout = timeout_us->value_or(config.default_timeout_us);

  InferenceTask task;
  task.inputs = std::move(request.inputs);
  task.batch_size = live->batch;
  task.priority = live->priority;
  task.cancel = live->cancel;
  if (effective_timeout > 0) task.deadline = live->start + Micros(effective_timeout);

  for (int attempt = 0; attempt < 3; ++attempt) {
    ModelHandle servable = handle;
    ModelMetrics& metrics = metrics_->For(live->model, std::to_string(servable->version()));
    task.on_complete = [live, servable, &metrics](Result<std::vector<Tensor>> outputs, const TaskTimings& t) {
      metrics.queue_us->Observe(static_cast<double>(t.queue_us));
      if (!outputs.ok()) {
        metrics.failure->Increment();
        return live->done(outputs.status());
      }
      InferResponse response = BuildInferResponse(servable->config(), servable->version(), live->request,
                                                  std::move(outputs).value());
      response.compute_us = t.charged_us;
      const int64_t rows = live->batch;
      metrics.success->Increment();
      metrics.inference_count->Increment(static_cast<double>(rows));
      // Each task owns rows/batch of its execution, so the counter sums to one per backend run.
      if (t.batch_size > 0) metrics.execution_count->Increment(static_cast<double>(rows) / t.batch_size);
      metrics.compute_us->Observe(static_cast<double>(t.compute_us));
      metrics.batch_size->Observe(static_cast<double>(t.batch_size));
      metrics.request_us->Observe(static_cast<double>(MicrosSince(live->start)));
      live->done(std::move(response));
    };
    Status submitted = servable->scheduler().Submit(std::move(task));
    if (submitted.ok()) return;
    // A version swapped out between Get and Submit: the new one takes the request.
    if (submitted.code() == StatusCode::kUnavailable && servable->retired()) {
      Result<ModelHandle> fresh = manager_->Get(live->model, live->version);
      if (fresh.ok() && *fresh != servable) {
        handle = std::move(fresh).value();
        continue;
      }
    }
    metrics.failure->Increment();
    return live->done(submitted);
  }
  live->done(Unavailable(fmt::format("model '{}' is being reloaded", live->model)));
}

Result<ImageInput> InferenceService::ImageInputOf(std::string_view model) const {
  FERRY_ASSIGN_OR_RETURN(const ModelConfig config, manager_->ConfigOf(model, std::nullopt));
  if (!config.preprocess) {
    return InvalidArgument(fmt::format("model '{}' takes no frames: its config has no preprocess block", model));
  }
  return ImageInput{config.preprocess->input, config.max_batch_size > 0};
}

Status InferenceService::ModelReady(std::string_view model, std::optional<int64_t> version) const {
  return manager_->Servable(model, version);
}

Result<std::string> InferenceService::ModelMetadataJson(std::string_view model, std::optional<int64_t> version) const {
  FERRY_ASSIGN_OR_RETURN(const ModelConfig config, manager_->ConfigOf(model, version));  // never wakes it
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("name").String(config.name).Key("versions").BeginArray();
  for (const VersionStatus& s : manager_->Index()) {
    if (s.model == config.name && (s.state == VersionState::kReady || s.asleep)) w.String(std::to_string(s.version));
  }
  w.EndArray().Key("platform").String(config.platform).Key("inputs");
  WriteTensorSpecs(w, config, config.inputs);
  w.Key("outputs");
  WriteTensorSpecs(w, config, config.outputs);
  w.EndObject();
  return out;
}

Result<std::string> InferenceService::ModelConfigJson(std::string_view model, std::optional<int64_t> version) const {
  FERRY_ASSIGN_OR_RETURN(const ModelConfig config, manager_->ConfigOf(model, version));
  return ModelConfigToTritonJson(config);
}

void InferenceService::UpdateGauges() const {
  UpdateHybridGauges();
  for (const VersionStatus& s : manager_->Index()) {
    if (s.version > 0) metrics_->SetModelMemory(s.model, std::to_string(s.version), static_cast<double>(s.memory_bytes));
  }
  for (const ModelHandle& h : manager_->ReadyHandles()) {
    metrics_->For(h->config().name, std::to_string(h->version()))
        .queue_depth->Set(static_cast<double>(h->scheduler().QueueDepth()));
  }
}

}  // namespace ferry
