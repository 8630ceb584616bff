#include "api/jobs_service.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <charconv>
#include <ctime>
#include <thread>

#include "common/json_writer.h"
#include "jobs/webhook_signature.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kMaxAttemptsLimit = 10;

// Unix milliseconds as RFC 3339 UTC ("2026-11-28T17:30:00.123Z").
std::string Rfc3339(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

// `delivery`: the job's webhook delivery, when it has one and the caller looked it up.
void WriteJob(JsonWriter& w, const Job& j, const WebhookDelivery* delivery = nullptr, bool close = true) {
  w.BeginObject();
  w.Key("id").String(j.id);
  w.Key("model").String(j.spec.model);
  w.Key("status").String(JobStateName(j.state));
  w.Key("priority").Int(j.spec.priority);
  w.Key("attempts").Int(j.attempts);
  w.Key("max_attempts").Int(j.spec.max_attempts);
  w.Key("created_at").String(Rfc3339(j.created_ms));
  if (j.started_ms > 0) w.Key("started_at").String(Rfc3339(j.started_ms));
  if (j.finished_ms > 0) w.Key("finished_at").String(Rfc3339(j.finished_ms));
  if (!j.error.empty()) w.Key("error").String(j.error);
  if (!j.spec.idempotency_key.empty()) w.Key("idempotency_key").String(j.spec.idempotency_key);
  w.Key("status_url").String("/v1/jobs/" + j.id);
  if (j.state == JobState::kSucceeded) w.Key("result_url").String("/v1/jobs/" + j.id + "/result");
  if (!j.spec.webhook_url.empty()) {
    w.Key("webhook").BeginObject().Key("url").String(j.spec.webhook_url);
    if (delivery != nullptr) {
      w.Key("id").String(delivery->id);
      w.Key("state").String(DeliveryStateName(delivery->state));
      w.Key("attempts").Int(delivery->attempts);
      if (delivery->last_status != 0) w.Key("last_status").Int(delivery->last_status);
      if (!delivery->last_error.empty()) w.Key("last_error").String(delivery->last_error);
      if (delivery->delivered_ms > 0) w.Key("delivered_at").String(Rfc3339(delivery->delivered_ms));
      if (delivery->state == DeliveryState::kPending && delivery->attempts > 0) {
        w.Key("next_attempt_at").String(Rfc3339(delivery->next_attempt_ms));
      }
    }
    w.EndObject();
  }
  if (close) w.EndObject();
}

std::string JobJsonText(const Job& j, const WebhookDelivery* delivery = nullptr) {
  std::string out;
  JsonWriter w(&out);
  WriteJob(w, j, delivery);
  return out;
}

// The job with its webhook delivery, as GET /v1/jobs/{id} shows it; nullopt without the job.
Result<std::optional<std::string>> ReadJobJson(JobStore& store, const std::string& id, bool* final_state) {
  FERRY_ASSIGN_OR_RETURN(std::optional<Job> job, store.Get(id));
  if (!job) return std::optional<std::string>();
  std::optional<WebhookDelivery> delivery;
  if (!job->spec.webhook_url.empty()) {
    FERRY_ASSIGN_OR_RETURN(delivery, store.GetDelivery(id));
  }
  if (final_state != nullptr) *final_state = IsFinal(job->state);
  return std::optional<std::string>(JobJsonText(*job, delivery ? &*delivery : nullptr));
}

constexpr const char* kKindChat = "openai_chat";
constexpr const char* kKindCompletions = "openai_completions";

// An OpenAI body ("messages": chat, "prompt": completions) rather than an OIP one ("inputs").
std::optional<TextApi> GenerationApi(std::string_view request) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(request.data(), request.size()).get_object().get(object)) return std::nullopt;
  if (object["messages"].error() == simdjson::SUCCESS) return TextApi::kChat;
  if (object["prompt"].error() == simdjson::SUCCESS) return TextApi::kCompletions;
  return std::nullopt;
}

// Takes a language model's whole (non-streamed) answer as a job's outcome.
class JobGenerationChannel final : public GenerationChannel {
 public:
  explicit JobGenerationChannel(std::function<void(JobOutcome)> done) : done_(std::move(done)) {}
  void Reply(int http_status, std::string json) override {
    if (http_status == 200) return done_({Status::Ok(), std::move(json), true});
    // The error body is OpenAI's; a request the model refuses (4xx but 429) will be refused again.
    const bool retry = http_status >= 500 || http_status == 429;
    done_({retry ? Unavailable(json) : InvalidArgument(json), "", retry});
  }
  void Stream(std::string) override {}
  void EndStream() override {}

 private:
  std::function<void(JobOutcome)> done_;
};

Status BadBody(std::string_view why) { return InvalidArgument(fmt::format("invalid job: {}", why)); }

}  // namespace

Result<milliseconds> ParseWait(std::string_view text, milliseconds max) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::string_view unit = text.substr(static_cast<size_t>(end - text.data()));
  if (ec != std::errc() || value < 0 || (unit != "" && unit != "s" && unit != "ms" && unit != "m")) {
    return InvalidArgument(fmt::format("wait must look like 30s, 500ms or 2m, got '{}'", text.substr(0, 32)));
  }
  const int64_t ms = unit == "ms" ? value : unit == "m" ? value * 60'000 : value * 1000;
  return std::min(milliseconds(ms), max);
}

namespace {

// A request that does not fit the model will not fit it next time either, and a spent budget stays
// spent until its period ends: neither is tried again.
bool Retriable(const Status& s) {
  return s.code() != StatusCode::kInvalidArgument && s.code() != StatusCode::kResourceExhausted;
}

// A job refused because its model had no room (a full queue, a concurrency cap) while the model can
// serve is put off without spending an attempt; one whose model cannot serve (its load failed) spends
// them, so that it ends in the dead letter rather than waiting for ever.
JobOutcome FailedOutcome(const Status& s, InferenceService* inference, const std::string& model) {
  const bool busy = s.code() == StatusCode::kUnavailable && inference->ModelReady(model, std::nullopt).ok();
  return JobOutcome{s, "", Retriable(s), busy};
}

}  // namespace

Result<SubmittedJob> JobsService::Submit(std::string_view body, std::string_view idempotency_key,
                                         const std::string& caller) {
  if (idempotency_key.size() > 255) return InvalidArgument("Idempotency-Key is longer than 255 bytes");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto error = parser.parse(body.data(), body.size()).get(root); error) {
    return BadBody(fmt::format("the body is not JSON ({})", simdjson::error_message(error)));
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) return BadBody("the body must be a JSON object");
  NewJob job;
  job.idempotency_key = std::string(idempotency_key);
  job.caller = caller;
  std::string request_text;
  bool has_request = false;
  for (auto field : object) {
    const std::string_view key = field.key;
    if (key == "model") {
      std::string_view model;
      if (field.value.get_string().get(model)) return BadBody("'model' must be a string");
      job.model = std::string(model);
    } else if (key == "request") {
      if (!field.value.is_object()) return BadBody("'request' must be an object: an OIP v2 inference request, or an OpenAI chat or completions body for a language model");
      request_text = simdjson::to_string(field.value);
      has_request = true;
    } else if (key == "priority") {
      if (field.value.get_int64().get(job.priority)) return BadBody("'priority' must be an integer");
    } else if (key == "max_attempts") {
      if (field.value.get_int64().get(job.max_attempts) || job.max_attempts < 1 ||
          job.max_attempts > kMaxAttemptsLimit) {
        return BadBody(fmt::format("'max_attempts' must be an integer within 1..{}", kMaxAttemptsLimit));
      }
    } else if (key == "webhook_url") {
      std::string_view url;
      if (field.value.get_string().get(url)) return BadBody("'webhook_url' must be a string");
      // Refused here for what it names (server-side request forgery); host names are checked again,
      // resolved, at each delivery.
      FERRY_RETURN_IF_ERROR(CheckWebhookUrl(url, webhook_allowed_).status());
      job.webhook_url = std::string(url);
    } else if (key == "webhook_secret") {
      std::string_view secret;
      if (field.value.get_string().get(secret)) return BadBody("'webhook_secret' must be a string");
      FERRY_RETURN_IF_ERROR(ParseWebhookSecret(secret).status());
      job.webhook_secret = std::string(secret);
    } else {
      return BadBody(fmt::format("unknown key '{}'; expected model, request, priority, max_attempts, webhook_url, "
                                 "webhook_secret", key.substr(0, 64)));
    }
  }
  if (job.model.empty()) return BadBody("'model' is required");
  if (!has_request) return BadBody("'request' is required");
  // A caller whose budget is spent is refused now, not once the job runs.
  if (usage_ != nullptr) FERRY_RETURN_IF_ERROR(usage_->Admit(caller, job.model));
  if (job.webhook_url.empty() != job.webhook_secret.empty()) {
    return BadBody(job.webhook_url.empty()
                       ? "'webhook_secret' without 'webhook_url'"
                       : "'webhook_url' needs a 'webhook_secret' ('whsec_' + base64 of 24 to 64 random bytes) to "
                         "sign deliveries with");
  }

  // Checked now (model first, as online inference does), so that a job that can never run is refused here.
  if (std::optional<TextApi> api = GenerationApi(request_text)) {
    if (completions_ == nullptr) return BadBody("this server has no language models");
    FERRY_RETURN_IF_ERROR(completions_->CheckJob(*api, request_text, job.model).WithContext("invalid job request"));
    job.kind = *api == TextApi::kChat ? kKindChat : kKindCompletions;
  } else {
    FERRY_RETURN_IF_ERROR(inference_->ModelReady(job.model, std::nullopt));
    Result<InferRequest> decoded = DecodeInferRequest(std::make_shared<const std::string>(request_text), std::nullopt);
    if (!decoded.ok()) return decoded.status().WithContext("invalid job request");
    FERRY_RETURN_IF_ERROR(inference_->Validate(job.model, std::nullopt, *decoded));
  }
  job.request = std::move(request_text);

  FERRY_ASSIGN_OR_RETURN(SubmitOutcome outcome, store_->Submit(job));
  if (outcome.created && on_submitted_) on_submitted_();
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> stored, ReadJobJson(*store_, outcome.id, nullptr));
  if (!stored) return Internal("a committed job is missing");  // retention cannot remove a queued job
  return SubmittedJob{outcome.id, outcome.created, std::move(*stored)};
}

Status JobsService::JobJson(const std::string& id, milliseconds wait, std::function<void(Result<std::string>)> done) {
  return watcher_.Await([this, id](bool* final_state) { return ReadJobJson(*store_, id, final_state); },
                        fmt::format("no job '{}'", id.substr(0, 64)), std::chrono::steady_clock::now() + wait,
                        std::move(done));
}

JobsService::JobsService(JobStore* store, InferenceService* inference)
    : store_(store),
      inference_(inference),
      watcher_(kMaxWatches, fmt::format("{} job watches are open; poll GET /v1/jobs/{{id}}?wait=30s instead",
                                        kMaxWatches)) {}

JobsService::~JobsService() = default;

Status JobsService::WatchJob(const std::string& id, std::shared_ptr<CancelToken> cancel,
                             std::function<bool(const std::string&)> send, std::function<void()> end) {
  return watcher_.Watch([this, id](bool* final_state) { return ReadJobJson(*store_, id, final_state); },
                        fmt::format("no job '{}'", id.substr(0, 64)), std::move(cancel), std::move(send),
                        std::move(end));
}

Result<std::string> JobsService::ResultJson(const std::string& id) { return store_->GetResult(id); }

Result<std::string> JobsService::ListJson(std::string_view status, std::string_view model, int64_t page_size,
                                          std::string_view page_token) {
  JobFilter filter;
  if (!status.empty()) {
    filter.state = JobStateFromName(status);
    if (!filter.state) {
      return InvalidArgument(fmt::format("unknown status '{}'; use queued, running, succeeded, failed or cancelled",
                                         status.substr(0, 32)));
    }
  }
  filter.model = std::string(model);
  FERRY_ASSIGN_OR_RETURN(JobPage page, store_->List(filter, page_size, std::string(page_token)));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("jobs").BeginArray();
  for (const Job& j : page.jobs) WriteJob(w, j);
  w.EndArray();
  if (!page.next_page_token.empty()) w.Key("next_page_token").String(page.next_page_token);
  w.EndObject();
  return out;
}

Result<std::string> JobsService::Cancel(const std::string& id) {
  FERRY_RETURN_IF_ERROR(store_->Cancel(id).status());
  if (on_cancelled_) on_cancelled_();
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> job, ReadJobJson(*store_, id, nullptr));
  if (!job) return NotFound(fmt::format("no job '{}'", id.substr(0, 64)));
  return std::move(*job);
}

JobExecutor JobsService::Executor() {
  return [this](const Job& job, std::shared_ptr<CancelToken> cancel, std::function<void(JobOutcome)> done) {
    if (job.spec.kind == kKindChat || job.spec.kind == kKindCompletions) {
      if (completions_ == nullptr) return done({Unavailable("this server has no language models"), "", true});
      const TextApi api = job.spec.kind == kKindChat ? TextApi::kChat : TextApi::kCompletions;
      auto channel = std::make_shared<JobGenerationChannel>(done);
      Status started = completions_->Start(api, job.spec.request, job.spec.model, false, std::move(cancel), channel,
                                            Priority::kJob, job.spec.caller);
      if (!started.ok()) done(FailedOutcome(started, inference_, job.spec.model));
      return;
    }
    Result<InferRequest> decoded = DecodeInferRequest(std::make_shared<const std::string>(job.spec.request), std::nullopt);
    if (!decoded.ok()) return done({decoded.status(), "", false});
    decoded->caller = job.spec.caller;  // charged to whoever submitted it
    inference_->Infer(
        job.spec.model, std::nullopt, std::move(decoded).value(), std::move(cancel),
        [done, inference = inference_, model = job.spec.model](Result<InferResponse> response) {
          if (!response.ok()) return done(FailedOutcome(response.status(), inference, model));
          // Stored as plain JSON: the result is fetched later, by any client, as one document.
          response->binary_outputs.assign(response->outputs.size(), false);
          EncodedResponse encoded = EncodeInferResponse(*response);
          done({Status::Ok(), std::move(encoded.body), true});
        },
        Priority::kJob);
  };
}

Result<std::string> JobsService::WebhookPayload(const WebhookDelivery& delivery) {
  FERRY_ASSIGN_OR_RETURN(std::optional<Job> job, store_->Get(delivery.job_id));
  if (!job) return NotFound(fmt::format("job '{}' is gone (past its retention)", delivery.job_id));
  std::string result;
  if (job->state == JobState::kSucceeded) {
    FERRY_ASSIGN_OR_RETURN(result, store_->GetResult(job->id));
  }
  // Everything here is fixed once the job is final (the event's time is the job's end, and `data` leaves
  // out the delivery's own state), so a body made again after a crash is the same bytes.
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("type").String(delivery.event).Key("timestamp").String(Rfc3339(job->finished_ms)).Key("data");
  WriteJob(w, *job, nullptr, /*close=*/false);
  if (!result.empty()) w.Key("result").Raw(result);
  w.EndObject().EndObject();
  return out;
}

}  // namespace ferry
