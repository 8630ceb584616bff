// API keys in the router: the check in front of every protected route, and /v1/keys (admin key).
#include <fmt/format.h>

#include "api/status_mapping.h"
#include "http/serving_router.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

// Health, the server's metadata and /metrics answer without a key: probes and scrapers carry none.
bool IsOpenRoute(const std::vector<std::string_view>& parts) {
  if (parts.size() == 1) return parts[0] == "metrics" || parts[0] == "v2";
  return parts.size() == 3 && parts[0] == "v2" && parts[1] == "health";
}

// The model a route names in its path; empty for one that names none.
std::string_view PathModel(const std::vector<std::string_view>& parts) {
  if (parts.size() >= 3 && parts[0] == "v2" && parts[1] == "models") return parts[2];
  if (parts.size() == 4 && parts[0] == "v1" && parts[1] == "ws" && parts[2] == "frames") return parts[3];
  return {};
}

}  // namespace

std::optional<HttpResponse> ServingRouter::CheckCaller(HttpRequest& request, const std::vector<std::string_view>& parts) {
  if (keys_ == nullptr || IsOpenRoute(parts)) return std::nullopt;
  const std::string* authorization = request.Header("authorization");
  if (authorization != nullptr && admin_->CheckAdmin(authorization).ok()) {  // the operator
    request.caller = "(admin)";
    return std::nullopt;
  }
  std::chrono::milliseconds retry_after{0};
  Result<std::string> caller = keys_->Authorize(authorization, PathModel(parts), &retry_after);
  if (caller.ok()) {
    request.caller = std::move(caller).value();
    return std::nullopt;
  }
  const Status& s = caller.status();
  HttpResponse r = JsonResponse(HttpStatusFor(s.code()), EncodeErrorJson(s.message()));
  if (s.code() == StatusCode::kResourceExhausted) {
    r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, (retry_after.count() + 999) / 1000)));
  }
  if (s.code() == StatusCode::kUnauthenticated) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

std::optional<HttpResponse> ServingRouter::RefuseUpgrade(HttpRequest& request) {
  std::vector<std::string_view> parts;
  std::string_view path = request.Path();
  size_t pos = 0;
  while (pos < path.size()) {
    const size_t end = std::min(path.find('/', pos + 1), path.size());
    if (end > pos + 1) parts.push_back(path.substr(pos + 1, end - pos - 1));
    pos = end;
  }
  return CheckCaller(request, parts);
}

void ServingRouter::HandleKeyRoute(const HttpRequest& request, std::vector<std::string_view>& parts,
                                   HttpResponder& respond) {
  if (keys_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("API keys are off on this server")));
  if (parts.size() > 3) return respond(JsonResponse(404, EncodeErrorJson("not found")));
  if (Status auth = admin_->CheckAdmin(request.Header("authorization")); !auth.ok()) return respond(ErrorResponse(auth));
  const std::string& method = request.method;
  std::function<HttpResponse()> work;
  if (parts.size() == 2 && method == "GET") {
    work = [this] { return FromResult(keys_->ListJson()); };
  } else if (parts.size() == 2 && method == "POST") {
    work = [this, body = request.body] { return FromResult(keys_->CreateJson(*body)); };
  } else if (parts.size() == 3 && method == "DELETE") {
    work = [this, id = std::string(parts[2])] { return FromResult(keys_->RevokeJson(id)); };
  } else {
    return respond(MethodNotAllowed(parts.size() == 2 ? "GET, POST" : "DELETE"));
  }
  HttpResponder shared = respond;
  if (!admin_pool_.Post([work = std::move(work), shared] { shared(work()); })) {
    respond(ErrorResponse(Unavailable("too many admin calls in progress")));
  }
}

}  // namespace ferry
