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

void StreamWatchEvents(ThreadPool& pool, std::string event, WatchStart start, HttpResponder& respond) {
  HttpResponder shared = respond;
  const bool posted = pool.Post([event = std::move(event), start = std::move(start), shared] {
    auto stream = std::make_shared<BodyStream>();
    bool head_sent = false;
    // The first event is sent on this thread (the head goes with it, once the object is known to
    // exist); later ones from the watch thread.
    Status s = start(
        [stream, shared, head_sent, event](const std::string& json) mutable {
          if (!head_sent) {
            head_sent = true;
            HttpResponse r;
            r.content_type = "text/event-stream";
            r.headers.emplace_back("Cache-Control", "no-cache");
            r.stream = stream;
            shared(std::move(r));
          }
          return stream->Write(json.empty() ? std::string(": keep-alive\n\n")
                                            : fmt::format("event: {}\ndata: {}\n\n", event, json));
        },
        [stream] { stream->End(); });
    if (!s.ok()) shared(ErrorResponse(s));
  });
  if (!posted) respond(ErrorResponse(Unavailable("too many requests in progress")));
}

void ServingRouter::StreamJobEvents(const std::string& id, std::shared_ptr<CancelToken> cancel,
                                    HttpResponder& respond) {
  StreamWatchEvents(jobs_pool_, "status", [this, id, cancel](auto send, auto end) {
    return jobs_->WatchJob(id, cancel, std::move(send), std::move(end));
  }, respond);
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
      work = [this, body = request.body, key = key ? *key : std::string(), caller = request.caller] {
        Result<SubmittedJob> job = jobs_->Submit(*body, key, caller);
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
      // The pool thread only reads the job once; a long-poll then waits on the watch thread.
      HttpResponder shared = respond;
      auto poll = [this, id, wait, shared] {
        Status s = jobs_->JobJson(id, wait, [shared](Result<std::string> job) { shared(FromResult(job)); });
        if (!s.ok()) shared(ErrorResponse(s));
      };
      if (!jobs_pool_.Post(std::move(poll))) respond(ErrorResponse(Unavailable("too many job requests in progress")));
      return;
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
