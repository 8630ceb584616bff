#include "http/cors.h"

#include <fmt/format.h>

#include "common/ascii.h"

#include <algorithm>
#include <cctype>

namespace ferry {
namespace {

// What a page may read of an answer beyond the CORS-safelisted headers.
constexpr std::string_view kExposed =
    "Inference-Header-Content-Length, Location, Retry-After, x-ferry-source, x-ferry-compute-us, "
    "x-ferry-cold-start-ms";
constexpr int kMaxAgeSeconds = 600;

// Lower case, no trailing slash ("https://app.example.com/" as users paste it), no default port
// (browsers leave it out of Origin).
std::string Normalize(std::string_view origin) {
  std::string s = AsciiLower(origin);
  while (s.ends_with('/')) s.pop_back();
  if ((s.starts_with("https://") && s.ends_with(":443")) || (s.starts_with("http://") && s.ends_with(":80"))) {
    s.erase(s.rfind(':'));
  }
  return s;
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// scheme "://" host [":" port], nothing after: how browsers write an Origin.
bool IsOrigin(std::string_view o) {
  std::string_view rest;
  if (o.starts_with("http://")) {
    rest = o.substr(7);
  } else if (o.starts_with("https://")) {
    rest = o.substr(8);
  } else {
    return false;
  }
  std::string_view host = rest;
  if (rest.starts_with('[')) {  // an IPv6 literal
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : rest.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    host = {};
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') return false;
  } else {
    const size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon);
    if (host.empty()) return false;
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
    }
  }
  if (rest.empty()) return true;
  const std::string_view port = rest.substr(1);
  if (port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return false;
  }
  return std::stoi(std::string(port)) <= 65535;
}

}  // namespace

bool IsHeaderNameList(std::string_view list) {
  bool in_name = false, after_name = false;  // within a name; past it, before its comma
  for (char c : list) {
    if (c == ',') {
      in_name = after_name = false;
    } else if (c == ' ' || c == '\t') {
      if (in_name) after_name = true, in_name = false;
    } else if (IsTokenChar(c) && !after_name) {
      in_name = true;
    } else {
      return false;
    }
  }
  return true;
}

Result<CorsPolicy> CorsPolicy::Parse(const std::vector<std::string>& origins) {
  CorsPolicy p;
  for (const std::string& o : origins) {
    if (o == "*") {
      p.any_ = true;
      continue;
    }
    std::string lower = Normalize(o);
    if (!IsOrigin(lower)) {
      return InvalidArgument(fmt::format(
          "--cors-allow-origin '{}' is not an origin: write '*' or scheme://host[:port] (http or https, no path)", o));
    }
    p.origins_.push_back(std::move(lower));
  }
  return p;
}

bool CorsPolicy::Allows(std::string_view origin) const {
  if (any_) return true;
  const std::string lower = Normalize(origin);
  return std::find(origins_.begin(), origins_.end(), lower) != origins_.end();
}

Result<CorsPolicy::Headers> CorsPolicy::Preflight(const HttpRequest& request, std::string_view allowed_methods) const {
  const std::string* origin = request.Header("origin");
  if (!enabled()) {
    return PermissionDenied("cross-origin requests are off on this listener (--cors-allow-origin turns them on)");
  }
  if (origin == nullptr) return PermissionDenied("a preflight needs an Origin header");
  if (!Allows(*origin)) {
    return PermissionDenied(fmt::format("cross-origin requests from '{}' are not allowed (--cors-allow-origin)",
                                        origin->substr(0, 80)));
  }
  if (allowed_methods.empty()) return NotFound("no such path");
  const std::string* asked_method = request.Header("access-control-request-method");
  if (asked_method == nullptr) return InvalidArgument("a preflight needs Access-Control-Request-Method");
  const std::string& method = *asked_method;
  bool listed = false;
  for (size_t at = 0; at < allowed_methods.size();) {
    const size_t comma = allowed_methods.find(", ", at);
    const std::string_view m = allowed_methods.substr(at, comma - at);
    listed = listed || m == method;
    at = comma == std::string_view::npos ? allowed_methods.size() : comma + 2;
  }
  if (!listed) {
    return PermissionDenied(fmt::format("this path takes {}, not '{}'", allowed_methods, method.substr(0, 16)));
  }
  Headers h;
  h.emplace_back("Access-Control-Allow-Origin", any_ ? std::string("*") : *origin);
  h.emplace_back("Access-Control-Allow-Methods", std::string(allowed_methods));
  if (const std::string* asked = request.Header("access-control-request-headers"); asked != nullptr && !asked->empty()) {
    if (!IsHeaderNameList(*asked)) {
      return InvalidArgument("Access-Control-Request-Headers is not a comma-separated list of header names");
    }
    h.emplace_back("Access-Control-Allow-Headers", *asked);  // keys ride in Authorization, tensors in any header
  }
  h.emplace_back("Access-Control-Max-Age", std::to_string(kMaxAgeSeconds));
  if (!any_) h.emplace_back("Vary", "Origin");
  return h;
}

void CorsPolicy::Decorate(const std::string* origin, HttpResponse* response) const {
  if (origin == nullptr || !enabled() || !Allows(*origin)) return;
  for (const auto& [name, value] : response->headers) {
    if (name == "Access-Control-Allow-Origin") return;  // a preflight's answer has its own
  }
  response->headers.emplace_back("Access-Control-Allow-Origin", any_ ? std::string("*") : *origin);
  response->headers.emplace_back("Access-Control-Expose-Headers", std::string(kExposed));
  if (!any_) response->headers.emplace_back("Vary", "Origin");
}

}  // namespace ferry
