#pragma once
// Transport types between the Beast front end and the router; no Beast in here, so routes compile fast.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cancel_token.h"

namespace ferry {

// The listener a request came in on.
enum class Listener {
  kMain,          // inference (and admin routes with the admin key)
  kAdmin,         // the admin listener beyond loopback: every route but health needs the admin key
  kTrustedAdmin,  // the admin listener on loopback: its callers are the operator (Host/Origin checked)
};

struct HttpRequest {
  std::string method;  // upper case, as sent
  std::string target;  // raw request target: path and query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::shared_ptr<const std::string> body = std::make_shared<const std::string>();
  // For a route whose handler asked for it (HttpHandler::SpoolFolder): the file the body was written
  // to instead of `body`. The handler owns it and removes it.
  std::string body_file;
  // Who sent it, once the router has checked its API key: the key's name, "(admin)" for the admin
  // key, "(none)" with keys off.
  std::string caller = "(none)";
  // The models that caller may use; empty: every model.
  std::vector<std::string> caller_models;
  Listener listener = Listener::kMain;

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

// A response body sent while it is produced (Server-Sent Events), with chunked encoding. The producer
// writes from any thread; the connection sends whatever has accumulated when the socket is free, so
// fast producers coalesce instead of queueing writes. Thread-safe.
class BodyStream {
 public:
  // Producer side. Write returns false once the client is gone or too far behind: stop producing.
  bool Write(std::string_view data);
  void End();
  // Connection side. `wake` runs (on the producer's thread) when data or the end arrives after a Take
  // found nothing; it must only post work.
  void SetWake(std::function<void()> wake);
  // Everything queued so far; `ended` when End was called and nothing is left.
  std::string Take(bool* ended);
  void Abort();
  // Bytes a stalled client may leave queued before the stream is aborted.
  static constexpr size_t kMaxQueuedBytes = 8 * 1024 * 1024;

 private:
  void WakeLocked(std::unique_lock<std::mutex>& lock);
  std::mutex mu_;
  std::string queued_;
  bool ended_ = false;
  bool aborted_ = false;
  bool waiting_ = false;  // the connection found nothing and waits for a wake
  std::function<void()> wake_;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close_connection = false;
  // When set, `body` is ignored: the head goes out at once and the body follows from the stream. The
  // connection closes after it, and a client that goes away trips the request's CancelToken.
  std::shared_ptr<BodyStream> stream;
};

// The server side of one WebSocket, for the application to send on. Thread-safe; sends keep order.
class WebSocketSender {
 public:
  virtual ~WebSocketSender() = default;
  virtual void SendText(std::string message) = 0;
  virtual void Close() = 0;
  // Closes with "going away" (1001) after what is queued: the server is stopping.
  virtual void CloseGoingAway() { Close(); }
  // Until the connection has ended (either side closed it, or it failed).
  virtual bool open() const { return true; }
};

// The application's side of one WebSocket. Called on the connection's I/O strand; must not block.
class WebSocketEndpoint {
 public:
  virtual ~WebSocketEndpoint() = default;
  virtual void OnMessage(std::string_view message, bool binary) = 0;
  // The connection is gone (either side closed it, or it failed). Called once, last.
  virtual void OnClose() = 0;
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
  // A folder to write this request's body to, as a file, instead of holding it in memory (uploads of
  // up to BodyLimit bytes); empty for memory.
  virtual std::string SpoolFolder(std::string_view method, std::string_view path) const { return {}; }
  // `cancel` trips when the client goes away before its answer (the connection saw its end of file).
  virtual void Handle(HttpRequest&& request, std::shared_ptr<CancelToken> cancel, HttpResponder respond) = 0;
  // The front end refused a request itself (limits, parse errors), for metrics.
  virtual void OnRejected(int status) {}
  // Whether a request is still answered while the server drains (probes: readiness turns 503); the
  // rest get a 503 with Retry-After and "Connection: close".
  virtual bool AnswersWhileDraining(const HttpRequest& request) const { return false; }
  // A WebSocket upgrade the caller may not make (no or a wrong API key): the answer to send instead of
  // upgrading; nullopt lets OpenWebSocket decide (and may set request.caller for it).
  virtual std::optional<HttpResponse> RefuseUpgrade(HttpRequest& request) { return std::nullopt; }
  // A WebSocket upgrade request: the endpoint for it, or null to answer 404 (no WebSocket there).
  virtual std::shared_ptr<WebSocketEndpoint> OpenWebSocket(const HttpRequest& request,
                                                           std::shared_ptr<WebSocketSender> sender) {
    return nullptr;
  }
};

}  // namespace ferry
