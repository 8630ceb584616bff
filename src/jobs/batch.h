#pragma once
// A batch: one model run over every record of a stored input, as the store keeps it. Value types,
// thread-compatible. The states and their names are those of OpenAI's Batch API.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry {

// Legal transitions (IsLegalBatchTransition; one test each):
//   validating  -> in_progress | failed | cancelling
//   in_progress -> finalizing | failed | cancelling
//   finalizing  -> completed | failed
//   cancelling  -> cancelled
// completed, failed and cancelled are final.
enum class BatchState {
  kValidating = 0,
  kInProgress = 1,
  kFinalizing = 2,
  kCompleted = 3,
  kFailed = 4,
  kCancelling = 5,
  kCancelled = 6,
};

std::string_view BatchStateName(BatchState state);  // "validating", "in_progress", ...
std::optional<BatchState> BatchStateFromName(std::string_view name);
bool IsLegalBatchTransition(BatchState from, BatchState to);
inline bool IsFinal(BatchState s) {
  return s == BatchState::kCompleted || s == BatchState::kFailed || s == BatchState::kCancelled;
}

// How the input's records are written, and so how each is run and answered.
//   oip:    JSONL, one KServe v2 inference request per line, keyed by its "id" (else its line number);
//   openai: JSONL, OpenAI batch lines {custom_id, method, url, body}, answered as OpenAI's batch output;
//   csv:    a header row, then one record per row; columns map to the model's inputs by name;
//   files:  a folder: each regular file below it (in path order) is a record, keyed by its relative
//           path, whose bytes feed the model's BYTES input (images through its preprocess block, text).
enum class BatchFormat { kOip = 0, kOpenAi = 1, kCsv = 2, kFiles = 3 };

std::string_view BatchFormatName(BatchFormat format);  // "oip", "openai", "csv", "files"

// How a tensor batch's answers are written: one JSON line each (the v2 response), or one CSV row each
// (`id` and every output value, for tabular outputs) under a header row.
enum class BatchOutputFormat { kJsonl = 0, kCsv = 1 };
std::optional<BatchFormat> BatchFormatFromName(std::string_view name);

struct BatchSpec {
  std::string model;            // the model every record runs on; for openai lines, the body's if empty
  std::string endpoint;         // openai: "/v1/chat/completions" or "/v1/completions"; else empty
  BatchFormat format = BatchFormat::kOip;
  BatchOutputFormat output_format = BatchOutputFormat::kJsonl;
  std::string input_path;       // the input file (a folder for files), absolute
  std::string input_file_id;    // the uploaded file it came from; empty for a path
  std::string output_path;      // the final output (JSONL); written as <output_path>.partial until done
  std::string errors_path;      // one line per failed record, beside the output
  std::string metadata_json = "{}";  // the client's metadata object, kept as sent
  std::string completion_window = "24h";
  int64_t priority = 0;         // higher first among batches
  // A precomputed table the output is published into when the batch completes (keys: the records'
  // ids); empty for none. Tensor formats only.
  std::string publish_table;
  // Who made it, and is charged for its records (an API key's name; "(schedule)" for a schedule's).
  std::string caller = "(none)";
};

// How far a batch has come: what its last checkpoint committed. Records are written in input order, so
// "the first records_done records are in the output and errors files, whose lengths were then
// output_bytes and errors_bytes, and the input's next record starts at input_offset" describes a
// resumable state exactly.
struct BatchProgress {
  int64_t records_done = 0;     // records answered (completed + failed), a prefix of the input
  int64_t input_offset = 0;     // byte offset of the next record in the input (files: its index)
  int64_t input_line = 0;       // lines of the input consumed (for error messages after a resume)
  int64_t output_bytes = 0;
  int64_t errors_bytes = 0;
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t total = -1;           // records in the input; -1 until counted
};

struct Batch {
  std::string id;               // "batch_<hex>"
  BatchSpec spec;
  BatchState state = BatchState::kValidating;
  BatchProgress progress;
  int64_t created_ms = 0;       // Unix milliseconds; each stage's time is 0 until reached
  int64_t in_progress_ms = 0;
  int64_t finalizing_ms = 0;
  int64_t completed_ms = 0;
  int64_t failed_ms = 0;
  int64_t cancelling_ms = 0;
  int64_t cancelled_ms = 0;
  std::string error;            // why it failed
  std::string output_file_id;   // set when final, for GET /v1/files/{id}/content
  std::string error_file_id;
  std::string lease_owner;
  int64_t lease_expires_ms = 0;
  int64_t checkpoints = 0;      // checkpoints committed
  int64_t resumes = 0;          // runs that started from a checkpoint left by an earlier one
  int64_t records_redone = 0;   // records answered past a checkpoint by a run that was cut off
};

// A stored file (an upload, or a batch's output), as OpenAI's Files API shows it.
struct StoredFile {
  std::string id;               // "file-<hex>"
  std::string filename;
  std::string purpose;          // "batch", "batch_output"
  std::string path;             // where its bytes are
  int64_t bytes = 0;
  int64_t created_ms = 0;
};

}  // namespace ferry
