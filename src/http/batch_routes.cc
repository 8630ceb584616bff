// The /v1/files and /v1/batches routes of ServingRouter (OpenAI's Files and Batch APIs) over
// api/BatchService. Every call runs on the batch pool: they read and write files and wait for commits.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>

#include "http/multipart.h"
#include "http/serving_router.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

Result<int64_t> Limit(std::string_view target, int64_t fallback) {
  std::optional<std::string_view> text = QueryParam(target, "limit");
  if (!text) return fallback;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || end != text->data() + text->size()) return InvalidArgument("limit must be an integer");
  return v;
}

// A read-only mapping of a spooled body, so the multipart parser sees it whole without reading it into
// memory. Removes the file when done.
class SpooledBody {
 public:
  explicit SpooledBody(std::string path) : path_(std::move(path)) {}
  ~SpooledBody() {
    if (data_ != nullptr) ::munmap(data_, size_);
    if (!path_.empty()) std::remove(path_.c_str());
  }
  Result<std::string_view> Map() {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Unavailable("the upload was not stored");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size == 0) {
      ::close(fd);
      return InvalidArgument("the upload is empty");
    }
    size_ = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return Unavailable("the upload cannot be read");
    data_ = p;
    return std::string_view(static_cast<const char*>(data_), size_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* data_ = nullptr;
  size_t size_ = 0;
};

Result<std::string> Upload(BatchService* batches, const HttpRequest& request, SpooledBody& spooled) {
  const std::string* type = request.Header("content-type");
  if (type == nullptr) return InvalidArgument("an upload is multipart/form-data with fields 'purpose' and 'file'");
  FERRY_ASSIGN_OR_RETURN(std::string boundary, MultipartBoundary(*type));
  FERRY_ASSIGN_OR_RETURN(std::string_view body, spooled.Map());
  FERRY_ASSIGN_OR_RETURN(std::vector<MultipartPart> parts, ParseMultipart(body, boundary));
  std::optional<std::string> purpose;
  const MultipartPart* file = nullptr;
  for (const MultipartPart& part : parts) {
    if (part.name == "purpose") {
      if (part.length > 64) return InvalidArgument("'purpose' is too long");
      purpose = std::string(body.substr(part.offset, part.length));
    } else if (part.name == "file") {
      file = &part;
    }
  }
  if (!purpose) return InvalidArgument("the upload has no 'purpose' field");
  if (file == nullptr) return InvalidArgument("the upload has no 'file' field");
  return batches->CreateFile(*purpose, UploadedPart{spooled.path(), file->offset, file->length, file->filename});
}

}  // namespace

bool ServingRouter::IsBatchRoute(const std::vector<std::string_view>& parts) {
  return parts.size() >= 2 && parts[0] == "v1" &&
         (parts[1] == "files" || parts[1] == "batches" || parts[1] == "schedules" || parts[1] == "triggers" ||
          parts[1] == "tables");
}

std::string ServingRouter::SpoolFolder(std::string_view method, std::string_view path) const {
  if (batches_ == nullptr || method != "POST" || path != "/v1/files") return {};
  return options_.upload_spool_dir;
}

void ServingRouter::HandleBatchRoute(HttpRequest&& request, std::shared_ptr<CancelToken> cancel,
                                     std::vector<std::string_view>& parts, HttpResponder& respond) {
  if (parts[1] == "schedules" || parts[1] == "triggers") return HandleScheduleRoute(request, parts, respond);
  if (parts[1] == "tables") return HandleTableRoute(request, parts, respond);
  if (batches_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("batches are off on this server")));
  const std::string& method = request.method;
  const bool files = parts[1] == "files";
  const std::string id = parts.size() >= 3 ? std::string(parts[2]) : std::string();
  const std::string_view action = parts.size() == 4 ? parts[3] : std::string_view();
  if (parts.size() > 4 || (parts.size() == 4 && action != (files ? "content" : "cancel") && action != "events") ||
      (files && action == "events")) {
    return respond(JsonResponse(404, EncodeErrorJson("not found")));
  }
  std::function<HttpResponse()> work;
  if (parts.size() == 2) {
    if (method == "POST" && files) {
      if (request.body_file.empty()) return respond(ErrorResponse(Unavailable("the upload was not stored")));
      // Removed with the last copy of this job, whether it runs or the pool refuses it.
      auto spooled = std::make_shared<SpooledBody>(request.body_file);
      work = [this, request = std::move(request), spooled] { return FromResult(Upload(batches_, request, *spooled)); };
    } else if (method == "POST") {
      work = [this, body = request.body, caller = request.caller] { return FromResult(batches_->Create(*body, caller)); };
    } else if (method == "GET") {
      Result<int64_t> limit = Limit(request.target, files ? 10'000 : 20);
      if (!limit.ok()) return respond(ErrorResponse(limit.status()));
      const std::string filter(QueryParam(request.target, files ? "purpose" : "after").value_or(""));
      work = [this, files, filter, limit = *limit] {
        return FromResult(files ? batches_->ListFilesJson(filter, limit) : batches_->ListJson(filter, limit));
      };
    } else {
      return respond(MethodNotAllowed("GET, POST"));
    }
  } else if (action.empty()) {
    if (method == "GET") {
      work = [this, id, files] { return FromResult(files ? batches_->FileJson(id) : batches_->BatchJson(id)); };
    } else if (method == "DELETE" && files) {
      work = [this, id] { return FromResult(batches_->DeleteFile(id)); };
    } else {
      return respond(MethodNotAllowed(files ? "GET, DELETE" : "GET"));
    }
  } else if (action == "content") {
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    work = [this, id] {
      Result<std::string> bytes = batches_->FileContent(id);
      if (!bytes.ok()) return ErrorResponse(bytes.status());
      HttpResponse r = JsonResponse(200, std::move(bytes).value());
      r.content_type = "application/octet-stream";
      return r;
    };
  } else if (action == "cancel") {
    if (method != "POST") return respond(MethodNotAllowed("POST"));
    work = [this, id] { return FromResult(batches_->Cancel(id)); };
  } else {  // events
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    return StreamBatchEvents(id, std::move(cancel), respond);
  }
  HttpResponder shared = respond;
  if (!batch_pool_.Post([work = std::move(work), shared] { shared(work()); })) {
    respond(ErrorResponse(Unavailable("too many batch requests in progress")));
  }
}

void ServingRouter::HandleScheduleRoute(const HttpRequest& request, std::vector<std::string_view>& parts,
                                        HttpResponder& respond) {
  if (schedules_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("schedules are off on this server")));
  if (parts.size() > 3) return respond(JsonResponse(404, EncodeErrorJson("not found")));
  const bool triggers = parts[1] == "triggers";
  const std::string name = parts.size() == 3 ? std::string(parts[2]) : std::string();
  const std::string& method = request.method;
  std::function<HttpResponse()> work;
  if (triggers) {
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    work = [this, name] { return FromResult(name.empty() ? schedules_->ListTriggersJson() : schedules_->TriggerJson(name)); };
  } else if (name.empty()) {
    if (method == "GET") {
      work = [this] { return FromResult(schedules_->ListJson()); };
    } else if (method == "POST") {
      work = [this, body = request.body] { return FromResult(schedules_->Create(*body)); };
    } else {
      return respond(MethodNotAllowed("GET, POST"));
    }
  } else if (method == "GET") {
    work = [this, name] { return FromResult(schedules_->GetJson(name)); };
  } else if (method == "DELETE") {
    work = [this, name] { return FromResult(schedules_->Delete(name)); };
  } else {
    return respond(MethodNotAllowed("GET, DELETE"));
  }
  HttpResponder shared = respond;
  if (!batch_pool_.Post([work = std::move(work), shared] { shared(work()); })) {
    respond(ErrorResponse(Unavailable("too many batch requests in progress")));
  }
}

void ServingRouter::HandleTableRoute(const HttpRequest& request, std::vector<std::string_view>& parts,
                                     HttpResponder& respond) {
  // /v1/tables, /v1/tables/{name}, /v1/tables/{name}/entries/{key}
  if (tables_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("precomputed tables are off on this server")));
  const bool entry = parts.size() == 5 && parts[3] == "entries";
  if (parts.size() > 3 && !entry) return respond(JsonResponse(404, EncodeErrorJson("not found")));
  const std::string name = parts.size() >= 3 ? std::string(parts[2]) : std::string();
  const std::string& method = request.method;
  std::function<HttpResponse()> work;
  if (entry) {
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    work = [this, name, key = std::string(parts[4])] { return FromResult(tables_->EntryJson(name, key)); };
  } else if (name.empty()) {
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    work = [this] { return FromResult(tables_->ListJson()); };
  } else if (method == "GET") {
    work = [this, name] { return FromResult(tables_->GetJson(name)); };
  } else if (method == "PUT" || method == "DELETE") {
    if (method == "DELETE") {
      work = [this, name] { return FromResult(tables_->Drop(name)); };
    } else {
      TablePublishRequest publish;
      publish.table = name;
      publish.model = std::string(QueryParam(request.target, "model").value_or(""));
      publish.version = std::string(QueryParam(request.target, "version").value_or(""));
      const std::string format(QueryParam(request.target, "format").value_or(""));
      const std::string* type = request.Header("content-type");
      const bool csv = format == "csv" || (format.empty() && type != nullptr && type->starts_with("text/csv"));
      if (!format.empty() && format != "csv" && format != "jsonl") {
        return respond(ErrorResponse(InvalidArgument("format must be jsonl or csv")));
      }
      publish.format = csv ? TableFileFormat::kCsv : TableFileFormat::kJsonl;
      work = [this, publish, body = request.body] { return FromResult(tables_->Publish(publish, *body)); };
    }
  } else {
    return respond(MethodNotAllowed("GET, PUT, DELETE"));
  }
  HttpResponder shared = respond;
  if (!batch_pool_.Post([work = std::move(work), shared] { shared(work()); })) {
    respond(ErrorResponse(Unavailable("too many batch requests in progress")));
  }
}

void ServingRouter::StreamBatchEvents(const std::string& id, std::shared_ptr<CancelToken> cancel,
                                      HttpResponder& respond) {
  StreamWatchEvents(batch_pool_, "progress", [this, id, cancel](auto send, auto end) {
    return batches_->Watch(id, cancel, std::move(send), std::move(end));
  }, respond);
}

}  // namespace ferry
