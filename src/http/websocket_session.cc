// The WebSocket side of the front end (Beast's websocket stream; slow to compile, so kept here alone).
#include "http/websocket_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <atomic>
#include <deque>

#include "tensor/infer_codec.h"

namespace ferry {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;

// Messages a client may send (a camera frame is the largest expected).
constexpr size_t kMaxMessageBytes = 16 * 1024 * 1024;
// Bytes queued for a client that does not read before the connection is dropped.
constexpr size_t kMaxQueuedBytes = 8 * 1024 * 1024;

template <class NextLayer>
class WebSocketSession final : public WebSocketSender,
                               public std::enable_shared_from_this<WebSocketSession<NextLayer>> {
 public:
  WebSocketSession(NextLayer&& stream, const HttpServerOptions& options, std::shared_ptr<void> slot)
      : slot_(std::move(slot)), ws_(std::move(stream)), options_(options) {}

  // Answers the upgrade request with `answer` and closes the connection.
  void Refuse(HttpResponse&& answer) {
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(answer.status), 11);
    response->set(http::field::server, "ferry");
    response->set(http::field::content_type, answer.content_type);
    for (const auto& [name, value] : answer.headers) response->set(name, value);
    response->body() = std::move(answer.body);
    response->keep_alive(false);
    response->prepare_payload();
    beast::get_lowest_layer(ws_).expires_after(options_.write_timeout);
    http::async_write(ws_.next_layer(), *response,
                      [self = this->shared_from_this(), response](beast::error_code, size_t) {
                        beast::error_code ignored;
                        beast::get_lowest_layer(self->ws_).socket().shutdown(net::socket_base::shutdown_both, ignored);
                      });
  }

  void Start(http::request<http::string_body>&& upgrade, HttpRequest&& request, HttpHandler* handler) {
    if (std::optional<HttpResponse> refused = handler->RefuseUpgrade(request)) return Refuse(std::move(*refused));
    endpoint_ = handler->OpenWebSocket(request, this->shared_from_this());
    if (!endpoint_) {
      HttpResponse missing;
      missing.status = 404;
      missing.body = EncodeErrorJson("no WebSocket endpoint at this path");
      return Refuse(std::move(missing));
    }
    beast::get_lowest_layer(ws_).expires_never();
    // Pings an idle client and drops one that does not answer; bounds the handshake and close.
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "ferry"); }));
    ws_.read_message_max(kMaxMessageBytes);
    upgrade_ = std::move(upgrade);
    ws_.async_accept(upgrade_, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->Closed();
      self->Read();
    });
  }

  void SendText(std::string message) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), message = std::move(message)]() mutable {
      if (self->closed_) return;
      self->queued_bytes_ += message.size();
      if (self->queued_bytes_ > kMaxQueuedBytes) {
        spdlog::warn("WebSocket client is not reading; closing the connection");
        return self->Fail();
      }
      self->outbox_.push_back(std::move(message));
      if (!self->writing_) self->WriteNext();
    });
  }

  void Close() override { CloseWith(websocket::close_code::normal); }
  void CloseGoingAway() override { CloseWith(websocket::close_code::going_away); }
  bool open() const override { return !closed_; }

 private:
  void CloseWith(websocket::close_code code) {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), code] {
      if (self->closed_ || self->closing_) return;
      self->closing_ = true;
      self->close_code_ = code;
      if (code == websocket::close_code::going_away) {
        // A drain: a client that does not answer the close frame is cut off after 2 s.
        websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::server);
        t.handshake_timeout = std::chrono::seconds(2);
        self->ws_.set_option(t);
      }
      if (!self->writing_) self->CloseNow();
    });
  }

  void Read() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Closed();
      const auto data = self->buffer_.cdata();
      const std::string_view message(static_cast<const char*>(data.data()), data.size());
      self->endpoint_->OnMessage(message, !self->ws_.got_text());
      self->buffer_.consume(self->buffer_.size());
      self->Read();
    });
  }

  void WriteNext() {
    if (outbox_.empty()) {
      if (closing_) CloseNow();
      return;
    }
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(outbox_.front()), [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->Fail();
      self->queued_bytes_ -= self->outbox_.front().size();
      self->outbox_.pop_front();
      self->WriteNext();
    });
  }

  void CloseNow() {
    ws_.async_close(close_code_, [self = this->shared_from_this()](beast::error_code) { self->Closed(); });
  }

  void Fail() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    Closed();
  }

  // Runs once, whichever way the connection ended.
  void Closed() {
    if (closed_) return;
    closed_ = true;
    outbox_.clear();
    if (endpoint_) endpoint_->OnClose();
    endpoint_.reset();  // the endpoint may hold this session as its sender
  }

  std::shared_ptr<void> slot_;  // the connection's place in the counts (and its TLS context): outlives ws_
  websocket::stream<NextLayer> ws_;
  const HttpServerOptions options_;
  http::request<http::string_body> upgrade_;
  beast::flat_buffer buffer_;
  std::shared_ptr<WebSocketEndpoint> endpoint_;
  std::deque<std::string> outbox_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  std::atomic<bool> closed_{false};
  websocket::close_code close_code_ = websocket::close_code::normal;
};

}  // namespace

std::shared_ptr<WebSocketSender> StartWebSocketSession(beast::tcp_stream&& stream,
                                                       http::request<http::string_body>&& upgrade,
                                                       HttpRequest&& request, HttpHandler* handler,
                                                       const HttpServerOptions& options, std::shared_ptr<void> slot) {
  auto session = std::make_shared<WebSocketSession<beast::tcp_stream>>(std::move(stream), options, std::move(slot));
  session->Start(std::move(upgrade), std::move(request), handler);
  return session;
}

std::shared_ptr<WebSocketSender> StartWebSocketSession(beast::ssl_stream<beast::tcp_stream>&& stream,
                                                       http::request<http::string_body>&& upgrade,
                                                       HttpRequest&& request, HttpHandler* handler,
                                                       const HttpServerOptions& options, std::shared_ptr<void> slot) {
  auto session = std::make_shared<WebSocketSession<beast::ssl_stream<beast::tcp_stream>>>(std::move(stream), options,
                                                                                          std::move(slot));
  session->Start(std::move(upgrade), std::move(request), handler);
  return session;
}

}  // namespace ferry
