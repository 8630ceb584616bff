#pragma once
// Asynchronous HTTP/1.1 server on Boost.Beast: a fixed pool of I/O threads, one strand per connection,
// no thread per connection. Each connection reads one request at a time (pipelined requests wait in
// the read buffer, so responses keep their order), checks size limits on the header before reading the
// body (413/431/414), and applies header, body, idle and write timeouts. Thread-safe.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/http_types.h"

namespace ferry {

struct HttpServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 8000;                 // 0: pick a free port (tests)
  size_t io_threads = 2;
  size_t max_connections = 4096;        // beyond: a fast 503 and close
  size_t max_header_bytes = 16 * 1024;  // all header fields together -> 431
  size_t max_uri_bytes = 8 * 1024;      // request target -> 414
  std::chrono::milliseconds header_timeout{10'000};  // whole header must arrive within this
  std::chrono::milliseconds body_timeout{60'000};
  std::chrono::milliseconds idle_timeout{65'000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Binds and listens (errors such as a port in use come back here), but does not accept yet.
  static Result<std::unique_ptr<HttpServer>> Create(const HttpServerOptions& options, HttpHandler* handler);

  virtual uint16_t port() const = 0;
  // Starts the I/O threads and accepting.
  virtual void Start() = 0;
  // Stops accepting, closes idle keep-alive connections, and answers further requests with
  // "Connection: close". In-flight requests continue.
  virtual void BeginDrain() = 0;
  virtual size_t RequestsInFlight() const = 0;
  virtual size_t OpenConnections() const = 0;
  // Closes everything and joins the I/O threads.
  virtual void Stop() = 0;
};

}  // namespace ferry
