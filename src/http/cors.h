#pragma once
// Cross-origin requests from browsers (CORS). Off unless origins are configured (--cors-allow-origin):
// without it Ferry sends no Access-Control-* header, so a page from another origin cannot read an
// answer, and a preflight (OPTIONS with Access-Control-Request-Method) is refused. "*" must be asked
// for by name. CORS is about what a browser lets a page read; it does not replace API keys. Pure; no
// Beast.
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "http/http_types.h"

namespace ferry {

class CorsPolicy {
 public:
  CorsPolicy() = default;  // off
  // Each entry "*" or an origin as browsers send it: scheme "http" or "https", a host, an optional
  // port, nothing after ("https://app.example.com:8443"). kInvalidArgument names the first bad one.
  static Result<CorsPolicy> Parse(const std::vector<std::string>& origins);

  bool enabled() const { return any_ || !origins_.empty(); }
  // Whether a page from `origin` (its Origin header) may read answers.
  bool Allows(std::string_view origin) const;

  using Headers = std::vector<std::pair<std::string, std::string>>;
  // A preflight: OPTIONS with Access-Control-Request-Method. `allowed_methods` is what the path takes
  // ("GET, POST"; empty: no such path). The headers of its 204 answer, or why it is refused:
  // kPermissionDenied (CORS off, the origin not allowed, the method not one the path takes),
  // kNotFound (no such path), kInvalidArgument (a requested header list that is not one).
  Result<Headers> Preflight(const HttpRequest& request, std::string_view allowed_methods) const;
  // The headers an answer to an allowed cross-origin request carries (Allow-Origin, Vary, and the
  // Ferry headers a page may read); nothing for a request without an Origin or from one not allowed.
  void Decorate(const std::string* origin, HttpResponse* response) const;

 private:
  bool any_ = false;
  std::vector<std::string> origins_;  // lower-cased
};

// Whether a preflight's Access-Control-Request-Headers is a comma-separated list of header names
// (tokens, optional spaces); an empty list is one.
bool IsHeaderNameList(std::string_view list);

}  // namespace ferry
