#pragma once
// Maps OIP v2 routes onto the api/ services and renders their results as HTTP. No model logic, no
// backend access. Thread-safe.
#include <memory>

#include "api/admin_service.h"
#include "api/batch_service.h"
#include "api/completion_service.h"
#include "api/inference_service.h"
#include "api/jobs_service.h"
#include "api/schedule_service.h"
#include "api/key_service.h"
#include "api/table_service.h"
#include "api/usage_service.h"
#include "common/thread_pool.h"
#include "http/cors.h"
#include "http/http_types.h"
#include "http/route_table.h"
#include "metrics/serving_metrics.h"

namespace ferry {

struct RouterOptions {
  size_t max_infer_body_bytes = 64 * 1024 * 1024;
  size_t max_other_body_bytes = 64 * 1024;
  size_t max_text_body_bytes = 8 * 1024 * 1024;  // completions and generate: prompts, not tensors
  size_t max_upload_bytes = size_t{1} << 30;     // POST /v1/files, spooled to disk, never held in memory
  std::string upload_spool_dir;                  // where uploads are spooled (the data folder's uploads/)
  std::vector<std::string> admin_allowed_hosts;  // Host names the loopback admin listener answers beside localhost
  // With an admin listener, admin routes are served there only (the main listener answers 403).
  bool admin_routes_on_admin_listener_only = false;
  CorsPolicy cors;  // cross-origin requests on the main listener (off by default; admin listeners never)
};

class ServingRouter final : public HttpHandler {
 public:
  // `jobs` and `completions` may be null: their routes then answer 404.
  ServingRouter(RouterOptions options, InferenceService* inference, AdminService* admin, ServingMetrics* metrics,
                JobsService* jobs = nullptr, CompletionService* completions = nullptr,
                BatchService* batches = nullptr);
  ~ServingRouter() override;
  // /v1/schedules and /v1/triggers answer 404 without it.
  void set_schedules(ScheduleService* schedules) { schedules_ = schedules; }
  // /v1/tables answers 404 without it.
  void set_tables(TableService* tables) { tables_ = tables; }
  // API keys: kInference routes (route_table.h) then pass KeyService::Authorize (the admin key passes
  // too); /v1/keys manages them. Without it keys are off.
  void set_keys(KeyService* keys) { keys_ = keys; }
  // /v1/usage answers 404 without it.
  void set_usage(UsageService* usage) { usage_ = usage; }

  size_t BodyLimit(std::string_view method, std::string_view path) const override;
  std::string SpoolFolder(std::string_view method, std::string_view path) const override;
  void Handle(HttpRequest&& request, std::shared_ptr<CancelToken> cancel, HttpResponder respond) override;
  void OnRejected(int status) override;
  // Public routes (health, metadata, /metrics) are answered while draining.
  bool AnswersWhileDraining(const HttpRequest& request) const override;
  std::shared_ptr<WebSocketEndpoint> OpenWebSocket(const HttpRequest& request,
                                                   std::shared_ptr<WebSocketSender> sender) override;
  std::optional<HttpResponse> RefuseUpgrade(HttpRequest& request) override;

 private:
  // OPTIONS with Access-Control-Request-Method, before the route table (cors null: CORS off here).
  HttpResponse Preflight(const HttpRequest& request, const CorsPolicy* cors) const;
  void HandleModelRoute(HttpRequest&& request, std::vector<std::string_view>& parts,
                        std::shared_ptr<CancelToken> cancel, HttpResponder& respond);
  void HandleRepositoryRoute(const HttpRequest& request, std::vector<std::string_view>& parts,
                             HttpResponder& respond);
  void Infer(HttpRequest&& request, std::string_view model, std::optional<int64_t> version,
             std::shared_ptr<CancelToken> cancel, HttpResponder& respond);
  // /v1/jobs... (jobs_routes.cc).
  void HandleJobsRoute(HttpRequest&& request, std::shared_ptr<CancelToken> cancel, std::vector<std::string_view>& parts,
                       HttpResponder& respond);
  // GET /v1/jobs/{id}/events: the job's status changes as Server-Sent Events, until it is final.
  void StreamJobEvents(const std::string& id, std::shared_ptr<CancelToken> cancel, HttpResponder& respond);
  // /v1/files..., /v1/batches... (batch_routes.cc).
  static bool IsBatchRoute(const std::vector<std::string_view>& parts);
  void HandleScheduleRoute(const HttpRequest& request, std::vector<std::string_view>& parts, HttpResponder& respond);
  // The answer refusing a caller the route's Access does not let through; nullopt lets it through and
  // sets request.caller (and caller_models) to whom (key_routes.cc).
  std::optional<HttpResponse> Authorize(const Route& route, HttpRequest& request,
                                        const std::vector<std::string_view>& parts);
  void HandleKeyRoute(const HttpRequest& request, std::vector<std::string_view>& parts, HttpResponder& respond);
  // /v1/usage, /v1/usage/config (usage_routes.cc).
  void HandleUsageRoute(const HttpRequest& request, std::vector<std::string_view>& parts, HttpResponder& respond);
  // /v1/tables... (batch_routes.cc): publishes and drops need the admin key.
  void HandleTableRoute(const HttpRequest& request, std::vector<std::string_view>& parts, HttpResponder& respond);
  void HandleBatchRoute(HttpRequest&& request, std::shared_ptr<CancelToken> cancel,
                        std::vector<std::string_view>& parts, HttpResponder& respond);
  void StreamBatchEvents(const std::string& id, std::shared_ptr<CancelToken> cancel, HttpResponder& respond);
  // /v1/models, /v1/completions, /v1/chat/completions, /v1/ws/generate (completion_routes.cc).
  static bool IsCompletionRoute(const std::vector<std::string_view>& parts);
  // /v1/ws/frames/{model}: a camera's frames in, one result per frame out (frame_routes.cc).
  static bool IsFrameRoute(const std::vector<std::string_view>& parts);
  std::shared_ptr<WebSocketEndpoint> OpenFrameSocket(std::string_view model, std::shared_ptr<WebSocketSender> sender,
                                                     const std::string& caller);
  void HandleFrameRoute(std::string_view model, HttpResponder& respond);
  // A request that generates text: it gets the text body limit and a disconnect watch.
  static bool IsTextGenerationPost(std::string_view method, std::string_view path);
  void HandleCompletionRoute(HttpRequest&& request, std::vector<std::string_view>& parts,
                             std::shared_ptr<CancelToken> cancel, HttpResponder& respond);
  // /v2/models/{m}/generate and generate_stream.
  void Generate(HttpRequest&& request, std::string_view model, bool stream, std::shared_ptr<CancelToken> cancel,
                HttpResponder& respond);

  const RouterOptions options_;
  InferenceService* inference_;
  AdminService* admin_;
  ServingMetrics* metrics_;
  JobsService* jobs_;
  CompletionService* completions_;
  BatchService* batches_;
  ScheduleService* schedules_ = nullptr;
  TableService* tables_ = nullptr;
  KeyService* keys_ = nullptr;
  UsageService* usage_ = nullptr;
  // Management calls block until a model settles: never on an I/O thread.
  ThreadPool admin_pool_{1, 16};
  // Job calls wait for store commits and long-polls: never on an I/O thread. A full queue answers 503.
  ThreadPool jobs_pool_{8, 256};
  // Batch and file calls read and write files: their own pool, so an upload never holds up a job call.
  ThreadPool batch_pool_{2, 64};
};

// Starts a watch on `pool` and streams what it sends as Server-Sent Events named `event` (an empty
// string as a keep-alive comment), ending the stream when the watch ends.
using WatchStart = std::function<Status(std::function<bool(const std::string&)> send, std::function<void()> end)>;
void StreamWatchEvents(ThreadPool& pool, std::string event, WatchStart start, HttpResponder& respond);

// Renders a Status as an HTTP error response ({"error": ...}, Retry-After when it applies).
HttpResponse ErrorResponse(const Status& status);
// The same with a body in another API's error shape (OpenAI's).
HttpResponse ErrorResponse(const Status& status, std::string body);
HttpResponse JsonResponse(int status, std::string body);
// 200 with the JSON body, or the error response of the Status.
HttpResponse FromResult(const Result<std::string>& result);
HttpResponse MethodNotAllowed(std::string_view allowed);
// The value of `name` in a request target's query string, or nullopt. Values are taken as sent (no
// percent-decoding: ids, states, page tokens, cursors and model names need none).
std::optional<std::string_view> QueryParam(std::string_view target, std::string_view name);

}  // namespace ferry
