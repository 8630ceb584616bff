#include "server/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <thread>

#include "backend/identity_backend.h"
#ifdef FERRY_WITH_OPENCV
#include "backend/opencv_dnn/opencv_dnn_backend.h"
#include "preprocess/image_preprocessor.h"
#endif
#ifdef FERRY_WITH_OPENVINO
#include "backend/openvino/openvino_backend.h"
#endif
#ifdef FERRY_WITH_LLAMA
#include "backend/llama_cpp/llama_backend.h"
#endif
#ifdef FERRY_WITH_XGBOOST
#include "backend/xgboost/xgboost_backend.h"
#endif
#include "api/generation_metrics.h"

namespace ferry {

std::unique_ptr<BackendRegistry> MakeDefaultBackends() {
  auto registry = std::make_unique<BackendRegistry>();
  registry->Register(MakeIdentityBackend());
#ifdef FERRY_WITH_OPENCV
  registry->Register(MakeOpenCvDnnBackend());
#endif
#ifdef FERRY_WITH_OPENVINO
  registry->Register(MakeOpenVinoBackend());
#endif
#ifdef FERRY_WITH_LLAMA
  registry->Register(MakeLlamaBackend());
#endif
#ifdef FERRY_WITH_XGBOOST
  registry->Register(MakeXgboostBackend());
#endif
  return registry;
}

Result<std::unique_ptr<Server>> Server::Create(ServerOptions options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(options.model_repository, ec)) {
    return InvalidArgument(fmt::format("model repository '{}' is not a readable folder",
                                       options.model_repository.string()));
  }
  if (options.admin.management_enabled && options.admin.admin_key.empty()) {
    return InvalidArgument("model management needs an admin key");
  }
  std::unique_ptr<Server> s(new Server(std::move(options)));
  s->backends_ = MakeDefaultBackends();
  s->repository_ = std::make_unique<ModelRepository>(s->options_.model_repository);
  s->metrics_ = std::make_unique<ServingMetrics>();
  if (s->backends_->Find(s->options_.default_onnx_backend) == nullptr) {
    return InvalidArgument(fmt::format("default ONNX backend '{}' is not in this build (it has: {})",
                                       s->options_.default_onnx_backend,
                                       fmt::join(s->backends_->Names(), ", ")));
  }
  ServingMetrics* metrics = s->metrics_.get();
  s->factory_ = std::make_unique<BackendServableFactory>(
      s->backends_.get(), s->options_.default_onnx_backend,
      [metrics](const std::string& model) { return MakeGenerationMetricsObserver(metrics, model); },
#if FERRY_WITH_OPENCV
      CreateImagePreprocessor
#else
      nullptr
#endif
  );
  ModelManagerOptions manager_options;
  manager_options.loader_threads = s->options_.loader_threads;
  manager_options.on_load = [metrics](const std::string& model, int64_t version, double seconds, const Status& st) {
    metrics->ObserveLoad(model, std::to_string(version), seconds, st.ok());
  };
  s->manager_ = std::make_unique<ModelManager>(std::move(manager_options), s->factory_.get());
  s->watcher_ = std::make_unique<RepositoryWatcher>(s->repository_.get(), s->manager_.get());
  s->inference_ = std::make_unique<InferenceService>(s->manager_.get(), s->metrics_.get());
  s->completions_ = std::make_unique<CompletionService>(s->manager_.get());
  s->admin_ = std::make_unique<AdminService>(s->options_.admin, s->manager_.get(), s->watcher_.get(),
                                             s->repository_.get());
  if (s->options_.jobs_enabled) {
    SqliteJobStoreOptions store_options;
    store_options.path = s->options_.data_dir / "jobs.db";
    store_options.durability = s->options_.job_durability;
    store_options.max_active_jobs = s->options_.max_active_jobs;
    Result<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(std::move(store_options));
    if (!store.ok()) return store.status().WithContext("opening the job store (--data-dir)");
    s->job_store_ = std::move(store).value();
    s->jobs_ = std::make_unique<JobsService>(s->job_store_.get(), s->inference_.get());
    std::vector<IpNetwork> allowed;
    for (const std::string& cidr : s->options_.webhook_allow) {
      Result<IpNetwork> network = ParseIpNetwork(cidr);
      if (!network.ok()) return network.status().WithContext("--webhook-allow");
      allowed.push_back(*network);
    }
    s->jobs_->set_webhook_allow_list(allowed);
    WebhookDelivererOptions webhook_options;
    webhook_options.allowed = std::move(allowed);
    webhook_options.timeout = s->options_.webhook_timeout;
    webhook_options.first_backoff = s->options_.webhook_backoff;
    webhook_options.max_attempts = s->options_.webhook_max_attempts;
    for (const std::string& entry : s->options_.webhook_resolve) {
      const size_t eq = entry.find('=');
      std::optional<IpAddress> address = eq == std::string::npos ? std::nullopt : ParseIpAddress(entry.substr(eq + 1));
      if (eq == 0 || !address) {
        return InvalidArgument(fmt::format("--webhook-resolve '{}': expected host=address", entry));
      }
      webhook_options.resolve[NormalizeHostName(entry.substr(0, eq))] = *address;
    }
    s->webhook_client_ = std::make_unique<WebhookClient>();
    WebhookDelivererObserver webhook_observer;
    webhook_observer.attempted = [metrics](const std::string& outcome, std::chrono::duration<double> took) {
      metrics->ObserveWebhookAttempt(outcome, took.count());
    };
    s->webhook_deliverer_ = std::make_unique<WebhookDeliverer>(
        s->job_store_.get(), s->webhook_client_->AsPost(),
        [jobs = s->jobs_.get()](const WebhookDelivery& d) { return jobs->WebhookPayload(d); },
        std::move(webhook_options), std::move(webhook_observer));
    s->jobs_->set_on_cancelled([deliverer = s->webhook_deliverer_.get()] { deliverer->Wake(); });
    JobRunnerOptions runner_options;
    runner_options.concurrency = s->options_.job_concurrency;
    JobRunnerObserver observer;
    observer.started = [metrics](const Job& job) {
      const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch()).count();
      metrics->ObserveJobStart(job.spec.model, std::max<int64_t>(0, now_ms - job.created_ms) / 1000.0);
    };
    observer.ended = [metrics, deliverer = s->webhook_deliverer_.get()](
                         const std::string& model, std::chrono::duration<double> run, const std::string& outcome) {
      metrics->ObserveJobEnd(model, run.count(), outcome);
      deliverer->Wake();  // the job may now have a delivery to send
    };
    observer.counts = [metrics](const JobCounts& c) {
      for (auto [state, n] : {std::pair{JobState::kQueued, c.queued}, {JobState::kRunning, c.running},
                              {JobState::kSucceeded, c.succeeded}, {JobState::kFailed, c.failed},
                              {JobState::kCancelled, c.cancelled}}) {
        metrics->SetJobCount(std::string(JobStateName(state)), static_cast<double>(n));
      }
    };
    s->job_runner_ = std::make_unique<JobRunner>(s->job_store_.get(), s->jobs_->Executor(), runner_options,
                                                 std::move(observer));
    s->jobs_->set_on_submitted([runner = s->job_runner_.get()] { runner->Wake(); });
    s->jobs_->set_completions(s->completions_.get());
  }
  s->router_ = std::make_unique<ServingRouter>(s->options_.router, s->inference_.get(), s->admin_.get(),
                                               s->metrics_.get(), s->jobs_.get(), s->completions_.get());
  FERRY_ASSIGN_OR_RETURN(s->http_, HttpServer::Create(s->options_.http, s->router_.get()));
  return s;
}

Server::~Server() { Drain(); }

Status Server::Start() {
  // Every mode loads what the repository holds at start; then poll mode follows the disk, explicit
  // mode changes only on API calls, and none never changes.
  FERRY_RETURN_IF_ERROR(watcher_->PollOnce());
  http_->Start();  // health answers "not ready" while the first loads run
  spdlog::info("listening on {}:{}", options_.http.address, http_->port());
  if (!manager_->WaitUntilIdle(options_.startup_timeout)) {
    spdlog::warn("models still loading after {} s; serving those that are ready",
                 std::chrono::duration_cast<std::chrono::seconds>(options_.startup_timeout).count());
  }
  for (const VersionStatus& s : manager_->Index()) {
    spdlog::info("model '{}' version {}: {}{}{}", s.model, s.version, VersionStateName(s.state),
                 s.reason.empty() ? "" : " - ", s.reason);
  }
  if (options_.control_mode == ModelControlMode::kPoll) watcher_->StartPolling(options_.poll_interval);
  // Jobs start once the first loads settled; those accepted before a restart run now.
  if (job_runner_) job_runner_->Start();
  if (webhook_deliverer_) webhook_deliverer_->Start();
  admin_->SetReady(true);
  return Status::Ok();
}

bool Server::Drain() {
  if (drained_) return true;
  drained_ = true;
  // Create() may have failed part way (a port in use): only what was built is torn down.
  if (!http_) {
    if (manager_) manager_->Shutdown();
    return true;
  }
  admin_->SetReady(false);
  watcher_->Stop();
  http_->BeginDrain();
  const auto deadline = std::chrono::steady_clock::now() + options_.exit_timeout;
  bool clean = true;
  while (http_->RequestsInFlight() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      clean = false;
      spdlog::warn("exit timeout reached with {} requests in flight", http_->RequestsInFlight());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  http_->Stop();
  // Streams still open past the exit timeout have nobody left to read them.
  completions_->CancelAll();
  if (job_runner_) {
    // Jobs in flight finish while the models still serve; any left keep their leases and run again.
    const auto left = std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                 deadline - std::chrono::steady_clock::now()));
    job_runner_->Stop(left);
  }
  if (webhook_deliverer_) {
    // Attempts still unanswered are made again after a restart (their leases expire).
    webhook_deliverer_->Stop(std::chrono::milliseconds(std::min<int64_t>(1000, options_.webhook_timeout.count())));
    webhook_client_.reset();
  }
  manager_->Shutdown();
  return clean;
}

}  // namespace ferry
