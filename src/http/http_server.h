#pragma once
// Asynchronous HTTP/1.1 server on Boost.Beast: a fixed pool of I/O threads, one strand per connection,
// no thread per connection. Each connection reads one request at a time (pipelined requests wait in
// the read buffer, so responses keep their order), checks size limits on the header before reading the
// body (413/431/414), and applies header, body-rate, idle and write timeouts, and a cap on connections
// per client address, so that slow clients cannot hold every slot. Thread-safe.
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
  // One client address may hold this many (0: no cap), so that one client cannot take every slot;
  // raise it behind a load balancer, whose address every request carries.
  size_t max_connections_per_address = 1024;
  size_t max_header_bytes = 16 * 1024;  // all header fields together -> 431
  size_t max_uri_bytes = 8 * 1024;      // request target -> 414
  // The whole header must arrive within this: of the connection opening for its first request, of
  // its first byte for the next ones on a keep-alive connection. Not reset by each byte.
  std::chrono::milliseconds header_timeout{10'000};
  // A body must keep up this rate on average, after a grace of header_timeout: a client dripping it
  // is answered 408 and closed.
  size_t min_body_bytes_per_s = 4096;
  std::chrono::milliseconds idle_timeout{65'000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};
  Listener listener = Listener::kMain;  // set on every request this server reads
  // HTTPS: a PEM certificate chain and its key (both or neither), reloaded on ReloadTls and when the
  // files change.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Binds and listens (errors such as a port in use, or TLS files that cannot be loaded, come back
  // here), but does not accept yet.
  static Result<std::unique_ptr<HttpServer>> Create(const HttpServerOptions& options, HttpHandler* handler);

  virtual uint16_t port() const = 0;
  // Loads the TLS certificate and key again (SIGHUP); on failure the ones in force stay. Open
  // connections keep theirs. Ok without TLS.
  virtual Status ReloadTls() = 0;
  // Starts the I/O threads and accepting.
  virtual void Start() = 0;
  // Stops accepting, closes idle keep-alive connections, sends each WebSocket a close frame ("going
  // away"), and answers further requests with "Connection: close". In-flight requests continue.
  virtual void BeginDrain() = 0;
  virtual size_t RequestsInFlight() const = 0;
  // WebSockets not yet closed (after BeginDrain, those whose close handshake is still under way).
  virtual size_t OpenWebSockets() = 0;
  virtual size_t OpenConnections() const = 0;
  // Closes everything and joins the I/O threads.
  virtual void Stop() = 0;
};

}  // namespace ferry
