#pragma once
// The text-generation wire formats, transport-neutral: OpenAI's completions and chat completions (as
// vLLM and llama.cpp serve them), Triton's generate extension, and Ferry's WebSocket messages. Parses a
// body into a GenerationRequest and renders chunks, final answers and errors. Pure functions.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "scheduling/generation_scheduler.h"

namespace ferry {

enum class TextApi {
  kCompletions,      // POST /v1/completions
  kChat,             // POST /v1/chat/completions
  kTritonGenerate,   // POST /v2/models/{m}/generate[_stream]
  kWebSocket,        // a "generate" message on the WebSocket
};

struct ParsedGeneration {
  std::string model;
  GenerationRequest request;  // sink and cancel left empty
  bool stream = false;
  bool include_usage = false;
  std::string client_id;      // WebSocket: the client's id for this generation
  std::string caller = "(none)";  // who is charged (set by the transport, not read from the body)
};

// Parses and checks a request body. Unknown keys are ignored (clients send many); known keys with a
// wrong type or range are kInvalidArgument naming the key. `model_from_path` (Triton) overrides "model".
Result<ParsedGeneration> ParseGenerationBody(TextApi api, std::string_view body, std::string_view model_from_path = {});

// What stays fixed across one response's chunks.
struct ResponseIdentity {
  TextApi api = TextApi::kCompletions;
  std::string id;       // chatcmpl-… / cmpl-…
  int64_t created = 0;  // unix seconds
  std::string model;
  int64_t model_version = 0;
  std::string client_id;  // WebSocket
};

std::string NewResponseId(TextApi api);

// One streamed piece of text, as the API spells it (an SSE event "data: …\n\n" for HTTP APIs; a bare
// JSON message for the WebSocket). Chat's first chunk carries the role.
std::string TextChunk(const ResponseIdentity& who, std::string_view text);
std::string ChatRoleChunk(const ResponseIdentity& who);
// The end of a stream: the finish_reason chunk, the usage chunk when asked, and [DONE].
std::string StreamEnd(const ResponseIdentity& who, const GenerationStats& stats, bool include_usage);
// A non-streamed answer with the whole text.
std::string FullResponse(const ResponseIdentity& who, std::string_view text, const GenerationStats& stats);
// An error after a stream started: OpenAI's `data: {"error":…}` then `data: [DONE]`; Triton's
// `data: {"error": "…"}`; a WebSocket error message.
std::string StreamError(const ResponseIdentity& who, const Status& status);
// An error before anything was sent, as the body of the HTTP error status.
std::string ErrorBody(TextApi api, const Status& status);
// The WebSocket message for a request refused before it started (bad message, unknown model).
std::string WebSocketError(std::string_view client_id, const Status& status);

}  // namespace ferry
