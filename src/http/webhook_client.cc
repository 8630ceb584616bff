// Boost.Beast and Asio's TLS in one translation unit of their own (they are slow to compile).
#include "http/webhook_client.h"

#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <thread>

namespace ferry {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

constexpr uint32_t kMaxAnswerHeadBytes = 16 * 1024;

net::ip::address ToAsio(const IpAddress& a) {
  if (a.is_v4()) {
    net::ip::address_v4::bytes_type b;
    std::copy(a.bytes.begin() + 12, a.bytes.end(), b.begin());
    return net::ip::address_v4(b);
  }
  net::ip::address_v6::bytes_type b;
  std::copy(a.bytes.begin(), a.bytes.end(), b.begin());
  return net::ip::address_v6(b);
}

std::string HostHeader(const WebhookHttpRequest& r) {
  const bool v6_literal = r.host.find(':') != std::string::npos;
  const std::string host = v6_literal ? "[" + r.host + "]" : r.host;
  const uint16_t default_port = r.scheme == "https" ? 443 : 80;
  return r.port == default_port ? host : fmt::format("{}:{}", host, r.port);
}

// One request and its answer over `Stream` (a tcp_stream, or a TLS stream over one).
template <class Stream>
class Exchange : public std::enable_shared_from_this<Exchange<Stream>> {
 public:
  template <class... StreamArgs>
  Exchange(WebhookHttpRequest request, std::function<void(WebhookHttpAnswer)> done, StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...), request_(std::move(request)), done_(std::move(done)) {
    message_.method(http::verb::post);
    message_.target(request_.target);
    message_.version(11);
    message_.set(http::field::host, HostHeader(request_));
    message_.set(http::field::connection, "close");
    for (const auto& [name, value] : request_.headers) message_.set(name, value);
    message_.body() = std::move(request_.body);
    message_.prepare_payload();
    parser_.header_limit(kMaxAnswerHeadBytes);
  }

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      // SNI, and a certificate that must name the URL's host.
      if (!SSL_set_tlsext_host_name(stream_.native_handle(), request_.host.c_str())) {
        return Finish(Failure("cannot set the TLS server name"));
      }
      stream_.set_verify_mode(ssl::verify_peer);
      stream_.set_verify_callback(ssl::host_name_verification(request_.host));
    }
    beast::get_lowest_layer(stream_).expires_after(request_.timeout);
    const tcp::endpoint endpoint(ToAsio(request_.address), request_.port);
    beast::get_lowest_layer(stream_).async_connect(
        endpoint, [self = this->shared_from_this()](beast::error_code ec) { self->OnConnect(ec); });
  }

 private:
  WebhookHttpAnswer Failure(std::string why) {
    WebhookHttpAnswer a;
    a.error = std::move(why);
    return a;
  }
  void Fail(beast::error_code ec, std::string_view step) {
    if (ec == beast::error::timeout) {
      return Finish(Failure(fmt::format("no answer within {} ms ({})", request_.timeout.count(), step)));
    }
    Finish(Failure(fmt::format("{}: {}", step, ec.message())));
  }

  void OnConnect(beast::error_code ec) {
    if (ec) return Fail(ec, fmt::format("connecting to {}", request_.address.ToString()));
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      stream_.async_handshake(ssl::stream_base::client, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->Fail(ec, "TLS handshake");
        self->Send();
      });
    } else {
      Send();
    }
  }

  void Send() {
    http::async_write(stream_, message_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Fail(ec, "sending");
      http::async_read_header(self->stream_, self->buffer_, self->parser_,
                              [self](beast::error_code ec, size_t) { self->OnAnswer(ec); });
    });
  }

  void OnAnswer(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof) {
      return Finish(Failure("the connection was closed without an answer"));
    }
    if (ec) return Fail(ec, "reading the answer");
    const auto& head = parser_.get();
    WebhookHttpAnswer a;
    a.status = static_cast<int>(head.result_int());
    if (auto it = head.find(http::field::location); it != head.end()) a.location = std::string(it->value());
    if (auto it = head.find(http::field::retry_after); it != head.end()) {
      const std::string_view v = it->value();
      int64_t seconds = 0;
      auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), seconds);
      if (err == std::errc() && end == v.data() + v.size() && seconds >= 0) a.retry_after_s = seconds;
    }
    Finish(std::move(a));
  }

  void Finish(WebhookHttpAnswer answer) {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
    if (auto done = std::exchange(done_, nullptr)) done(std::move(answer));
  }

  Stream stream_;
  WebhookHttpRequest request_;
  std::function<void(WebhookHttpAnswer)> done_;
  http::request<http::string_body> message_;
  beast::flat_buffer buffer_;
  http::response_parser<http::empty_body> parser_;
};

}  // namespace

struct WebhookClient::Impl {
  net::io_context io{1};
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(io);
  ssl::context tls{ssl::context::tls_client};
  std::thread thread;
};

WebhookClient::WebhookClient() : impl_(std::make_unique<Impl>()) {
  impl_->tls.set_default_verify_paths();
  impl_->tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  impl_->thread = std::thread([io = &impl_->io] { io->run(); });
}

WebhookClient::~WebhookClient() {
  impl_->work.reset();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void WebhookClient::Post(WebhookHttpRequest request, std::function<void(WebhookHttpAnswer)> done) {
  net::post(impl_->io, [this, request = std::move(request), done = std::move(done)]() mutable {
    if (request.scheme == "https") {
      std::make_shared<Exchange<beast::ssl_stream<beast::tcp_stream>>>(std::move(request), std::move(done),
                                                                        net::make_strand(impl_->io), impl_->tls)
          ->Start();
    } else {
      std::make_shared<Exchange<beast::tcp_stream>>(std::move(request), std::move(done), net::make_strand(impl_->io))
          ->Start();
    }
  });
}

WebhookPost WebhookClient::AsPost() {
  return [this](WebhookHttpRequest request, std::function<void(WebhookHttpAnswer)> done) {
    Post(std::move(request), std::move(done));
  };
}

}  // namespace ferry
