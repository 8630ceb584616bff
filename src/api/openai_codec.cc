#include "api/openai_codec.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <random>

#include "api/status_mapping.h"
#include "common/json_writer.h"

namespace ferry {
namespace {

using simdjson::dom::element;

Status Bad(std::string message) { return InvalidArgument(std::move(message)); }

Result<double> NumberField(element value, std::string_view key, double min, double max) {
  double number = 0;
  if (value.get_double().get(number) || !std::isfinite(number)) {
    return Bad(fmt::format("'{}' must be a number", key));
  }
  if (number < min || number > max) return Bad(fmt::format("'{}' must be within {}..{}, got {}", key, min, max, number));
  return number;
}

Result<int64_t> IntegerField(element value, std::string_view key, int64_t min, int64_t max) {
  int64_t number = 0;
  if (value.get_int64().get(number)) {
    // 16.0 is an integer to most JSON writers (Python's json does not write it, JavaScript may).
    double d = 0;
    if (value.get_double().get(d) || d != std::floor(d) || std::fabs(d) > 9e15) {
      return Bad(fmt::format("'{}' must be an integer", key));
    }
    number = static_cast<int64_t>(d);
  }
  if (number < min || number > max) return Bad(fmt::format("'{}' must be within {}..{}, got {}", key, min, max, number));
  return number;
}

Result<std::string> StringField(element value, std::string_view key) {
  std::string_view s;
  if (value.get_string().get(s)) return Bad(fmt::format("'{}' must be a string", key));
  return std::string(s);
}

// Chat content: a string, null, or OpenAI's array of parts of which only "text" parts are supported.
Result<std::string> MessageContent(element value) {
  if (value.is_null()) return std::string();
  std::string_view s;
  if (!value.get_string().get(s)) return std::string(s);
  simdjson::dom::array parts;
  if (value.get_array().get(parts)) return Bad("'messages[].content' must be a string or an array of text parts");
  std::string text;
  for (element part : parts) {
    std::string_view type, part_text;
    if (part["type"].get_string().get(type) || type != "text" || part["text"].get_string().get(part_text)) {
      return Bad("only {\"type\": \"text\", \"text\": …} content parts are supported");
    }
    text += part_text;
  }
  return text;
}

Result<std::vector<std::string>> StopField(element value) {
  std::vector<std::string> stops;
  if (value.is_null()) return stops;
  std::string_view s;
  if (!value.get_string().get(s)) {
    stops.emplace_back(s);
    return stops;
  }
  simdjson::dom::array list;
  if (value.get_array().get(list)) return Bad("'stop' must be a string or an array of strings");
  for (element item : list) {
    if (item.get_string().get(s)) return Bad("'stop' must be a string or an array of strings");
    stops.emplace_back(s);
  }
  if (stops.size() > 16) return Bad("'stop' takes at most 16 strings");
  return stops;
}

void WriteUsage(JsonWriter& w, const GenerationStats& s) {
  w.Key("usage").BeginObject();
  w.Key("prompt_tokens").Int(s.prompt_tokens).Key("completion_tokens").Int(s.completion_tokens);
  w.Key("total_tokens").Int(s.prompt_tokens + s.completion_tokens);
  // Ferry's own: the compute time this request is charged for (its share of the decodes it was in).
  w.Key("compute_us").Int(s.compute_us).EndObject();
}

// llama.cpp's "timings" object.
void WriteTimings(JsonWriter& w, const GenerationStats& s) {
  auto per_token = [](double ms, int32_t n) { return n > 0 ? ms / n : 0.0; };
  auto per_second = [](double ms, int32_t n) { return ms > 0 ? 1000.0 * n / ms : 0.0; };
  // As llama.cpp counts: every generated token is predicted; the time runs from the first to the end.
  const int32_t predicted = s.completion_tokens;
  w.Key("timings").BeginObject();
  w.Key("prompt_n").Int(s.prompt_tokens).Key("prompt_ms").Double(s.prompt_ms);
  w.Key("prompt_per_token_ms").Double(per_token(s.prompt_ms, s.prompt_tokens));
  w.Key("prompt_per_second").Double(per_second(s.prompt_ms, s.prompt_tokens));
  w.Key("predicted_n").Int(predicted).Key("predicted_ms").Double(s.generation_ms);
  w.Key("predicted_per_token_ms").Double(per_token(s.generation_ms, predicted));
  w.Key("predicted_per_second").Double(per_second(s.generation_ms, predicted));
  w.Key("queue_ms").Double(s.queue_ms);
  w.EndObject();
}

bool IsHttpSse(TextApi api) { return api != TextApi::kWebSocket; }

std::string SseEvent(std::string json) { return "data: " + json + "\n\n"; }

// The common head of an OpenAI object: id, object, created, model.
void WriteOpenAiHead(JsonWriter& w, const ResponseIdentity& who, std::string_view object) {
  w.Key("id").String(who.id).Key("object").String(object).Key("created").Int(who.created).Key("model").String(who.model);
}

// The "object" of an OpenAI answer: a streamed chunk or the whole answer.
std::string_view OpenAiObject(TextApi api, bool chunk) {
  if (api != TextApi::kChat) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

// OpenAI's one choice: "choices":[{"index":0, <content>, "logprobs":null, "finish_reason":…}], the
// finish reason null while a stream goes on.
template <typename WriteContent>
void WriteOnlyChoice(JsonWriter& w, WriteContent&& content, const std::string* finish_reason) {
  w.Key("choices").BeginArray().BeginObject().Key("index").Int(0);
  content();
  w.Key("logprobs").Null().Key("finish_reason");
  if (finish_reason != nullptr) {
    w.String(*finish_reason);
  } else {
    w.Null();
  }
  w.EndObject().EndArray();
}

void WriteTritonHead(JsonWriter& w, const ResponseIdentity& who) {
  w.Key("model_name").String(who.model).Key("model_version").String(std::to_string(who.model_version));
}

constexpr std::string_view kDoneEvent = "data: [DONE]\n\n";

std::string_view ErrorType(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kPayloadTooLarge:
      return "invalid_request_error";
    case StatusCode::kNotFound:
      return "not_found_error";
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
      return "overloaded_error";
    case StatusCode::kCancelled:
      return "cancelled";
    default:
      return "server_error";
  }
}

void WriteOpenAiError(JsonWriter& w, const Status& status) {
  w.Key("error").BeginObject();
  w.Key("message").String(status.message()).Key("type").String(ErrorType(status.code()));
  w.Key("code").Int(HttpStatusFor(status.code())).EndObject();
}

// The sampling keys every API shares (also Triton's "parameters"). Returns whether `key` was one.
Result<bool> ApplySamplingKey(std::string_view key, element value, GenerationRequest& r, bool& has_max_tokens) {
  if (key == "max_tokens" || key == "max_completion_tokens" || key == "n_predict") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(int64_t n, IntegerField(value, key, 0, 1 << 24));
    r.max_tokens = static_cast<int32_t>(n);
    has_max_tokens = true;
  } else if (key == "temperature") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(double t, NumberField(value, key, 0, 100));
    r.sampling.temperature = static_cast<float>(t);
  } else if (key == "top_p") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(double p, NumberField(value, key, 0, 1));
    r.sampling.top_p = static_cast<float>(p);
  } else if (key == "top_k") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(int64_t k, IntegerField(value, key, -1, 1 << 20));
    r.sampling.top_k = static_cast<int32_t>(std::max<int64_t>(0, k));  // vLLM spells "off" as -1
  } else if (key == "min_p") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(double p, NumberField(value, key, 0, 1));
    r.sampling.min_p = static_cast<float>(p);
  } else if (key == "repeat_penalty" || key == "repetition_penalty") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(double p, NumberField(value, key, 0.01, 100));
    r.sampling.repeat_penalty = static_cast<float>(p);
  } else if (key == "repeat_last_n") {
    FERRY_ASSIGN_OR_RETURN(int64_t n, IntegerField(value, key, -1, 1 << 20));
    r.sampling.repeat_last_n = static_cast<int32_t>(n);
  } else if (key == "frequency_penalty" || key == "presence_penalty") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(double p, NumberField(value, key, -2, 2));
    (key == "frequency_penalty" ? r.sampling.frequency_penalty : r.sampling.presence_penalty) = static_cast<float>(p);
  } else if (key == "seed") {
    if (value.is_null()) return true;
    FERRY_ASSIGN_OR_RETURN(int64_t seed, IntegerField(value, key, INT64_MIN / 2, INT64_MAX / 2));
    r.sampling.seed = static_cast<uint32_t>(static_cast<uint64_t>(seed) % 0xFFFFFFFFull);
  } else if (key == "stop") {
    FERRY_ASSIGN_OR_RETURN(r.stop, StopField(value));
  } else if (key == "logit_bias") {
    if (value.is_null()) return true;
    simdjson::dom::object biases;
    if (value.get_object().get(biases)) return Bad("'logit_bias' must be an object of token id -> bias");
    for (auto entry : biases) {
      int32_t token = -1;
      const std::string_view id = entry.key;
      const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), token);
      if (ec != std::errc() || end != id.data() + id.size() || token < 0) {
        return Bad(fmt::format("'logit_bias' keys must be token ids, got '{}'", id.substr(0, 32)));
      }
      FERRY_ASSIGN_OR_RETURN(double bias, NumberField(entry.value, "logit_bias value", -100, 100));
      r.sampling.logit_bias.emplace_back(token, static_cast<float>(bias));
    }
    if (r.sampling.logit_bias.size() > 1024) return Bad("'logit_bias' takes at most 1024 tokens");
  } else if (key == "ignore_eos") {
    if (value.get_bool().get(r.ignore_eos)) return Bad("'ignore_eos' must be a boolean");
  } else {
    return false;
  }
  return true;
}

// OpenAI keys that change what the answer means: ignoring them would mislead the client. Each counts
// only when it asks for something (null, false and empty are what not sending it means).
bool IsUnsupportedFeature(std::string_view key, element value) {
  static constexpr std::string_view kKeys[] = {"logprobs", "top_logprobs", "echo", "suffix", "tools",
                                               "functions", "response_format", "best_of", "grammar",
                                               "json_schema"};
  if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) return false;
  if (value.is_null()) return false;
  bool flag = false;
  if (!value.get_bool().get(flag)) return flag;
  int64_t number = 0;
  if (key == "best_of" && !value.get_int64().get(number)) return number > 1;
  if (key == "logprobs" && !value.get_int64().get(number)) return true;  // completions' logprobs: N
  simdjson::dom::array list;
  if (!value.get_array().get(list)) return list.size() > 0;
  std::string_view text;
  if (!value.get_string().get(text)) return !text.empty();
  return true;
}

}  // namespace

Result<ParsedGeneration> ParseGenerationBody(TextApi api, std::string_view body, std::string_view model_from_path) {
  simdjson::dom::parser parser;
  element root;
  if (auto error = parser.parse(body.data(), body.size()).get(root); error) {
    return Bad(fmt::format("the body is not valid JSON ({})", simdjson::error_message(error)));
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) return Bad("the body must be a JSON object");

  ParsedGeneration out;
  GenerationRequest& r = out.request;
  bool has_prompt = false, has_messages = false, has_max_tokens = false;
  if (api == TextApi::kChat) r.chat = true;
  // Matches OpenAI: temperature 1 unless asked; Triton's generate and the WebSocket the same.
  for (auto field : object) {
    const std::string_view key = field.key;
    const element value = field.value;
    if (key == "model") {
      FERRY_ASSIGN_OR_RETURN(out.model, StringField(value, key));
    } else if (key == "prompt" && (api == TextApi::kCompletions || api == TextApi::kWebSocket)) {
      std::string_view s;
      simdjson::dom::array list;
      if (!value.get_string().get(s)) {
        r.prompt = std::string(s);
      } else if (!value.get_array().get(list) && list.size() == 1 && !list.at(0).get_string().get(s)) {
        r.prompt = std::string(s);
      } else {
        return Bad("'prompt' must be a string (or an array of exactly one string)");
      }
      has_prompt = true;
    } else if (key == "text_input" && api == TextApi::kTritonGenerate) {
      FERRY_ASSIGN_OR_RETURN(r.prompt, StringField(value, key));
      has_prompt = true;
    } else if (key == "messages" && (api == TextApi::kChat || api == TextApi::kWebSocket)) {
      simdjson::dom::array list;
      if (value.get_array().get(list)) return Bad("'messages' must be an array");
      for (element m : list) {
        ChatMessage message;
        std::string_view role;
        if (m["role"].get_string().get(role)) return Bad("each message needs a string 'role'");
        message.role = std::string(role);
        element content;
        if (!m["content"].get(content)) {
          FERRY_ASSIGN_OR_RETURN(message.content, MessageContent(content));
        }
        r.messages.push_back(std::move(message));
      }
      if (r.messages.empty()) return Bad("'messages' must not be empty");
      r.chat = true;
      has_messages = true;
    } else if (key == "stream") {
      if (value.is_null()) continue;
      if (value.get_bool().get(out.stream)) return Bad("'stream' must be a boolean");
    } else if (key == "stream_options") {
      if (value.is_null()) continue;
      simdjson::dom::object options;
      if (value.get_object().get(options)) return Bad("'stream_options' must be an object");
      element usage;
      if (!options["include_usage"].get(usage) && usage.get_bool().get(out.include_usage)) {
        return Bad("'stream_options.include_usage' must be a boolean");
      }
    } else if (Result<bool> sampling = ApplySamplingKey(key, value, r, has_max_tokens); !sampling.ok()) {
      return sampling.status();
    } else if (*sampling) {
      continue;
    } else if (IsUnsupportedFeature(key, value)) {
      return Bad(fmt::format("'{}' is not supported by this server", key));
    } else if (key == "n") {
      if (Result<int64_t> n = IntegerField(value, key, 1, 1); !n.ok()) {
        return Bad("'n' must be 1: one choice per request is supported");
      }
    } else if (key == "id" && api == TextApi::kWebSocket) {
      FERRY_ASSIGN_OR_RETURN(out.client_id, StringField(value, key));
      if (out.client_id.empty() || out.client_id.size() > 128) return Bad("'id' must be 1..128 characters");
    } else if (key == "parameters" && api == TextApi::kTritonGenerate) {
      // Triton's generate puts sampling options either at the top level or under "parameters".
      simdjson::dom::object params;
      if (value.get_object().get(params)) return Bad("'parameters' must be an object");
      for (auto param : params) {
        FERRY_ASSIGN_OR_RETURN(bool known, ApplySamplingKey(param.key, param.value, r, has_max_tokens));
        (void)known;  // other parameters are ignored, as at the top level
      }
    }
  }
  if (!model_from_path.empty()) out.model = std::string(model_from_path);
  if (out.model.empty()) return Bad("'model' is required");
  if (api == TextApi::kChat && !has_messages) return Bad("'messages' is required");
  if ((api == TextApi::kCompletions || api == TextApi::kTritonGenerate) && !has_prompt) {
    return Bad(api == TextApi::kTritonGenerate ? "'text_input' is required" : "'prompt' is required");
  }
  if (api == TextApi::kWebSocket && has_prompt == has_messages) return Bad("give exactly one of 'prompt' and 'messages'");
  if (api == TextApi::kWebSocket && out.client_id.empty()) return Bad("'id' is required");
  // OpenAI's completions default to 16 tokens; chat runs to the end of the turn (or the context).
  if (!has_max_tokens) r.max_tokens = r.chat ? -1 : 16;
  if (api == TextApi::kWebSocket) out.stream = true;
  return out;
}

std::string NewResponseId(TextApi api) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}-{:016x}{:08x}", api == TextApi::kChat ? "chatcmpl" : "cmpl", rng(),
                     static_cast<uint32_t>(rng()));
}

std::string ChatRoleChunk(const ResponseIdentity& who) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  WriteOpenAiHead(w, who, OpenAiObject(TextApi::kChat, /*chunk=*/true));
  WriteOnlyChoice(
      w, [&] { w.Key("delta").BeginObject().Key("role").String("assistant").Key("content").String("").EndObject(); },
      nullptr);
  w.EndObject();
  return SseEvent(std::move(json));
}

std::string TextChunk(const ResponseIdentity& who, std::string_view text) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  switch (who.api) {
    case TextApi::kChat:
      WriteOpenAiHead(w, who, OpenAiObject(who.api, /*chunk=*/true));
      WriteOnlyChoice(w, [&] { w.Key("delta").BeginObject().Key("content").String(text).EndObject(); }, nullptr);
      break;
    case TextApi::kCompletions:
      WriteOpenAiHead(w, who, OpenAiObject(who.api, /*chunk=*/true));
      WriteOnlyChoice(w, [&] { w.Key("text").String(text); }, nullptr);
      break;
    case TextApi::kTritonGenerate:
      WriteTritonHead(w, who);
      w.Key("text_output").String(text);
      break;
    case TextApi::kWebSocket:
      w.Key("type").String("token").Key("id").String(who.client_id).Key("text").String(text);
      break;
  }
  w.EndObject();
  return IsHttpSse(who.api) ? SseEvent(std::move(json)) : json;
}

std::string StreamEnd(const ResponseIdentity& who, const GenerationStats& stats, bool include_usage) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  switch (who.api) {
    case TextApi::kChat:
    case TextApi::kCompletions: {
      const std::string_view object = OpenAiObject(who.api, /*chunk=*/true);
      WriteOpenAiHead(w, who, object);
      WriteOnlyChoice(
          w,
          [&] {
            if (who.api == TextApi::kChat) {
              w.Key("delta").BeginObject().EndObject();
            } else {
              w.Key("text").String("");
            }
          },
          &stats.finish_reason);
      WriteTimings(w, stats);
      w.EndObject();
      std::string out = SseEvent(std::move(json));
      if (include_usage) {
        std::string usage;
        JsonWriter u(&usage);
        u.BeginObject();
        WriteOpenAiHead(u, who, object);
        u.Key("choices").BeginArray().EndArray();
        WriteUsage(u, stats);
        u.EndObject();
        out += SseEvent(std::move(usage));
      }
      return out.append(kDoneEvent);
    }
    case TextApi::kTritonGenerate:
      WriteTritonHead(w, who);
      w.Key("text_output").String("").Key("finish_reason").String(stats.finish_reason);
      WriteUsage(w, stats);
      w.EndObject();
      return SseEvent(std::move(json));
    case TextApi::kWebSocket:
      w.Key("type").String("done").Key("id").String(who.client_id).Key("finish_reason").String(stats.finish_reason);
      WriteUsage(w, stats);
      WriteTimings(w, stats);
      w.EndObject();
      return json;
  }
  return json;
}

std::string FullResponse(const ResponseIdentity& who, std::string_view text, const GenerationStats& stats) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  switch (who.api) {
    case TextApi::kChat:
    case TextApi::kCompletions:
      WriteOpenAiHead(w, who, OpenAiObject(who.api, /*chunk=*/false));
      WriteOnlyChoice(
          w,
          [&] {
            if (who.api == TextApi::kChat) {
              w.Key("message").BeginObject().Key("role").String("assistant").Key("content").String(text).EndObject();
            } else {
              w.Key("text").String(text);
            }
          },
          &stats.finish_reason);
      WriteUsage(w, stats);
      WriteTimings(w, stats);
      break;
    case TextApi::kTritonGenerate:
    case TextApi::kWebSocket:
      WriteTritonHead(w, who);
      w.Key("text_output").String(text).Key("finish_reason").String(stats.finish_reason);
      WriteUsage(w, stats);
      break;
  }
  w.EndObject();
  return json;
}

std::string StreamError(const ResponseIdentity& who, const Status& status) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  switch (who.api) {
    case TextApi::kChat:
    case TextApi::kCompletions:
      WriteOpenAiError(w, status);
      w.EndObject();
      return SseEvent(std::move(json)).append(kDoneEvent);
    case TextApi::kTritonGenerate:
      w.Key("error").String(status.message()).EndObject();
      return SseEvent(std::move(json));
    case TextApi::kWebSocket:
      return WebSocketError(who.client_id, status);
  }
  return json;
}

std::string ErrorBody(TextApi api, const Status& status) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  if (api == TextApi::kTritonGenerate) {
    w.Key("error").String(status.message());
  } else {
    WriteOpenAiError(w, status);
  }
  w.EndObject();
  return json;
}

std::string WebSocketError(std::string_view client_id, const Status& status) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject().Key("type").String("error").Key("id");
  if (client_id.empty()) {
    w.Null();
  } else {
    w.String(client_id);
  }
  WriteOpenAiError(w, status);
  w.EndObject();
  return json;
}

}  // namespace ferry
