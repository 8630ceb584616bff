#include "api/batch_records.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "api/status_mapping.h"
#include "api/table_service.h"
#include "common/json_writer.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

std::string LineKey(const BatchRecord& r) { return fmt::format("line-{}", r.line); }

// {"id": key, "line": n, "error": {"code", "message"}}: a failed record of an oip or csv batch.
std::string TensorErrorLine(const std::string& key, int64_t line, const Status& error) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("id").String(key).Key("line").Int(line);
  w.Key("error").BeginObject().Key("code").String(StatusCodeName(error.code())).Key("message").String(error.message());
  w.EndObject().EndObject();
  return out;
}

// Appends a CSV field, quoted when it holds a comma, a quote or a line end.
void AppendCsvField(std::string* out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(field);
    return;
  }
  out->push_back('"');
  for (char c : field) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

bool CsvOutputType(DataType t) {
  return t == DataType::kFp32 || t == DataType::kFp64 || t == DataType::kInt32 || t == DataType::kInt64 ||
         t == DataType::kBool;
}

template <typename T>
T Element(const Tensor& t, int64_t i) {
  T v;
  std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
  return v;
}

// How a tensor record's answer is written: the v2 response as one JSON line, or one CSV row
// `key,<output values...>` under a header (for tabular outputs: every output of a fixed size and a
// numeric or boolean type). Immutable once made: shared by the executor threads.
class ResponseRenderer {
 public:
  static Result<std::shared_ptr<const ResponseRenderer>> Make(BatchOutputFormat format, const ModelConfig& config) {
    auto r = std::make_shared<ResponseRenderer>();
    if (format == BatchOutputFormat::kJsonl) return std::shared_ptr<const ResponseRenderer>(r);
    r->csv_ = true;
    r->header_ = "id";
    for (const TensorSpec& spec : config.outputs) {
      int64_t n = 1;
      for (int64_t d : spec.dims) n *= d < 0 ? -1 : d;
      if (n < 0) return InvalidArgument(fmt::format("output '{}' has a variable size: CSV output needs fixed ones", spec.name));
      if (!CsvOutputType(spec.dtype)) {
        return InvalidArgument(fmt::format("output '{}' is {}: CSV output takes numbers and booleans", spec.name,
                                           DataTypeName(spec.dtype)));
      }
      for (int64_t k = 0; k < n; ++k) {
        r->header_ += ',';
        AppendCsvField(&r->header_, n == 1 ? spec.name : fmt::format("{}_{}", spec.name, k));
      }
    }
    return std::shared_ptr<const ResponseRenderer>(r);
  }
  const std::string& header() const { return header_; }
  std::string Line(InferResponse& response) const {
    if (!csv_) {
      response.binary_outputs.assign(response.outputs.size(), false);
      return EncodeInferResponse(response).body;
    }
    std::string out;
    AppendCsvField(&out, response.id);
    for (const Tensor& t : response.outputs) {
      const int64_t n = static_cast<int64_t>(t.data.size() / std::max<size_t>(1, ElementSize(t.dtype)));
      for (int64_t i = 0; i < n; ++i) {
        out += ',';
        switch (t.dtype) {
          case DataType::kFp32: AppendJsonFloat(&out, Element<float>(t, i)); break;
          case DataType::kFp64: AppendJsonDouble(&out, Element<double>(t, i)); break;
          case DataType::kInt32: out += std::to_string(Element<int32_t>(t, i)); break;
          case DataType::kInt64: out += std::to_string(Element<int64_t>(t, i)); break;
          default: out += Element<uint8_t>(t, i) ? '1' : '0'; break;  // BOOL, the last type Make allows
        }
      }
    }
    return out;
  }

 private:
  bool csv_ = false;
  std::string header_;
};

// The renderer of a tensor batch's model, made when the executor is prepared.
Result<std::shared_ptr<const ResponseRenderer>> RendererFor(const BatchServices& services, const std::string& model,
                                                            BatchOutputFormat format) {
  FERRY_ASSIGN_OR_RETURN(const ModelConfig config, services.manager->ConfigOf(model, std::nullopt));
  return ResponseRenderer::Make(format, config);
}

// Runs a decoded request at bulk priority; a full queue or a model not ready yet is "try again".
void InferRecord(InferenceService* inference, const std::string& model, const std::string& caller,
                 InferRequest&& request, std::shared_ptr<CancelToken> cancel, int64_t line, std::shared_ptr<const ResponseRenderer> renderer,
                 std::function<void(RecordOutcome)> done) {
  std::string key = request.id;
  request.caller = caller;  // charged to whoever made the batch
  inference->Infer(
      model, std::nullopt, std::move(request), std::move(cancel),
      [done = std::move(done), key = std::move(key), line, renderer](Result<InferResponse> response) {
        if (!response.ok()) {
          if (response.status().code() == StatusCode::kUnavailable) return done({RecordOutcome::Kind::kRetry, ""});
          return done({RecordOutcome::Kind::kError, TensorErrorLine(key, line, response.status())});
        }
        done({RecordOutcome::Kind::kOk, renderer->Line(*response)});
      },
      Priority::kBulk);
}

class OipExecutor final : public RecordExecutor {
 public:
  OipExecutor(const BatchSpec& spec, const BatchServices& services)
      : model_(spec.model), caller_(spec.caller), services_(services), format_(spec.output_format) {}

  Status Prepare(const std::vector<std::string>&) override {
    FERRY_ASSIGN_OR_RETURN(renderer_, RendererFor(services_, model_, format_));
    return Status::Ok();
  }
  std::string OutputHeader() const override { return renderer_ ? renderer_->header() : ""; }

  void Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
           std::function<void(RecordOutcome)> done) override {
    auto body = std::make_shared<std::string>();
    body->reserve(record.text.size() + 64);  // room for simdjson to parse in place
    body->append(record.text);
    Result<InferRequest> request = DecodeInferRequest(std::move(body), std::nullopt);
    if (!request.ok()) return done({RecordOutcome::Kind::kError, ErrorLine(record, request.status())});
    if (request->id.empty()) request->id = LineKey(record);
    InferRecord(services_.inference, model_, caller_, std::move(request).value(), std::move(cancel), record.line, renderer_,
                std::move(done));
  }
  std::string ErrorLine(const BatchRecord& record, const Status& error) override {
    return TensorErrorLine(LineKey(record), record.line, error);
  }

 private:
  std::string model_;
  std::string caller_;
  BatchServices services_;
  BatchOutputFormat format_;
  std::shared_ptr<const ResponseRenderer> renderer_;
};

class CsvExecutor final : public RecordExecutor {
 public:
  CsvExecutor(const BatchSpec& spec, const BatchServices& services)
      : model_(spec.model), caller_(spec.caller), services_(services), format_(spec.output_format) {}

  Status Prepare(const std::vector<std::string>& header) override {
    FERRY_ASSIGN_OR_RETURN(const ModelConfig config, services_.manager->ConfigOf(model_, std::nullopt));
    FERRY_ASSIGN_OR_RETURN(map_, MapCsvColumns(config, header));
    FERRY_ASSIGN_OR_RETURN(renderer_, ResponseRenderer::Make(format_, config));
    return Status::Ok();
  }
  std::string OutputHeader() const override { return renderer_ ? renderer_->header() : ""; }
  void Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
           std::function<void(RecordOutcome)> done) override {
    if (record.fields.size() != map_.column_count) {
      return done({RecordOutcome::Kind::kError,
                   ErrorLine(record, InvalidArgument(fmt::format("the row has {} fields; the header has {}",
                                                                 record.fields.size(), map_.column_count)))});
    }
    Result<InferRequest> request = CsvRowToRequest(map_, record.fields, Key(record));
    if (!request.ok()) return done({RecordOutcome::Kind::kError, ErrorLine(record, request.status())});
    InferRecord(services_.inference, model_, caller_, std::move(request).value(), std::move(cancel), record.line, renderer_,
                std::move(done));
  }
  std::string ErrorLine(const BatchRecord& record, const Status& error) override {
    return TensorErrorLine(Key(record), record.line, error);
  }

 private:
  std::string Key(const BatchRecord& r) const {
    const bool has_key = map_.key_column >= 0 && static_cast<size_t>(map_.key_column) < r.fields.size() &&
                         !r.fields[map_.key_column].empty();
    return has_key ? r.fields[map_.key_column] : LineKey(r);
  }
  std::string model_;
  std::string caller_;
  BatchServices services_;
  BatchOutputFormat format_;
  CsvColumnMap map_;
  std::shared_ptr<const ResponseRenderer> renderer_;
};

// A folder's files: each file's bytes are the one element of the model's BYTES input (an image the
// model's preprocess block decodes, or a text), keyed by the file's relative path.
class FilesExecutor final : public RecordExecutor {
 public:
  FilesExecutor(const BatchSpec& spec, const BatchServices& services)
      : model_(spec.model), caller_(spec.caller), services_(services), format_(spec.output_format) {}
  std::string OutputHeader() const override { return renderer_ ? renderer_->header() : ""; }

  Status Prepare(const std::vector<std::string>&) override {
    FERRY_ASSIGN_OR_RETURN(const ModelConfig config, services_.manager->ConfigOf(model_, std::nullopt));
    if (config.inputs.size() != 1 || config.inputs[0].dtype != DataType::kBytes) {
      return InvalidArgument(fmt::format("a batch of files needs a model with one BYTES input (an image or a text); "
                                         "'{}' has {} inputs", model_, config.inputs.size()));
    }
    input_ = config.inputs[0].name;
    shape_ = FullShape(config, config.inputs[0], 1);
    int64_t elements = 1;
    for (int64_t& d : shape_) {
      if (d < 0) d = 1;
      elements *= d;
    }
    if (elements != 1) return InvalidArgument(fmt::format("input '{}' takes more than one element per request", input_));
    FERRY_ASSIGN_OR_RETURN(renderer_, ResponseRenderer::Make(format_, config));
    return Status::Ok();
  }
  void Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
           std::function<void(RecordOutcome)> done) override {
    std::vector<uint8_t> bytes(4 + record.text.size());
    const uint32_t n = static_cast<uint32_t>(record.text.size());
    std::memcpy(bytes.data(), &n, 4);
    std::memcpy(bytes.data() + 4, record.text.data(), record.text.size());
    InferRequest request;
    request.id = record.fields.at(0);
    request.inputs.push_back(Tensor{input_, DataType::kBytes, shape_, Buffer::Own(std::move(bytes))});
    InferRecord(services_.inference, model_, caller_, std::move(request), std::move(cancel), record.line, renderer_,
                std::move(done));
  }
  std::string ErrorLine(const BatchRecord& record, const Status& error) override {
    return TensorErrorLine(record.fields.empty() ? LineKey(record) : record.fields[0], record.line, error);
  }

 private:
  std::string model_;
  std::string caller_;
  BatchServices services_;
  BatchOutputFormat format_;
  std::string input_;
  Shape shape_;
  std::shared_ptr<const ResponseRenderer> renderer_;
};

// Takes a language model's whole answer to one OpenAI batch line.
class LineChannel final : public GenerationChannel {
 public:
  using Render = std::function<std::string(int status, std::string_view body)>;
  LineChannel(std::function<void(RecordOutcome)> done, Render render)
      : done_(std::move(done)), render_(std::move(render)) {}
  void Reply(int http_status, std::string json) override {
    if (http_status == 503 || http_status == 429) return done_({RecordOutcome::Kind::kRetry, ""});
    done_({http_status == 200 ? RecordOutcome::Kind::kOk : RecordOutcome::Kind::kError, render_(http_status, json)});
  }
  void Stream(std::string) override {}
  void EndStream() override {}

 private:
  std::function<void(RecordOutcome)> done_;
  Render render_;
};

class OpenAiExecutor final : public RecordExecutor {
 public:
  OpenAiExecutor(const BatchSpec& spec, std::string batch_id, CompletionService* completions)
      : model_(spec.model), caller_(spec.caller), endpoint_(spec.endpoint), batch_id_(std::move(batch_id)),
        completions_(completions),
        api_(spec.endpoint == "/v1/completions" ? TextApi::kCompletions : TextApi::kChat) {}

  void Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
           std::function<void(RecordOutcome)> done) override;
  std::string ErrorLine(const BatchRecord& record, const Status& error) override {
    return Line(record, "", 0, "", &error);
  }

 private:
  // One output or error line. `status` 0: no response.
  std::string Line(const BatchRecord& record, std::string_view custom_id, int status, std::string_view body,
                   const Status* error) const {
    std::string out;
    JsonWriter w(&out);
    // Derived from the batch and the record, so a resumed run writes the same ids.
    const std::string suffix = fmt::format("{}_{}", batch_id_.substr(batch_id_.find('_') + 1), record.index);
    w.BeginObject().Key("id").String("batch_req_" + suffix);
    if (custom_id.empty()) {
      w.Key("custom_id").Null();
    } else {
      w.Key("custom_id").String(custom_id);
    }
    if (status == 0) {
      w.Key("response").Null();
    } else {
      w.Key("response").BeginObject().Key("status_code").Int(status).Key("request_id").String("req_" + suffix);
      w.Key("body").Raw(body).EndObject();
    }
    if (error == nullptr) {
      w.Key("error").Null();
    } else {
      w.Key("error").BeginObject().Key("code").String(StatusCodeName(error->code()));
      w.Key("message").String(error->message()).EndObject();
    }
    w.EndObject();
    return out;
  }

  std::string model_;
  std::string caller_;
  std::string endpoint_;
  std::string batch_id_;
  CompletionService* completions_;
  TextApi api_;
};

void OpenAiExecutor::Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
                         std::function<void(RecordOutcome)> done) {
  simdjson::dom::parser parser;
  simdjson::dom::object line;
  auto fail = [&](std::string_view custom_id, const Status& s) {
    done({RecordOutcome::Kind::kError, Line(record, custom_id, 0, "", &s)});
  };
  if (parser.parse(record.text).get_object().get(line)) return fail("", InvalidArgument("the line is not a JSON object"));
  std::string_view custom_id, method, url;
  if (line["custom_id"].get_string().get(custom_id) || custom_id.empty()) {
    return fail("", InvalidArgument("the line needs a non-empty string 'custom_id'"));
  }
  if (!line["method"].get_string().get(method) && method != "POST") {
    return fail(custom_id, InvalidArgument(fmt::format("'method' must be POST, not {}", method)));
  }
  if (line["url"].get_string().get(url) || url != endpoint_) {
    return fail(custom_id, InvalidArgument(fmt::format("'url' must be the batch's endpoint {}", endpoint_)));
  }
  simdjson::dom::object body;
  if (line["body"].get_object().get(body)) return fail(custom_id, InvalidArgument("'body' must be an object"));
  const std::string body_json = simdjson::minify(body);
  auto render = [this, record, id = std::string(custom_id)](int status, std::string_view json) {
    if (status == 200) return Line(record, id, status, json, nullptr);
    const Status error(status == 404 ? StatusCode::kNotFound : StatusCode::kInvalidArgument,
                       fmt::format("the request was answered {}", status));
    return Line(record, id, status, json, &error);
  };
  auto channel = std::make_shared<LineChannel>(done, render);
  Status started = completions_->Start(api_, body_json, model_, /*force_stream=*/false, std::move(cancel), channel,
                                       Priority::kBulk, caller_);
  if (started.ok()) return;
  if (started.code() == StatusCode::kUnavailable) return done({RecordOutcome::Kind::kRetry, ""});
  // Refused before it ran (an unknown model, a bad body): the answer online traffic would have had.
  done({RecordOutcome::Kind::kError,
        Line(record, custom_id, HttpStatusFor(started.code()), ErrorBody(api_, started), &started)});
}

Result<int64_t> ElementsPerRow(const TensorSpec& spec) {
  int64_t n = 1;
  for (int64_t d : spec.dims) {
    if (d < 0) return InvalidArgument(fmt::format("input '{}' has a variable dimension: a CSV cannot feed it", spec.name));
    n *= d;
  }
  return n;
}

bool CsvCanSpell(DataType t) {
  return t == DataType::kFp32 || t == DataType::kFp64 || t == DataType::kInt32 || t == DataType::kInt64 ||
         t == DataType::kBool || t == DataType::kBytes;
}

}  // namespace

Result<CsvColumnMap> MapCsvColumns(const ModelConfig& config, const std::vector<std::string>& header) {
  if (config.max_batch_size <= 0) return InvalidArgument("a CSV batch needs a model with a batch dimension");
  CsvColumnMap map;
  map.column_count = header.size();
  std::map<std::string, int> by_name;
  for (size_t i = 0; i < header.size(); ++i) {
    if (!by_name.emplace(header[i], static_cast<int>(i)).second) {
      return InvalidArgument(fmt::format("the CSV header names column '{}' twice", header[i]));
    }
  }
  std::vector<bool> used(header.size(), false);
  for (const char* key : {"id", "custom_id"}) {
    if (auto it = by_name.find(key); it != by_name.end() && map.key_column < 0) {
      map.key_column = it->second;
      used[it->second] = true;
    }
  }
  std::vector<size_t> unmapped;  // inputs left for the remaining columns
  bool named = false;            // some input's features were mapped by the config's column names
  for (const TensorSpec& spec : config.inputs) {
    if (!CsvCanSpell(spec.dtype)) {
      return InvalidArgument(fmt::format("input '{}' is {}: a CSV cannot spell it", spec.name, DataTypeName(spec.dtype)));
    }
    FERRY_ASSIGN_OR_RETURN(int64_t n, ElementsPerRow(spec));
    CsvColumnMap::Input input{spec.name, spec.dtype, Shape{1}, {}};
    input.shape.insert(input.shape.end(), spec.dims.begin(), spec.dims.end());
    if (!spec.columns.empty()) {  // the config names the features: by name, in any order
      named = true;
      for (const std::string& column : spec.columns) {
        auto col = by_name.find(column);
        if (col == by_name.end()) {
          return InvalidArgument(fmt::format("the CSV has no column '{}' (a feature of input '{}')", column, spec.name));
        }
        input.columns.push_back(col->second);
      }
    } else if (auto it = by_name.find(spec.name); n == 1 && it != by_name.end()) {
      input.columns.push_back(it->second);
    } else if (n > 1 && by_name.count(spec.name + "_0")) {
      for (int64_t k = 0; k < n; ++k) {
        auto col = by_name.find(fmt::format("{}_{}", spec.name, k));
        if (col == by_name.end()) return InvalidArgument(fmt::format("the CSV has no column '{}_{}'", spec.name, k));
        input.columns.push_back(col->second);
      }
    } else {
      unmapped.push_back(map.inputs.size());
    }
    for (int c : input.columns) used[c] = true;
    map.inputs.push_back(std::move(input));
  }
  std::vector<int> rest;
  for (size_t i = 0; i < header.size(); ++i) {
    if (!used[i]) rest.push_back(static_cast<int>(i));
  }
  if (unmapped.size() > 1) {
    return InvalidArgument(fmt::format("the CSV has no column for input '{}'", map.inputs[unmapped[1]].name));
  }
  if (unmapped.size() == 1) {
    CsvColumnMap::Input& input = map.inputs[unmapped[0]];
    FERRY_ASSIGN_OR_RETURN(int64_t n, ElementsPerRow(config.inputs[unmapped[0]]));
    if (static_cast<int64_t>(rest.size()) != n) {
      return InvalidArgument(fmt::format("input '{}' takes {} values per row; the CSV has {} other columns",
                                         input.name, n, rest.size()));
    }
    input.columns = rest;
  } else if (!rest.empty() && !named) {
    // With named features, other columns (a label, a timestamp) are the file's business.
    return InvalidArgument(fmt::format("the CSV column '{}' is no input of the model", header[rest[0]]));
  }
  return map;
}

namespace {

template <typename T>
Status ParseNumber(std::string_view text, T* out) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if constexpr (std::is_floating_point_v<T>) {
    if (text.empty()) {
      *out = std::numeric_limits<T>::quiet_NaN();  // a missing value
      return Status::Ok();
    }
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  if (ec != std::errc() || end != text.data() + text.size()) return InvalidArgument("not a number of its type");
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isinf(*out)) return InvalidArgument("out of range");
  }
  return Status::Ok();
}

template <typename T>
Status AppendNumber(std::string_view text, std::vector<uint8_t>* bytes) {
  T v{};
  FERRY_RETURN_IF_ERROR(ParseNumber(text, &v));
  const size_t at = bytes->size();
  bytes->resize(at + sizeof(T));
  std::memcpy(bytes->data() + at, &v, sizeof(T));
  return Status::Ok();
}

Status AppendField(DataType t, std::string_view text, std::vector<uint8_t>* bytes) {
  switch (t) {
    case DataType::kFp32: return AppendNumber<float>(text, bytes);
    case DataType::kFp64: return AppendNumber<double>(text, bytes);
    case DataType::kInt32: return AppendNumber<int32_t>(text, bytes);
    case DataType::kInt64: return AppendNumber<int64_t>(text, bytes);
    case DataType::kBool:
      if (text == "true" || text == "1") {
        bytes->push_back(1);
      } else if (text == "false" || text == "0") {
        bytes->push_back(0);
      } else {
        return InvalidArgument("not a boolean (true, false, 1 or 0)");
      }
      return Status::Ok();
    case DataType::kBytes: {
      const uint32_t n = static_cast<uint32_t>(text.size());
      const size_t at = bytes->size();
      bytes->resize(at + 4 + text.size());
      std::memcpy(bytes->data() + at, &n, 4);
      std::memcpy(bytes->data() + at + 4, text.data(), text.size());
      return Status::Ok();
    }
    default: return InvalidArgument("a type a CSV cannot spell");
  }
}

}  // namespace

Result<InferRequest> CsvRowToRequest(const CsvColumnMap& map, const std::vector<std::string>& fields,
                                     const std::string& key) {
  InferRequest request;
  request.id = key;
  for (const CsvColumnMap::Input& input : map.inputs) {
    std::vector<uint8_t> bytes;
    for (int c : input.columns) {
      if (Status s = AppendField(input.dtype, fields[c], &bytes); !s.ok()) {
        return InvalidArgument(fmt::format("column {} ('{}' of input '{}'): {}", c + 1, fields[c].substr(0, 64),
                                           input.name, s.message()));
      }
    }
    request.inputs.push_back(Tensor{input.name, input.dtype, input.shape, Buffer::Own(std::move(bytes))});
  }
  return request;
}

namespace {

// A tensor batch with `publish`: once its output is complete, the output becomes the table.
class PublishingExecutor final : public RecordExecutor {
 public:
  PublishingExecutor(std::unique_ptr<RecordExecutor> inner, TableService* tables)
      : inner_(std::move(inner)), tables_(tables) {}
  Status Prepare(const std::vector<std::string>& header) override { return inner_->Prepare(header); }
  std::string OutputHeader() const override { return inner_->OutputHeader(); }
  void Run(const BatchRecord& record, std::shared_ptr<CancelToken> cancel,
           std::function<void(RecordOutcome)> done) override {
    inner_->Run(record, std::move(cancel), std::move(done));
  }
  std::string ErrorLine(const BatchRecord& record, const Status& error) override {
    return inner_->ErrorLine(record, error);
  }
  Status Finalize(const Batch& batch) override { return tables_->PublishBatchOutput(batch); }

 private:
  std::unique_ptr<RecordExecutor> inner_;
  TableService* tables_;
};

Result<std::unique_ptr<RecordExecutor>> MakeTensorExecutor(const BatchSpec& spec, const BatchServices& services) {
  switch (spec.format) {
    case BatchFormat::kCsv:
      return std::unique_ptr<RecordExecutor>(new CsvExecutor(spec, services));
    case BatchFormat::kFiles:
      return std::unique_ptr<RecordExecutor>(new FilesExecutor(spec, services));
    case BatchFormat::kOip:
      return std::unique_ptr<RecordExecutor>(new OipExecutor(spec, services));
    case BatchFormat::kOpenAi:
      break;
  }
  return InvalidArgument("unknown batch format");
}

}  // namespace

Result<std::unique_ptr<RecordExecutor>> MakeRecordExecutor(const BatchSpec& spec, const std::string& batch_id,
                                                           const BatchServices& services) {
  if (spec.format == BatchFormat::kOpenAi) {
    if (services.completions == nullptr) return InvalidArgument("this server has no language models");
    if (spec.output_format != BatchOutputFormat::kJsonl) return InvalidArgument("OpenAI batch output is JSONL");
    return std::unique_ptr<RecordExecutor>(new OpenAiExecutor(spec, batch_id, services.completions));
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RecordExecutor> executor, MakeTensorExecutor(spec, services));
  if (spec.publish_table.empty()) return executor;
  if (services.tables == nullptr) return InvalidArgument("this command has no precomputed tables: 'publish' is off");
  return std::unique_ptr<RecordExecutor>(new PublishingExecutor(std::move(executor), services.tables));
}

}  // namespace ferry
