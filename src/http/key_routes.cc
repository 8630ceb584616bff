// Who may call what, in the router: the check in front of every route (its Access in the route table),
// and /v1/keys (admin).
#include <fmt/format.h>

#include "api/status_mapping.h"
#include "http/route_table.h"
#include "http/serving_router.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

// The model a route names in its path; empty for one that names none.
std::string_view PathModel(const std::vector<std::string_view>& parts) {
  if (parts.size() >= 3 && parts[0] == "v2" && parts[1] == "models") return parts[2];
  if (parts.size() == 4 && parts[0] == "v1" && parts[1] == "ws" && parts[2] == "frames") return parts[3];
  return {};
}

// A key sent where logs and proxies keep it: refused with its own reason rather than a bare 401.
bool QueryCarriesKey(std::string_view target) {
  for (std::string_view name : {"api_key", "apikey", "key", "token", "access_token"}) {
    if (QueryParam(target, name)) return true;
  }
  return false;
}

HttpResponse Refusal(const Status& s, std::chrono::milliseconds retry_after = std::chrono::milliseconds(0)) {
  HttpResponse r = JsonResponse(HttpStatusFor(s.code()), EncodeErrorJson(s.message()));
  if (s.code() == StatusCode::kResourceExhausted) {
    r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, (retry_after.count() + 999) / 1000)));
  }
  if (s.code() == StatusCode::kUnauthenticated) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

}  // namespace

std::optional<HttpResponse> ServingRouter::Authorize(const Route& route, HttpRequest& request,
                                                     const std::vector<std::string_view>& parts) {
  if (route.access == Access::kPublic) return std::nullopt;
  if (route.access == Access::kUndecided) {
    return Refusal(PermissionDenied("this route has no access rule; it is refused until it gets one"));
  }
  if (request.listener == Listener::kTrustedAdmin) {  // the operator, unless a web page posing as localhost
    const std::string reason =
        CheckTrustedHost(request.Header("host"), request.Header("origin"), options_.admin_allowed_hosts);
    if (!reason.empty()) return Refusal(PermissionDenied(reason));
    request.caller = "(admin)";
    return std::nullopt;
  }
  if (route.access == Access::kAdmin && request.listener == Listener::kMain &&
      options_.admin_routes_on_admin_listener_only) {
    return Refusal(PermissionDenied("this route is served on the admin listener only (--admin-port)"));
  }
  const std::string* authorization = request.Header("authorization");
  if (authorization == nullptr && QueryCarriesKey(request.target)) {
    return Refusal(Unauthenticated("API keys go in the 'Authorization: Bearer <key>' header, never in the query "
                                   "string (logs and proxies keep it)"));
  }
  if (authorization != nullptr && admin_->IsAdminKey(authorization)) {
    request.caller = "(admin)";
    return std::nullopt;
  }
  if (route.access == Access::kAdmin || request.listener == Listener::kAdmin) {
    if (keys_ != nullptr && keys_->IsKey(authorization)) {
      return Refusal(PermissionDenied("an inference key may not call this route: it needs the admin key"));
    }
    return Refusal(admin_->CheckAdmin(authorization));
  }
  if (keys_ == nullptr) return std::nullopt;
  std::chrono::milliseconds retry_after{0};
  Result<ApiKey> caller = keys_->Authorize(authorization, PathModel(parts), &retry_after,
                                           route.scope == ModelScope::kListing);
  if (!caller.ok()) return Refusal(caller.status(), retry_after);
  request.caller = std::move(caller->name);
  request.caller_models = std::move(caller->models);
  return std::nullopt;
}

bool ServingRouter::AnswersWhileDraining(const HttpRequest& request) const {
  const RouteMatch match = MatchRoute(request.method, request.Path());
  return match.route != nullptr && match.route->access == Access::kPublic;
}

std::optional<HttpResponse> ServingRouter::RefuseUpgrade(HttpRequest& request) {
  const RouteMatch match = MatchRoute(request.method, request.Path());
  if (match.route == nullptr || !match.route->websocket) return std::nullopt;  // OpenWebSocket answers 404
  std::vector<std::string_view> parts = SplitPath(request.Path());
  return Authorize(*match.route, request, parts);
}

void ServingRouter::HandleKeyRoute(const HttpRequest& request, std::vector<std::string_view>& parts,
                                   HttpResponder& respond) {
  if (keys_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("API keys are off on this server")));
  if (parts.size() > 3) return respond(JsonResponse(404, EncodeErrorJson("not found")));
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
