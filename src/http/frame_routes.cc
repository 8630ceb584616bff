// The camera frame channel of ServingRouter: a WebSocket at /v1/ws/frames/{model} over api/FrameStream.
#include "api/frame_stream.h"
#include "http/serving_router.h"
#include "tensor/infer_codec.h"

namespace ferry {
namespace {

class FrameWebSocket final : public WebSocketEndpoint {
 public:
  FrameWebSocket(InferenceService* inference, std::string model, std::shared_ptr<WebSocketSender> sender,
                 std::string caller)
      : stream_(std::make_shared<FrameStream>(
            inference, std::move(model), [sender](std::string message) { sender->SendText(std::move(message)); },
            std::move(caller))) {}
  void OnMessage(std::string_view message, bool binary) override {
    if (binary) return stream_->OnFrame(message);
    stream_->OnText(message);
  }
  void OnClose() override { stream_->Close(); }

 private:
  std::shared_ptr<FrameStream> stream_;
};

}  // namespace

bool ServingRouter::IsFrameRoute(const std::vector<std::string_view>& parts) {
  return parts.size() == 4 && parts[0] == "v1" && parts[1] == "ws" && parts[2] == "frames";
}

std::shared_ptr<WebSocketEndpoint> ServingRouter::OpenFrameSocket(std::string_view model,
                                                                  std::shared_ptr<WebSocketSender> sender,
                                                                  const std::string& caller) {
  // Refused before the upgrade (404) when there is nothing to stream frames to.
  if (Result<ImageInput> input = inference_->ImageInputOf(model); !input.ok()) return nullptr;
  metrics_->CountHttpRequest("ws", 101);
  return std::make_shared<FrameWebSocket>(inference_, std::string(model), std::move(sender), caller);
}

void ServingRouter::HandleFrameRoute(std::string_view model, HttpResponder& respond) {
  // A plain HTTP request: say what this endpoint is, and why it would refuse the model.
  if (Result<ImageInput> input = inference_->ImageInputOf(model); !input.ok()) {
    return respond(ErrorResponse(input.status()));
  }
  respond(JsonResponse(426, EncodeErrorJson("this endpoint speaks WebSocket: send an Upgrade request")));
}

}  // namespace ferry
