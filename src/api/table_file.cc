#include "api/table_file.h"

#include <fmt/format.h>

#include "api/batch_records.h"
#include "jobs/batch_input.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

// The entry's outputs against the config: each output once, its datatype and its row shape; returned
// in config order.
Result<std::vector<Tensor>> CheckOutputs(const ModelConfig& config, std::vector<Tensor> outputs) {
  std::vector<Tensor> ordered;
  for (const TensorSpec& spec : config.outputs) {
    auto it = std::find_if(outputs.begin(), outputs.end(), [&](const Tensor& t) { return t.name == spec.name; });
    if (it == outputs.end()) return InvalidArgument(fmt::format("output '{}' is missing", spec.name));
    if (it->dtype != spec.dtype) {
      return InvalidArgument(fmt::format("output '{}' has datatype {}, the model gives {}", spec.name,
                                         DataTypeName(it->dtype), DataTypeName(spec.dtype)));
    }
    const Shape want = FullShape(config, spec, 1);
    bool fits = it->shape.size() == want.size();
    for (size_t i = 0; fits && i < want.size(); ++i) fits = want[i] == -1 || want[i] == it->shape[i];
    if (!fits) {
      return InvalidArgument(fmt::format("output '{}' has shape {}, one row of the model's is {}", spec.name,
                                         ShapeToString(it->shape), ShapeToString(want)));
    }
    ordered.push_back(std::move(*it));
    outputs.erase(it);
  }
  if (!outputs.empty()) return InvalidArgument(fmt::format("output '{}' is no output of the model", outputs[0].name));
  return ordered;
}

Result<TableEntry> JsonlEntry(const BatchRecord& record, const ModelConfig& config, const TableFileOptions& options) {
  FERRY_ASSIGN_OR_RETURN(InferResponse response, DecodeInferResponseJson(record.text));
  if (response.id.empty()) return InvalidArgument("the line has no id (the key)");
  FERRY_RETURN_IF_ERROR(CheckTableKey(response.id).WithContext("id"));
  if (!response.model_name.empty() && response.model_name != config.name) {
    return InvalidArgument(fmt::format("the line is model '{}''s answer, not '{}''s", response.model_name, config.name));
  }
  TableEntry entry;
  entry.key = std::move(response.id);
  entry.model_version = response.model_version.empty() ? options.default_version : response.model_version;
  if (entry.model_version.empty()) return InvalidArgument("the line has no model_version, and none was given");
  entry.produced_ms = options.produced_ms;
  FERRY_ASSIGN_OR_RETURN(entry.outputs, CheckOutputs(config, std::move(response.outputs)));
  return entry;
}

class CsvEntries {
 public:
  static Result<CsvEntries> Make(const ModelConfig& config, const std::vector<std::string>& header) {
    if (config.max_batch_size <= 0) return InvalidArgument("a CSV table needs a model with a batch dimension");
    ModelConfig as_inputs = config;  // the same column rules as a CSV batch's inputs, over the outputs
    as_inputs.inputs = config.outputs;
    for (TensorSpec& spec : as_inputs.inputs) spec.columns.clear();
    FERRY_ASSIGN_OR_RETURN(CsvColumnMap map, MapCsvColumns(as_inputs, header));
    if (map.key_column < 0) return InvalidArgument("the CSV header has no id column (the key)");
    return CsvEntries(config, std::move(map));
  }
  Result<TableEntry> Entry(const BatchRecord& record, const TableFileOptions& options) const {
    if (record.fields.size() != map_.column_count) {
      return InvalidArgument(fmt::format("the row has {} fields; the header has {}", record.fields.size(),
                                         map_.column_count));
    }
    TableEntry entry;
    entry.key = record.fields[static_cast<size_t>(map_.key_column)];
    FERRY_RETURN_IF_ERROR(CheckTableKey(entry.key).WithContext("id"));
    if (options.default_version.empty()) return InvalidArgument("a CSV row has no model_version, and none was given");
    entry.model_version = options.default_version;
    entry.produced_ms = options.produced_ms;
    FERRY_ASSIGN_OR_RETURN(InferRequest row, CsvRowToRequest(map_, record.fields, entry.key));
    FERRY_ASSIGN_OR_RETURN(entry.outputs, CheckOutputs(*config_, std::move(row.inputs)));
    return entry;
  }

 private:
  CsvEntries(const ModelConfig& config, CsvColumnMap map) : config_(&config), map_(std::move(map)) {}
  const ModelConfig* config_;
  CsvColumnMap map_;
};

}  // namespace

TableFileFormat TableFileFormatFor(const std::filesystem::path& path) {
  return path.extension() == ".csv" ? TableFileFormat::kCsv : TableFileFormat::kJsonl;
}

Status ReadTableFile(const std::filesystem::path& path, const ModelConfig& config, const TableFileOptions& options,
                     TableSink* sink) {
  const bool csv = options.format == TableFileFormat::kCsv;
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> reader,
                         RecordReader::Open(path, csv ? BatchFormat::kCsv : BatchFormat::kOip));
  std::optional<CsvEntries> columns;
  if (csv) {
    Result<CsvEntries> made = CsvEntries::Make(config, reader->header());
    if (!made.ok()) return made.status().WithContext("line 1");
    columns.emplace(std::move(made).value());
  }
  std::string listed;
  int64_t bad = 0;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(std::optional<BatchRecord> record, reader->Next());
    if (!record) break;
    Result<TableEntry> entry = !record->error.ok() ? Result<TableEntry>(record->error)
                               : csv               ? columns->Entry(*record, options)
                                                   : JsonlEntry(*record, config, options);
    if (entry.ok()) {
      if (bad == 0) FERRY_RETURN_IF_ERROR(sink->Add(*entry));  // once a line is bad, only check the rest
      continue;
    }
    if (static_cast<size_t>(bad) < options.errors_listed) {
      listed += fmt::format("{}line {}: {}", listed.empty() ? "" : "; ", record->line, entry.status().message());
    }
    ++bad;
  }
  if (bad == 0) return Status::Ok();
  const int64_t more = bad - static_cast<int64_t>(options.errors_listed);
  return InvalidArgument(fmt::format("{} bad line{} in the table file, nothing published: {}{}", bad,
                                     bad == 1 ? "" : "s", listed, more > 0 ? fmt::format("; and {} more", more) : ""));
}

Result<TableInfo> PublishTableFile(TableStore* store, const std::string& table, const ModelConfig& config,
                                   const std::filesystem::path& path, const TableFileOptions& options,
                                   const std::string& source) {
  return store->Publish(table, config.name, source,
                        [&](TableSink& sink) { return ReadTableFile(path, config, options, &sink); });
}

}  // namespace ferry
