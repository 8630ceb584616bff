// The only translation unit that includes Boost.Beast (it is slow to compile; keep it that way).
#include "http/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <unistd.h>
#include <boost/beast/websocket/rfc6455.hpp>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "http/websocket_session.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class BeastServer;

// One connection. Lives as long as an async operation or a pending responder holds it.
// Confined to its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, BeastServer* server);
  ~Session();
  void Run();
  // Closes the connection if it is waiting for a new request (drain). Posted onto the strand.
  void CloseIfIdle();

 private:
  void ReadHeader();
  void OnHeader(beast::error_code ec, size_t bytes);
  void ReadBody();
  void OnBody(beast::error_code ec, size_t bytes);
  void Dispatch();
  void Handle(HttpRequest&& request);
  void Send(HttpResponse&& response, bool from_handler);
  void SendError(int status, std::string_view message);
  void OnWrite(bool keep_alive, bool from_handler, beast::error_code ec, size_t bytes);
  // Streamed bodies (BodyStream): the head, then chunks as they come, while a read watches for the
  // client going away.
  void SendStreamHead(HttpResponse&& response);
  void PumpStream();
  void WatchForDisconnect();
  void EndStream(bool client_gone);
  void Close();
  // Uploads: the body goes to a file under `folder` instead of memory.
  bool StartSpool(const std::string& folder, size_t limit);
  void DropSpool();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // A route whose body goes to a file (uploads): the header moves from parser_ into this one.
  std::optional<http::request_parser<http::file_body>> file_parser_;
  std::string spool_path_;  // that file, until the handler takes it
  std::shared_ptr<http::response<http::string_body>> response_;
  std::shared_ptr<CancelToken> cancel_;
  std::shared_ptr<BodyStream> body_stream_;
  std::shared_ptr<std::string> stream_write_;  // the bytes of the write in flight
  char watch_byte_[256];
  bool watching_ = false;       // a read is watching for the client going away during this request
  bool exchange_done_ = false;  // the answer has gone out (or the client is gone)
  bool stream_ended_ = false;
  BeastServer* server_;
  bool idle_ = true;
  bool request_keep_alive_ = true;
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(const HttpServerOptions& options, HttpHandler* handler)
      : options_(options), handler_(handler), ioc_(static_cast<int>(std::max<size_t>(1, options.io_threads))),
        acceptor_(net::make_strand(ioc_)) {}

  ~BeastServer() override { Stop(); }

  Status Bind() {
    beast::error_code ec;
    auto address = net::ip::make_address(options_.address, ec);
    if (ec) return InvalidArgument(fmt::format("bad listen address '{}': {}", options_.address, ec.message()));
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Unavailable(fmt::format("cannot listen on {}:{}: {}", options_.address, options_.port, ec.message()));
    port_ = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  uint16_t port() const override { return port_; }

  void Start() override {
    Accept();
    for (size_t i = 0; i < std::max<size_t>(1, options_.io_threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
  }

  void BeginDrain() override {
    draining_ = true;
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    std::vector<std::shared_ptr<Session>> live;
    {
      // Collected first: dropping the last reference runs ~Session, which takes this lock.
      std::lock_guard lock(sessions_mu_);
      for (auto& [ptr, weak] : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->CloseIfIdle();
  }

  size_t RequestsInFlight() const override { return in_flight_.load(); }
  size_t OpenConnections() const override { return connections_.load(); }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    draining_ = true;
    ioc_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

  const HttpServerOptions& options() const { return options_; }
  HttpHandler* handler() const { return handler_; }
  bool draining() const { return draining_.load(); }
  std::atomic<size_t>& in_flight() { return in_flight_; }

  void Register(Session* s, std::weak_ptr<Session> weak) {
    std::lock_guard lock(sessions_mu_);
    sessions_[s] = std::move(weak);
  }
  void Unregister(Session* s) {
    {
      std::lock_guard lock(sessions_mu_);
      sessions_.erase(s);
    }
    --connections_;
  }

 private:
  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
        // Out of file descriptors and the like: keep accepting, the condition may pass.
        spdlog::warn("accept failed: {}", ec.message());
        return Accept();
      }
      if (connections_.load() >= options_.max_connections) {
        RefuseConnection(std::move(socket));
      } else {
        ++connections_;
        auto session = std::make_shared<Session>(std::move(socket), this);
        Register(session.get(), session);
        session->Run();
      }
      if (!draining_) Accept();
    });
  }

  // Over the connection cap: answer at once and close, so the client backs off instead of hanging.
  void RefuseConnection(tcp::socket socket) {
    static const std::string kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        "Connection: close\r\nContent-Length: 46\r\n\r\n{\"error\":\"too many connections, retry later\"}\n";
    handler_->OnRejected(503);
    auto sock = std::make_shared<tcp::socket>(std::move(socket));
    net::async_write(*sock, net::buffer(kBusy), [sock](beast::error_code, size_t) {
      beast::error_code ignored;
      sock->shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  const HttpServerOptions options_;
  HttpHandler* handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> in_flight_{0};
  std::atomic<size_t> connections_{0};
  std::mutex sessions_mu_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
};

Session::Session(tcp::socket&& socket, BeastServer* server) : stream_(std::move(socket)), server_(server) {}

Session::~Session() {
  DropSpool();
  server_->Unregister(this);
}

void Session::DropSpool() {
  file_parser_.reset();
  if (!spool_path_.empty()) std::remove(spool_path_.c_str());
  spool_path_.clear();
}

bool Session::StartSpool(const std::string& folder, size_t limit) {
  static std::atomic<uint64_t> counter{0};
  spool_path_ = fmt::format("{}/upload-{}-{}.part", folder, ::getpid(), counter.fetch_add(1));
  file_parser_.emplace(std::move(*parser_));
  file_parser_->body_limit(limit);
  beast::error_code ec;
  file_parser_->get().body().open(spool_path_.c_str(), beast::file_mode::write, ec);
  if (ec) spdlog::warn("cannot spool an upload to {}: {}", spool_path_, ec.message());
  return !ec;
}

void Session::Run() {
  net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::ReadHeader, shared_from_this()));
}

void Session::CloseIfIdle() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->idle_) self->Close();
  });
}

void Session::ReadHeader() {
  if (server_->draining()) return Close();
  idle_ = true;
  DropSpool();
  parser_.emplace();
  const auto& opt = server_->options();
  // Beast counts the request line in its header limit; 414 and 431 are told apart in OnHeader.
  parser_->header_limit(static_cast<std::uint32_t>(opt.max_header_bytes + opt.max_uri_bytes));
  // The body limit depends on the route, known only once the header is in: lift Beast's 1 MB default
  // here and set the route's limit in OnHeader, before any body byte is read.
  parser_->body_limit(boost::none);
  // A keep-alive connection waits idle_timeout for the next request; once bytes arrive the header
  // must complete in header_timeout (checked again below: Beast's timer covers the whole operation).
  stream_.expires_after(buffer_.size() > 0 ? opt.header_timeout : opt.idle_timeout);
  http::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
}

void Session::OnHeader(beast::error_code ec, size_t) {
  idle_ = false;
  if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::operation_aborted ||
      ec == beast::error::timeout || ec == net::error::connection_reset) {
    return Close();
  }
  if (ec == http::error::header_limit) return SendError(431, "request header fields too large");
  if (ec == http::error::body_limit) return SendError(413, "request body too large");
  if (ec) return SendError(400, fmt::format("malformed HTTP request: {}", ec.message()));

  const auto& opt = server_->options();
  auto& req = parser_->get();
  request_keep_alive_ = req.keep_alive();
  if (req.target().size() > opt.max_uri_bytes) return SendError(414, "request URI too long");
  size_t header_bytes = 0;
  for (const auto& field : req) header_bytes += field.name_string().size() + field.value().size() + 4;
  if (header_bytes > opt.max_header_bytes) return SendError(431, "request header fields too large");

  // Any Transfer-Encoding other than a final "chunked" leaves the body's end unknown: a request hidden
  // in it would be answered as the next one (smuggling). RFC 9112 6.3: answer 400 and close.
  if (req.find(http::field::transfer_encoding) != req.end() && !parser_->chunked()) {
    return SendError(400, "unsupported Transfer-Encoding (only chunked is accepted)");
  }
  const std::string_view target(req.target().data(), req.target().size());
  const size_t limit = server_->handler()->BodyLimit(
      std::string_view(req.method_string().data(), req.method_string().size()), target.substr(0, target.find('?')));
  if (parser_->content_length() && *parser_->content_length() > limit) {
    return SendError(413, fmt::format("request body of {} bytes exceeds the limit of {} bytes",
                                      *parser_->content_length(), limit));
  }
  parser_->body_limit(limit);
  const std::string spool = server_->handler()->SpoolFolder(
      std::string_view(req.method_string().data(), req.method_string().size()), target.substr(0, target.find('?')));
  const bool expect_continue = req[http::field::expect] == "100-continue";
  if (!spool.empty() && !StartSpool(spool, limit)) return SendError(503, "cannot store the upload now");
  if (expect_continue) {
    // Answer at once: clients such as curl otherwise wait a second before sending the body.
    auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    stream_.expires_after(opt.write_timeout);
    http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->ReadBody();
    });
    return;
  }
  ReadBody();
}

void Session::ReadBody() {
  if (file_parser_) {
    if (file_parser_->is_done()) return Dispatch();
    stream_.expires_after(server_->options().body_timeout);
    http::async_read(stream_, buffer_, *file_parser_, beast::bind_front_handler(&Session::OnBody, shared_from_this()));
    return;
  }
  if (parser_->is_done()) return Dispatch();
  // Beast reads max(512, free capacity) bytes per call: without room, a 602 KB body took ~1,200 reads.
  buffer_.reserve(std::min<size_t>(parser_->content_length().value_or(65536), 65536));
  stream_.expires_after(server_->options().body_timeout);
  http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnBody, shared_from_this()));
}

void Session::OnBody(beast::error_code ec, size_t) {
  if (ec == http::error::body_limit) return SendError(413, "request body exceeds the limit");
  if (ec == beast::error::timeout) return SendError(408, "request body not received in time");
  if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
      ec == net::error::operation_aborted) {
    return Close();
  }
  if (ec) return SendError(400, fmt::format("malformed HTTP request body: {}", ec.message()));
  Dispatch();
}

template <class Fields>
HttpRequest ToHttpRequest(const http::header<true, Fields>& req) {
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  request.headers.reserve(8);
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    request.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  return request;
}

void Session::Dispatch() {
  stream_.expires_never();  // the handler may take as long as the model does; it has its own timeouts
  if (file_parser_) {
    HttpRequest request = ToHttpRequest(file_parser_->get());
    beast::error_code ec;
    file_parser_->get().body().file().close(ec);
    file_parser_.reset();
    request.body_file = std::exchange(spool_path_, std::string());  // the handler removes it
    return Handle(std::move(request));
  }
  auto& req = parser_->get();
  HttpRequest request = ToHttpRequest(req);
  request.body = std::make_shared<const std::string>(std::move(req.body()));
  if (beast::websocket::is_upgrade(req)) {
    // The WebSocket session takes the socket; this session ends without answering.
    StartWebSocketSession(std::move(stream_), std::move(req), std::move(request), server_->handler(),
                          server_->options());
    return;
  }
  Handle(std::move(request));
}

void Session::Handle(HttpRequest&& request) {
  cancel_ = CancelToken::Create();
  ++server_->in_flight();
  exchange_done_ = false;
  watching_ = server_->handler()->WatchForDisconnect(request);
  if (watching_) WatchForDisconnect();
  auto self = shared_from_this();
  server_->handler()->Handle(std::move(request), cancel_, [self](HttpResponse&& response) {
    net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
      self->Send(std::move(response), /*from_handler=*/true);
    });
  });
}

void Session::SendError(int status, std::string_view message) {
  server_->handler()->OnRejected(status);
  HttpResponse response;
  response.status = status;
  response.body = EncodeErrorJson(message);
  // After a framing error or an unread body the byte stream cannot be trusted: close.
  response.close_connection = true;
  Send(std::move(response), /*from_handler=*/false);
}

void Session::Send(HttpResponse&& r, bool from_handler) {
  if (r.stream && from_handler) return SendStreamHead(std::move(r));
  // A watched request has a read pending: its connection closes after the answer rather than untangle
  // that read from the next request's.
  const bool keep_alive = request_keep_alive_ && !r.close_connection && !server_->draining() && !watching_;
  response_ = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), 11);
  response_->set(http::field::server, "ferry");
  response_->set(http::field::content_type, r.content_type);
  for (auto& [name, value] : r.headers) response_->set(name, value);
  response_->body() = std::move(r.body);
  response_->keep_alive(keep_alive);
  response_->prepare_payload();
  stream_.expires_after(server_->options().write_timeout);
  http::async_write(stream_, *response_,
                    beast::bind_front_handler(&Session::OnWrite, shared_from_this(), keep_alive, from_handler));
}

void Session::OnWrite(bool keep_alive, bool from_handler, beast::error_code ec, size_t) {
  exchange_done_ = true;
  if (from_handler) {
    --server_->in_flight();
    cancel_.reset();
  }
  response_.reset();
  if (ec || !keep_alive) return Close();
  ReadHeader();
}

void Session::SendStreamHead(HttpResponse&& r) {
  body_stream_ = std::move(r.stream);
  const auto reason = http::obsolete_reason(static_cast<http::status>(r.status));
  auto head = std::make_shared<std::string>(fmt::format(
      "HTTP/1.1 {} {}\r\nServer: ferry\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n",
      r.status, std::string_view(reason.data(), reason.size()), r.content_type));
  for (auto& [name, value] : r.headers) *head += fmt::format("{}: {}\r\n", name, value);
  *head += "\r\n";
  stream_write_ = head;
  stream_.expires_after(server_->options().write_timeout);
  net::async_write(stream_, net::buffer(*head), [self = shared_from_this()](beast::error_code ec, size_t) {
    self->stream_.expires_never();
    if (ec) return self->EndStream(/*client_gone=*/true);
    self->stream_write_.reset();
    if (!self->watching_) {
      self->watching_ = true;
      self->WatchForDisconnect();
    }
    std::weak_ptr<Session> weak = self;
    self->body_stream_->SetWake([weak] {
      if (auto s = weak.lock()) net::post(s->stream_.get_executor(), [s] { s->PumpStream(); });
    });
    self->PumpStream();
  });
}

void Session::PumpStream() {
  if (stream_write_ || stream_ended_ || !body_stream_) return;  // a write is in flight, or done
  bool ended = false;
  std::string data = body_stream_->Take(&ended);
  if (data.empty() && !ended) return;  // the wake brings us back
  auto frame = std::make_shared<std::string>();
  if (!data.empty()) *frame = fmt::format("{:x}\r\n{}\r\n", data.size(), data);
  if (ended) *frame += "0\r\n\r\n";
  stream_write_ = frame;
  stream_.expires_after(server_->options().write_timeout);
  net::async_write(stream_, net::buffer(*frame), [self = shared_from_this(), ended](beast::error_code ec, size_t) {
    self->stream_.expires_never();
    self->stream_write_.reset();
    if (ec) return self->EndStream(/*client_gone=*/true);
    if (ended) return self->EndStream(/*client_gone=*/false);
    self->PumpStream();
  });
}

void Session::WatchForDisconnect() {
  // The request was read in full; anything more from the client is ignored (the connection closes
  // after this answer). End of file or an error means the client went away: its work is cancelled.
  stream_.async_read_some(net::buffer(watch_byte_), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (self->exchange_done_) return;
    if (!ec) return self->WatchForDisconnect();
    if (self->body_stream_) return self->EndStream(/*client_gone=*/true);
    if (self->cancel_) self->cancel_->Cancel();  // the answer still goes out (and fails) when it comes
  });
}

void Session::EndStream(bool client_gone) {
  if (stream_ended_) return;
  stream_ended_ = true;
  exchange_done_ = true;
  if (client_gone && cancel_) cancel_->Cancel();
  if (body_stream_) body_stream_->Abort();
  body_stream_.reset();
  --server_->in_flight();
  cancel_.reset();
  Close();
}

void Session::Close() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.close();
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Create(const HttpServerOptions& options, HttpHandler* handler) {
  auto server = std::make_unique<BeastServer>(options, handler);
  FERRY_RETURN_IF_ERROR(server->Bind());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace ferry
