#include "api/table_service.h"

#include <fmt/format.h>

#include <fstream>
#include <random>

#include "common/json_writer.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

void WriteInfo(JsonWriter& w, const TableInfo& t) {
  w.BeginObject().Key("object").String("table").Key("name").String(t.name).Key("model").String(t.model);
  w.Key("generation").Int(t.generation).Key("entries").Int(t.entries);
  w.Key("published_at").Double(static_cast<double>(t.published_ms) / 1000.0);
  w.Key("oldest_entry_at").Double(static_cast<double>(t.oldest_ms) / 1000.0);
  w.Key("source").String(t.source).EndObject();
}

// A spooled body, removed when it goes out of scope.
class SpoolFile {
 public:
  static Result<SpoolFile> Write(const std::filesystem::path& dir, std::string_view body, TableFileFormat format) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::random_device random;
    const std::filesystem::path path =
        dir / fmt::format("table-{:08x}{:08x}.{}", random(), random(), format == TableFileFormat::kCsv ? "csv" : "jsonl");
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(path, ec);
      return Unavailable(fmt::format("cannot spool the table to '{}'", path.string()));
    }
    return SpoolFile(path);
  }
  SpoolFile(SpoolFile&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  ~SpoolFile() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit SpoolFile(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

}  // namespace

std::string TableInfoJson(const TableInfo& info) {
  std::string out;
  JsonWriter w(&out);
  WriteInfo(w, info);
  return out;
}

Result<ModelHandle> TableService::Model(const std::string& model) const {
  if (model.empty()) return InvalidArgument("name the model the table answers for (?model=...)");
  return manager_->Get(model, std::nullopt);
}

Result<std::string> TableService::ListJson() {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const TableInfo& t : store_->List()) WriteInfo(w, t);
  w.EndArray().EndObject();
  return out;
}

Result<std::string> TableService::GetJson(const std::string& name) {
  FERRY_ASSIGN_OR_RETURN(TableInfo info, store_->Get(name));
  return TableInfoJson(info);
}

Result<std::string> TableService::EntryJson(const std::string& name, const std::string& key) {
  FERRY_RETURN_IF_ERROR(CheckTableKey(key));
  FERRY_ASSIGN_OR_RETURN(TableInfo info, store_->Get(name));
  FERRY_ASSIGN_OR_RETURN(std::optional<TableEntry> entry, store_->Lookup(name, key));
  if (!entry) return NotFound(fmt::format("table '{}' has no entry for that key", name));
  InferResponse response;
  response.model_name = info.model;
  response.model_version = entry->model_version;
  response.id = entry->key;
  response.parameters["produced_at"] = static_cast<double>(entry->produced_ms) / 1000.0;
  response.outputs = std::move(entry->outputs);
  return EncodeInferResponse(response).body;
}

Result<std::string> TableService::Publish(const TablePublishRequest& request, std::string_view body) {
  FERRY_RETURN_IF_ERROR(CheckTableName(request.table));
  FERRY_ASSIGN_OR_RETURN(ModelHandle handle, Model(request.model));
  FERRY_ASSIGN_OR_RETURN(SpoolFile spooled, SpoolFile::Write(spool_dir_, body, request.format));
  TableFileOptions options;
  options.format = request.format;
  options.default_version = request.version.empty() ? std::to_string(handle->version()) : request.version;
  options.produced_ms = clock_->NowUnixMs();
  FERRY_ASSIGN_OR_RETURN(TableInfo info, PublishTableFile(store_, request.table, handle->config(), spooled.path(),
                                                          options, "upload"));
  return TableInfoJson(info);
}

Result<std::string> TableService::Drop(const std::string& name) {
  FERRY_RETURN_IF_ERROR(store_->Drop(name));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("table").Key("name").String(name).Key("deleted").Bool(true).EndObject();
  return out;
}

Status TableService::PublishBatchOutput(const Batch& batch) {
  const BatchSpec& spec = batch.spec;
  if (spec.publish_table.empty()) return Status::Ok();
  Result<ModelHandle> handle = Model(spec.model);
  if (!handle.ok()) {
    // A model that went away during the batch may come back: try again rather than fail.
    return handle.status().code() == StatusCode::kNotFound || handle.status().code() == StatusCode::kUnavailable
               ? Unavailable(handle.status().message()) : handle.status();
  }
  TableFileOptions options;
  options.format = spec.output_format == BatchOutputFormat::kCsv ? TableFileFormat::kCsv : TableFileFormat::kJsonl;
  options.default_version = std::to_string((*handle)->version());
  options.produced_ms = batch.in_progress_ms > 0 ? batch.in_progress_ms : clock_->NowUnixMs();
  Result<TableInfo> info = PublishTableFile(store_, spec.publish_table, (*handle)->config(), spec.output_path, options,
                                            batch.id);
  if (!info.ok()) return info.status().WithContext(fmt::format("publishing into table '{}'", spec.publish_table));
  return Status::Ok();
}

}  // namespace ferry
