// /v1/usage of ServingRouter over api/UsageService: the breakdown (any caller; a key sees its own) and
// the cost configuration (the admin key).
#include "http/serving_router.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

// A query value with its %XX escapes (and '+' for a space) undone; a broken escape is kept as it is.
std::string Unescaped(std::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '+') {
      out += ' ';
    } else if (v[i] == '%' && i + 2 < v.size() && std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

}  // namespace

void ServingRouter::HandleUsageRoute(const HttpRequest& request, std::vector<std::string_view>& parts,
                                     HttpResponder& respond) {
  if (usage_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("cost accounting is off on this server")));
  const bool config = parts.size() == 3 && parts[2] == "config";
  if (parts.size() > 3 || (parts.size() == 3 && !config)) return respond(JsonResponse(404, EncodeErrorJson("not found")));
  const std::string& method = request.method;
  std::function<HttpResponse()> work;
  if (!config) {
    if (method != "GET") return respond(MethodNotAllowed("GET"));
    UsageQuery query;
    auto param = [&](std::string_view name) -> std::optional<std::string> {
      std::optional<std::string_view> v = QueryParam(request.target, name);
      return v ? std::optional<std::string>(Unescaped(*v)) : std::nullopt;
    };
    query.from = param("from");
    query.to = param("to");
    query.group_by = param("group_by");
    query.key = param("key");
    work = [this, query, asker = request.caller] { return FromResult(usage_->UsageJson(query, asker)); };
  } else {
    if (method == "GET") {
      work = [this] { return JsonResponse(200, usage_->ConfigJson()); };
    } else if (method == "PUT") {
      work = [this, body = request.body] {
        Status s = usage_->ReplaceConfig(*body);
        return s.ok() ? JsonResponse(200, usage_->ConfigJson()) : ErrorResponse(s);
      };
    } else {
      return respond(MethodNotAllowed("GET, PUT"));
    }
  }
  // Any key may read its usage: those reads go to the jobs pool, so that they cannot crowd out admin calls.
  HttpResponder shared = respond;
  ThreadPool& pool = config ? admin_pool_ : jobs_pool_;
  if (!pool.Post([work = std::move(work), shared] { shared(work()); })) {
    respond(ErrorResponse(Unavailable(config ? "too many admin calls in progress" : "too many calls in progress")));
  }
}

}  // namespace ferry
