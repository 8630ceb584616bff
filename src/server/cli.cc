#include "server/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <thread>

#include "server/batch_command.h"
#include "server/cron_command.h"
#include "server/precompute_command.h"
#include "http/cors.h"
#include "http/route_table.h"
#include "server/server.h"
#include "server/signals.h"

namespace ferry {
namespace {

struct ServeFlags {
  std::string model_repository = "examples/models";
  std::string http_address = "0.0.0.0";
  int http_port = 8000;
  int http_threads = 2;
  std::string control_mode = "poll";
  double poll_secs = 5;
  std::string admin_key;
  std::string admin_address = "127.0.0.1";
  std::string tls_cert;
  std::string tls_key;
  int admin_port = -1;
  std::vector<std::string> admin_allowed_hosts;
  std::vector<std::string> cors_allow_origins;
  double exit_timeout_secs = 30;
  size_t max_infer_body_mb = 64;
  size_t max_connections = 4096;
  size_t max_connections_per_address = 1024;
  double header_timeout_secs = 10;
  size_t min_body_bytes_per_sec = 4096;
  int loader_threads = 1;
  double idle_unload_secs = 0;
  double cold_start_timeout_secs = 60;
  int64_t model_memory_budget_mb = 0;
  std::string default_onnx_backend{kDefaultOnnxBackend};
  std::string data_dir = "data";
  std::string job_durability = "durable";
  int64_t max_active_jobs = 100'000;
  size_t job_concurrency = 2;
  bool no_jobs = false;
  std::vector<std::string> webhook_allow;
  std::vector<std::string> webhook_resolve;
  int64_t webhook_timeout_ms = 10'000;
  int64_t webhook_backoff_ms = 5'000;
  int64_t webhook_max_attempts = 8;
  std::string batch_input_root;
  std::string batch_output_root;
  size_t batch_concurrency = 2;
  size_t max_upload_mb = 1024;
  int64_t batch_checkpoint_records = 2000;
  double batch_checkpoint_secs = 2;
  double trigger_rescan_secs = 30;
  size_t table_memory_mb = 64;
  size_t response_cache_mb = 64;
  bool require_api_keys = false;
  std::string api_keys_file;
  std::string costs_file;
  bool verbose = false;
};

ServerOptions OptionsFrom(const ServeFlags& f) {
  ServerOptions options;
  options.model_repository = f.model_repository;
  options.http.address = f.http_address;
  options.http.port = static_cast<uint16_t>(f.http_port);
  options.http.io_threads = static_cast<size_t>(f.http_threads);
  options.http.max_connections = f.max_connections;
  options.http.max_connections_per_address = f.max_connections_per_address;
  options.http.header_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.header_timeout_secs * 1000));
  options.http.min_body_bytes_per_s = f.min_body_bytes_per_sec;
  options.http.tls_cert_file = f.tls_cert;
  options.http.tls_key_file = f.tls_key;
  options.router.max_infer_body_bytes = f.max_infer_body_mb * 1024 * 1024;
  options.control_mode = f.control_mode == "none"       ? ModelControlMode::kNone
                         : f.control_mode == "explicit" ? ModelControlMode::kExplicit
                                                        : ModelControlMode::kPoll;
  options.poll_interval = std::chrono::milliseconds(static_cast<int64_t>(f.poll_secs * 1000));
  options.exit_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.exit_timeout_secs * 1000));
  options.admin.admin_key = f.admin_key;
  if (f.admin_port >= 0) {
    options.admin_http = options.http;
    options.admin_http->address = f.admin_address;
    options.admin_http->port = static_cast<uint16_t>(f.admin_port);
    options.admin_http->io_threads = 1;
  }
  options.router.admin_allowed_hosts = f.admin_allowed_hosts;
  if (Result<CorsPolicy> cors = CorsPolicy::Parse(f.cors_allow_origins); cors.ok()) {
    options.router.cors = std::move(cors).value();  // each was checked when the flag was read
  }
  options.loader_threads = static_cast<size_t>(f.loader_threads);
  options.idle_unload = std::chrono::milliseconds(static_cast<int64_t>(f.idle_unload_secs * 1000));
  options.cold_start_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.cold_start_timeout_secs * 1000));
  options.model_memory_budget_bytes = f.model_memory_budget_mb * 1024 * 1024;
  options.default_onnx_backend = f.default_onnx_backend;
  options.jobs_enabled = !f.no_jobs;
  options.data_dir = f.data_dir;
  options.job_durability = f.job_durability == "fast" ? SqliteJobStoreOptions::Durability::kFast
                                                      : SqliteJobStoreOptions::Durability::kDurable;
  options.max_active_jobs = f.max_active_jobs;
  options.job_concurrency = f.job_concurrency;
  options.webhook_allow = f.webhook_allow;
  options.webhook_resolve = f.webhook_resolve;
  options.webhook_timeout = std::chrono::milliseconds(f.webhook_timeout_ms);
  options.webhook_backoff = std::chrono::milliseconds(f.webhook_backoff_ms);
  options.webhook_max_attempts = f.webhook_max_attempts;
  options.batch_input_root = f.batch_input_root;
  options.table_memory_bytes = f.table_memory_mb << 20;
  options.response_cache_bytes = f.response_cache_mb << 20;
  options.require_api_keys = f.require_api_keys;
  options.api_keys_file = f.api_keys_file;
  options.costs_file = f.costs_file;
  options.batch_output_root = f.batch_output_root;
  options.batch_concurrency = f.batch_concurrency;
  options.batch_checkpoint_records = f.batch_checkpoint_records;
  options.batch_checkpoint_interval = std::chrono::milliseconds(static_cast<int64_t>(f.batch_checkpoint_secs * 1000));
  options.trigger_rescan_interval = std::chrono::milliseconds(static_cast<int64_t>(f.trigger_rescan_secs * 1000));
  options.router.max_upload_bytes = f.max_upload_mb * 1024 * 1024;
  return options;
}

int Serve(const ServeFlags& f) {
  spdlog::set_level(f.verbose ? spdlog::level::debug : spdlog::level::info);
  const ServerOptions options = OptionsFrom(f);

  if (Status s = InstallServeSignals(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Past a file-size limit a write should fail (the job store answers 503) rather than kill the server.
  std::signal(SIGXFSZ, SIG_IGN);

  // Before Create, so that a stop signal during a long start-up is acted on (it exits at once).
  std::shared_ptr<ServeSignalThread> signals = ServeSignalThread::Start();
  Result<std::unique_ptr<Server>> server = Server::Create(options);
  if (!server.ok()) {
    signals->Done();
    spdlog::error("{}", server.status().message());
    return 2;
  }
  if (Status s = (*server)->Start(); !s.ok()) {
    signals->Done();
    spdlog::error("start failed: {}", s.message());
    return 2;
  }
  signals->Running(server->get());
  spdlog::info("signal {} received: draining (a second signal exits at once)", signals->WaitForStop());
  const bool clean = (*server)->Drain();
  spdlog::info("stopped");
  signals->Done();
  return clean ? 0 : 1;
}

void AddBatchFlags(CLI::App* serve, ServeFlags& f) {
  serve->add_option("--batch-input-root", f.batch_input_root,
                    "Folder batches may read inputs from by path (POST /v1/batches 'input'); off when empty");
  serve->add_option("--batch-output-root", f.batch_output_root,
                    "Folder batches may write outputs to by path ('output'); by default outputs stay in the data "
                    "folder and are fetched through /v1/files");
  serve->add_option("--batch-concurrency", f.batch_concurrency, "Batches run at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--batch-checkpoint-records", f.batch_checkpoint_records,
                    "A running batch commits a checkpoint every N records ...")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--batch-checkpoint-secs", f.batch_checkpoint_secs, "... or every S seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--trigger-rescan-secs", f.trigger_rescan_secs,
                    "Triggers list their watched folders again this often (besides inotify), in case an event "
                    "was lost")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--max-upload-mb", f.max_upload_mb, "Largest file upload (POST /v1/files), MiB")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
}

// The repository, the listeners, the admin key and listener, TLS (in --help's order).
void AddListenerFlags(CLI::App* serve, ServeFlags& f) {
  serve->set_config("--config", "", "Read flags from a TOML/INI file (keys are the long flag names)");
  serve->add_option("--model-repository", f.model_repository,
                    "Folder with one sub-folder per model: <model>/config.yaml and <model>/<version>/model.onnx")
      ->capture_default_str();
  serve->add_option("--http-address", f.http_address, "Address to listen on")->capture_default_str();
  serve->add_option("--http-port", f.http_port, "HTTP port (0 picks a free one)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  serve->add_option("--http-thread-count", f.http_threads, "I/O threads answering HTTP")
      ->capture_default_str()->check(CLI::Range(1, 256));
  serve->add_option("--model-control-mode", f.control_mode,
                    "poll: follow the repository on disk; explicit: change only through the load/unload API; "
                    "none: load at start, never change")
      ->capture_default_str()->check(CLI::IsMember({"none", "poll", "explicit"}));
  serve->add_option("--repository-poll-secs", f.poll_secs, "Seconds between repository scans in poll mode")
      ->capture_default_str()->check(CLI::PositiveNumber);
  serve->add_option("--admin-key", f.admin_key,
                    "The key of the admin routes (model load/unload, /v1/keys, /v1/usage/config, schedules, table "
                    "publishing) for clients sending 'Authorization: Bearer <key>'. Empty: only the loopback admin "
                    "listener reaches them")
      ->envname("FERRY_ADMIN_KEY");
  serve->add_option("--admin-port", f.admin_port,
                    "Open an admin listener on this port (0 picks a free one; -1: none). On loopback its callers "
                    "are the operator and need no key; beyond it they need --admin-key")
      ->capture_default_str()->check(CLI::Range(-1, 65535));
  serve->add_option("--admin-address", f.admin_address, "Address of the admin listener")->capture_default_str();
  serve->add_option("--tls-cert", f.tls_cert,
                    "HTTPS on both listeners: a PEM certificate chain (with --tls-key); reloaded on SIGHUP and when the "
                    "file changes, without dropping connections");
  serve->add_option("--tls-key", f.tls_key, "The PEM private key of --tls-cert");
  serve->add_option("--admin-allowed-host", f.admin_allowed_hosts,
                    "A Host name the loopback admin listener answers besides localhost, 127.0.0.1 and [::1] (a "
                    "request naming another is refused: DNS rebinding); repeatable");
  serve->add_option("--cors-allow-origin", f.cors_allow_origins,
                    "Let pages from this origin (https://app.example.com[:port], or '*' for any) call the main "
                    "listener from a browser; repeatable. Without it no cross-origin page can read an answer")
      ->check([](const std::string& origin) {
        Result<CorsPolicy> parsed = CorsPolicy::Parse({origin});
        return parsed.ok() ? std::string() : parsed.status().message();
      });
  serve->add_option("--exit-timeout-secs", f.exit_timeout_secs, "On SIGTERM, wait this long for in-flight requests")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  serve->add_option("--max-infer-body-mb", f.max_infer_body_mb, "Largest inference request body, MiB")
      ->capture_default_str()->check(CLI::Range(1, 4096));
}

// Connection and slow-client limits, then the models' loading, sleep and memory.
void AddLimitFlags(CLI::App* serve, ServeFlags& f) {
  serve->add_option("--max-connections", f.max_connections,
                    "Open connections (WebSockets included) beyond this get a fast 503")
      ->capture_default_str();
  serve->add_option("--max-connections-per-address", f.max_connections_per_address,
                    "Open connections one client address may hold (0: no cap); raise it behind a load balancer")
      ->capture_default_str();
  serve->add_option("--header-timeout-secs", f.header_timeout_secs,
                    "A request's whole header must arrive within this (not reset per byte); slower clients are closed")
      ->capture_default_str()->check(CLI::Range(0.05, 600.0));
  serve->add_option("--min-body-bytes-per-sec", f.min_body_bytes_per_sec,
                    "Bodies slower than this on average (after a grace of the header timeout) get 408 and are closed; "
                    "0: no rate, only an idle timeout")
      ->capture_default_str();
  serve->add_option("--model-load-thread-count", f.loader_threads, "Threads loading models")->capture_default_str();
  serve->add_option("--idle-unload-s", f.idle_unload_secs,
                    "Scale to zero: unload a model unused this many seconds (0: never); the next request loads it "
                    "and waits. A model's config.yaml idle_unload_s wins")
      ->capture_default_str()->check(CLI::Range(0.0, 365.0 * 24 * 3600));
  serve->add_option("--cold-start-timeout-s", f.cold_start_timeout_secs,
                    "How long a request waits for a sleeping model to load before a 503 with Retry-After. A "
                    "model's config.yaml cold_start_timeout_s wins")
      ->capture_default_str()->check(CLI::Range(0.001, 365.0 * 24 * 3600));
  serve->add_option("--model-memory-budget-mb", f.model_memory_budget_mb,
                    "Resident memory the loaded models may take, MiB (0: no budget). Each version's load is "
                    "measured; going over puts the least recently used idle models to sleep, and a model larger "
                    "than the budget is refused")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  serve->add_option("--default-onnx-backend", f.default_onnx_backend,
                    "Backend for models whose config names none (opencv_dnn, openvino)")
      ->capture_default_str();
}

// The data folder: jobs, webhooks, batches, tables, the cache, keys and costs.
void AddDataFlags(CLI::App* serve, ServeFlags& f) {
  serve->add_option("--data-dir", f.data_dir,
                    "Folder for Ferry's own data: jobs.db, batches.db, schedules.db, uploaded files, batch outputs "
                    "and schedules/ (definition files)")
      ->capture_default_str();
  serve->add_option("--job-durability", f.job_durability,
                    "durable: a 202 means the job survives power loss (fsync per commit group); "
                    "fast: it survives a crash of Ferry, not of the machine")
      ->check(CLI::IsMember({"durable", "fast"}))
      ->capture_default_str();
  serve->add_option("--max-active-jobs", f.max_active_jobs, "Queued + running jobs; beyond it submits get 503")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--job-concurrency", f.job_concurrency, "Jobs run at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_flag("--no-jobs", f.no_jobs, "Turn asynchronous jobs (/v1/jobs) off");
  serve->add_option("--webhook-allow", f.webhook_allow,
                    "An address range (CIDR) webhook URLs may name although it is loopback, private or "
                    "link-local; repeatable");
  serve->add_option("--webhook-resolve", f.webhook_resolve,
                    "host=address: resolve this webhook host so, ahead of DNS (like curl --resolve); the address "
                    "is checked like any other; repeatable");
  serve->add_option("--webhook-timeout-ms", f.webhook_timeout_ms,
                    "Per delivery attempt: connect, send and the answer's head")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--webhook-backoff-ms", f.webhook_backoff_ms,
                    "Wait before the first retry of a delivery; each later wait is 3x the last, with jitter")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--webhook-max-attempts", f.webhook_max_attempts,
                    "Attempts per delivery before it is marked failed (the result stays in the pull API)")
      ->check(CLI::Range(int64_t{1}, int64_t{30}))
      ->capture_default_str();
  AddBatchFlags(serve, f);
  serve->add_option("--table-memory-mb", f.table_memory_mb,
                    "Memory for precomputed-table entries in front of tables.db (least recently used go first)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->capture_default_str();
  serve->add_option("--response-cache-mb", f.response_cache_mb,
                    "Budget of the response cache of models with response_cache: true; 0 turns it off")
      ->check(CLI::Range(size_t{0}, size_t{1} << 20))
      ->capture_default_str();
  serve->add_flag("--require-api-keys", f.require_api_keys,
                  "Refuse calls without an API key (Authorization: Bearer <key>) on every route but health, "
                  "metadata and /metrics; keys are made with the admin key through /v1/keys");
  serve->add_option("--api-keys-file", f.api_keys_file,
                    "YAML list of keys (name, sha256 of the secret, models, rate_per_s, burst), read at start");
  serve->add_option("--costs", f.costs_file,
                    "YAML price table, budgets and alert targets (webhook, SMTP relay); a PUT to /v1/usage/config "
                    "rewrites it. Default: <data-dir>/costs.yaml when it exists");
  serve->add_flag("--log-verbose", f.verbose, "Debug logging");
}

int ListModels(const std::string& root) {
  ModelRepository repository(root);
  Result<std::vector<RepositoryModel>> models = repository.Scan();
  if (!models.ok()) {
    std::cerr << "error: " << models.status().message() << "\n";
    return 2;
  }
  int invalid = 0;
  std::cout << fmt::format("{:<24} {:<12} {:<10} {}\n", "MODEL", "BACKEND", "VERSIONS", "CONFIG");
  for (const RepositoryModel& m : *models) {
    std::string versions;
    for (int64_t v : m.versions) versions += (versions.empty() ? "" : ",") + std::to_string(v);
    if (m.config.ok()) {
      std::vector<int64_t> served = SelectVersions(m.config->version_policy, m.versions);
      const std::string backend = m.config->backend.empty() ? "(default)" : m.config->backend;
      std::cout << fmt::format("{:<24} {:<12} {:<10} ok ({} to serve)\n", m.name, backend,
                               versions.empty() ? "-" : versions, served.size());
    } else {
      ++invalid;
      std::cout << fmt::format("{:<24} {:<12} {:<10} INVALID: {}\n", m.name, "-", versions.empty() ? "-" : versions,
                               m.config.status().message());
    }
  }
  return invalid == 0 ? 0 : 1;
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"Ferry: a model server speaking KServe v2 (Open Inference Protocol) over HTTP"};
  app.require_subcommand(1);
  app.set_version_flag("--version", FERRY_VERSION);

  ServeFlags f;
  CLI::App* serve = app.add_subcommand("serve", "Serve a model repository over HTTP");
  AddListenerFlags(serve, f);
  AddLimitFlags(serve, f);
  AddDataFlags(serve, f);
  serve->callback([&] { throw CLI::RuntimeError(Serve(f)); });

  std::string models_root = "examples/models";
  CLI::App* models = app.add_subcommand("models", "List the models of a repository and check their configs");
  models->add_option("--model-repository", models_root, "Repository folder")->capture_default_str();
  models->callback([&] { throw CLI::RuntimeError(ListModels(models_root)); });
  CLI::App* routes = app.add_subcommand("routes", "Print every HTTP route with who may call it, as JSON lines");
  routes->callback([&] {
    for (const Route& r : Routes()) {
      std::cout << fmt::format("{{\"method\":\"{}\",\"path\":\"{}\",\"access\":\"{}\",\"websocket\":{}}}\n", r.method,
                               r.pattern, AccessName(r.access), r.websocket);
    }
    throw CLI::RuntimeError(0);
  });
  AddBatchCommand(app);
  AddCronCommand(app);
  AddPrecomputeCommand(app);

  if (argc <= 1) {  // a bare `ferry` shows what it can do rather than only that something is missing
    std::cout << app.help();
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a command ran: its exit code
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // usage errors are 2, as for most Unix tools
  }
  return 0;
}

}  // namespace ferry
