#include "api/batch_service.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/json_writer.h"
#include "common/path_within.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kChatEndpoint = "/v1/chat/completions";
constexpr std::string_view kCompletionsEndpoint = "/v1/completions";

void OptionalSeconds(JsonWriter& w, std::string_view key, int64_t ms) {
  w.Key(key);
  if (ms > 0) {
    w.Int(ms / 1000);
  } else {
    w.Null();
  }
}

void WriteFile(JsonWriter& w, const StoredFile& f) {
  w.BeginObject().Key("id").String(f.id).Key("object").String("file").Key("bytes").Int(f.bytes);
  w.Key("created_at").Int(f.created_ms / 1000).Key("filename").String(f.filename).Key("purpose").String(f.purpose);
  w.Key("status").String("processed").Key("status_details").Null().EndObject();
}

std::string FileObjectJson(const StoredFile& f) {
  std::string out;
  JsonWriter w(&out);
  WriteFile(w, f);
  return out;
}

// A path with a ".." part is refused outright, whatever it would resolve to.
bool HasDotDot(const fs::path& p) {
  for (const fs::path& part : p) {
    if (part == "..") return true;
  }
  return false;
}

Status SetFormat(std::string_view name, BatchSpec* spec, bool* given) {
  std::optional<BatchFormat> format = BatchFormatFromName(name);
  if (!format) return InvalidArgument(fmt::format("format must be oip, csv, files or openai, not '{}'", name));
  spec->format = *format;
  *given = true;
  return Status::Ok();
}

// `"publish": {"table": "T"}` (and `"key": "id"`, the only key a batch's records have).
Status ParsePublish(simdjson::dom::element value, BatchSpec* spec) {
  simdjson::dom::object object;
  if (value.get_object().get(object)) return InvalidArgument("'publish' must be an object {\"table\": ...}");
  for (simdjson::dom::key_value_pair field : object) {
    std::string_view text;
    if (field.value.get_string().get(text)) {
      return InvalidArgument(fmt::format("'publish.{}' must be a string", std::string(field.key).substr(0, 32)));
    }
    if (field.key == "table") {
      FERRY_RETURN_IF_ERROR(CheckTableName(text).WithContext("publish.table"));
      spec->publish_table = std::string(text);
    } else if (field.key == "key") {
      if (text != "id") return InvalidArgument("'publish.key' must be \"id\": a table is keyed by the records' ids");
    } else {
      return InvalidArgument(fmt::format("unknown key 'publish.{}'", std::string(field.key).substr(0, 32)));
    }
  }
  if (spec->publish_table.empty()) return InvalidArgument("'publish' needs a 'table'");
  return Status::Ok();
}

Status SetOutputFormat(std::string_view name, BatchSpec* spec, bool* given) {
  if (name != "jsonl" && name != "csv") return InvalidArgument(fmt::format("output_format must be jsonl or csv, not '{}'", name));
  spec->output_format = name == "csv" ? BatchOutputFormat::kCsv : BatchOutputFormat::kJsonl;
  *given = true;
  return Status::Ok();
}

Status CopyRange(const fs::path& from, size_t offset, size_t length, const fs::path& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!in || !out) return Unavailable("files: cannot store the upload");
  in.seekg(static_cast<std::streamoff>(offset));
  std::string chunk(1 << 20, '\0');
  while (length > 0 && in) {
    const size_t n = std::min(length, chunk.size());
    in.read(chunk.data(), static_cast<std::streamsize>(n));
    const size_t got = static_cast<size_t>(in.gcount());
    if (got == 0) break;
    out.write(chunk.data(), static_cast<std::streamsize>(got));
    length -= got;
  }
  out.flush();
  if (length != 0 || !out) return Unavailable("files: cannot store the upload (disk full?)");
  return Status::Ok();
}

}  // namespace

std::string BatchObjectJson(const Batch& b) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("id").String(b.id).Key("object").String("batch");
  w.Key("endpoint").String(b.spec.endpoint.empty() ? fmt::format("/v2/models/{}/infer", b.spec.model) : b.spec.endpoint);
  w.Key("errors");
  if (b.error.empty()) {
    w.Null();
  } else {
    w.BeginObject().Key("object").String("list").Key("data").BeginArray().BeginObject();
    w.Key("code").String("batch_failed").Key("message").String(b.error).Key("param").Null().Key("line").Null();
    w.EndObject().EndArray().EndObject();
  }
  w.Key("input_file_id").String(b.spec.input_file_id);
  w.Key("completion_window").String(b.spec.completion_window);
  w.Key("status").String(BatchStateName(b.state));
  for (auto [key, id] : {std::pair{"output_file_id", &b.output_file_id}, {"error_file_id", &b.error_file_id}}) {
    w.Key(key);
    if (id->empty()) {
      w.Null();
    } else {
      w.String(*id);
    }
  }
  w.Key("created_at").Int(b.created_ms / 1000);
  OptionalSeconds(w, "in_progress_at", b.in_progress_ms);
  w.Key("expires_at").Int(b.created_ms / 1000 + 24 * 3600);
  OptionalSeconds(w, "finalizing_at", b.finalizing_ms);
  OptionalSeconds(w, "completed_at", b.completed_ms);
  OptionalSeconds(w, "failed_at", b.failed_ms);
  w.Key("expired_at").Null();
  OptionalSeconds(w, "cancelling_at", b.cancelling_ms);
  OptionalSeconds(w, "cancelled_at", b.cancelled_ms);
  w.Key("request_counts").BeginObject().Key("total").Int(std::max<int64_t>(0, b.progress.total));
  w.Key("completed").Int(b.progress.completed).Key("failed").Int(b.progress.failed).EndObject();
  w.Key("metadata").Raw(b.spec.metadata_json.empty() ? "null" : b.spec.metadata_json);
  w.Key("model").String(b.spec.model).Key("format").String(BatchFormatName(b.spec.format));
  w.Key("output_format").String(b.spec.output_format == BatchOutputFormat::kCsv ? "csv" : "jsonl");
  if (!b.spec.publish_table.empty()) w.Key("publish").BeginObject().Key("table").String(b.spec.publish_table).EndObject();
  if (b.spec.input_file_id.empty()) w.Key("input").String(b.spec.input_path);
  w.Key("output").String(b.spec.output_path).Key("errors_output").String(b.spec.errors_path);
  w.Key("priority").Int(b.spec.priority).Key("records_done").Int(b.progress.records_done);
  w.Key("resumes").Int(b.resumes).Key("records_redone").Int(b.records_redone);
  w.EndObject();
  return out;
}

BatchService::BatchService(BatchStore* store, BatchServices services, BatchServiceOptions options)
    : store_(store),
      services_(services),
      options_(std::move(options)),
      watcher_(kMaxWatches, fmt::format("{} batch watches are open; poll GET /v1/batches/{{id}} instead", kMaxWatches)) {}

Result<std::string> BatchService::CreateFile(std::string_view purpose, const UploadedPart& part) {
  if (purpose != "batch") return InvalidArgument(fmt::format("purpose must be 'batch', not '{}'", purpose));
  if (static_cast<int64_t>(part.length) > options_.max_file_bytes) {
    return PayloadTooLarge(fmt::format("the file is over the limit of {} bytes", options_.max_file_bytes));
  }
  StoredFile f;
  f.id = NewFileId();
  f.filename = part.filename.empty() ? "upload.jsonl" : fs::path(part.filename).filename().string();
  f.purpose = std::string(purpose);
  f.bytes = static_cast<int64_t>(part.length);
  const fs::path folder = options_.data_dir / "files";
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return Unavailable(fmt::format("files: cannot create the files folder: {}", ec.message()));
  f.path = fs::absolute(folder / f.id).string();
  FERRY_RETURN_IF_ERROR(CopyRange(part.spool, part.offset, part.length, f.path));
  if (Status s = store_->AddFile(f); !s.ok()) {
    fs::remove(f.path, ec);
    return s;
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<StoredFile> stored, store_->GetFile(f.id));
  return FileObjectJson(stored ? *stored : f);
}

Result<std::string> BatchService::FileJson(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(std::optional<StoredFile> f, store_->GetFile(id));
  if (!f) return NotFound(fmt::format("no file '{}'", id.substr(0, 64)));
  return FileObjectJson(*f);
}

Result<std::string> BatchService::ListFilesJson(std::string_view purpose, int64_t limit) {
  if (limit < 1 || limit > 10'000) return InvalidArgument("limit must be within 1..10000");
  FERRY_ASSIGN_OR_RETURN(std::vector<StoredFile> files, store_->ListFiles(std::string(purpose), limit));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const StoredFile& f : files) WriteFile(w, f);
  w.EndArray().Key("has_more").Bool(false).EndObject();
  return out;
}

Result<std::string> BatchService::DeleteFile(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(std::optional<StoredFile> f, store_->GetFile(id));
  if (!f) return NotFound(fmt::format("no file '{}'", id.substr(0, 64)));
  FERRY_RETURN_IF_ERROR(store_->DeleteFile(id));
  std::error_code ec;
  // Only uploads are ours to remove; a batch's output written under the output root stays on disk.
  if (f->purpose == "batch" || IsPathWithin(fs::path(f->path), fs::absolute(options_.data_dir))) fs::remove(f->path, ec);
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("id").String(id).Key("object").String("file").Key("deleted").Bool(true).EndObject();
  return out;
}

Result<std::string> BatchService::FileContent(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(std::optional<StoredFile> f, store_->GetFile(id));
  if (!f) return NotFound(fmt::format("no file '{}'", id.substr(0, 64)));
  std::error_code ec;
  const auto size = fs::file_size(f->path, ec);
  if (ec) return NotFound(fmt::format("the bytes of file '{}' are gone", id));
  if (static_cast<int64_t>(size) > options_.max_file_bytes) {
    return PayloadTooLarge(fmt::format("the file is over {} bytes; read it from {}", options_.max_file_bytes, f->path));
  }
  std::ifstream in(f->path, std::ios::binary);
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<size_t>(in.gcount()) != size) return Unavailable("files: cannot read the file");
  return bytes;
}

Result<fs::path> BatchService::ResolveInput(std::string_view text) const {
  if (options_.input_root.empty()) {
    return PermissionDenied("inputs by path are off on this server (--batch-input-root); upload the file instead");
  }
  const fs::path p(text);
  if (text.empty() || HasDotDot(p)) return PermissionDenied("the input path must not contain '..'");
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(options_.input_root, ec);
  const fs::path candidate = p.is_absolute() ? p : options_.input_root / p;
  const fs::path real = fs::canonical(candidate, ec);  // follows symlinks: one out of the root is refused
  if (ec) {
    if (!IsPathWithin(fs::weakly_canonical(candidate, ec), root)) return PermissionDenied("the input is outside the input root");
    return NotFound(fmt::format("input '{}' does not exist", std::string(text)));
  }
  if (!IsPathWithin(real, root)) return PermissionDenied("the input is outside the input root");
  if (!fs::is_regular_file(real, ec) && !fs::is_directory(real, ec)) {
    return InvalidArgument(fmt::format("input '{}' is neither a file nor a folder", std::string(text)));
  }
  return real;
}

Result<fs::path> BatchService::ResolveOutput(std::string_view text, const std::string& batch_id,
                                             BatchOutputFormat format) const {
  std::error_code ec;
  fs::path out;
  if (text.empty()) {
    out = fs::absolute(options_.data_dir / "batches" / batch_id /
                       (format == BatchOutputFormat::kCsv ? "output.csv" : "output.jsonl"));
  } else {
    if (options_.output_root.empty()) {
      return PermissionDenied("outputs by path are off on this server (--batch-output-root); leave 'output' out");
    }
    const fs::path p(text);
    if (HasDotDot(p)) return PermissionDenied("the output path must not contain '..'");
    const fs::path root = fs::weakly_canonical(options_.output_root, ec);
    out = fs::weakly_canonical(p.is_absolute() ? p : options_.output_root / p, ec);
    if (ec || !IsPathWithin(out, root) || out == root) return PermissionDenied("the output is outside the output root");
  }
  fs::create_directories(out.parent_path(), ec);
  if (ec || ::access(out.parent_path().c_str(), W_OK) != 0) {
    return PermissionDenied(fmt::format("the output folder of '{}' cannot be written", out.filename().string()));
  }
  if (fs::exists(out, ec)) return Status(StatusCode::kAlreadyExists, fmt::format("output '{}' exists already", out.string()));
  return out;
}

struct BatchService::Parsed {
  BatchSpec spec;
  std::string input;     // a path, when no input_file_id
  std::string output;    // a path under the output root, or empty
  bool has_format = false;
  bool has_output_format = false;
};

Result<BatchService::Parsed> BatchService::ParseCreate(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(body.data(), body.size()).get_object().get(root)) {
    return InvalidArgument("the batch must be a JSON object");
  }
  Parsed p;
  for (simdjson::dom::key_value_pair field : root) {
    // Named copies, not structured bindings: lambdas may not capture those before clang 16.
    const std::string_view key = field.key;
    const simdjson::dom::element value = field.value;
    auto text = [&](std::string* out) -> Status {
      std::string_view v;
      if (value.get_string().get(v)) return InvalidArgument(fmt::format("'{}' must be a string", key));
      *out = std::string(v);
      return Status::Ok();
    };
    if (key == "input_file_id") {
      FERRY_RETURN_IF_ERROR(text(&p.spec.input_file_id));
    } else if (key == "input") {
      FERRY_RETURN_IF_ERROR(text(&p.input));
    } else if (key == "endpoint") {
      FERRY_RETURN_IF_ERROR(text(&p.spec.endpoint));
    } else if (key == "completion_window") {
      FERRY_RETURN_IF_ERROR(text(&p.spec.completion_window));
    } else if (key == "model") {
      FERRY_RETURN_IF_ERROR(text(&p.spec.model));
    } else if (key == "output") {
      FERRY_RETURN_IF_ERROR(text(&p.output));
    } else if (key == "output_format") {
      std::string f;
      FERRY_RETURN_IF_ERROR(text(&f));
      FERRY_RETURN_IF_ERROR(SetOutputFormat(f, &p.spec, &p.has_output_format));
    } else if (key == "format") {
      std::string f;
      FERRY_RETURN_IF_ERROR(text(&f));
      FERRY_RETURN_IF_ERROR(SetFormat(f, &p.spec, &p.has_format));
    } else if (key == "metadata") {
      if (value.is_null()) continue;
      if (!value.is_object()) return InvalidArgument("'metadata' must be an object");
      p.spec.metadata_json = simdjson::minify(value);
      if (p.spec.metadata_json.size() > 16 * 1024) return InvalidArgument("'metadata' is over 16 KiB");
    } else if (key == "priority") {
      if (value.get_int64().get(p.spec.priority)) return InvalidArgument("'priority' must be an integer");
    } else if (key == "publish") {
      FERRY_RETURN_IF_ERROR(ParsePublish(value, &p.spec));
    } else {
      return InvalidArgument(fmt::format("unknown key '{}'", std::string(key).substr(0, 64)));
    }
  }
  FERRY_RETURN_IF_ERROR(CheckKinds(p));
  return p;
}

// The kinds a batch's fields must agree on: endpoint, format, output format, one input.
Status BatchService::CheckKinds(Parsed& p) {
  const bool text_endpoint = p.spec.endpoint == kChatEndpoint || p.spec.endpoint == kCompletionsEndpoint;
  if (!p.spec.endpoint.empty() && !text_endpoint) {
    return InvalidArgument(fmt::format("endpoint must be {} or {} (or none, for a tensor model)", kChatEndpoint,
                                       kCompletionsEndpoint));
  }
  if (!p.has_format) {
    p.spec.format = text_endpoint ? BatchFormat::kOpenAi
                                  : p.input.ends_with(".csv") ? BatchFormat::kCsv : BatchFormat::kOip;
  }
  if (p.spec.format == BatchFormat::kOpenAi && !text_endpoint) {
    return InvalidArgument(fmt::format("an openai batch needs 'endpoint' ({} or {})", kChatEndpoint, kCompletionsEndpoint));
  }
  if (p.spec.format != BatchFormat::kOpenAi && text_endpoint) {
    return InvalidArgument("a batch for a text endpoint has format openai");
  }
  if (p.spec.input_file_id.empty() == p.input.empty()) {
    return InvalidArgument("give exactly one of 'input_file_id' (an uploaded file) and 'input' (a path)");
  }
  if (p.spec.completion_window.empty()) return InvalidArgument("'completion_window' must not be empty");
  if (!p.has_output_format && p.output.ends_with(".csv")) p.spec.output_format = BatchOutputFormat::kCsv;
  if (p.spec.format == BatchFormat::kOpenAi && p.spec.output_format != BatchOutputFormat::kJsonl) {
    return InvalidArgument("an openai batch writes JSONL (OpenAI's batch output lines)");
  }
  if (!p.spec.publish_table.empty()) {
    if (p.spec.format == BatchFormat::kOpenAi) return InvalidArgument("'publish' is for tensor batches, not openai ones");
  }
  return Status::Ok();
}

Status BatchService::CheckModel(const BatchSpec& spec) {
  if (!spec.publish_table.empty()) {
    if (services_.tables == nullptr) return InvalidArgument("this server has no precomputed tables: 'publish' is off");
    // A batch may fill only the table its model reads: anyone who may run a batch could otherwise put
    // one model's answers in front of another.
    FERRY_ASSIGN_OR_RETURN(const ModelConfig config, services_.manager->ConfigOf(spec.model, std::nullopt));
    const auto& rule = config.precomputed;
    if (!rule || rule->table != spec.publish_table) {
      return InvalidArgument(fmt::format("model '{}' reads no table '{}' (its config's precomputed.table); a batch "
                                         "publishes only into its model's table", spec.model, spec.publish_table));
    }
  }
  if (spec.format == BatchFormat::kOpenAi) {
    if (services_.completions == nullptr) return InvalidArgument("this server has no language models");
    const TextApi api = spec.endpoint == kCompletionsEndpoint ? TextApi::kCompletions : TextApi::kChat;
    std::string body = api == TextApi::kChat ? R"({"messages":[{"role":"user","content":"x"}]})" : R"({"prompt":"x"})";
    if (spec.model.empty()) {
      // Each line names its model: the first line's must exist, so a batch for no model is refused now.
      FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> reader, RecordReader::Open(spec.input_path, spec.format));
      FERRY_ASSIGN_OR_RETURN(std::optional<BatchRecord> first, reader->Next());
      if (!first) return InvalidArgument("the input holds no request");
      simdjson::dom::parser parser;
      simdjson::dom::object body_object;
      if (parser.parse(first->text).get_object()["body"].get_object().get(body_object)) {
        return InvalidArgument("line 1 is not an OpenAI batch line with a 'body' object");
      }
      body = simdjson::minify(body_object);
    }
    return services_.completions->CheckJob(api, body, spec.model);
  }
  if (spec.model.empty()) return InvalidArgument("a batch needs 'model'");
  FERRY_ASSIGN_OR_RETURN(const ModelConfig config, services_.manager->ConfigOf(spec.model, std::nullopt));
  if (GeneratesText(config)) {
    return InvalidArgument(fmt::format("model '{}' is a language model: use endpoint {} with OpenAI batch lines",
                                       spec.model, kChatEndpoint));
  }
  {
    // The format's own check of the input against the model (a CSV header, a BYTES input, outputs a CSV
    // row can hold).
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> reader, RecordReader::Open(spec.input_path, spec.format));
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RecordExecutor> executor, MakeRecordExecutor(spec, "", services_));
    FERRY_RETURN_IF_ERROR(executor->Prepare(reader->header()));
  }
  return Status::Ok();
}

Result<std::string> BatchService::Create(std::string_view body, const std::string& caller) {
  FERRY_ASSIGN_OR_RETURN(Parsed p, ParseCreate(body));
  p.spec.caller = caller;
  // A caller whose budget is spent is refused now, not once the batch runs.
  if (usage_ != nullptr) FERRY_RETURN_IF_ERROR(usage_->Admit(caller, p.spec.model));
  FERRY_ASSIGN_OR_RETURN(Batch batch, CreateParsed(std::move(p), NewBatchId()));
  return BatchObjectJson(batch);
}

// A schedule's or trigger's batch as POST /v1/batches would have parsed it (the input may be a pattern).
Result<BatchService::Parsed> BatchService::ParsedFromTemplate(const BatchTemplate& t) {
  Parsed p;
  p.spec.model = t.model;
  p.spec.endpoint = t.endpoint;
  p.spec.priority = t.priority;
  p.input = t.input.empty() ? "input" : t.input;
  p.output = t.output;
  if (!t.format.empty()) FERRY_RETURN_IF_ERROR(SetFormat(t.format, &p.spec, &p.has_format));
  if (!t.output_format.empty()) FERRY_RETURN_IF_ERROR(SetOutputFormat(t.output_format, &p.spec, &p.has_output_format));
  if (!t.publish_table.empty()) {
    FERRY_RETURN_IF_ERROR(CheckTableName(t.publish_table).WithContext("publish_table"));
    p.spec.publish_table = t.publish_table;
  }
  FERRY_RETURN_IF_ERROR(CheckKinds(p));
  return p;
}

Result<bool> BatchService::Launch(const BatchOrder& order) {
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> existing, store_->Get(order.id));
  if (existing) return false;
  FERRY_ASSIGN_OR_RETURN(Parsed p, ParsedFromTemplate(order.batch));
  p.spec.metadata_json = order.metadata_json.empty() ? "{}" : order.metadata_json;
  p.spec.caller = "(schedule)";
  FERRY_RETURN_IF_ERROR(CreateParsed(std::move(p), order.id).status());
  return true;
}

Status BatchService::CheckTemplate(const BatchTemplate& t) {
  FERRY_RETURN_IF_ERROR(ParsedFromTemplate(t).status());
  if (!t.endpoint.empty()) {
    if (services_.completions == nullptr) return InvalidArgument("this server has no language models");
    if (t.model.empty()) return Status::Ok();  // each line names its model
    const TextApi api = t.endpoint == kCompletionsEndpoint ? TextApi::kCompletions : TextApi::kChat;
    return services_.completions->CheckJob(
        api, api == TextApi::kChat ? R"({"messages":[{"role":"user","content":"x"}]})" : R"({"prompt":"x"})", t.model);
  }
  FERRY_ASSIGN_OR_RETURN(const ModelConfig config, services_.manager->ConfigOf(t.model, std::nullopt));
  if (GeneratesText(config)) {
    return InvalidArgument(fmt::format("model '{}' is a language model: give endpoint {}", t.model, kChatEndpoint));
  }
  return Status::Ok();
}

Result<bool> BatchService::BatchRunning(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> b, store_->Get(id));
  return b && !IsFinal(b->state);
}

Result<std::pair<std::string, std::string>> BatchService::BatchOutcome(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> b, store_->Get(id));
  if (!b) return std::pair<std::string, std::string>("failed", "the batch is gone");
  if (!IsFinal(b->state)) return std::pair<std::string, std::string>();
  std::string error = b->error;
  if (error.empty() && b->progress.failed > 0) {
    error = fmt::format("{} of {} records failed (see {})", b->progress.failed, b->progress.records_done, b->spec.errors_path);
  }
  return std::pair<std::string, std::string>(std::string(BatchStateName(b->state)), error);
}

Result<Batch> BatchService::CreateParsed(Parsed p, const std::string& id) {
  if (!p.spec.input_file_id.empty()) {
    FERRY_ASSIGN_OR_RETURN(std::optional<StoredFile> f, store_->GetFile(p.spec.input_file_id));
    if (!f) return NotFound(fmt::format("no file '{}'", p.spec.input_file_id.substr(0, 64)));
    p.spec.input_path = f->path;
  } else {
    FERRY_ASSIGN_OR_RETURN(fs::path input, ResolveInput(p.input));
    p.spec.input_path = input.string();
    std::error_code ec;
    const bool folder = fs::is_directory(input, ec);
    if (!p.has_format && folder) p.spec.format = BatchFormat::kFiles;
    if (folder != (p.spec.format == BatchFormat::kFiles)) {
      return InvalidArgument(folder ? "the input is a folder: its files are a batch of format 'files'"
                                    : "a batch of format 'files' takes a folder as its input");
    }
  }
  FERRY_RETURN_IF_ERROR(CheckModel(p.spec));
  FERRY_ASSIGN_OR_RETURN(fs::path output, ResolveOutput(p.output, id, p.spec.output_format));
  p.spec.output_path = output.string();
  p.spec.errors_path = output.string() + ".errors.jsonl";
  FERRY_ASSIGN_OR_RETURN(Batch batch, store_->Create(p.spec, id));
  if (on_change_) on_change_();
  return batch;
}

Result<std::string> BatchService::BatchJson(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(std::optional<Batch> b, store_->Get(id));
  if (!b) return NotFound(fmt::format("no batch '{}'", id.substr(0, 64)));
  return BatchObjectJson(*b);
}

Result<std::string> BatchService::ListJson(std::string_view after, int64_t limit) {
  if (limit < 1 || limit > 100) return InvalidArgument("limit must be within 1..100");
  FERRY_ASSIGN_OR_RETURN(BatchPage page, store_->List(std::string(after), limit));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const Batch& b : page.batches) w.Raw(BatchObjectJson(b));
  w.EndArray();
  for (auto [key, at] : {std::pair{"first_id", 0}, {"last_id", 1}}) {
    w.Key(key);
    if (page.batches.empty()) {
      w.Null();
    } else {
      w.String(at == 0 ? page.batches.front().id : page.batches.back().id);
    }
  }
  w.Key("has_more").Bool(page.has_more).EndObject();
  return out;
}

Result<std::string> BatchService::Cancel(const std::string& id) {
  FERRY_ASSIGN_OR_RETURN(Batch b, store_->RequestCancel(id));
  if (on_change_) on_change_();
  return BatchObjectJson(b);
}

Status BatchService::Watch(const std::string& id, std::shared_ptr<CancelToken> cancel,
                           std::function<bool(const std::string&)> send, std::function<void()> end) {
  auto read = [this, id](bool* final_state) -> Result<std::optional<std::string>> {
    FERRY_ASSIGN_OR_RETURN(std::optional<Batch> b, store_->Get(id));
    if (!b) return std::optional<std::string>();
    *final_state = IsFinal(b->state);
    return std::optional<std::string>(BatchObjectJson(*b));
  };
  return watcher_.Watch(std::move(read), fmt::format("no batch '{}'", id.substr(0, 64)), std::move(cancel),
                        std::move(send), std::move(end));
}

RecordExecutorFactory BatchService::ExecutorFactory() {
  return [this](const Batch& b) -> Result<std::unique_ptr<RecordExecutor>> {
    if (b.spec.format != BatchFormat::kOpenAi) {
      // A model still loading (or not yet loaded after a restart) is worth waiting for.
      FERRY_ASSIGN_OR_RETURN(ModelHandle handle, services_.manager->Get(b.spec.model, std::nullopt));
      (void)handle;
    }
    return MakeRecordExecutor(b.spec, b.id, services_);
  };
}

}  // namespace ferry
