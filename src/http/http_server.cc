// The only translation unit that includes Boost.Beast (it is slow to compile; keep it that way).
#include "http/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <unistd.h>
#include <boost/beast/websocket/rfc6455.hpp>
#include <mutex>
#include <thread>
#include <list>
#include <unordered_map>

#include "common/ascii.h"
#include "http/tls_context.h"
#include "http/websocket_session.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

class BeastServer;

// What the server needs of a connection, whatever its stream.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection if it is waiting for a new request (eviction), or, with `kept_alive_only`,
  // only if it is waiting between requests with nothing of the next one read (drain: a new
  // connection's first request, or a kept-alive one's next, may be on its way, and closing it would
  // fail that request instead of answering it). Posted onto the strand.
  virtual void CloseIfIdle(bool kept_alive_only) = 0;
  // Its place in the server's list of connections waiting for a header (guarded by the server's lock).
  std::optional<std::list<std::weak_ptr<SessionBase>>::iterator> waiting_pos_;
};

// One connection over `Stream` (beast::tcp_stream, or TlsStream for HTTPS). Lives as long as an async
// operation or a pending responder holds it. Confined to its strand.
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  // `tls` keeps the TLS context the stream was made with alive (a reload makes a new one).
  Session(Stream&& stream, BeastServer* server, std::shared_ptr<void> slot, std::shared_ptr<void> tls);
  ~Session() override;
  void Run();
  void CloseIfIdle(bool kept_alive_only) override;

 private:
  void ReadHeader();
  void ReadWholeHeader();
  void OnHeader(beast::error_code ec, size_t bytes);
  void ReadBody();
  void ContinueBody();
  void OnBody(beast::error_code ec, size_t bytes);
  void Dispatch();
  void Handle(HttpRequest&& request);
  // During a drain, new work (all but what the handler answers while draining: health) gets a 503
  // with Retry-After and the connection closes. True when it was refused.
  bool RefuseWhileDraining(const HttpRequest& request);
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

  auto& tcp() { return beast::get_lowest_layer(stream_); }

  std::shared_ptr<void> tls_;  // before stream_, which is made from it
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // A route whose body goes to a file (uploads): the header moves from parser_ into this one.
  std::optional<http::request_parser<http::file_body>> file_parser_;
  std::string spool_path_;  // that file, until the handler takes it
  std::shared_ptr<http::response<http::string_body>> response_;
  std::shared_ptr<CancelToken> cancel_;
  std::shared_ptr<BodyStream> body_stream_;
  std::shared_ptr<std::string> stream_write_;  // the bytes of the write in flight
  // While a request runs, a read watches for the client going away (end of file: its work is
  // cancelled). Bytes it reads (a pipelined next request) go to buffer_; after the answer the read is
  // cancelled and the connection reads its next request as usual.
  bool watching_ = false;      // that read is in flight
  bool resume_after_watch_ = false;  // the answer is out: the watch's end reads the next request
  bool client_gone_ = false;   // the watch saw the client go: close after the answer
  bool exchange_done_ = false;  // the answer has gone out (or the client is gone)
  bool stream_ended_ = false;
  BeastServer* server_;
  // This connection's place in the server's counts (all and per address); a WebSocket takes it over.
  std::shared_ptr<void> slot_;
  bool idle_ = true;
  bool first_request_ = true;
  bool answered_ = false;  // an answer has gone out on this connection
  bool request_keep_alive_ = true;
  std::chrono::steady_clock::time_point body_start_;
  size_t body_bytes_ = 0;
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(const HttpServerOptions& options, HttpHandler* handler)
      : options_(options), handler_(handler), ioc_(static_cast<int>(std::max<size_t>(1, options.io_threads))),
        acceptor_(net::make_strand(ioc_)) {}

  ~BeastServer() override { Stop(); }

  Status Bind() {
    if (!options_.tls_cert_file.empty() || !options_.tls_key_file.empty()) {
      FERRY_ASSIGN_OR_RETURN(tls_, TlsContext::Open(options_.tls_cert_file, options_.tls_key_file));
    }
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

  Status ReloadTls() override {
    if (!tls_) return Status::Ok();
    Status s = tls_->Reload();
    if (s.ok()) spdlog::info("TLS certificate reloaded from {}", options_.tls_cert_file);
    return s;
  }

  void Start() override {
    if (tls_) WatchTlsFiles();
    Accept();
    for (size_t i = 0; i < std::max<size_t>(1, options_.io_threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
  }

  void BeginDrain() override {
    // The listener stays open until Stop: probes read readiness (503) and new work gets a 503 with
    // "Connection: close", rather than a refused connection a load balancer cannot tell from a crash.
    draining_ = true;
    std::vector<std::shared_ptr<SessionBase>> live;
    {
      // Collected first: dropping the last reference runs ~Session, which takes this lock.
      std::lock_guard lock(sessions_mu_);
      for (auto& [ptr, weak] : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->CloseIfIdle(/*kept_alive_only=*/true);
    for (auto& ws : WebSockets()) ws->CloseGoingAway();  // a close frame each, after what is queued
  }

  void AddWebSocket(std::shared_ptr<WebSocketSender> ws) {
    std::lock_guard lock(sessions_mu_);
    std::erase_if(websockets_, [](const std::weak_ptr<WebSocketSender>& w) { return w.expired(); });
    websockets_.push_back(ws);
    if (draining_) ws->CloseGoingAway();  // upgraded while the drain began
  }

  // The WebSockets still open.
  std::vector<std::shared_ptr<WebSocketSender>> WebSockets() {
    std::vector<std::shared_ptr<WebSocketSender>> live;
    std::lock_guard lock(sessions_mu_);
    for (auto& w : websockets_) {
      if (auto ws = w.lock()) live.push_back(std::move(ws));
    }
    return live;
  }
  size_t OpenWebSockets() override {
    const auto live = WebSockets();
    return static_cast<size_t>(std::count_if(live.begin(), live.end(), [](const auto& ws) { return ws->open(); }));
  }

  size_t RequestsInFlight() const override { return in_flight_.load(); }
  size_t OpenConnections() const override { return counts_->open.load(); }

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

  // Connections waiting for a request header, oldest first: at the connection cap the oldest is closed
  // to make room, so slow headers from many addresses cannot hold every slot either.
  void BeginWaiting(SessionBase* s, std::weak_ptr<SessionBase> weak) {
    std::lock_guard lock(sessions_mu_);
    if (!s->waiting_pos_) s->waiting_pos_ = waiting_.insert(waiting_.end(), std::move(weak));
  }
  void EndWaiting(SessionBase* s) {
    std::lock_guard lock(sessions_mu_);
    EndWaitingLocked(s);
  }

  void Register(SessionBase* s, std::weak_ptr<SessionBase> weak) {
    std::lock_guard lock(sessions_mu_);
    sessions_[s] = std::move(weak);
  }
  void Unregister(SessionBase* s) {
    std::lock_guard lock(sessions_mu_);
    EndWaitingLocked(s);
    sessions_.erase(s);
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
      beast::error_code peer_ec;
      const std::string peer = socket.remote_endpoint(peer_ec).address().to_string();
      if (counts_->open.load() >= options_.max_connections && !EvictOldestWaiting()) {
        RefuseConnection(std::move(socket), "too many connections, retry later");
      } else if (std::shared_ptr<void> slot = TakeSlot(peer_ec ? std::string() : peer)) {
        StartSession(std::move(socket), std::move(slot));
      } else {
        RefuseConnection(std::move(socket), "too many connections from your address, retry later");
      }
      if (!stopped_) Accept();
    });
  }

  // A certificate renewed on disk (certbot, cert-manager) is picked up within kTlsPoll.
  void WatchTlsFiles() {
    tls_timer_.expires_after(kTlsPoll);
    tls_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      if (Result<bool> reloaded = tls_->ReloadIfChanged(); !reloaded.ok()) {
        spdlog::error("TLS files changed but cannot be loaded; the certificate in force stays: {}",
                      reloaded.status().message());
      } else if (*reloaded) {
        spdlog::info("TLS certificate reloaded from {} (the files changed)", options_.tls_cert_file);
      }
      WatchTlsFiles();
    });
  }
  static constexpr std::chrono::seconds kTlsPoll{2};

  // A connection's place in the counts, given back when the last holder (a session, then perhaps a
  // WebSocket) lets go; null when its address already holds its share.
  void EndWaitingLocked(SessionBase* s) {
    if (!s->waiting_pos_) return;
    waiting_.erase(*s->waiting_pos_);
    s->waiting_pos_.reset();
  }

  // Closes the connection that has waited longest for its header; false when none waits (or too many
  // closes are still under way: the count only drops once a closed connection is gone).
  bool EvictOldestWaiting() {
    std::shared_ptr<SessionBase> oldest;
    {
      std::lock_guard lock(sessions_mu_);
      if (counts_->open.load() >= options_.max_connections + kMaxEvictionsInFlight) return false;
      while (!oldest && !waiting_.empty()) {
        oldest = waiting_.front().lock();
        if (oldest) {
          EndWaitingLocked(oldest.get());
        } else {
          waiting_.pop_front();
        }
      }
    }
    if (!oldest) return false;
    ++evicted_;
    oldest->CloseIfIdle(/*kept_alive_only=*/false);
    return true;
  }
  static constexpr size_t kMaxEvictionsInFlight = 256;

  // The counts are shared with the slots, which a WebSocket may hold past this server's teardown.
  std::shared_ptr<void> TakeSlot(const std::string& peer) {
    std::lock_guard lock(counts_->mu);
    const size_t cap = options_.max_connections_per_address;
    if (cap > 0 && !peer.empty()) {
      auto it = counts_->per_address.find(peer);
      if (it != counts_->per_address.end() && it->second >= cap) return nullptr;
    }
    ++counts_->per_address[peer];
    ++counts_->open;
    return std::make_shared<Slot>(counts_, peer);
  }

  void StartSession(tcp::socket&& socket, std::shared_ptr<void> slot) {
    if (tls_) {
      std::shared_ptr<net::ssl::context> ctx = tls_->Current();
      auto session = std::make_shared<Session<TlsStream>>(TlsStream(beast::tcp_stream(std::move(socket)), *ctx), this,
                                                          std::move(slot), ctx);
      Register(session.get(), session);
      return session->Run();
    }
    auto session = std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), this,
                                                                 std::move(slot), nullptr);
    Register(session.get(), session);
    session->Run();
  }

  // Over a connection cap: answer at once and close, so the client backs off instead of hanging (over
  // TLS: close, since a plain answer would mean nothing to a client expecting a handshake).
  void RefuseConnection(tcp::socket socket, std::string_view reason) {
    if (tls_) {
      handler_->OnRejected(503);
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    const std::string body = EncodeErrorJson(reason);
    auto busy = std::make_shared<std::string>(fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nServer: ferry\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        "Connection: close\r\nContent-Length: {}\r\n\r\n{}", body.size(), body));
    handler_->OnRejected(503);
    auto sock = std::make_shared<tcp::socket>(std::move(socket));
    net::async_write(*sock, net::buffer(*busy), [sock, busy](beast::error_code, size_t) {
      beast::error_code ignored;
      sock->shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  // Declared before ioc_, so they outlive it: destroying ioc_ destroys the sessions its queued handlers
  // still hold, and each unregisters itself here.
  std::mutex sessions_mu_;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions_;
  std::list<std::weak_ptr<SessionBase>> waiting_;  // sessions waiting for a header, oldest first
  std::vector<std::weak_ptr<WebSocketSender>> websockets_;
  std::atomic<uint64_t> evicted_{0};
  const HttpServerOptions options_;
  HttpHandler* handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::unique_ptr<TlsContext> tls_;  // null: plain HTTP
  net::steady_timer tls_timer_{ioc_};
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> in_flight_{0};
  struct ConnectionCounts {
    std::mutex mu;
    std::unordered_map<std::string, size_t> per_address;  // open connections by client address
    std::atomic<size_t> open{0};                           // all of them, WebSockets included
  };
  std::shared_ptr<ConnectionCounts> counts_ = std::make_shared<ConnectionCounts>();
  struct Slot {
    Slot(std::shared_ptr<ConnectionCounts> c, std::string p) : counts(std::move(c)), peer(std::move(p)) {}
    ~Slot() {
      std::lock_guard lock(counts->mu);
      if (auto it = counts->per_address.find(peer); it != counts->per_address.end() && --it->second == 0) {
        counts->per_address.erase(it);
      }
      --counts->open;
    }
    std::shared_ptr<ConnectionCounts> counts;
    std::string peer;
  };
};

template <class Stream>
Session<Stream>::Session(Stream&& stream, BeastServer* server, std::shared_ptr<void> slot, std::shared_ptr<void> tls)
    : tls_(std::move(tls)), stream_(std::move(stream)), server_(server), slot_(std::move(slot)) {}

template <class Stream>
Session<Stream>::~Session() {
  DropSpool();
  server_->Unregister(this);
}

template <class Stream>
void Session<Stream>::DropSpool() {
  file_parser_.reset();
  if (!spool_path_.empty()) std::remove(spool_path_.c_str());
  spool_path_.clear();
}

template <class Stream>
bool Session<Stream>::StartSpool(const std::string& folder, size_t limit) {
  static std::atomic<uint64_t> counter{0};
  spool_path_ = fmt::format("{}/upload-{}-{}.part", folder, ::getpid(), counter.fetch_add(1));
  file_parser_.emplace(std::move(*parser_));
  file_parser_->body_limit(limit);
  beast::error_code ec;
  file_parser_->get().body().open(spool_path_.c_str(), beast::file_mode::write, ec);
  if (ec) spdlog::warn("cannot spool an upload to {}: {}", spool_path_, ec.message());
  return !ec;
}

template <class Stream>
void Session<Stream>::Run() {
  if constexpr (kTls) {
    // The handshake has the header timeout too; then the header gets its own.
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      self->tcp().expires_after(self->server_->options().header_timeout);
      self->stream_.async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
        if (ec) return self->Close();
        self->ReadHeader();
      });
    });
  } else {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::ReadHeader, this->shared_from_this()));
  }
}

template <class Stream>
void Session<Stream>::CloseIfIdle(bool kept_alive_only) {
  net::post(stream_.get_executor(), [self = this->shared_from_this(), kept_alive_only] {
    if (!self->idle_) return;
    // A drain leaves a connection alone until it has had an answer and no byte of its next request
    // has come (a header under way is read, then refused with 503, or meets the header deadline).
    if (kept_alive_only && (!self->answered_ || self->buffer_.size() > 0)) return;
    self->Close();
  });
}

template <class Stream>
void Session<Stream>::ReadHeader() {
  idle_ = true;
  server_->BeginWaiting(this, this->weak_from_this());
  DropSpool();
  parser_.emplace();
  const auto& opt = server_->options();
  // Beast counts the request line in its header limit; 414 and 431 are told apart in OnHeader.
  parser_->header_limit(static_cast<std::uint32_t>(opt.max_header_bytes + opt.max_uri_bytes));
  // The body limit depends on the route, known only once the header is in: lift Beast's 1 MB default
  // here and set the route's limit in OnHeader, before any body byte is read.
  parser_->body_limit(boost::none);
  if (first_request_ || buffer_.size() > 0) return ReadWholeHeader();
  // A keep-alive connection waits idle_timeout for the next request's first byte; from there the
  // header has header_timeout (Beast's timer covers the whole read, however slowly bytes drip).
  tcp().expires_after(opt.idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, size_t bytes) {
    if (ec) return self->Close();
    self->buffer_.commit(bytes);
    self->ReadWholeHeader();
  });
}

template <class Stream>
void Session<Stream>::ReadWholeHeader() {
  first_request_ = false;
  tcp().expires_after(server_->options().header_timeout);
  http::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnHeader, this->shared_from_this()));
}

template <class Stream>
void Session<Stream>::OnHeader(beast::error_code ec, size_t) {
  idle_ = false;
  server_->EndWaiting(this);
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
    tcp().expires_after(opt.write_timeout);
    http::async_write(stream_, *cont, [self = this->shared_from_this(), cont](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->ReadBody();
    });
    return;
  }
  ReadBody();
}

template <class Stream>
void Session<Stream>::ReadBody() {
  body_start_ = std::chrono::steady_clock::now();
  body_bytes_ = 0;
  ContinueBody();
}

template <class Stream>
void Session<Stream>::ContinueBody() {
  if (file_parser_ ? file_parser_->is_done() : parser_->is_done()) return Dispatch();
  // The body must keep up min_body_bytes_per_s on average after a grace of header_timeout: each byte
  // in buys 1/rate s more, so a client dripping it runs out of time however it paces the drips.
  const auto& opt = server_->options();
  if (opt.min_body_bytes_per_s > 0) {
    const auto earned = std::chrono::microseconds(static_cast<int64_t>(
        static_cast<double>(body_bytes_) * 1e6 / static_cast<double>(opt.min_body_bytes_per_s)));
    tcp().expires_at(body_start_ + opt.header_timeout + earned);
  } else {
    tcp().expires_after(opt.idle_timeout);
  }
  if (file_parser_) {
    http::async_read_some(stream_, buffer_, *file_parser_, beast::bind_front_handler(&Session::OnBody, this->shared_from_this()));
    return;
  }
  // Beast reads max(512, free capacity) bytes per call: without room, a 602 KB body took ~1,200 reads.
  buffer_.reserve(std::min<size_t>(parser_->content_length().value_or(65536), 65536));
  http::async_read_some(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnBody, this->shared_from_this()));
}

template <class Stream>
void Session<Stream>::OnBody(beast::error_code ec, size_t bytes) {
  if (ec == http::error::body_limit) return SendError(413, "request body exceeds the limit");
  if (ec == beast::error::timeout) {
    return SendError(408, fmt::format("request body arrived slower than {} bytes/s",
                                      server_->options().min_body_bytes_per_s));
  }
  if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
      ec == net::error::operation_aborted) {
    return Close();
  }
  if (ec == http::error::need_buffer) ec = {};  // the buffer was full of body: parsed, read on
  if (ec) return SendError(400, fmt::format("malformed HTTP request body: {}", ec.message()));
  body_bytes_ += bytes;
  ContinueBody();
}

template <class Fields>
HttpRequest ToHttpRequest(const http::header<true, Fields>& req) {
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  request.headers.reserve(8);
  for (const auto& field : req) {
    request.headers.emplace_back(AsciiLower(field.name_string()), std::string(field.value()));
  }
  return request;
}

template <class Stream>
void Session<Stream>::Dispatch() {
  tcp().expires_never();  // the handler may take as long as the model does; it has its own timeouts
  if (file_parser_) {
    HttpRequest request = ToHttpRequest(file_parser_->get());
    beast::error_code ec;
    file_parser_->get().body().file().close(ec);
    file_parser_.reset();
    request.body_file = std::exchange(spool_path_, std::string());  // the handler removes it
    request.listener = server_->options().listener;
    return Handle(std::move(request));
  }
  auto& req = parser_->get();
  HttpRequest request = ToHttpRequest(req);
  request.listener = server_->options().listener;
  request.body = std::make_shared<const std::string>(std::move(req.body()));
  if (RefuseWhileDraining(request)) return;
  if (beast::websocket::is_upgrade(req)) {
    // The WebSocket session takes the socket; this session ends without answering.
    server_->AddWebSocket(StartWebSocketSession(std::move(stream_), std::move(req), std::move(request), server_->handler(),
                          server_->options(),
                          std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(std::move(slot_), tls_)));
    return;
  }
  Handle(std::move(request));
}

template <class Stream>
void Session<Stream>::Handle(HttpRequest&& request) {
  if (RefuseWhileDraining(request)) return;
  cancel_ = CancelToken::Create();
  ++server_->in_flight();
  exchange_done_ = false;
  WatchForDisconnect();
  auto self = this->shared_from_this();
  server_->handler()->Handle(std::move(request), cancel_, [self](HttpResponse&& response) {
    net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
      self->Send(std::move(response), /*from_handler=*/true);
    });
  });
}

template <class Stream>
bool Session<Stream>::RefuseWhileDraining(const HttpRequest& request) {
  if (!server_->draining() || server_->handler()->AnswersWhileDraining(request)) return false;
  server_->handler()->OnRejected(503);
  HttpResponse response;
  response.status = 503;
  response.body = EncodeErrorJson("the server is stopping: retry on another replica");
  response.headers.emplace_back("Retry-After", "1");
  response.close_connection = true;
  Send(std::move(response), /*from_handler=*/false);
  return true;
}

template <class Stream>
void Session<Stream>::SendError(int status, std::string_view message) {
  server_->handler()->OnRejected(status);
  HttpResponse response;
  response.status = status;
  response.body = EncodeErrorJson(message);
  // After a framing error or an unread body the byte stream cannot be trusted: close.
  response.close_connection = true;
  Send(std::move(response), /*from_handler=*/false);
}

template <class Stream>
void Session<Stream>::Send(HttpResponse&& r, bool from_handler) {
  if (r.stream && from_handler) return SendStreamHead(std::move(r));
  const bool keep_alive = request_keep_alive_ && !r.close_connection && !server_->draining() && !client_gone_;
  response_ = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), 11);
  response_->set(http::field::server, "ferry");
  response_->set(http::field::content_type, r.content_type);
  for (auto& [name, value] : r.headers) response_->set(name, value);
  response_->body() = std::move(r.body);
  response_->keep_alive(keep_alive);
  response_->prepare_payload();
  tcp().expires_after(server_->options().write_timeout);
  http::async_write(stream_, *response_,
                    beast::bind_front_handler(&Session::OnWrite, this->shared_from_this(), keep_alive, from_handler));
}

template <class Stream>
void Session<Stream>::OnWrite(bool keep_alive, bool from_handler, beast::error_code ec, size_t) {
  exchange_done_ = true;
  if (from_handler) {
    --server_->in_flight();
    cancel_.reset();
  }
  response_.reset();
  answered_ = true;
  if (ec || !keep_alive) return Close();
  if (watching_) {
    // The watch's handler reads the next request (with what it read, if anything) once it ends.
    resume_after_watch_ = true;
    beast::error_code ignored;
    tcp().socket().cancel(ignored);
    return;
  }
  ReadHeader();
}

template <class Stream>
void Session<Stream>::SendStreamHead(HttpResponse&& r) {
  body_stream_ = std::move(r.stream);
  const auto reason = http::obsolete_reason(static_cast<http::status>(r.status));
  auto head = std::make_shared<std::string>(fmt::format(
      "HTTP/1.1 {} {}\r\nServer: ferry\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n",
      r.status, std::string_view(reason.data(), reason.size()), r.content_type));
  for (auto& [name, value] : r.headers) *head += fmt::format("{}: {}\r\n", name, value);
  *head += "\r\n";
  stream_write_ = head;
  tcp().expires_after(server_->options().write_timeout);
  net::async_write(stream_, net::buffer(*head), [self = this->shared_from_this()](beast::error_code ec, size_t) {
    self->tcp().expires_never();
    if (ec) return self->EndStream(/*client_gone=*/true);
    if (self->stream_ended_) return;  // the watch saw the client go while the head was on its way
    self->stream_write_.reset();
    if (!self->watching_ && !self->client_gone_) self->WatchForDisconnect();
    std::weak_ptr<Session> weak = self;
    self->body_stream_->SetWake([weak] {
      if (auto s = weak.lock()) net::post(s->stream_.get_executor(), [s] { s->PumpStream(); });
    });
    self->PumpStream();
  });
}

template <class Stream>
void Session<Stream>::PumpStream() {
  if (stream_write_ || stream_ended_ || !body_stream_) return;  // a write is in flight, or done
  bool ended = false;
  std::string data = body_stream_->Take(&ended);
  if (data.empty() && !ended) return;  // the wake brings us back
  auto frame = std::make_shared<std::string>();
  if (!data.empty()) *frame = fmt::format("{:x}\r\n{}\r\n", data.size(), data);
  if (ended) *frame += "0\r\n\r\n";
  stream_write_ = frame;
  tcp().expires_after(server_->options().write_timeout);
  net::async_write(stream_, net::buffer(*frame), [self = this->shared_from_this(), ended](beast::error_code ec, size_t) {
    self->tcp().expires_never();
    self->stream_write_.reset();
    if (ec) return self->EndStream(/*client_gone=*/true);
    if (ended) return self->EndStream(/*client_gone=*/false);
    self->PumpStream();
  });
}

template <class Stream>
void Session<Stream>::WatchForDisconnect() {
  // The request was read in full. The read waits for bytes that are not this request's: the client's
  // end of file (it went away: its work is cancelled) or its next request, kept in buffer_ (up to
  // kWatchBuffer; past that the client is plainly there and the watch stops).
  constexpr size_t kWatchBuffer = 64 * 1024;
  watching_ = true;
  tcp().expires_never();  // the request has the handler's own timeouts
  stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, size_t bytes) {
    self->watching_ = false;
    self->buffer_.commit(bytes);
    const bool gone = ec && ec != net::error::operation_aborted;
    if (self->resume_after_watch_) {
      self->resume_after_watch_ = false;
      return gone && self->buffer_.size() == 0 ? self->Close() : self->ReadHeader();
    }
    if (self->exchange_done_) return;
    if (!gone) {
      if (!ec && self->buffer_.size() < kWatchBuffer) self->WatchForDisconnect();
      return;
    }
    self->client_gone_ = true;
    if (self->body_stream_) return self->EndStream(/*client_gone=*/true);
    if (self->cancel_) self->cancel_->Cancel();  // the answer still goes out (and fails) when it comes
  });
}

template <class Stream>
void Session<Stream>::EndStream(bool client_gone) {
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

template <class Stream>
void Session<Stream>::Close() {
  beast::error_code ec;
  tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
  tcp().close();
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Create(const HttpServerOptions& options, HttpHandler* handler) {
  auto server = std::make_unique<BeastServer>(options, handler);
  FERRY_RETURN_IF_ERROR(server->Bind());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace ferry
