#include "http/route_table.h"

#include "common/ascii.h"

#include <algorithm>
#include <cctype>

namespace ferry {
namespace {

constexpr Access P = Access::kPublic;
constexpr Access I = Access::kInference;
constexpr Access A = Access::kAdmin;

std::vector<Route> MakeRoutes() {
  // The hot routes first: they are matched in this order.
  std::vector<Route> r = {
      {"POST", "/v2/models/{model}/infer", I},
      {"POST", "/v2/models/{model}/versions/{version}/infer", I},
      {"GET", "/v2/health/live", P},
      {"GET", "/v2/health/ready", P},
      {"GET", "/v2", P},
      {"GET", "/metrics", P},
      {"GET", "/v2/models/{model}", I},
      {"GET", "/v2/models/{model}/ready", I},
      {"GET", "/v2/models/{model}/config", I},
      {"POST", "/v2/models/{model}/generate", I},
      {"POST", "/v2/models/{model}/generate_stream", I},
      {"GET", "/v2/models/{model}/versions/{version}", I},
      {"GET", "/v2/models/{model}/versions/{version}/ready", I},
      {"GET", "/v2/models/{model}/versions/{version}/config", I},
      {"POST", "/v2/models/{model}/versions/{version}/generate", I},
      {"POST", "/v2/models/{model}/versions/{version}/generate_stream", I},
      {"POST", "/v2/repository/index", I, ModelScope::kListing},
      {"POST", "/v2/repository/models/{model}/load", A},
      {"POST", "/v2/repository/models/{model}/unload", A},
      {"GET", "/v1/models", I},
      {"POST", "/v1/completions", I},
      {"POST", "/v1/chat/completions", I},
      {"GET", "/v1/ws/generate", I, ModelScope::kPath, true},
      {"GET", "/v1/ws/frames/{model}", I, ModelScope::kPath, true},
      {"POST", "/v1/jobs", I},
      {"GET", "/v1/jobs", I},
      {"GET", "/v1/jobs/{id}", I},
      {"DELETE", "/v1/jobs/{id}", I},
      {"GET", "/v1/jobs/{id}/result", I},
      {"POST", "/v1/jobs/{id}/cancel", I},
      {"GET", "/v1/jobs/{id}/events", I},
      {"POST", "/v1/files", I},
      {"GET", "/v1/files", I},
      {"GET", "/v1/files/{id}", I},
      {"DELETE", "/v1/files/{id}", I},
      {"GET", "/v1/files/{id}/content", I},
      {"POST", "/v1/batches", I},
      {"GET", "/v1/batches", I},
      {"GET", "/v1/batches/{id}", I},
      {"POST", "/v1/batches/{id}/cancel", I},
      {"GET", "/v1/batches/{id}/events", I},
      // A schedule runs batches as the server, uncharged, until it is deleted: the operator's call.
      {"GET", "/v1/schedules", I},
      {"POST", "/v1/schedules", A},
      {"GET", "/v1/schedules/{name}", I},
      {"DELETE", "/v1/schedules/{name}", A},
      {"GET", "/v1/triggers", I},
      {"GET", "/v1/triggers/{name}", I},
      {"GET", "/v1/tables", I},
      {"GET", "/v1/tables/{name}", I},
      {"PUT", "/v1/tables/{name}", A},
      {"DELETE", "/v1/tables/{name}", A},
      {"GET", "/v1/tables/{name}/entries/{key}", I},
      {"GET", "/v1/usage", I},  // a key sees its own usage
      {"GET", "/v1/usage/config", A},
      {"PUT", "/v1/usage/config", A},
      {"GET", "/v1/keys", A},
      {"POST", "/v1/keys", A},
      {"DELETE", "/v1/keys/{id}", A},
  };
  return r;
}

// The next non-empty segment of `path` from `*pos`, advancing past it; empty at the end.
std::string_view NextSegment(std::string_view path, size_t* pos) {
  while (*pos < path.size() && path[*pos] == '/') ++*pos;
  const size_t start = *pos;
  while (*pos < path.size() && path[*pos] != '/') ++*pos;
  return path.substr(start, *pos - start);
}

// "host", "host:port", "[v6]", "[v6]:port" -> the host part, lower-cased; empty when malformed.
std::string HostPart(std::string_view authority) {
  if (authority.starts_with("[")) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return {};
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(":")) return {};
    return AsciiLower(authority.substr(0, close + 1));
  }
  const size_t colon = authority.find(':');
  if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) return {};
  return AsciiLower(authority.substr(0, colon));
}

bool TrustedHostName(const std::string& host, const std::vector<std::string>& extra_hosts) {
  if (host == "localhost" || host == "127.0.0.1" || host == "[::1]") return true;
  return std::any_of(extra_hosts.begin(), extra_hosts.end(), [&](const std::string& h) { return AsciiLower(h) == host; });
}

}  // namespace

std::string_view AccessName(Access access) {
  switch (access) {
    case Access::kPublic: return "public";
    case Access::kInference: return "inference";
    case Access::kAdmin: return "admin";
    case Access::kUndecided: break;
  }
  return "undecided";
}

const std::vector<Route>& Routes() {
  static const std::vector<Route> routes = MakeRoutes();
  return routes;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  for (std::string_view part = NextSegment(path, &pos); !part.empty(); part = NextSegment(path, &pos)) {
    parts.push_back(part);
  }
  return parts;
}

bool PatternMatches(std::string_view pattern, std::string_view path) {
  size_t pp = 0;
  size_t tp = 0;
  while (true) {
    const std::string_view want = NextSegment(pattern, &pp);
    const std::string_view got = NextSegment(path, &tp);
    if (want.empty() || got.empty()) return want.empty() && got.empty();
    if (want.front() == '{') continue;  // any one segment
    if (want != got) return false;
  }
}

RouteMatch MatchRoute(std::string_view method, std::string_view path) {
  RouteMatch match;
  for (const Route& route : Routes()) {
    if (!PatternMatches(route.pattern, path)) continue;
    if (route.method == method) {
      match.route = &route;
      match.allowed.clear();
      return match;
    }
    if (match.allowed.find(route.method) == std::string::npos) {
      if (!match.allowed.empty()) match.allowed += ", ";
      match.allowed += route.method;
    }
  }
  return match;
}

bool IsLoopbackAddress(std::string_view address) {
  return address == "localhost" || address == "::1" || address == "[::1]" || address.starts_with("127.");
}

std::string CheckTrustedHost(const std::string* host, const std::string* origin,
                             const std::vector<std::string>& extra_hosts) {
  if (host == nullptr) return "the admin listener needs a Host header";
  const std::string name = HostPart(*host);
  if (!TrustedHostName(name, extra_hosts)) {
    return "Host '" + host->substr(0, 80) + "' is not a name of this admin listener (add it with --admin-allowed-host)";
  }
  if (origin == nullptr) return {};
  std::string_view o = *origin;
  const size_t scheme = o.find("://");
  if (scheme == std::string_view::npos || (o.substr(0, scheme) != "http" && o.substr(0, scheme) != "https")) {
    return "Origin '" + origin->substr(0, 80) + "' is not allowed on the admin listener";
  }
  o.remove_prefix(scheme + 3);
  const std::string origin_host = HostPart(o.substr(0, o.find('/')));
  if (!TrustedHostName(origin_host, extra_hosts)) {
    return "Origin '" + origin->substr(0, 80) + "' is not allowed on the admin listener";
  }
  return {};
}

}  // namespace ferry
