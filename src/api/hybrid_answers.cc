// InferenceService's hybrid answers: a precomputed table before the model, the response cache around
// it (see InferenceService::Hybrid).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/inference_service.h"

namespace ferry {

// parameters.key: a string, or an integer written in decimal.
Result<std::optional<std::string>> RequestKey(const Parameters& params) {
  auto it = params.find("key");
  if (it == params.end()) return std::optional<std::string>();
  std::string key;
  if (const auto* text = std::get_if<std::string>(&it->second)) {
    key = *text;
  } else if (const auto* number = std::get_if<int64_t>(&it->second)) {
    key = std::to_string(*number);
  } else {
    return InvalidArgument("parameter 'key' must be a string or an integer");
  }
  FERRY_RETURN_IF_ERROR(CheckTableKey(key).WithContext("parameter 'key'"));
  return std::optional<std::string>(std::move(key));
}

Status CheckRequestKey(const ModelConfig& config, const InferRequest& request, int64_t batch) {
  if (!config.precomputed) return Status::Ok();
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> key, RequestKey(request.parameters));
  if (key && config.max_batch_size > 0 && batch != 1) {
    return InvalidArgument(fmt::format("a request with parameters.key holds one row (the key's); this one has {}", batch));
  }
  return Status::Ok();
}

namespace {

void Tag(InferResponse* response, const char* source) { response->parameters["ferry_source"] = std::string(source); }

bool HoldsRequestedOutputs(const std::vector<Tensor>& outputs, const InferRequest& request) {
  for (const RequestedOutput& wanted : request.outputs) {
    const bool found = std::any_of(outputs.begin(), outputs.end(), [&](const Tensor& t) { return t.name == wanted.name; });
    if (!found) return false;
  }
  return true;
}

}  // namespace

void InferenceService::InferHybrid(std::shared_ptr<Live> live) {
  const ModelConfig& config = live->handle->config();
  if (Status s = CheckRequestKey(config, live->request, live->batch); !s.ok()) return live->done(s);
  Result<std::optional<std::string>> key = RequestKey(live->request.parameters);
  if (config.precomputed && key.ok() && key->has_value() && hybrid_.tables != nullptr) {
    if (AnswerFromTable(live, **key)) return;
  }
  if (config.response_cache && hybrid_.cache != nullptr) return AnswerThroughCache(std::move(live));
  InferDone done = std::move(live->done);
  live->done = [done](Result<InferResponse> r) {
    if (r.ok()) Tag(&*r, "live");
    done(std::move(r));
  };
  RunLive(std::move(live));
}

bool InferenceService::AnswerFromTable(const std::shared_ptr<Live>& live, const std::string& key) {
  const ModelConfig& config = live->handle->config();
  const PrecomputedConfig& rule = *config.precomputed;
  const int64_t now_ms = hybrid_.wall_clock->NowUnixMs();
  Result<std::optional<TableEntry>> entry = hybrid_.tables->Lookup(rule.table, key);
  std::string outcome = "miss";
  if (!entry.ok()) {
    // The store's trouble is no reason to fail a request the model can answer.
    spdlog::warn("model '{}': table '{}': {}", config.name, rule.table, entry.status().message());
    outcome = "error";
  } else if (entry->has_value()) {
    const TableEntry& e = **entry;
    if (e.model != config.name) {
      outcome = "other_model";  // the table holds another model's answers: a config naming the wrong table
    } else if (rule.max_age_s > 0 && now_ms - e.produced_ms > rule.max_age_s * 1000) {
      outcome = "stale_age";
    } else if (!rule.any_version && e.model_version != std::to_string(live->handle->version())) {
      outcome = "stale_version";
    } else if (!HoldsRequestedOutputs(e.outputs, live->request)) {
      outcome = "stale_version";  // made when the model had other outputs
    } else {
      metrics_->CountPrecomputedLookup(config.name, rule.table, "hit");
      InferResponse response = BuildInferResponse(config, live->handle->version(), live->request, e.outputs);
      response.model_version = e.model_version;
      Tag(&response, "precomputed");
      response.parameters["ferry_age_s"] = static_cast<double>(std::max<int64_t>(0, now_ms - e.produced_ms)) / 1000.0;
      live->done(std::move(response));
      return true;
    }
  }
  metrics_->CountPrecomputedLookup(config.name, rule.table, outcome);
  if (rule.write_back && live->request.outputs.empty()) {  // an entry must hold every output
    InferDone done = std::move(live->done);
    live->done = [this, done, table = rule.table, key](Result<InferResponse> r) {
      if (r.ok()) {
        TableEntry written{key, r->model_version, hybrid_.wall_clock->NowUnixMs(), r->outputs};
        hybrid_.tables->WriteBack(table, std::move(written));
      }
      done(std::move(r));
    };
  }
  return false;
}

void InferenceService::AnswerThroughCache(std::shared_ptr<Live> live) {
  const ModelConfig& config = live->handle->config();
  ResponseCache* cache = hybrid_.cache;
  auto from_cache = [](const Live& l, const CachedAnswer& answer) {
    InferResponse response = BuildInferResponse(l.handle->config(), l.handle->version(), l.request, answer.outputs);
    response.model_version = answer.model_version;
    Tag(&response, "cache");
    return response;
  };
  auto run_live = [this](std::shared_ptr<Live> l) {
    InferDone done = std::move(l->done);
    l->done = [done](Result<InferResponse> r) {
      if (r.ok()) Tag(&*r, "live");
      done(std::move(r));
    };
    RunLive(std::move(l));
  };
  if (live->request.cache_bypass) {
    metrics_->CountCacheLookup(config.name, "bypass");
    return run_live(std::move(live));
  }
  const std::string key = ResponseCacheKey(config.name, live->handle->version(), live->handle.get(),
                                           live->request.inputs, live->request.outputs, live->request.parameters);
  ResponseCache::Start start = cache->Begin(key, [live, from_cache, run_live](std::shared_ptr<const CachedAnswer> a) {
    if (a) return live->done(from_cache(*live, *a));
    run_live(live);  // the run it waited for failed: its own run may not
  });
  switch (start.role) {
    case ResponseCache::Role::kHit:
      metrics_->CountCacheLookup(config.name, "hit");
      return live->done(from_cache(*live, *start.hit));
    case ResponseCache::Role::kJoined:
      metrics_->CountCacheLookup(config.name, "joined");
      return;
    case ResponseCache::Role::kAlone:
      metrics_->CountCacheLookup(config.name, "miss");
      return run_live(std::move(live));
    case ResponseCache::Role::kLeader:
      break;
  }
  metrics_->CountCacheLookup(config.name, "miss");
  InferDone done = std::move(live->done);
  std::weak_ptr<const void> servable = live->handle;
  live->done = [cache, key, done, servable](Result<InferResponse> r) {
    if (!r.ok()) {
      cache->Finish(key, nullptr);
      return done(std::move(r));
    }
    // Copies: the outputs are views into the whole batch's output (or the request body), which the
    // budget would not count.
    std::vector<Tensor> owned = r->outputs;
    for (Tensor& t : owned) t.data = Buffer::Copy(t.data.data(), t.data.size());
    cache->Finish(key, std::make_shared<const CachedAnswer>(CachedAnswer{r->model_version, std::move(owned), servable}));
    Tag(&*r, "live");
    done(std::move(r));
  };
  RunLive(std::move(live));
}

void InferenceService::UpdateHybridGauges() const {
  ServingMetrics::HybridMemory memory;
  if (hybrid_.tables != nullptr) {
    const int64_t now_ms = hybrid_.wall_clock->NowUnixMs();
    for (const TableInfo& t : hybrid_.tables->List()) {
      metrics_->SetTable(t.name, static_cast<double>(t.entries), static_cast<double>(now_ms - t.published_ms) / 1000.0);
    }
    const TableStats s = hybrid_.tables->Stats();
    memory.table_bytes = static_cast<double>(s.memory_bytes);
    memory.table_entries = static_cast<double>(s.memory_entries);
    memory.table_evictions = static_cast<double>(s.memory_evictions);
    memory.write_backs = static_cast<double>(s.write_backs);
    memory.write_backs_dropped = static_cast<double>(s.write_backs_dropped);
  }
  if (hybrid_.cache != nullptr) {
    const ResponseCacheStats s = hybrid_.cache->Stats();
    memory.cache_bytes = static_cast<double>(s.bytes);
    memory.cache_entries = static_cast<double>(s.entries);
    memory.cache_evictions = static_cast<double>(s.evictions);
  }
  metrics_->SetHybridMemory(memory);
}

}  // namespace ferry
