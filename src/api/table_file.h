#pragma once
// Precomputed tables from files: what `ferry precompute load`, `PUT /v1/tables/{name}` and a batch's
// `publish` read. Two formats, both what a batch writes:
//   jsonl: one KServe v2 response per line (model_name, model_version, id, outputs with JSON data);
//          the line's "id" is the key;
//   csv:   a header naming `id` (or `custom_id`) and the outputs' columns as a batch's CSV output does
//          (`<output>` for one value per row, `<output>_<k>` for several), then one row per key.
// Every entry must hold each output of the model, with its datatype and shape (one row: [1, dims...]
// for a model with a batch dimension). A bad line is listed with its line number, and any bad line
// means nothing is published. Thread-compatible.
#include <cstdint>
#include <filesystem>
#include <string>

#include "hybrid/table_store.h"
#include "repository/model_config.h"

namespace ferry {

enum class TableFileFormat { kJsonl, kCsv };
// csv for a name ending in .csv, else jsonl.
TableFileFormat TableFileFormatFor(const std::filesystem::path& path);

struct TableFileOptions {
  TableFileFormat format = TableFileFormat::kJsonl;
  std::string default_version;  // for lines without model_version (and every CSV row); empty: required
  int64_t produced_ms = 0;      // when the entries were made
  size_t errors_listed = 20;    // the error names this many bad lines, and counts the rest
};

// Reads the file into `sink`, checking each entry against `config`'s outputs. kInvalidArgument listing
// the bad lines ("line 3: ...; line 9: ...; and 12 more") when any is bad; kNotFound for a missing file.
Status ReadTableFile(const std::filesystem::path& path, const ModelConfig& config, const TableFileOptions& options,
                     TableSink* sink);

// Publishes the file as a new generation of `table` for `config`'s model: nothing changes on any error.
Result<TableInfo> PublishTableFile(TableStore* store, const std::string& table, const ModelConfig& config,
                                   const std::filesystem::path& path, const TableFileOptions& options,
                                   const std::string& source);

}  // namespace ferry
