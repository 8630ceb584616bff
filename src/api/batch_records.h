#pragma once
// How each batch format's records run and are answered: the RecordExecutors of jobs/batch_run.h over
// the same services as online traffic, at Priority::kBulk.
//
//   oip:    the line is a KServe v2 inference request; its output line is the v2 response (its "id" the
//           request's, or "line-<n>" without one); a failed record's line in the errors file is
//           {"id", "line", "error": {"code", "message"}}.
//   openai: the line is {"custom_id", "method": "POST", "url", "body"}; output lines are OpenAI's
//           {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null}, and a
//           failed request's {"id", "custom_id", "response": {...} | null, "error": {"code", "message"}}
//           goes to the errors file.
//   csv:    a row; columns map to the model's inputs (see CsvColumnMap); answered as oip.
//   files:  a file of a folder: its bytes are the model's one BYTES input (an image its preprocess
//           block decodes, a text), keyed by its relative path; answered as oip.
#include <memory>
#include <string>
#include <vector>

#include "api/completion_service.h"
#include "api/inference_service.h"
#include "jobs/batch_run.h"
#include "lifecycle/model_manager.h"

namespace ferry {

// Which CSV columns feed which input, for a model with a batch dimension whose inputs each take a fixed
// number of elements per row:
//   - a column named "id" (or "custom_id") is the record's key, never an input;
//   - an input whose config names its columns (`columns: [...]`) takes those, by name, in any order;
//     other columns of the file are then ignored;
//   - an input taking one element per row takes the column of its own name;
//   - an input taking N > 1 elements takes the columns "<name>_0" .. "<name>_<N-1>" when they all exist,
//     or else, when it is the only input left, every column not used otherwise, in header order (N of
//     them): a tabular model's feature columns.
// Every other mismatch (a missing column, too many or too few, an input the CSV cannot spell) is a
// kInvalidArgument naming it.
struct CsvColumnMap {
  int key_column = -1;
  struct Input {
    std::string name;
    DataType dtype = DataType::kFp32;
    Shape shape;                 // of one row, batch dimension included ([1, ...])
    std::vector<int> columns;    // one per element, row-major
  };
  std::vector<Input> inputs;     // config order
  size_t column_count = 0;
};
Result<CsvColumnMap> MapCsvColumns(const ModelConfig& config, const std::vector<std::string>& header);
// One row as an inference request: each field parsed as its input's type (an empty float field is NaN,
// the usual spelling of a missing value for tree models). kInvalidArgument naming the column otherwise.
Result<InferRequest> CsvRowToRequest(const CsvColumnMap& map, const std::vector<std::string>& fields,
                                     const std::string& key);

class TableService;

struct BatchServices {
  InferenceService* inference = nullptr;
  CompletionService* completions = nullptr;  // null: no language models
  ModelManager* manager = nullptr;
  TableService* tables = nullptr;            // null: a batch's `publish` is refused
};

// The executor for one batch. kNotFound for an unknown model, kInvalidArgument for a format that does
// not fit it (openai lines for a tensor model, a tensor format for a language model).
Result<std::unique_ptr<RecordExecutor>> MakeRecordExecutor(const BatchSpec& spec, const std::string& batch_id,
                                                           const BatchServices& services);

}  // namespace ferry
