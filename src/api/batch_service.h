#pragma once
// Batches and files, transport-neutral, in the shape of OpenAI's Batch and Files APIs (which the
// official client speaks), with Ferry's own inputs beside them: a path under the input root, tensor
// formats (oip, csv) and a model. A batch is checked when it is created (model, format, input, output),
// so one that could never run is a 4xx then, not a failed batch later; it is committed before it is
// answered and run by the BatchScheduler. Calls block on the store and the disk: callers run them off
// the I/O threads. Thread-safe.
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "api/batch_records.h"
#include "api/json_watcher.h"
#include "jobs/batch_scheduler.h"
#include "jobs/batch_store.h"
#include "schedules/schedule.h"
#include "usage/usage_ledger.h"

namespace ferry {

struct BatchServiceOptions {
  std::filesystem::path data_dir = "data";  // uploads under files/, outputs under batches/<id>/
  std::filesystem::path input_root;        // where "input" paths may point; empty: nowhere
  std::filesystem::path output_root;       // where "output" paths may point; empty: only the data folder
  int64_t max_file_bytes = int64_t{1} << 30;  // uploads, and file content answered whole
};

struct UploadedPart {
  std::filesystem::path spool;  // the file holding the request body
  size_t offset = 0;            // of the file's bytes within it
  size_t length = 0;
  std::string filename;
};

class BatchService {
 public:
  BatchService(BatchStore* store, BatchServices services, BatchServiceOptions options);

  // Cost accounting: a batch is charged to its caller, who is refused (kResourceExhausted) when its
  // budget's hard cap is reached; may be null.
  void set_usage(UsageLedger* usage) { usage_ = usage; }
  // Called after a batch is created or cancelled (the server wakes its scheduler).
  void set_on_change(std::function<void()> f) { on_change_ = std::move(f); }

  // POST /v1/files: copies the part's bytes into the data folder and registers them. purpose "batch".
  Result<std::string> CreateFile(std::string_view purpose, const UploadedPart& part);
  Result<std::string> FileJson(const std::string& id);
  Result<std::string> ListFilesJson(std::string_view purpose, int64_t limit);
  Result<std::string> DeleteFile(const std::string& id);
  // GET /v1/files/{id}/content: the bytes (a file over max_file_bytes is kPayloadTooLarge).
  Result<std::string> FileContent(const std::string& id);

  // POST /v1/batches body:
  //   OpenAI: {"input_file_id", "endpoint": "/v1/chat/completions" | "/v1/completions",
  //            "completion_window": "24h", "metadata": {...}}
  //   Ferry:  {"model", "input": "<path under the input root>" | "input_file_id",
  //            "format": "oip" | "csv" | "files" | "openai", "output": "<path under the output root>",
  //            "output_format": "jsonl" | "csv" (default: csv for an output named *.csv),
  //            "priority": 0, "metadata": {...}}
  // `caller`: the API key's name it is charged to.
  Result<std::string> Create(std::string_view body, const std::string& caller = "(none)");
  Result<std::string> BatchJson(const std::string& id);
  // GET /v1/batches?after=&limit=
  Result<std::string> ListJson(std::string_view after, int64_t limit);
  Result<std::string> Cancel(const std::string& id);
  // GET /v1/batches/{id}/events: the batch now and after each change, until it is final.
  Status Watch(const std::string& id, std::shared_ptr<CancelToken> cancel,
               std::function<bool(const std::string&)> send, std::function<void()> end);
  static constexpr size_t kMaxWatches = 256;

  // For the scheduler.
  RecordExecutorFactory ExecutorFactory();

  // For schedules and triggers (schedules/BatchLauncher): the order's batch under its own id, checked
  // as POST /v1/batches checks one; false when a batch with that id exists.
  Result<bool> Launch(const BatchOrder& order);
  // The model exists and takes batches of that kind.
  Status CheckTemplate(const BatchTemplate& batch);
  Result<bool> BatchRunning(const std::string& id);
  // A final batch's state name and why it failed (or how many records did); empty while it runs.
  Result<std::pair<std::string, std::string>> BatchOutcome(const std::string& id);

 private:
  struct Parsed;
  Result<Parsed> ParseCreate(std::string_view body);
  static Status CheckKinds(Parsed& p);
  static Result<Parsed> ParsedFromTemplate(const BatchTemplate& t);
  Result<Batch> CreateParsed(Parsed p, const std::string& id);
  Result<std::filesystem::path> ResolveInput(std::string_view path) const;
  Result<std::filesystem::path> ResolveOutput(std::string_view path, const std::string& batch_id,
                                              BatchOutputFormat format) const;
  Status CheckModel(const BatchSpec& spec);

  BatchStore* store_;
  BatchServices services_;
  BatchServiceOptions options_;
  std::function<void()> on_change_;
  UsageLedger* usage_ = nullptr;
  JsonWatcher watcher_;
};

// The batch as OpenAI's Batch object (timestamps in Unix seconds, null until reached), with Ferry's
// fields beside them ("model", "format", "input", "output", "resumes", "records_redone").
std::string BatchObjectJson(const Batch& batch);

}  // namespace ferry
