// `ferry batch`: one model over every record of an input file, offline, with the same code and the
// same SQLite checkpoints as the server's batches. Exit codes: 0 every record succeeded; 1 finished with
// failed records (in the errors file); 2 usage or input error (nothing written under the output name);
// 130 interrupted (SIGINT/SIGTERM) after a checkpoint: rerun with --resume.
#include "server/batch_command.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "api/batch_records.h"
#include "jobs/sqlite_batch_store.h"
#include "server/server.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
constexpr const char* kOfflineId = "batch_offline";

struct BatchFlags {
  std::string model_repository = "examples/models";
  std::string model;
  std::string input;
  std::string output;
  std::string errors;
  std::string format;
  std::string output_format;
  std::string endpoint = "/v1/chat/completions";
  std::string checkpoint;
  std::string default_onnx_backend{kDefaultOnnxBackend};
  bool resume = false;
  int64_t checkpoint_records = 2000;
  double checkpoint_secs = 2;
  size_t in_flight = 64;
  std::string progress = "auto";
};

// Everything a batch runs on, without HTTP: the backends, the one model, and the services.
struct ModelStack {
  std::unique_ptr<BackendRegistry> backends = MakeDefaultBackends();
  std::unique_ptr<ModelRepository> repository;
  std::unique_ptr<ServingMetrics> metrics = std::make_unique<ServingMetrics>();
  std::unique_ptr<BackendServableFactory> factory;
  std::unique_ptr<ModelManager> manager;
  std::unique_ptr<RepositoryWatcher> watcher;
  std::unique_ptr<InferenceService> inference;
  std::unique_ptr<CompletionService> completions;
  ~ModelStack() {
    if (watcher) watcher->Stop();
    if (manager) manager->Shutdown();
  }
};

Status LoadModel(const BatchFlags& f, ModelStack* stack) {
  if (!fs::is_directory(f.model_repository)) {
    return InvalidArgument(fmt::format("model repository '{}' is not a folder", f.model_repository));
  }
  if (stack->backends->Find(f.default_onnx_backend) == nullptr) {
    return InvalidArgument(fmt::format("default ONNX backend '{}' is not in this build", f.default_onnx_backend));
  }
  stack->repository = std::make_unique<ModelRepository>(f.model_repository);
  stack->factory = MakeServableFactory(stack->backends.get(), f.default_onnx_backend, stack->metrics.get());
  stack->manager = std::make_unique<ModelManager>(ModelManagerOptions{}, stack->factory.get());
  stack->watcher = std::make_unique<RepositoryWatcher>(stack->repository.get(), stack->manager.get());
  stack->inference = std::make_unique<InferenceService>(stack->manager.get(), stack->metrics.get());
  stack->completions = std::make_unique<CompletionService>(stack->manager.get());
  FERRY_RETURN_IF_ERROR(stack->watcher->LoadModel(f.model));
  stack->manager->WaitUntilIdle(std::chrono::minutes(5));
  FERRY_ASSIGN_OR_RETURN(ModelHandle handle, stack->manager->Get(f.model, std::nullopt));
  (void)handle;
  return Status::Ok();
}

Result<BatchSpec> MakeSpec(const BatchFlags& f) {
  BatchSpec spec;
  spec.model = f.model;
  std::error_code ec;
  const bool input_folder = fs::is_directory(f.input, ec);
  std::optional<BatchFormat> format = BatchFormatFromName(
      !f.format.empty() ? f.format : input_folder ? "files" : f.input.ends_with(".csv") ? "csv" : "oip");
  if (!format) return InvalidArgument(fmt::format("--format must be oip, csv, files or openai, not '{}'", f.format));
  if (input_folder != (*format == BatchFormat::kFiles)) {
    return InvalidArgument(input_folder ? "the input is a folder: its files are a batch of --format files"
                                  : "--format files takes a folder as its input");
  }
  spec.format = *format;
  if (spec.format == BatchFormat::kOpenAi) {
    if (f.endpoint != "/v1/chat/completions" && f.endpoint != "/v1/completions") {
      return InvalidArgument("--endpoint must be /v1/chat/completions or /v1/completions");
    }
    spec.endpoint = f.endpoint;
  }
  const fs::path input = fs::absolute(f.input, ec);
  if (!fs::is_regular_file(input, ec) && !input_folder) {
    return InvalidArgument(fmt::format("input '{}' is not a readable file or folder", f.input));
  }
  spec.input_path = input.string();
  const std::string out_format = f.output_format.empty() ? (f.output.ends_with(".csv") ? "csv" : "jsonl") : f.output_format;
  spec.output_format = out_format == "csv" ? BatchOutputFormat::kCsv : BatchOutputFormat::kJsonl;
  spec.output_path = fs::absolute(f.output, ec).string();
  spec.errors_path = f.errors.empty() ? spec.output_path + ".errors.jsonl" : fs::absolute(f.errors, ec).string();
  const fs::path folder = fs::path(spec.output_path).parent_path();
  if (!fs::is_directory(folder, ec) || ::access(folder.c_str(), W_OK) != 0) {
    return InvalidArgument(fmt::format("the output folder '{}' does not exist or cannot be written", folder.string()));
  }
  return spec;
}

// Draws progress on a terminal (a bar, redrawn at most 10 times a second) or prints a line every 5 s.
class ProgressPrinter {
 public:
  ProgressPrinter(std::string mode, int64_t base) : base_(base), start_(std::chrono::steady_clock::now()) {
    bar_ = mode == "bar" || (mode == "auto" && ::isatty(STDERR_FILENO));
    quiet_ = mode == "none";
  }
  void Update(const BatchProgress& p, bool last = false) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!last && now - shown_ < (bar_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000))) return;
    shown_ = now;
    const double secs = std::max(1e-3, std::chrono::duration<double>(now - start_).count());
    const double rate = static_cast<double>(p.records_done - base_) / secs;
    const int64_t left = p.total > 0 ? std::max<int64_t>(0, p.total - p.records_done) : 0;
    const int64_t eta = rate > 0 ? static_cast<int64_t>(static_cast<double>(left) / rate) : 0;
    const double frac = p.total > 0 ? static_cast<double>(p.records_done) / static_cast<double>(p.total) : 0;
    const std::string text = fmt::format("{}/{} records {:5.1f}% {:.0f} rec/s ETA {}:{:02} failed {}",
                                         p.records_done, p.total, 100 * frac, rate, eta / 60, eta % 60, p.failed);
    if (bar_) {
      const int width = 30, filled = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r[%s%s] %s\x1b[K%s", std::string(filled, '#').c_str(),
                   std::string(width - filled, '-').c_str(), text.c_str(), last ? "\n" : "");
    } else {
      std::fprintf(stderr, "progress: %s\n", text.c_str());
    }
    std::fflush(stderr);
  }

 private:
  int64_t base_;
  bool bar_ = false;
  bool quiet_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point shown_{};
};

// Opens the checkpoint and finds (or makes) the run's batch. Exit code 2 on a conflict.
Result<Batch> OpenRun(const BatchFlags& f, const BatchSpec& spec, const fs::path& checkpoint,
                      std::unique_ptr<SqliteBatchStore>* store) {
  std::error_code ec;
  const bool exists = fs::exists(checkpoint, ec);
  if (exists && !f.resume) {
    return Status(StatusCode::kAlreadyExists,
                  fmt::format("an unfinished run left its checkpoint at {}: pass --resume to continue it, or delete "
                              "it (and {}) to start over", checkpoint.string(), PartialPath(spec.output_path)));
  }
  if (!exists && fs::exists(spec.output_path, ec)) {
    return Status(StatusCode::kAlreadyExists, fmt::format("output '{}' exists already", spec.output_path));
  }
  SqliteBatchStoreOptions options;
  options.path = checkpoint;
  FERRY_ASSIGN_OR_RETURN(*store, SqliteBatchStore::Open(options));
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> batch, (*store)->Get(kOfflineId));
  if (!batch) {
    if (f.resume) spdlog::info("no checkpoint at {}: starting from the first record", checkpoint.string());
    FERRY_ASSIGN_OR_RETURN(Batch created, (*store)->Create(spec, kOfflineId));
    batch = created;
  } else if (batch->spec.input_path != spec.input_path || batch->spec.model != spec.model ||
             batch->spec.format != spec.format) {
    return InvalidArgument(fmt::format("the checkpoint at {} is of another run ({} on {})", checkpoint.string(),
                                       batch->spec.model, batch->spec.input_path));
  }
  return (*store)->TakeOver(kOfflineId, fmt::format("offline-{}", ::getpid()), std::chrono::hours(24));
}

void RemoveCheckpoint(const fs::path& checkpoint) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(checkpoint.string() + suffix, ec);
}

// Stops the run at its next record on SIGINT or SIGTERM (it commits a checkpoint first).
class SignalStop {
 public:
  explicit SignalStop(std::shared_ptr<CancelToken> stop) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this, stop] {
      const timespec tick{0, 200'000'000};
      while (!done_) {
        if (sigtimedwait(&set_, nullptr, &tick) > 0) {
          std::fprintf(stderr, "\nstopping at the next checkpoint (a second signal is ignored)\n");
          stop->Cancel();
        }
      }
    });
  }
  ~SignalStop() {
    done_ = true;
    thread_.join();
  }

 private:
  sigset_t set_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int Fail(int code, const Status& s) {
  std::fprintf(stderr, "ferry batch: %s\n", s.message().c_str());
  return code;
}

int RunBatchCommand(const BatchFlags& f) {
  spdlog::set_level(spdlog::level::warn);
  Result<BatchSpec> spec = MakeSpec(f);
  if (!spec.ok()) return Fail(2, spec.status());
  auto stop = CancelToken::Create();
  SignalStop signals(stop);  // before any thread starts, so that all of them block the signals
  ModelStack stack;
  if (Status s = LoadModel(f, &stack); !s.ok()) return Fail(2, s);
  Result<std::unique_ptr<RecordExecutor>> executor = MakeRecordExecutor(
      *spec, kOfflineId, BatchServices{stack.inference.get(), stack.completions.get(), stack.manager.get()});
  if (!executor.ok()) return Fail(2, executor.status());
  if (Result<std::unique_ptr<RecordReader>> reader = RecordReader::Open(spec->input_path, spec->format); !reader.ok()) {
    return Fail(2, reader.status());
  } else if (Status s = (*executor)->Prepare((*reader)->header()); !s.ok()) {
    return Fail(2, s);
  }
  const fs::path checkpoint = f.checkpoint.empty() ? fs::path(spec->output_path + ".ckpt") : fs::path(f.checkpoint);
  std::unique_ptr<SqliteBatchStore> store;
  Result<Batch> batch = OpenRun(f, *spec, checkpoint, &store);
  if (!batch.ok()) return Fail(2, batch.status());
  BatchRunOptions options;
  options.checkpoint_every_records = f.checkpoint_records;
  options.checkpoint_every = std::chrono::milliseconds(static_cast<int64_t>(f.checkpoint_secs * 1000));
  options.max_in_flight = f.in_flight;
  options.lease = std::chrono::hours(24);
  if (batch->state != BatchState::kValidating) {
    std::fprintf(stderr, "resuming from the checkpoint at record %lld of %lld\n",
                 static_cast<long long>(batch->progress.records_done), static_cast<long long>(batch->progress.total));
  }
  ProgressPrinter printer(f.progress, batch->progress.records_done);
  BatchRunObserver observer;
  observer.progress = [&printer](const BatchProgress& p) { printer.Update(p); };
  const auto started = std::chrono::steady_clock::now();
  Result<BatchRunResult> result =
      RunBatch(*batch, batch->lease_owner, store.get(), executor->get(), options, stop, std::move(observer));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!result.ok()) return Fail(2, result.status().WithContext("the batch stopped (rerun with --resume)"));
  printer.Update(result->progress, /*last=*/true);
  if (result->resumed) {
    std::fprintf(stderr, "resumed at record %lld; %lld records past that checkpoint were run again\n",
                 static_cast<long long>(batch->progress.records_done), static_cast<long long>(result->redone));
  }
  if (result->state == BatchState::kFailed) return Fail(2, Status(StatusCode::kInvalidArgument, "the batch failed"));
  if (result->state != BatchState::kCompleted) {
    std::fprintf(stderr, "interrupted after %lld records: rerun with --resume to continue\n",
                 static_cast<long long>(result->progress.records_done));
    return 130;
  }
  store.reset();
  RemoveCheckpoint(checkpoint);
  const BatchProgress& p = result->progress;
  std::error_code ec;
  if (p.failed == 0) fs::remove(spec->errors_path, ec);
  const int64_t this_run = p.records_done - batch->progress.records_done;
  std::fprintf(stderr, "%lld records: %lld succeeded, %lld failed%s%s; this run: %lld records in %.3f s (%.0f records/s)\n",
               static_cast<long long>(p.records_done), static_cast<long long>(p.completed),
               static_cast<long long>(p.failed), p.failed > 0 ? " (see " : "",
               p.failed > 0 ? (spec->errors_path + ")").c_str() : "", static_cast<long long>(this_run), seconds,
               static_cast<double>(this_run) / std::max(seconds, 1e-9));
  return p.failed > 0 ? 1 : 0;
}

}  // namespace

void AddBatchCommand(CLI::App& app) {
  auto f = std::make_shared<BatchFlags>();
  CLI::App* cmd = app.add_subcommand("batch", "Run a model over every record of a file, offline, resumably");
  cmd->add_option("--model-repository", f->model_repository, "Repository folder")->capture_default_str();
  cmd->add_option("--model", f->model, "The model to run")->required();
  cmd->add_option("--input", f->input, "JSONL (oip, openai) or CSV file of records, or a folder of files")->required();
  cmd->add_option("--output", f->output, "JSONL output, one line per succeeded record, in input order")->required();
  cmd->add_option("--errors", f->errors, "Failed records, one line each (default: <output>.errors.jsonl)");
  cmd->add_option("--format", f->format, "oip, csv, files or openai (default: files for a folder, csv for *.csv, else oip)");
  cmd->add_option("--output-format", f->output_format, "jsonl or csv (a header, then id and the output values; "
                  "default: csv for an output named *.csv)")
      ->check(CLI::IsMember({"jsonl", "csv"}));
  cmd->add_option("--endpoint", f->endpoint, "openai: /v1/chat/completions or /v1/completions")->capture_default_str();
  cmd->add_flag("--resume", f->resume, "Continue an interrupted run from its checkpoint");
  cmd->add_option("--checkpoint", f->checkpoint, "Checkpoint file (default: <output>.ckpt; removed when done)");
  cmd->add_option("--checkpoint-records", f->checkpoint_records, "Commit a checkpoint every N records")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--checkpoint-secs", f->checkpoint_secs, "... or every S seconds")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--in-flight", f->in_flight, "Records submitted to the model at once")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--default-onnx-backend", f->default_onnx_backend, "Backend for models whose config names none")
      ->capture_default_str();
  cmd->add_option("--progress", f->progress, "auto (a bar on a terminal, else a line every 5 s), bar, lines, none")
      ->capture_default_str()->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  cmd->callback([f] { throw CLI::RuntimeError(RunBatchCommand(*f)); });
}

}  // namespace ferry
