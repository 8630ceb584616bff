#pragma once
// HTTPS for the HTTP server (internal to http/: brings in Asio's SSL; only http_server.cc,
// websocket_session.cc and tls_context.cc include it). A certificate chain and its key, loaded into an
// OpenSSL context with modern defaults (TLS 1.2 at least, forward-secret AEAD ciphers only for 1.2,
// no compression or renegotiation, ALPN http/1.1), and reloaded when asked (SIGHUP) or when the files
// change. A reload that fails (a file that does not parse, a key that does not match) keeps the
// context in force. Each connection holds the context it began with, so a reload drops none.
// Thread-safe.
#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"

namespace ferry {

class TlsContext {
 public:
  // kInvalidArgument naming the file and OpenSSL's reason when the pair cannot be loaded.
  static Result<std::unique_ptr<TlsContext>> Open(std::string cert_file, std::string key_file);

  // The context new connections use.
  std::shared_ptr<boost::asio::ssl::context> Current() const;
  // Loads the files again; on failure the context in force stays and the reason comes back.
  Status Reload();
  // Reloads when either file's modification time or size changed since the last try: whether it did,
  // or why the reload failed.
  Result<bool> ReloadIfChanged();

 private:
  TlsContext(std::string cert_file, std::string key_file) : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}
  static Result<std::shared_ptr<boost::asio::ssl::context>> Load(const std::string& cert_file, const std::string& key_file);
  std::string Stamp() const;  // the files' times and sizes

  const std::string cert_file_;
  const std::string key_file_;
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> current_;
  std::string stamp_;
};

}  // namespace ferry
