#pragma once
// A camera's stream of frames over one connection (the WebSocket at /v1/ws/frames/{model}): each frame
// is a model's pre-processing input (raw pixels or an encoded image) and gets one result message back.
// Latest frame wins: at most one frame is in inference and one waits; a newer frame replaces the
// waiting one, which is counted as dropped, so a slow model never lets a backlog grow. Transport-
// neutral; thread-safe.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "api/inference_service.h"
#include "common/cancel_token.h"

namespace ferry {

class FrameStream : public std::enable_shared_from_this<FrameStream> {
 public:
  // Sends one text message to the client; must not block. Called from I/O and executor threads.
  using Send = std::function<void(std::string message)>;
  // Each frame is charged to `caller` (see InferRequest::caller).
  FrameStream(InferenceService* inference, std::string model, Send send, std::string caller = "(none)");

  // A binary message: one frame. Its 0-based index on this stream names it in the answer.
  void OnFrame(std::string_view bytes);
  // A text message: {"type": "config", "model": "line_tracking"} switches the model for later frames.
  void OnText(std::string_view message);
  // The connection is gone: the frame in inference is cancelled, the waiting one dropped.
  void Close();

  // Messages the client gets:
  //  {"type":"result","frame":N,"model":"m","outputs":{"name":[values...]},"server_ms":1.2,"dropped":D}
  //  {"type":"error","frame":N,"error":"..."}          (N is -1 for a bad text message)
 private:
  struct Frame {
    int64_t index = 0;
    std::string bytes;
    std::string model;
    std::chrono::steady_clock::time_point received;
  };
  void Run(Frame frame);
  void Finished();
  void SendError(int64_t frame, const Status& status);

  InferenceService* inference_;
  Send send_;
  const std::string caller_;
  std::mutex mu_;
  std::string model_;
  int64_t next_index_ = 0;
  int64_t dropped_ = 0;
  bool busy_ = false;
  bool closed_ = false;
  std::optional<Frame> waiting_;
  std::shared_ptr<CancelToken> running_cancel_;
};

}  // namespace ferry
