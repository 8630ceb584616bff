#include "server/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <thread>

#include "backend/identity_backend.h"
#ifdef FERRY_WITH_OPENCV
#include "backend/opencv_dnn/opencv_dnn_backend.h"
#include "preprocess/text_features.h"
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
#include "http/route_table.h"
#include "http/smtp_client.h"

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

std::unique_ptr<BackendServableFactory> MakeServableFactory(BackendRegistry* backends,
                                                           const std::string& default_onnx_backend,
                                                           ServingMetrics* metrics) {
  return std::make_unique<BackendServableFactory>(
      backends, default_onnx_backend,
      [metrics](const std::string& model) { return MakeGenerationMetricsObserver(metrics, model); },
#if FERRY_WITH_OPENCV
      CreatePreprocessor
#else
      nullptr
#endif
  );
}

Result<std::unique_ptr<Server>> Server::Create(ServerOptions options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(options.model_repository, ec)) {
    return InvalidArgument(fmt::format("model repository '{}' is not a readable folder",
                                       options.model_repository.string()));
  }
  if (options.admin_http) {
    // Beyond loopback its callers are whoever reaches the port: they need the admin key like anyone.
    const bool loopback = IsLoopbackAddress(options.admin_http->address);
    options.admin_http->listener = loopback ? Listener::kTrustedAdmin : Listener::kAdmin;
    if (!loopback && options.admin.admin_key.empty()) {
      return InvalidArgument(fmt::format("an admin listener beyond loopback ({}) needs --admin-key",
                                         options.admin_http->address));
    }
  }
  options.router.admin_routes_on_admin_listener_only = options.admin_http.has_value();
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
  s->factory_ = MakeServableFactory(s->backends_.get(), s->options_.default_onnx_backend, metrics);
  s->factory_->set_on_scale([metrics](const std::string& model, int64_t version, int delta, size_t instances,
                                      const std::string& why) {
    metrics->ObserveScale(model, std::to_string(version), delta, static_cast<double>(instances));
    spdlog::info("model '{}' version {}: scaled {} to {} instances ({})", model, version, delta > 0 ? "up" : "down",
                 instances, why);
  });
  ModelManagerOptions manager_options;
  manager_options.loader_threads = s->options_.loader_threads;
  manager_options.on_load = [metrics](const std::string& model, int64_t version, double seconds, const Status& st) {
    metrics->ObserveLoad(model, std::to_string(version), seconds, st.ok());
  };
  manager_options.on_cold_start = [metrics](const std::string& model, int64_t version, double seconds,
                                            const Status& st) {
    if (st.ok()) metrics->ObserveColdStart(model, seconds);
    spdlog::info("model '{}' version {} woke in {:.0f} ms{}", model, version, seconds * 1000,
                 st.ok() ? "" : " and failed: " + st.message());
  };
  manager_options.default_idle_unload = s->options_.idle_unload;
  manager_options.default_cold_start_timeout = s->options_.cold_start_timeout;
  manager_options.memory_budget_bytes = s->options_.model_memory_budget_bytes;
  s->manager_ = std::make_unique<ModelManager>(std::move(manager_options), s->factory_.get());
  s->watcher_ = std::make_unique<RepositoryWatcher>(s->repository_.get(), s->manager_.get());
  s->inference_ = std::make_unique<InferenceService>(s->manager_.get(), s->metrics_.get());
  s->completions_ = std::make_unique<CompletionService>(s->manager_.get());
  s->inference_->SetConcurrencyLimits(&s->concurrency_limits_);
  s->completions_->SetConcurrencyLimits(&s->concurrency_limits_);
  s->admin_ = std::make_unique<AdminService>(s->options_.admin, s->manager_.get(), s->watcher_.get(),
                                             s->repository_.get());
  FERRY_RETURN_IF_ERROR(s->BuildHybrid());
  FERRY_RETURN_IF_ERROR(s->BuildKeys());
  if (s->options_.jobs_enabled) {
    FERRY_RETURN_IF_ERROR(s->BuildJobs());
    FERRY_RETURN_IF_ERROR(s->BuildBatches());
    FERRY_RETURN_IF_ERROR(s->BuildSchedules());
  }
  FERRY_RETURN_IF_ERROR(s->BuildUsage());
  s->options_.router.upload_spool_dir = (s->options_.data_dir / "uploads").string();
  s->router_ = std::make_unique<ServingRouter>(s->options_.router, s->inference_.get(), s->admin_.get(),
                                               s->metrics_.get(), s->jobs_.get(), s->completions_.get(),
                                               s->batches_.get());
  s->router_->set_schedules(s->schedules_.get());
  s->router_->set_tables(s->tables_.get());
  s->router_->set_keys(s->keys_.get());
  s->router_->set_usage(s->usage_.get());
  FERRY_ASSIGN_OR_RETURN(s->http_, HttpServer::Create(s->options_.http, s->router_.get()));
  if (s->options_.admin_http) {
    FERRY_ASSIGN_OR_RETURN(s->admin_http_, HttpServer::Create(*s->options_.admin_http, s->router_.get()));
  }
  return s;
}

Status Server::BuildHybrid() {
  SqliteTableStoreOptions table_options;
  table_options.memory_budget_bytes = options_.table_memory_bytes;
  Result<std::unique_ptr<SqliteTableStore>> store = SqliteTableStore::Open(options_.data_dir / "tables.db", table_options);
  if (!store.ok()) return store.status().WithContext("opening the table store (--data-dir)");
  table_store_ = std::move(store).value();
  if (options_.response_cache_bytes > 0) response_cache_ = std::make_unique<ResponseCache>(options_.response_cache_bytes);
  tables_ = std::make_unique<TableService>(table_store_.get(), manager_.get(), options_.data_dir / "uploads",
                                           &WallClock::Real());
  inference_->SetHybrid(InferenceService::Hybrid{table_store_.get(), response_cache_.get(), &WallClock::Real()});
  return Status::Ok();
}

Status Server::BuildKeys() {
  Result<std::unique_ptr<KeyRegistry>> registry = KeyRegistry::Open(options_.data_dir / "keys.db");
  if (!registry.ok()) return registry.status().WithContext("opening the key store (--data-dir)");
  key_registry_ = std::move(registry).value();
  if (!options_.api_keys_file.empty()) {
    FERRY_RETURN_IF_ERROR(key_registry_->LoadFile(options_.api_keys_file).WithContext("--api-keys-file"));
  }
  if (options_.require_api_keys && key_registry_->List().empty() && options_.admin.admin_key.empty()) {
    return InvalidArgument("--require-api-keys with no key and no --admin-key would refuse every call");
  }
  keys_ = std::make_unique<KeyService>(key_registry_.get(), options_.require_api_keys);
  if (options_.require_api_keys) completions_->SetKeys(key_registry_.get());
  return Status::Ok();
}

Status Server::BuildJobs() {
  ServingMetrics* metrics = metrics_.get();
  SqliteJobStoreOptions store_options;
  store_options.path = options_.data_dir / "jobs.db";
  store_options.durability = options_.job_durability;
  store_options.max_active_jobs = options_.max_active_jobs;
  Result<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(std::move(store_options));
  if (!store.ok()) return store.status().WithContext("opening the job store (--data-dir)");
  job_store_ = std::move(store).value();
  jobs_ = std::make_unique<JobsService>(job_store_.get(), inference_.get());
  std::vector<IpNetwork> allowed;
  for (const std::string& cidr : options_.webhook_allow) {
    Result<IpNetwork> network = ParseIpNetwork(cidr);
    if (!network.ok()) return network.status().WithContext("--webhook-allow");
    allowed.push_back(*network);
  }
  jobs_->set_webhook_allow_list(allowed);
  WebhookDelivererOptions webhook_options;
  webhook_options.allowed = std::move(allowed);
  webhook_options.timeout = options_.webhook_timeout;
  webhook_options.first_backoff = options_.webhook_backoff;
  webhook_options.max_attempts = options_.webhook_max_attempts;
  for (const std::string& entry : options_.webhook_resolve) {
    const size_t eq = entry.find('=');
    std::optional<IpAddress> address = eq == std::string::npos ? std::nullopt : ParseIpAddress(entry.substr(eq + 1));
    if (eq == 0 || !address) {
      return InvalidArgument(fmt::format("--webhook-resolve '{}': expected host=address", entry));
    }
    webhook_options.resolve[NormalizeHostName(entry.substr(0, eq))] = *address;
  }
  webhook_client_ = std::make_unique<WebhookClient>();
  WebhookDelivererObserver webhook_observer;
  webhook_observer.attempted = [metrics](const std::string& outcome, std::chrono::duration<double> took) {
    metrics->ObserveWebhookAttempt(outcome, took.count());
  };
  webhook_deliverer_ = std::make_unique<WebhookDeliverer>(
      job_store_.get(), webhook_client_->AsPost(),
      [jobs = jobs_.get()](const WebhookDelivery& d) { return jobs->WebhookPayload(d); },
      std::move(webhook_options), std::move(webhook_observer));
  jobs_->set_on_cancelled([deliverer = webhook_deliverer_.get()] { deliverer->Wake(); });
  JobRunnerOptions runner_options;
  runner_options.concurrency = options_.job_concurrency;
  JobRunnerObserver observer;
  observer.started = [metrics](const Job& job) {
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
    metrics->ObserveJobStart(job.spec.model, std::max<int64_t>(0, now_ms - job.created_ms) / 1000.0);
  };
  observer.ended = [metrics, deliverer = webhook_deliverer_.get()](
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
  job_runner_ = std::make_unique<JobRunner>(job_store_.get(), jobs_->Executor(), runner_options,
                                               std::move(observer));
  jobs_->set_on_submitted([runner = job_runner_.get()] { runner->Wake(); });
  jobs_->set_completions(completions_.get());
  return Status::Ok();
}

Status Server::BuildBatches() {
  SqliteBatchStoreOptions store_options;
  store_options.path = options_.data_dir / "batches.db";
  Result<std::unique_ptr<SqliteBatchStore>> store = SqliteBatchStore::Open(std::move(store_options));
  if (!store.ok()) return store.status().WithContext("opening the batch store (--data-dir)");
  batch_store_ = std::move(store).value();
  // The data folder belongs to this server: leases left by an earlier process are nobody's now, so its
  // batches resume at once instead of after their leases expire.
  FERRY_RETURN_IF_ERROR(batch_store_->ReleaseAllLeases());
  const std::filesystem::path uploads = options_.data_dir / "uploads";
  std::error_code ec;
  std::filesystem::remove_all(uploads, ec);  // bodies of uploads cut off by a crash
  std::filesystem::create_directories(uploads, ec);
  if (ec) return Unavailable(fmt::format("cannot create '{}': {}", uploads.string(), ec.message()));
  BatchServiceOptions service_options;
  service_options.data_dir = options_.data_dir;
  service_options.input_root = options_.batch_input_root;
  service_options.output_root = options_.batch_output_root;
  service_options.max_file_bytes = static_cast<int64_t>(options_.router.max_upload_bytes);
  batches_ = std::make_unique<BatchService>(
      batch_store_.get(), BatchServices{inference_.get(), completions_.get(), manager_.get(), tables_.get()}, service_options);
  BatchSchedulerOptions scheduler_options;
  scheduler_options.concurrency = options_.batch_concurrency;
  scheduler_options.run.checkpoint_every_records = options_.batch_checkpoint_records;
  scheduler_options.run.checkpoint_every = options_.batch_checkpoint_interval;
  ServingMetrics* metrics = metrics_.get();
  BatchSchedulerObserver observer;
  observer.records = [metrics](int64_t completed, int64_t failed) { metrics->CountBatchRecords(completed, failed); };
  observer.ended = [metrics](const BatchRunResult& r, std::chrono::duration<double> run) {
    metrics->ObserveBatchRun(std::string(BatchStateName(r.state)), run.count());
  };
  observer.running = [metrics](size_t n) { metrics->SetBatchesRunning(static_cast<double>(n)); };
  batch_scheduler_ = std::make_unique<BatchScheduler>(batch_store_.get(), batches_->ExecutorFactory(),
                                                      std::move(scheduler_options), std::move(observer));
  batches_->set_on_change([scheduler = batch_scheduler_.get()] { scheduler->Wake(); });
  return Status::Ok();
}

Status Server::BuildSchedules() {
  Result<std::unique_ptr<SqliteScheduleStore>> store = SqliteScheduleStore::Open(options_.data_dir / "schedules.db");
  if (!store.ok()) return store.status().WithContext("opening the schedule store (--data-dir)");
  schedule_store_ = std::move(store).value();
  BatchService* batches = batches_.get();
  BatchLauncher launcher;
  launcher.launch = [batches](const BatchOrder& o) { return batches->Launch(o); };
  launcher.running = [batches](const std::string& id) { return batches->BatchRunning(id); };
  launcher.outcome = [batches](const std::string& id) { return batches->BatchOutcome(id); };
  launcher.check = [batches](const BatchTemplate& t) { return batches->CheckTemplate(t); };
  ServingMetrics* metrics = metrics_.get();
  ScheduleRunnerOptions runner_options;
  runner_options.input_root = options_.batch_input_root;
  ScheduleRunnerObserver runner_observer;
  runner_observer.ticked = [metrics](const std::string& name, std::string_view outcome, int64_t n) {
    metrics->CountScheduleSlots(name, std::string(outcome), n);
  };
  runner_observer.next_run = [metrics](const std::string& name, std::optional<int64_t> next) {
    metrics->SetScheduleNextRun(name, static_cast<double>(next.value_or(0)));
  };
  schedule_runner_ = std::make_unique<ScheduleRunner>(schedule_store_.get(), launcher, std::move(runner_options),
                                                      std::move(runner_observer));
  FolderTriggerOptions trigger_options;
  trigger_options.input_root = options_.batch_input_root;
  trigger_options.rescan_every = options_.trigger_rescan_interval;
  FolderTriggerObserver trigger_observer;
  trigger_observer.file = [metrics](const std::string& trigger, std::string_view outcome) {
    metrics->CountTriggerFile(trigger, std::string(outcome));
  };
  triggers_ = std::make_unique<FolderTriggers>(schedule_store_.get(), launcher, std::move(trigger_options),
                                               std::move(trigger_observer));
  schedules_ = std::make_unique<ScheduleService>(schedule_runner_.get(), triggers_.get());
  return Status::Ok();
}

Status Server::BuildUsage() {
  std::filesystem::path file = options_.costs_file;
  std::error_code ec;
  if (file.empty()) file = options_.data_dir / "costs.yaml";
  CostConfig config;
  if (!options_.costs_file.empty() || std::filesystem::exists(file, ec)) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return InvalidArgument(fmt::format("--costs: cannot read '{}'", file.string()));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      return InvalidArgument(fmt::format("--costs: '{}' is empty; write {{}} for no prices and no budgets", file.string()));
    }
    Result<CostConfig> parsed = ParseCostConfig(text);
    if (!parsed.ok()) return parsed.status().WithContext("--costs " + file.string());
    config = std::move(parsed).value();
  }
  if (config.webhook && !job_store_) spdlog::warn("--costs: alert webhooks need jobs on (their outbox is the job store's)");
  UsageLedgerOptions ledger_options;
  ledger_options.path = options_.data_dir / "usage.db";
  if (job_store_) {
    ledger_options.notify = [store = job_store_.get(), deliverer = webhook_deliverer_.get()](const BudgetAlert& a) {
      FERRY_RETURN_IF_ERROR(store->AddNotice(a.id, a.webhook->url, a.webhook->secret, "budget.alert",
                                             UsageService::AlertJson(a)));
      deliverer->Wake();
      return Status::Ok();
    };
  }
  ledger_options.mail_queued = [this] {
    if (alert_mailer_) alert_mailer_->Wake();
  };
  Result<std::unique_ptr<UsageLedger>> ledger = UsageLedger::Open(std::move(ledger_options), std::move(config));
  if (!ledger.ok()) return ledger.status().WithContext("opening the usage store (--data-dir)");
  usage_ledger_ = std::move(ledger).value();
  alert_mailer_ = std::make_unique<AlertMailer>(usage_ledger_.get(), [](const AlertMail& mail, const EmailAlertTarget& relay) {
    return SendSmtpMail(mail, relay, std::chrono::seconds(10));
  });
  usage_ = std::make_unique<UsageService>(usage_ledger_.get(), file);
  inference_->SetUsage(usage_ledger_.get());
  completions_->SetUsage(usage_ledger_.get());
  if (jobs_) jobs_->set_usage(usage_ledger_.get());
  if (batches_) batches_->set_usage(usage_ledger_.get());
  return Status::Ok();
}

// Once the first loads settled, so that a definition naming a model is checked against it.
Status Server::StartSchedules() {
  FERRY_RETURN_IF_ERROR(schedule_runner_->LoadStored());
  schedules_->LoadDefinitionFolders({options_.model_repository / "schedules", options_.data_dir / "schedules"});
  schedule_runner_->Start();
  return triggers_->Start();
}

Server::~Server() { Drain(); }

Status Server::ReloadTls() {
  Status s = http_->ReloadTls();
  if (admin_http_) {
    if (Status a = admin_http_->ReloadTls(); !a.ok() && s.ok()) s = a;
  }
  return s;
}

Status Server::Start() {
  // Every mode loads what the repository holds at start; then poll mode follows the disk, explicit
  // mode changes only on API calls, and none never changes.
  FERRY_RETURN_IF_ERROR(watcher_->PollOnce());
  http_->Start();  // health answers "not ready" while the first loads run
  spdlog::info("listening on {}:{}", options_.http.address, http_->port());
  if (admin_http_) {
    admin_http_->Start();
    spdlog::info("admin listener on {}:{}{}", options_.admin_http->address, admin_http_->port(),
                 options_.admin_http->listener == Listener::kTrustedAdmin ? " (loopback: no admin key needed)" : "");
  }
  if (!IsLoopbackAddress(options_.http.address) && !options_.require_api_keys) {
    spdlog::warn("*** listening on {} WITHOUT API KEYS: anyone who can reach port {} may run every model. Start "
                 "with --require-api-keys, or --http-address 127.0.0.1 for local use ***",
                 options_.http.address, http_->port());
  }
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
  if (batch_scheduler_) batch_scheduler_->Start();
  if (schedule_runner_) FERRY_RETURN_IF_ERROR(StartSchedules());
  if (webhook_deliverer_) webhook_deliverer_->Start();
  alert_mailer_->Start();
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
  http_->BeginDrain();
  if (admin_http_) admin_http_->BeginDrain();
  watcher_->Stop();
  // Requests and streams finish, and WebSockets complete their close handshakes (2 s at most each),
  // within the exit timeout; only requests cut off make the exit unclean.
  const auto requests = [this] {
    return http_->RequestsInFlight() + (admin_http_ ? admin_http_->RequestsInFlight() : 0);
  };
  const auto sockets = [this] { return http_->OpenWebSockets() + (admin_http_ ? admin_http_->OpenWebSockets() : 0); };
  const auto deadline = std::chrono::steady_clock::now() + options_.exit_timeout;
  bool clean = true;
  while (requests() > 0 || sockets() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      clean = requests() == 0;
      spdlog::warn("exit timeout reached with {} requests and {} WebSockets still open", requests(), sockets());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  http_->Stop();
  if (admin_http_) admin_http_->Stop();
  // Streams still open past the exit timeout have nobody left to read them.
  completions_->CancelAll();
  // No new batches, then batches stop at their next record and commit a checkpoint; they resume after
  // a restart.
  if (schedule_runner_) schedule_runner_->Stop();
  if (triggers_) triggers_->Stop();
  if (batch_scheduler_) batch_scheduler_->Stop();
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
  // Nothing charges any more: what was charged is written now, before the mailer's last attempt.
  if (Status s = usage_ledger_ ? usage_ledger_->Flush() : Status::Ok(); !s.ok()) {
    spdlog::error("usage: the last charges could not be written: {}", s.message());
  }
  if (alert_mailer_) alert_mailer_->Stop();
  return clean;
}

}  // namespace ferry
