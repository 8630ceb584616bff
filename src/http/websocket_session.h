#pragma once
// WebSocket connections, upgraded from an HTTP request by the HTTP server (internal to http/: this
// header brings in Beast; only http_server.cc and websocket_session.cc include it).
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "http/http_server.h"

namespace ferry {

// Takes over the connection: asks the handler for an endpoint (404 over HTTP when it has none),
// completes the handshake, then delivers each message to the endpoint and sends what it sends.
// `slot` is the connection's place in the server's connection counts, held until the socket closes.
// The session, for a drain to close it.
std::shared_ptr<WebSocketSender> StartWebSocketSession(boost::beast::tcp_stream&& stream,
                           boost::beast::http::request<boost::beast::http::string_body>&& upgrade,
                           HttpRequest&& request, HttpHandler* handler, const HttpServerOptions& options,
                           std::shared_ptr<void> slot);
// The same over TLS.
std::shared_ptr<WebSocketSender> StartWebSocketSession(boost::beast::ssl_stream<boost::beast::tcp_stream>&& stream,
                           boost::beast::http::request<boost::beast::http::string_body>&& upgrade,
                           HttpRequest&& request, HttpHandler* handler, const HttpServerOptions& options,
                           std::shared_ptr<void> slot);

}  // namespace ferry
