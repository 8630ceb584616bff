// The text-generation routes of ServingRouter over api/CompletionService: OpenAI's /v1/models,
// /v1/completions and /v1/chat/completions, Triton's /v2/models/{m}/generate[_stream], and the
// WebSocket at /v1/ws/generate. Streams go out as Server-Sent Events through a BodyStream.
#include <fmt/format.h>

#include "http/serving_router.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

// Answers one HTTP request: a whole JSON reply, or an event stream opened by its first message.
class HttpGenerationChannel final : public GenerationChannel {
 public:
  explicit HttpGenerationChannel(HttpResponder respond) : respond_(std::move(respond)) {}

  void Reply(int http_status, std::string json) override {
    std::lock_guard lock(mu_);
    if (answered_) return;
    answered_ = true;
    respond_(JsonResponse(http_status, std::move(json)));
  }

  void Open() override {
    std::lock_guard lock(mu_);
    OpenLocked();
  }

  void Stream(std::string message) override {
    std::lock_guard lock(mu_);
    if (OpenLocked()) stream_->Write(message);
  }

  void EndStream() override {
    std::lock_guard lock(mu_);
    if (stream_) stream_->End();
  }

 private:
  // Sends the head of the event stream once; false if a whole reply went out instead.
  bool OpenLocked() {
    if (stream_) return true;
    if (answered_) return false;
    answered_ = true;
    stream_ = std::make_shared<BodyStream>();
    HttpResponse r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("X-Accel-Buffering", "no");  // proxies must not hold events back
    r.stream = stream_;
    respond_(std::move(r));
    return true;
  }

  std::mutex mu_;
  HttpResponder respond_;
  std::shared_ptr<BodyStream> stream_;
  bool answered_ = false;
};

// Generation messages on one WebSocket.
class WebSocketChannel final : public GenerationChannel {
 public:
  explicit WebSocketChannel(std::shared_ptr<WebSocketSender> sender) : sender_(std::move(sender)) {}
  void Reply(int, std::string json) override { sender_->SendText(std::move(json)); }
  void Stream(std::string message) override { sender_->SendText(std::move(message)); }
  void EndStream() override {}

 private:
  std::shared_ptr<WebSocketSender> sender_;
};

class GenerationWebSocket final : public WebSocketEndpoint {
 public:
  GenerationWebSocket(CompletionService* service, std::shared_ptr<WebSocketSender> sender, std::string caller)
      : channel_(std::make_shared<WebSocketChannel>(sender)),
        conversation_(std::make_shared<CompletionService::Conversation>(service, channel_, std::move(caller))) {}
  void OnMessage(std::string_view message, bool binary) override {
    if (binary) {
      channel_->Stream(WebSocketError({}, InvalidArgument("send generation requests as text (JSON) messages")));
      return;
    }
    conversation_->OnMessage(message);
  }
  void OnClose() override { conversation_->Close(); }

 private:
  std::shared_ptr<WebSocketChannel> channel_;
  std::shared_ptr<CompletionService::Conversation> conversation_;
};

HttpResponse GenerationError(TextApi api, const Status& status) { return ErrorResponse(status, ErrorBody(api, status)); }

}  // namespace

bool ServingRouter::IsCompletionRoute(const std::vector<std::string_view>& parts) {
  if (parts.size() < 2 || parts[0] != "v1") return false;
  return (parts.size() == 2 && (parts[1] == "models" || parts[1] == "completions")) ||
         (parts.size() == 3 && parts[1] == "chat" && parts[2] == "completions") ||
         (parts.size() == 3 && parts[1] == "ws" && parts[2] == "generate");
}

void ServingRouter::HandleCompletionRoute(HttpRequest&& request, std::vector<std::string_view>& parts,
                                          std::shared_ptr<CancelToken> cancel, HttpResponder& respond) {
  if (completions_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("text generation is not enabled")));
  if (parts[1] == "models") {
    if (request.method != "GET") return respond(MethodNotAllowed("GET"));
    return respond(JsonResponse(200, completions_->ListModelsJson()));
  }
  if (parts[1] == "ws") {
    return respond(JsonResponse(426, EncodeErrorJson("this endpoint speaks WebSocket: send an Upgrade request")));
  }
  const TextApi api = parts[1] == "chat" ? TextApi::kChat : TextApi::kCompletions;
  if (request.method != "POST") return respond(MethodNotAllowed("POST"));
  auto channel = std::make_shared<HttpGenerationChannel>(respond);
  Status started = completions_->Start(api, *request.body, {}, /*force_stream=*/false, std::move(cancel), channel,
                                       Priority::kOnline, request.caller);
  if (!started.ok()) respond(GenerationError(api, started));
}

void ServingRouter::Generate(HttpRequest&& request, std::string_view model, bool stream,
                             std::shared_ptr<CancelToken> cancel, HttpResponder& respond) {
  if (completions_ == nullptr) return respond(JsonResponse(404, EncodeErrorJson("text generation is not enabled")));
  if (request.method != "POST") return respond(MethodNotAllowed("POST"));
  auto channel = std::make_shared<HttpGenerationChannel>(respond);
  Status started =
      completions_->Start(TextApi::kTritonGenerate, *request.body, model, stream, std::move(cancel), channel,
                          Priority::kOnline, request.caller);
  if (!started.ok()) respond(GenerationError(TextApi::kTritonGenerate, started));
}

bool ServingRouter::IsTextGenerationPost(std::string_view method, std::string_view path) {
  return method == "POST" && (path == "/v1/completions" || path == "/v1/chat/completions" ||
                              path.ends_with("/generate") || path.ends_with("/generate_stream"));
}

std::shared_ptr<WebSocketEndpoint> ServingRouter::OpenWebSocket(const HttpRequest& request,
                                                                std::shared_ptr<WebSocketSender> sender) {
  constexpr std::string_view kFrames = "/v1/ws/frames/";
  if (const std::string_view path = request.Path(); path.starts_with(kFrames)) {
    const std::string_view model = path.substr(kFrames.size());
    if (model.empty() || model.find('/') != std::string_view::npos) return nullptr;
    return OpenFrameSocket(model, std::move(sender), request.caller);
  }
  if (completions_ == nullptr || request.Path() != "/v1/ws/generate") return nullptr;
  metrics_->CountHttpRequest("ws", 101);
  return std::make_shared<GenerationWebSocket>(completions_, std::move(sender), request.caller);
}

}  // namespace ferry
