#pragma once
// Transport types between the Beast front end and the router; no Beast in here, so routes compile fast.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cancel_token.h"

namespace ferry {

struct HttpRequest {
  std::string method;  // upper case, as sent
  std::string target;  // raw request target: path and query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::shared_ptr<const std::string> body = std::make_shared<const std::string>();

  // The first header with this (lower-case) name, or nullptr.
  const std::string* Header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (name == lower_name) return &value;
    }
    return nullptr;
  }
  std::string_view Path() const {
    std::string_view t = target;
    return t.substr(0, t.find('?'));
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close_connection = false;
};

// Sends the response; callable from any thread, exactly once.
using HttpResponder = std::function<void(HttpResponse&&)>;

// What the front end needs from the application. Thread-safe; Handle runs on an I/O thread and must not
// block: slow work is handed off and answered later through the responder.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Body limit for this request, decided from the request line before the body is read.
  virtual size_t BodyLimit(std::string_view method, std::string_view path) const = 0;
  virtual void Handle(HttpRequest&& request, std::shared_ptr<CancelToken> cancel, HttpResponder respond) = 0;
  // The front end refused a request itself (limits, parse errors), for metrics.
  virtual void OnRejected(int status) {}
};

}  // namespace ferry
