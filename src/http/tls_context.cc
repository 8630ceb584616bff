#include "http/tls_context.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <system_error>

namespace ferry {
namespace {

// OpenSSL's reasons for the last failure, oldest first, and an empty queue after.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

// Only HTTP/1.1 is spoken: a client offering h2 first is told so rather than left to guess.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == 8 && std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == "http/1.1") {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

Result<std::unique_ptr<TlsContext>> TlsContext::Open(std::string cert_file, std::string key_file) {
  if (cert_file.empty() || key_file.empty()) return InvalidArgument("TLS needs both --tls-cert and --tls-key");
  std::unique_ptr<TlsContext> tls(new TlsContext(std::move(cert_file), std::move(key_file)));
  tls->stamp_ = tls->Stamp();
  FERRY_ASSIGN_OR_RETURN(tls->current_, Load(tls->cert_file_, tls->key_file_));
  return tls;
}

Result<std::shared_ptr<boost::asio::ssl::context>> TlsContext::Load(const std::string& cert_file,
                                                                   const std::string& key_file) {
  ERR_clear_error();
  auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS") != 1) {
    return Internal("TLS: no cipher of the default list is available: " + OpenSslErrors());
  }
  SSL_CTX_set_alpn_select_cb(c, SelectAlpn, nullptr);
  if (SSL_CTX_use_certificate_chain_file(c, cert_file.c_str()) != 1) {
    return InvalidArgument(fmt::format("TLS certificate '{}' cannot be loaded: {}", cert_file, OpenSslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(c, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    return InvalidArgument(fmt::format("TLS key '{}' {}: {}", key_file,
                                       mismatch ? fmt::format("does not match the certificate '{}'", cert_file)
                                                : std::string("cannot be loaded"),
                                       OpenSslErrors()));
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return InvalidArgument(fmt::format("TLS key '{}' does not match the certificate '{}': {}", key_file, cert_file,
                                       OpenSslErrors()));
  }
  return ctx;
}

std::shared_ptr<boost::asio::ssl::context> TlsContext::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

Status TlsContext::Reload() {
  Result<std::shared_ptr<boost::asio::ssl::context>> fresh = Load(cert_file_, key_file_);
  std::lock_guard lock(mu_);
  stamp_ = Stamp();
  if (!fresh.ok()) return fresh.status();
  current_ = std::move(fresh).value();
  return Status::Ok();
}

Result<bool> TlsContext::ReloadIfChanged() {
  {
    std::lock_guard lock(mu_);
    if (Stamp() == stamp_) return false;
  }
  FERRY_RETURN_IF_ERROR(Reload());
  return true;
}

std::string TlsContext::Stamp() const {
  std::string out;
  for (const std::string& f : {cert_file_, key_file_}) {
    std::error_code ec;
    const auto time = std::filesystem::last_write_time(f, ec);
    const auto size = std::filesystem::file_size(f, ec);
    out += fmt::format("{}:{}:{};", f, ec ? -1 : time.time_since_epoch().count(), ec ? 0 : size);
  }
  return out;
}

}  // namespace ferry
