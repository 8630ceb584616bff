#include "http/serving_router.h"

#include <fmt/format.h>

#include <charconv>

#include "api/status_mapping.h"
#include "http/route_table.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

HttpResponse Json(int status, std::string body) { return JsonResponse(status, std::move(body)); }

constexpr std::string_view kNotFound =
    "not found; Ferry serves /v2/... (KServe v2), /v1/completions, /v1/chat/completions, /v1/models, "
    "/v1/jobs, /v1/batches, /v1/files and /metrics";

}  // namespace

HttpResponse ServingRouter::Preflight(const HttpRequest& request, const CorsPolicy* cors) const {
  // Preflights carry no key (browsers send none): the policy and the table's methods decide.
  static const CorsPolicy kOff;
  Result<CorsPolicy::Headers> headers =
      (cors != nullptr ? *cors : kOff).Preflight(request, MatchRoute("OPTIONS", request.Path()).allowed);
  if (!headers.ok()) return ErrorResponse(headers.status());
  HttpResponse r = Json(204, "");
  r.headers = std::move(headers).value();
  return r;
}

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

HttpResponse FromResult(const Result<std::string>& result) {
  return result.ok() ? Json(200, result.value()) : ErrorResponse(result.status());
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse MethodNotAllowed(std::string_view allowed) {
  HttpResponse r = JsonResponse(405, EncodeErrorJson(fmt::format("method not allowed; use {}", allowed)));
  r.headers.emplace_back("Allow", std::string(allowed));
  return r;
}

HttpResponse ErrorResponse(const Status& status) { return ErrorResponse(status, EncodeErrorJson(status.message())); }

HttpResponse ErrorResponse(const Status& status, std::string body) {
  HttpResponse r = Json(HttpStatusFor(status.code()), std::move(body));
  const int64_t retry = status.retry_after_s() > 0 ? status.retry_after_s() : RetryAfterSecondsFor(status.code());
  if (retry > 0) r.headers.emplace_back("Retry-After", std::to_string(retry));
  return r;
}

ServingRouter::ServingRouter(RouterOptions options, InferenceService* inference, AdminService* admin,
                             ServingMetrics* metrics, JobsService* jobs, CompletionService* completions,
                             BatchService* batches)
    : options_(options), inference_(inference), admin_(admin), metrics_(metrics), jobs_(jobs),
      completions_(completions), batches_(batches) {}

ServingRouter::~ServingRouter() {
  admin_pool_.Stop();
  jobs_pool_.Stop();
  batch_pool_.Stop();
}

size_t ServingRouter::BodyLimit(std::string_view method, std::string_view path) const {
  if (method == "POST" && ((path.size() >= 6 && path.substr(path.size() - 6) == "/infer") || path == "/v1/jobs")) {
    return options_.max_infer_body_bytes;
  }
  if (IsTextGenerationPost(method, path)) return options_.max_text_body_bytes;
  if (method == "POST" && path == "/v1/files" && batches_ != nullptr) return options_.max_upload_bytes;
  if (method == "PUT" && path.starts_with("/v1/tables/")) return options_.max_infer_body_bytes;
  return options_.max_other_body_bytes;
}

void ServingRouter::OnRejected(int status) { metrics_->CountHttpRequest("rejected", status); }

void ServingRouter::Handle(HttpRequest&& request, std::shared_ptr<CancelToken> cancel, HttpResponder respond) {
  std::vector<std::string_view> parts = SplitPath(request.Path());
  const std::string& method = request.method;
  // Count every answer by route class; the responder is called exactly once.
  std::string route = parts.size() >= 3 && parts[0] == "v2" && parts[1] == "models" && parts.back() == "infer"
                          ? "infer" : (parts.size() >= 2 ? std::string(parts[1]) : "other");
  const CorsPolicy* cors = request.listener == Listener::kMain && options_.cors.enabled() ? &options_.cors : nullptr;
  std::optional<std::string> origin;
  if (const std::string* o = request.Header("origin"); cors != nullptr && o != nullptr) origin = *o;
  HttpResponder counted = [this, route = std::move(route), respond = std::move(respond), cors,
                           origin = std::move(origin)](HttpResponse&& r) {
    metrics_->CountHttpRequest(route, r.status);
    if (origin) cors->Decorate(&*origin, &r);
    respond(std::move(r));
  };
  if (method == "OPTIONS" && request.Header("access-control-request-method") != nullptr) {
    return counted(Preflight(request, cors));
  }

  if (parts.size() == 1 && parts[0] == "metrics") {
    if (method != "GET") return counted(MethodNotAllowed("GET"));
    inference_->UpdateGauges();
    HttpResponse r = Json(200, metrics_->Render());
    r.content_type = "text/plain; version=0.0.4";
    return counted(std::move(r));
  }
  // The route table decides first: no row, no route; then its access rule.
  const RouteMatch match = MatchRoute(method, request.Path());
  if (match.route == nullptr && !match.allowed.empty()) return counted(MethodNotAllowed(match.allowed));
  if (match.route == nullptr) {
    return counted(Json(404, EncodeErrorJson(kNotFound)));
  }
  if (std::optional<HttpResponse> refused = Authorize(*match.route, request, parts)) {
    return counted(std::move(*refused));
  }
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "keys") return HandleKeyRoute(request, parts, counted);
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "usage") return HandleUsageRoute(request, parts, counted);
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "jobs" && jobs_ != nullptr) {
    return HandleJobsRoute(std::move(request), std::move(cancel), parts, counted);
  }
  if (IsBatchRoute(parts)) return HandleBatchRoute(std::move(request), std::move(cancel), parts, counted);
  if (IsCompletionRoute(parts)) return HandleCompletionRoute(std::move(request), parts, cancel, counted);
  if (IsFrameRoute(parts)) return HandleFrameRoute(parts[3], counted);
  if (parts.empty() || parts[0] != "v2") {
    return counted(Json(404, EncodeErrorJson(kNotFound)));
  }
  if (parts.size() == 1) {
    if (method != "GET") return counted(MethodNotAllowed("GET"));
    return counted(Json(200, admin_->ServerMetadataJson()));
  }
  if (parts[1] == "health" && parts.size() == 3) {
    if (method != "GET") return counted(MethodNotAllowed("GET"));
    if (parts[2] == "live") return counted(Json(200, "{\"live\":true}"));
    if (parts[2] == "ready") {
      return counted(admin_->Ready() ? Json(200, "{\"ready\":true}")
                                     : ErrorResponse(Unavailable("the server is not ready")));
    }
  }
  if (parts[1] == "models" && parts.size() >= 3) return HandleModelRoute(std::move(request), parts, cancel, counted);
  if (parts[1] == "repository") return HandleRepositoryRoute(request, parts, counted);
  counted(Json(404, EncodeErrorJson("not found")));
}

void ServingRouter::HandleModelRoute(HttpRequest&& request, std::vector<std::string_view>& parts,
                                     std::shared_ptr<CancelToken> cancel, HttpResponder& respond) {
  // /v2/models/{m}[/versions/{v}][/ready|/config|/infer]
  const std::string model(parts[2]);
  std::optional<int64_t> version;
  size_t next = 3;
  if (parts.size() >= 5 && parts[3] == "versions") {
    Result<int64_t> v = ParseVersion(parts[4]);
    if (!v.ok()) return respond(ErrorResponse(v.status()));
    version = *v;
    next = 5;
  }
  const std::string_view action = next < parts.size() ? parts[next] : std::string_view();
  if (next + 1 < parts.size() || (next < parts.size() && action != "ready" && action != "config" &&
                                  action != "infer" && action != "generate" && action != "generate_stream")) {
    return respond(Json(404, EncodeErrorJson("not found")));
  }
  const std::string& method = request.method;
  if (action == "generate" || action == "generate_stream") {
    return Generate(std::move(request), model, action == "generate_stream", std::move(cancel), respond);
  }
  if (action == "infer") {
    if (method != "POST") return respond(MethodNotAllowed("POST"));
    return Infer(std::move(request), model, version, std::move(cancel), respond);
  }
  if (method != "GET") return respond(MethodNotAllowed("GET"));
  if (action == "ready") {
    Status s = inference_->ModelReady(model, version);
    return respond(s.ok() ? Json(200, "{\"ready\":true}") : ErrorResponse(s));
  }
  if (action == "config") return respond(FromResult(inference_->ModelConfigJson(model, version)));
  respond(FromResult(inference_->ModelMetadataJson(model, version)));
}

void ServingRouter::HandleRepositoryRoute(const HttpRequest& request, std::vector<std::string_view>& parts,
                                          HttpResponder& respond) {
  // POST /v2/repository/index, POST /v2/repository/models/{m}/load|unload
  const bool is_index = parts.size() == 3 && parts[2] == "index";
  const bool is_action = parts.size() == 5 && parts[2] == "models" && (parts[4] == "load" || parts[4] == "unload");
  if (!is_index && !is_action) return respond(Json(404, EncodeErrorJson("not found")));
  if (request.method != "POST") return respond(MethodNotAllowed("POST"));
  if (is_index) return respond(FromResult(admin_->RepositoryIndexJson(*request.body, request.caller_models)));
  const std::string model(parts[3]);
  const bool load = parts[4] == "load";
  HttpResponder shared = respond;
  const bool posted = admin_pool_.Post([this, model, load, shared] {
    Status s = load ? admin_->LoadModel(model) : admin_->UnloadModel(model);
    shared(s.ok() ? Json(200, "{}") : ErrorResponse(s));
  });
  if (!posted) respond(ErrorResponse(Unavailable("too many model management calls in progress")));
}

void ServingRouter::Infer(HttpRequest&& request, std::string_view model, std::optional<int64_t> version,
                          std::shared_ptr<CancelToken> cancel, HttpResponder& respond) {
  if (const std::string* encoding = request.Header("content-encoding");
      encoding != nullptr && *encoding != "identity") {
    return respond(Json(415, EncodeErrorJson(fmt::format("unsupported Content-Encoding '{}'", encoding->substr(0, 32)))));
  }
  // An unknown model is a 404 whatever the body holds, and costs no decoding.
  if (Status ready = inference_->ModelReady(model, version); !ready.ok()) return respond(ErrorResponse(ready));
  std::optional<size_t> json_size;
  if (const std::string* header = request.Header("inference-header-content-length")) {
    size_t value = 0;
    auto [end, ec] = std::from_chars(header->data(), header->data() + header->size(), value);
    if (ec != std::errc() || end != header->data() + header->size()) {
      return respond(ErrorResponse(InvalidArgument("Inference-Header-Content-Length must be a non-negative integer")));
    }
    json_size = value;
  }
  Result<InferRequest> decoded = DecodeInferRequest(request.body, json_size);
  if (!decoded.ok()) return respond(ErrorResponse(decoded.status()));
  decoded->caller = request.caller;
  if (const std::string* cache_control = request.Header("cache-control")) {
    decoded->cache_bypass = cache_control->find("no-cache") != std::string::npos ||
                            cache_control->find("no-store") != std::string::npos;
  }

  HttpResponder done = std::move(respond);
  inference_->Infer(model, version, std::move(decoded).value(), std::move(cancel),
                    [done](Result<InferResponse> result) {
                      if (!result.ok()) return done(ErrorResponse(result.status()));
                      EncodedResponse encoded = EncodeInferResponse(*result);
                      HttpResponse r;
                      auto source = result->parameters.find("ferry_source");
                      const std::string* name =
                          source == result->parameters.end() ? nullptr : std::get_if<std::string>(&source->second);
                      r.headers.emplace_back("x-ferry-source", name != nullptr ? *name : "live");
                      r.headers.emplace_back("x-ferry-compute-us", std::to_string(result->compute_us));
                      if (auto cold = result->parameters.find("ferry_cold_start_ms"); cold != result->parameters.end()) {
                        if (const int64_t* ms = std::get_if<int64_t>(&cold->second)) {
                          r.headers.emplace_back("x-ferry-cold-start-ms", std::to_string(*ms));
                        }
                      }
                      if (encoded.body.size() > encoded.json_size) {
                        r.content_type = "application/octet-stream";
                        r.headers.emplace_back("Inference-Header-Content-Length", std::to_string(encoded.json_size));
                      }
                      r.body = std::move(encoded.body);
                      done(std::move(r));
                    });
}

}  // namespace ferry
