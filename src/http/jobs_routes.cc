// The /v1/jobs routes of ServingRouter: asynchronous inference over api/JobsService. Every call runs on
// the jobs pool, since the store waits for commits (an fsync in durable mode) and long-polls wait.
#include <fmt/format.h>

#include <charconv>

#include "http/serving_router.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

constexpr std::chrono::milliseconds kMaxWait{30'000};
constexpr int64_t kDefaultPageSize = 50;

// The value of `name` in the query string, or nullopt. Values are taken as sent (no percent-decoding:
// job ids, states, page tokens and model names need none).
std::optional<std::string_view> QueryParam(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Result<int64_t> PageSize(std::optional<std::string_view> text) {
  if (!text) return kDefaultPageSize;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || end != text->data() + text->size()) {
    return InvalidArgument("page_size must be an integer within 1..1000");
  }
  return v;
}

HttpResponse Accepted(const SubmittedJob& job) {
  HttpResponse r = JsonResponse(202, job.json);
  r.headers.emplace_back("Location", "/v1/jobs/" + job.id);
  if (!job.created) r.headers.emplace_back("Idempotent-Replayed", "true");
  return r;
}

}  // namespace

bool ServingRouter::IsJobEventsGet(std::string_view method, std::string_view path) {
  return method == "GET" && path.starts_with("/v1/jobs/") && path.ends_with("/events");
}

void ServingRouter::StreamJobEvents(const std::string& id, std::shared_ptr<CancelToken> cancel,
                                    HttpResponder& respond) {
  HttpResponder shared = respond;
  const bool posted = jobs_pool_.Post([this, id, cancel = std::move(cancel), shared] {
    auto stream = std::make_shared<BodyStream>();
    bool head_sent = false;
    // The first event is sent on this thread (the head goes with it, once the job is known to exist);
    // later ones from the watch thread.
    Status s = jobs_->WatchJob(
        id, cancel,
        [stream, shared, head_sent](const std::string& job) mutable {
          if (!head_sent) {
            head_sent = true;
            HttpResponse r;
            r.content_type = "text/event-stream";
            r.headers.emplace_back("Cache-Control", "no-cache");
            r.stream = stream;
            shared(std::move(r));
          }
          return stream->Write(job.empty() ? std::string(": keep-alive\n\n")
                                           : fmt::format("event: status\ndata: {}\n\n", job));
        },
        [stream] { stream->End(); });
    if (!s.ok()) shared(ErrorResponse(s));
  });
  if (!posted) respond(ErrorResponse(Unavailable("too many job requests in progress")));
}

void ServingRouter::HandleJobsRoute(HttpRequest&& request, std::shared_ptr<CancelToken> cancel,
                                    std::vector<std::string_view>& parts, HttpResponder& respond) {
  // /v1/jobs, /v1/jobs/{id}, /v1/jobs/{id}/result, /v1/jobs/{id}/cancel, /v1/jobs/{id}/events
  const std::string& method = request.method;
  const std::string id = parts.size() >= 3 ? std::string(parts[2]) : std::string();
  const std::string_view action = parts.size() == 4 ? parts[3] : std::string_view();
  if (parts.size() > 4 || (parts.size() == 4 && action != "result" && action != "cancel" && action != "events")) {
    return respond(JsonResponse(404, EncodeErrorJson("not found")));
  }
  if (action == "events") {
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    return StreamJobEvents(id, std::move(cancel), respond);
  }
  std::function<HttpResponse()> work;
  if (parts.size() == 2) {
    if (method == "POST") {
      const std::string* key = request.Header("idempotency-key");
      work = [this, body = request.body, key = key ? *key : std::string()] {
        Result<SubmittedJob> job = jobs_->Submit(*body, key);
        return job.ok() ? Accepted(*job) : ErrorResponse(job.status());
      };
    } else if (method == "GET") {
      Result<int64_t> page_size = PageSize(QueryParam(request.target, "page_size"));
      if (!page_size.ok()) return respond(ErrorResponse(page_size.status()));
      work = [this, size = *page_size, status = std::string(QueryParam(request.target, "status").value_or("")),
              model = std::string(QueryParam(request.target, "model").value_or("")),
              token = std::string(QueryParam(request.target, "page_token").value_or(""))] {
        return FromResult(jobs_->ListJson(status, model, size, token));
      };
    } else {
      return respond(MethodNotAllowed("GET, POST"));
    }
  } else if (action.empty()) {
    if (method == "GET") {
      std::chrono::milliseconds wait{0};
      if (auto text = QueryParam(request.target, "wait")) {
        Result<std::chrono::milliseconds> parsed = ParseWait(*text, kMaxWait);
        if (!parsed.ok()) return respond(ErrorResponse(parsed.status()));
        wait = *parsed;
      }
      work = [this, id, wait] { return FromResult(jobs_->JobJson(id, wait)); };
    } else if (method == "DELETE") {
      work = [this, id] { return FromResult(jobs_->Cancel(id)); };
    } else {
      return respond(MethodNotAllowed("GET, DELETE"));
    }
  } else if (action == "result") {
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    work = [this, id] { return FromResult(jobs_->ResultJson(id)); };
  } else {  // cancel
    if (method != "POST") return respond(MethodNotAllowed("POST"));
    work = [this, id] { return FromResult(jobs_->Cancel(id)); };
  }
  HttpResponder shared = respond;
  if (!jobs_pool_.Post([work = std::move(work), shared] { shared(work()); })) {
    respond(ErrorResponse(Unavailable("too many job requests in progress")));
  }
}

}  // namespace ferry
