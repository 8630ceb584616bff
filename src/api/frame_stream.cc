#include "api/frame_stream.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <cstring>

#include "common/json_writer.h"
#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

// A tensor's values as a flat JSON array (the numeric types models output; others as null).
void WriteValues(JsonWriter& w, const Tensor& t) {
  w.BeginArray();
  const size_t width = ElementSize(t.dtype);
  const uint8_t* p = t.data.data();
  const size_t count = width == 0 ? 0 : t.data.size() / width;
  for (size_t i = 0; i < count; ++i, p += width) {
    switch (t.dtype) {
      case DataType::kFp32: { float v; std::memcpy(&v, p, 4); w.Float(v); break; }
      case DataType::kFp64: { double v; std::memcpy(&v, p, 8); w.Double(v); break; }
      case DataType::kInt32: { int32_t v; std::memcpy(&v, p, 4); w.Int(v); break; }
      case DataType::kInt64: { int64_t v; std::memcpy(&v, p, 8); w.Int(v); break; }
      case DataType::kUint8: w.Int(*p); break;
      case DataType::kBool: w.Bool(*p != 0); break;
      default: w.Null(); break;
    }
  }
  w.EndArray();
}

}  // namespace

FrameStream::FrameStream(InferenceService* inference, std::string model, Send send, std::string caller)
    : inference_(inference), send_(std::move(send)), caller_(std::move(caller)), model_(std::move(model)) {}

void FrameStream::OnFrame(std::string_view bytes) {
  Frame frame;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    frame.index = next_index_++;
    frame.model = model_;
    frame.received = std::chrono::steady_clock::now();
    frame.bytes.assign(bytes);  // the transport reuses its buffer
    if (busy_) {
      if (waiting_) ++dropped_;  // the newer frame wins
      waiting_ = std::move(frame);
      return;
    }
    busy_ = true;
  }
  Run(std::move(frame));
}

void FrameStream::OnText(std::string_view message) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  std::string_view type, model;
  if (parser.parse(message.data(), message.size()).get_object().get(object) || object["type"].get_string().get(type) ||
      type != "config" || object["model"].get_string().get(model) || model.empty()) {
    return SendError(-1, InvalidArgument(
                             "text messages must be {\"type\": \"config\", \"model\": \"...\"}; send frames as binary "
                             "messages"));
  }
  if (Status ready = inference_->ModelReady(model, std::nullopt); !ready.ok()) return SendError(-1, ready);
  std::lock_guard lock(mu_);
  model_ = std::string(model);
}

void FrameStream::Close() {
  std::shared_ptr<CancelToken> cancel;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    waiting_.reset();
    cancel = running_cancel_;
  }
  if (cancel) cancel->Cancel();
}

void FrameStream::Run(Frame frame) {
  Result<ImageInput> input = inference_->ImageInputOf(frame.model);
  if (!input.ok()) {
    SendError(frame.index, input.status());
    return Finished();
  }
  InferRequest request;
  request.caller = caller_;
  Tensor t;
  t.name = input->name;
  t.dtype = DataType::kBytes;
  t.shape = input->batched ? Shape{1, 1} : Shape{1};
  std::vector<uint8_t> element;
  AppendBytesElement(&element, frame.bytes);
  t.data = Buffer::Own(std::move(element));
  request.inputs.push_back(std::move(t));
  auto cancel = CancelToken::Create();
  {
    std::lock_guard lock(mu_);
    running_cancel_ = cancel;
  }
  const int64_t index = frame.index;
  const auto received = frame.received;
  inference_->Infer(
      frame.model, std::nullopt, std::move(request), cancel,
      [self = shared_from_this(), index, received, model = frame.model](Result<InferResponse> response) {
        if (!response.ok()) {
          self->SendError(index, response.status());
        } else {
          const double server_ms =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - received).count();
          int64_t dropped = 0;
          {
            std::lock_guard lock(self->mu_);
            dropped = self->dropped_;
          }
          std::string out;
          JsonWriter w(&out);
          w.BeginObject().Key("type").String("result").Key("frame").Int(index).Key("model").String(model);
          w.Key("outputs").BeginObject();
          for (const Tensor& t : response->outputs) {
            w.Key(t.name);
            WriteValues(w, t);
          }
          w.EndObject().Key("server_ms").Double(server_ms).Key("dropped").Int(dropped).EndObject();
          self->send_(std::move(out));
        }
        self->Finished();
      });
}

void FrameStream::Finished() {
  std::optional<Frame> next;
  {
    std::lock_guard lock(mu_);
    running_cancel_.reset();
    if (closed_ || !waiting_) {
      busy_ = false;
      return;
    }
    next = std::move(waiting_);
    waiting_.reset();
  }
  Run(std::move(*next));
}

void FrameStream::SendError(int64_t frame, const Status& status) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("type").String("error").Key("frame").Int(frame).Key("error").String(status.message()).EndObject();
  send_(std::move(out));
}

}  // namespace ferry
