#pragma once
// The composition root: builds the repository, backends, model manager, services, router and HTTP
// server from options, and orders start-up and drain. Thread-safe for Drain from a signal thread.
#include <chrono>
#include <filesystem>
#include <optional>
#include <memory>

#include "api/admin_service.h"
#include "api/batch_service.h"
#include "api/completion_service.h"
#include "api/inference_service.h"
#include "api/jobs_service.h"
#include "api/schedule_service.h"
#include "http/webhook_client.h"
#include "jobs/job_runner.h"
#include "jobs/webhook_deliverer.h"
#include "jobs/sqlite_batch_store.h"
#include "jobs/sqlite_job_store.h"
#include "backend/backend.h"
#include "http/http_server.h"
#include "http/serving_router.h"
#include "lifecycle/backend_servable_factory.h"
#include "lifecycle/model_manager.h"
#include "lifecycle/repository_watcher.h"
#include "api/key_service.h"
#include "api/table_service.h"
#include "api/usage_service.h"
#include "usage/alert_mailer.h"
#include "hybrid/response_cache.h"
#include "hybrid/sqlite_table_store.h"
#include "metrics/serving_metrics.h"
#include "scheduling/concurrency_limit.h"

namespace ferry {

enum class ModelControlMode { kNone, kPoll, kExplicit };

struct ServerOptions {
  std::filesystem::path model_repository = "examples/models";
  HttpServerOptions http;
  // The admin listener (its own port; loopback by default), when set: see route_table.h.
  std::optional<HttpServerOptions> admin_http;
  RouterOptions router;
  AdminOptions admin;
  ModelControlMode control_mode = ModelControlMode::kPoll;
  std::chrono::milliseconds poll_interval{5000};
  std::chrono::milliseconds exit_timeout{30'000};   // drain: longest wait for in-flight requests
  std::chrono::milliseconds startup_timeout{300'000};  // wait for initial loads before turning ready
  size_t loader_threads = 1;
  // Scale to zero: models unused this long are unloaded (0: never) unless their config says otherwise;
  // a request to a sleeping model waits up to cold_start_timeout for it to load.
  std::chrono::milliseconds idle_unload{0};
  std::chrono::milliseconds cold_start_timeout{60'000};
  int64_t model_memory_budget_bytes = 0;  // 0: none; see ModelManagerOptions
  // The backend of a model whose config names none.
  std::string default_onnx_backend{kDefaultOnnxBackend};
  // Asynchronous jobs: an SQLite store at <data_dir>/jobs.db and a runner.
  bool jobs_enabled = true;
  std::filesystem::path data_dir = "data";
  SqliteJobStoreOptions::Durability job_durability = SqliteJobStoreOptions::Durability::kDurable;
  int64_t max_active_jobs = 100'000;
  size_t job_concurrency = 2;
  std::vector<std::string> webhook_allow;  // CIDR ranges webhook URLs may name despite being local
  std::vector<std::string> webhook_resolve;  // "host=address": resolved so, ahead of DNS (like curl --resolve)
  std::chrono::milliseconds webhook_timeout{10'000};
  std::chrono::milliseconds webhook_backoff{5'000};
  int64_t webhook_max_attempts = 8;
  // Batches (with jobs): an SQLite store at <data_dir>/batches.db and a scheduler.
  std::filesystem::path batch_input_root;   // where batch inputs may be named by path; empty: uploads only
  std::filesystem::path batch_output_root;  // where batch outputs may be named by path; empty: the data folder
  size_t batch_concurrency = 2;
  int64_t batch_checkpoint_records = 2000;
  std::chrono::milliseconds batch_checkpoint_interval{2000};
  // Schedules and triggers (with batches): <data_dir>/schedules.db; definitions from the `schedules/`
  // folders of the model repository and the data folder.
  std::chrono::milliseconds trigger_rescan_interval{30'000};
  // Hybrid serving: precomputed tables in <data_dir>/tables.db with this much memory in front, and the
  // response cache's budget (both in bytes; 0 turns the cache off).
  size_t table_memory_bytes = size_t{64} << 20;
  size_t response_cache_bytes = size_t{64} << 20;
  // API keys in <data_dir>/keys.db (made with the admin key through /v1/keys) and from a keys file;
  // required on every route but health, metadata and /metrics when `require_api_keys`.
  bool require_api_keys = false;
  std::filesystem::path api_keys_file;
  // Cost accounting in <data_dir>/usage.db; prices, budgets and alert targets from this file (YAML; a
  // PUT to /v1/usage/config rewrites it). Empty: <data_dir>/costs.yaml, when there is one.
  std::filesystem::path costs_file;
};

// The backends this build has ("identity"; "opencv_dnn" and "openvino" when built with them).
std::unique_ptr<BackendRegistry> MakeDefaultBackends();
// The factory that turns a loaded backend into a servable model (batcher or generation loop, image
// pre-processing when the config asks for it), reporting to `metrics`.
std::unique_ptr<BackendServableFactory> MakeServableFactory(BackendRegistry* backends,
                                                           const std::string& default_onnx_backend,
                                                           ServingMetrics* metrics);

class Server {
 public:
  static Result<std::unique_ptr<Server>> Create(ServerOptions options);
  ~Server();

  // Loads the models the repository asks for, starts serving HTTP, and turns ready once the initial
  // loads have finished (a model that fails to load is reported, and the server still starts).
  Status Start();
  uint16_t port() const { return http_->port(); }
  // Loads the TLS certificate and key of both listeners again (SIGHUP); what failed, if anything.
  Status ReloadTls();
  // The admin listener's port; 0 without one.
  uint16_t admin_port() const { return admin_http_ ? admin_http_->port() : 0; }
  // Readiness turns 503, new connections are refused, in-flight requests finish (up to exit_timeout),
  // then models are drained. Returns false if requests were still in flight at the timeout.
  bool Drain();

  ModelManager& manager() { return *manager_; }
  AdminService& admin() { return *admin_; }
  RepositoryWatcher& watcher() { return *watcher_; }

 private:
  explicit Server(ServerOptions options) : options_(std::move(options)) {}
  Status BuildHybrid();
  Status BuildKeys();
  Status BuildJobs();
  Status BuildBatches();
  Status BuildSchedules();
  Status BuildUsage();
  Status StartSchedules();

  ServerOptions options_;
  // Destroyed last (Drain has stopped it by then): a connection may outlive its request in a job's
  // long-poll, a pool's queue or a watch entry, and its destructor unregisters from the server; and a
  // pool's late answer posts onto the server's (stopped) io_context, which must still exist.
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<HttpServer> admin_http_;
  std::unique_ptr<BackendRegistry> backends_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<ServingMetrics> metrics_;
  // Before the manager, whose queued tasks may still hold slots while they are destroyed.
  ConcurrencyLimits concurrency_limits_;
  // Before the manager: a request still finishing while versions drain may write into them.
  std::unique_ptr<SqliteTableStore> table_store_;
  std::unique_ptr<ResponseCache> response_cache_;
  std::unique_ptr<BackendServableFactory> factory_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<RepositoryWatcher> watcher_;
  std::unique_ptr<TableService> tables_;
  // Before the services that charge it, so destroyed after them.
  std::unique_ptr<UsageLedger> usage_ledger_;
  std::unique_ptr<AlertMailer> alert_mailer_;
  std::unique_ptr<UsageService> usage_;
  std::unique_ptr<KeyRegistry> key_registry_;
  std::unique_ptr<KeyService> keys_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<CompletionService> completions_;
  std::unique_ptr<AdminService> admin_;
  // Declared after what they use, so that they are destroyed first.
  std::unique_ptr<SqliteJobStore> job_store_;
  std::unique_ptr<JobsService> jobs_;
  std::unique_ptr<JobRunner> job_runner_;
  std::unique_ptr<WebhookClient> webhook_client_;
  std::unique_ptr<WebhookDeliverer> webhook_deliverer_;
  std::unique_ptr<SqliteBatchStore> batch_store_;
  std::unique_ptr<BatchService> batches_;
  std::unique_ptr<BatchScheduler> batch_scheduler_;
  std::unique_ptr<SqliteScheduleStore> schedule_store_;
  std::unique_ptr<ScheduleRunner> schedule_runner_;
  std::unique_ptr<FolderTriggers> triggers_;
  std::unique_ptr<ScheduleService> schedules_;
  std::unique_ptr<ServingRouter> router_;
  bool drained_ = false;
};

}  // namespace ferry
