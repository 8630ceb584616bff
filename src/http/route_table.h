#pragma once
// Every HTTP route Ferry serves, each with its auth decision. The router looks a request up here before
// anything else: a path not in the table is a 404 and a method the path does not take a 405, so a route
// cannot be served without a row here, and a row cannot be written without an Access (kUndecided, the
// zero value, is refused by the route-table test and answered 403 by the router). Pure; no Beast.
//
// Who may call what:
//   kPublic     anyone: health, the server's metadata and /metrics (probes and scrapers carry no key).
//   kInference  with --require-api-keys, an inference key allowed the path's model (or the admin key);
//               otherwise anyone.
//   kAdmin      the admin key, or any caller on a loopback admin listener (after its Host and Origin
//               checks). Model control, keys, cost configuration, schedules and table publishing.
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

enum class Access { kUndecided = 0, kPublic, kInference, kAdmin };

std::string_view AccessName(Access access);

// How a route's key check treats the models a key may use.
enum class ModelScope {
  kPath,     // the model named in the path ({model}); a route naming none needs an unrestricted key
  kListing,  // a listing any key may read, filtered to the key's models (the repository index)
};

struct Route {
  std::string_view method;   // GET, POST, PUT, DELETE
  std::string_view pattern;  // "/v2/models/{model}/infer": "{name}" matches one non-empty segment
  Access access = Access::kUndecided;
  ModelScope scope = ModelScope::kPath;
  bool websocket = false;    // a WebSocket upgrade (a plain GET is answered with 426 or 404)
};

// The whole table, in the order it is matched.
const std::vector<Route>& Routes();

struct RouteMatch {
  const Route* route = nullptr;  // null: no route for this method (see `allowed`)
  std::string allowed;           // with no route: the methods the path takes ("GET, POST"); empty: 404
};

// A path's non-empty segments ("/v2//models/m" -> v2, models, m).
std::vector<std::string_view> SplitPath(std::string_view path);

// The route serving `method` on `path` (no query string), or what the path would allow.
RouteMatch MatchRoute(std::string_view method, std::string_view path);
// Whether `path` fits `pattern` segment by segment.
bool PatternMatches(std::string_view pattern, std::string_view path);

// DNS rebinding on a listener that trusts its callers (the loopback admin listener): its `Host` must
// name a loopback host ("localhost", "127.0.0.1", "[::1]", with any port) or one of `extra_hosts`, and
// an `Origin`, when sent, the same. The reason it refuses, or empty when it passes.
// Whether a listen address is loopback only (127.0.0.0/8, ::1, localhost).
bool IsLoopbackAddress(std::string_view address);

std::string CheckTrustedHost(const std::string* host, const std::string* origin,
                             const std::vector<std::string>& extra_hosts);

}  // namespace ferry
