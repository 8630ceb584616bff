#include "api/jobs_service.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <charconv>
#include <ctime>
#include <thread>

#include "common/json_writer.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kMaxAttemptsLimit = 10;
constexpr milliseconds kPollEvery{20};

// Unix milliseconds as RFC 3339 UTC ("2026-11-28T17:30:00.123Z").
std::string Rfc3339(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

void WriteJob(JsonWriter& w, const Job& j) {
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
  w.EndObject();
}

std::string JobJsonText(const Job& j) {
  std::string out;
  JsonWriter w(&out);
  WriteJob(w, j);
  return out;
}

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

Result<SubmittedJob> JobsService::Submit(std::string_view body, std::string_view idempotency_key) {
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
  std::string request_text;
  bool has_request = false;
  for (auto field : object) {
    const std::string_view key = field.key;
    if (key == "model") {
      std::string_view model;
      if (field.value.get_string().get(model)) return BadBody("'model' must be a string");
      job.model = std::string(model);
    } else if (key == "request") {
      if (!field.value.is_object()) return BadBody("'request' must be an OIP v2 inference request object");
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
      // Refused for what it names first (server-side request forgery), then for what is not built yet.
      FERRY_RETURN_IF_ERROR(CheckWebhookUrl(url, webhook_allowed_).status());
      return Unimplemented("webhook delivery is not available yet; poll GET /v1/jobs/{id} instead");
    } else {
      return BadBody(fmt::format("unknown key '{}'; expected model, request, priority, max_attempts",
                                 key.substr(0, 64)));
    }
  }
  if (job.model.empty()) return BadBody("'model' is required");
  if (!has_request) return BadBody("'request' is required");

  // Checked now (model first, as online inference does), so that a job that can never run is refused here.
  FERRY_RETURN_IF_ERROR(inference_->ModelReady(job.model, std::nullopt));
  Result<InferRequest> decoded = DecodeInferRequest(std::make_shared<const std::string>(request_text), std::nullopt);
  if (!decoded.ok()) return decoded.status().WithContext("invalid job request");
  FERRY_RETURN_IF_ERROR(inference_->Validate(job.model, std::nullopt, *decoded));
  job.request = std::move(request_text);

  FERRY_ASSIGN_OR_RETURN(SubmitOutcome outcome, store_->Submit(job));
  if (outcome.created && on_submitted_) on_submitted_();
  FERRY_ASSIGN_OR_RETURN(std::optional<Job> stored, store_->Get(outcome.id));
  if (!stored) return Internal("a committed job is missing");  // retention cannot remove a queued job
  return SubmittedJob{outcome.id, outcome.created, JobJsonText(*stored)};
}

Result<std::string> JobsService::JobJson(const std::string& id, milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(std::optional<Job> job, store_->Get(id));
    if (!job) return NotFound(fmt::format("no job '{}'", id.substr(0, 64)));
    if (IsFinal(job->state) || std::chrono::steady_clock::now() >= deadline) return JobJsonText(*job);
    std::this_thread::sleep_for(kPollEvery);
  }
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
  return JobJson(id, milliseconds(0));
}

JobExecutor JobsService::Executor() {
  return [this](const Job& job, std::shared_ptr<CancelToken> cancel, std::function<void(JobOutcome)> done) {
    Result<InferRequest> decoded = DecodeInferRequest(std::make_shared<const std::string>(job.spec.request), std::nullopt);
    if (!decoded.ok()) return done({decoded.status(), "", false});
    inference_->Infer(
        job.spec.model, std::nullopt, std::move(decoded).value(), std::move(cancel),
        [done](Result<InferResponse> response) {
          if (!response.ok()) {
            // A request that does not fit the model will not fit it next time either.
            const bool retry = response.status().code() != StatusCode::kInvalidArgument;
            return done({response.status(), "", retry});
          }
          // Stored as plain JSON: the result is fetched later, by any client, as one document.
          response->binary_outputs.assign(response->outputs.size(), false);
          EncodedResponse encoded = EncodeInferResponse(*response);
          done({Status::Ok(), std::move(encoded.body), true});
        },
        Priority::kJob);
  };
}

}  // namespace ferry
