// The route table and the trusted-host check on arbitrary input: the first line is a method and a
// path, the second a Host, the third an Origin (absent when missing). Invariants: a match names a row
// of the table whose pattern fits the path and method, with nothing "allowed"; no match with methods
// allowed means the path fits some row; the host check decides without crashing, and refuses any
// Host or Origin that does not start with a loopback name. The first line as a --cors-allow-origin value:
// one accepted allows itself; the second as a preflight's header list: one accepted has no CR, LF or
// colon (it is echoed in a header).
#include <cctype>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/cors.h"
#include "http/route_table.h"

using fuzz::Check;
using namespace ferry;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view lines[3];
  int n = 0;
  while (n < 3) {
    const size_t nl = input.find('\n');
    lines[n++] = input.substr(0, nl);
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  const std::string_view first = lines[0];
  const size_t space = first.find(' ');
  const std::string_view method = first.substr(0, space);
  const std::string_view path = space == std::string_view::npos ? std::string_view() : first.substr(space + 1);

  const RouteMatch m = MatchRoute(method, path);
  if (m.route != nullptr) {
    Check(m.allowed.empty(), "a match with methods allowed");
    Check(m.route->method == method, "a match for another method");
    Check(PatternMatches(m.route->pattern, path), "a match whose pattern does not fit");
    Check(m.route->access != Access::kUndecided, "a route without a decision");
  } else if (!m.allowed.empty()) {
    bool fits = false;
    for (const Route& r : Routes()) fits = fits || PatternMatches(r.pattern, path);
    Check(fits, "methods allowed for a path no route fits");
  }
  for (std::string_view part : SplitPath(path)) {
    Check(!part.empty() && part.find('/') == std::string_view::npos, "a split part that is empty or has a slash");
  }

  const std::string host(lines[1]);
  const std::string origin(lines[2]);
  const bool has_origin = n == 3;
  const std::string reason = CheckTrustedHost(n >= 2 ? &host : nullptr, has_origin ? &origin : nullptr, {});
  if (reason.empty()) {
    Check(n >= 2, "trusted without a Host");
    std::string lower = host;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool loopback = false;
    for (std::string_view name : {"localhost", "127.0.0.1", "[::1]"}) {
      const std::string_view h = lower;
      loopback = loopback || h == name || (h.starts_with(name) && h[name.size()] == ':');
    }
    Check(loopback, "a foreign Host trusted");
  }
  (void)IsLoopbackAddress(host);

  std::string origin_flag(first);
  if (Result<CorsPolicy> cors = CorsPolicy::Parse({origin_flag}); cors.ok()) {
    while (origin_flag.ends_with('/')) origin_flag.pop_back();
    Check(cors->enabled() && cors->Allows(origin_flag), "a parsed origin that does not allow itself");
  }
  if (IsHeaderNameList(lines[1])) {
    Check(lines[1].find_first_of("\r\n:") == std::string_view::npos, "a header list with CR, LF or a colon");
  }
  return 0;
}
