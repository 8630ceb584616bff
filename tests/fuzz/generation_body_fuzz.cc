// Fuzzes text-generation request bodies: the first byte picks the API (completions, chat, Triton
// generate, WebSocket message), the rest is the body. Accepted bodies run through a real
// GenerationScheduler over a fake language model and every answer is rendered; each rendering must be
// valid JSON (SSE events: each data payload). Refused bodies must be kInvalidArgument.
#include <simdjson.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "api/openai_codec.h"
#include "testing/fake_language_model.h"

namespace {

using namespace ferry;

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

void RequireJsonPayloads(TextApi api, const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (api == TextApi::kWebSocket) {
    Require(!parser.parse(text).get(e), "WebSocket message is not JSON");
    return;
  }
  size_t pos = 0;
  while ((pos = text.find("data: ", pos)) != std::string::npos) {
    const size_t end = text.find("\n\n", pos);
    Require(end != std::string::npos, "SSE event without its blank line");
    const std::string payload = text.substr(pos + 6, end - pos - 6);
    if (payload != "[DONE]") Require(!parser.parse(payload).get(e), "SSE payload is not JSON");
    pos = end;
  }
}

class WaitingSink final : public GenerationSink {
 public:
  void OnText(std::string_view text) override { text_ += text; }
  void OnFinish(const Result<GenerationStats>& outcome) override {
    std::lock_guard lock(mu_);
    outcome_ = outcome;
    cv_.notify_all();
  }
  Result<GenerationStats> Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return outcome_.has_value(); });
    return *outcome_;
  }
  std::string text_;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Result<GenerationStats>> outcome_;
};

GenerationScheduler& SharedScheduler() {
  static GenerationScheduler* scheduler = [] {
    testing::FakeModelOptions options;
    options.context = 256;
    options.keep_log = false;
    GenerationSchedulerOptions o;
    o.model_name = "fuzz";
    auto made = GenerationScheduler::Create(
        o, std::make_unique<testing::FakeLanguageModel>(options, std::make_shared<testing::FakeModelLog>()));
    Require(made.ok(), "scheduler");
    return made.value().release();  // lives for the whole run
  }();
  return *scheduler;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto api = static_cast<TextApi>(data[0] % 4);
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  Result<ParsedGeneration> parsed = ParseGenerationBody(api, body, api == TextApi::kTritonGenerate ? "m" : "");
  if (!parsed.ok()) {
    Require(parsed.status().code() == StatusCode::kInvalidArgument, "refusal is not InvalidArgument");
    RequireJsonPayloads(TextApi::kWebSocket, ErrorBody(api == TextApi::kTritonGenerate ? api : TextApi::kChat,
                                                       parsed.status()));
    return 0;
  }
  GenerationRequest request = std::move(parsed->request);
  if (request.max_tokens < 0 || request.max_tokens > 32) request.max_tokens = 32;
  auto sink = std::make_shared<WaitingSink>();
  request.sink = sink;
  ResponseIdentity who{api, NewResponseId(api), 0, parsed->model, 1, parsed->client_id};
  Status queued = SharedScheduler().Generate(std::move(request));
  if (!queued.ok()) {
    RequireJsonPayloads(TextApi::kWebSocket, ErrorBody(TextApi::kChat, queued));
    return 0;
  }
  Result<GenerationStats> done = sink->Wait();
  Require(done.ok(), "a fake generation failed");
  if (api == TextApi::kChat) RequireJsonPayloads(api, ChatRoleChunk(who));
  RequireJsonPayloads(api, TextChunk(who, sink->text_));
  RequireJsonPayloads(api, StreamEnd(who, *done, parsed->include_usage));
  RequireJsonPayloads(TextApi::kWebSocket, FullResponse(who, sink->text_, *done));
  RequireJsonPayloads(api, StreamError(who, Internal("x")));
  return 0;
}
