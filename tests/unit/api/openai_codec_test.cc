#include "api/openai_codec.h"

#include <gtest/gtest.h>
#include <simdjson.h>

namespace ferry {
namespace {

Result<ParsedGeneration> Parse(TextApi api, std::string_view body) { return ParseGenerationBody(api, body); }

TEST(OpenAiCodec, ParsesAChatRequest) {
  auto p = Parse(TextApi::kChat, R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
      "max_tokens":12,"temperature":0.5,"top_p":0.9,"top_k":40,"min_p":0.05,"seed":7,"stop":"END",
      "stream":true,"stream_options":{"include_usage":true},"user":"ignored","n":1})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->model, "m");
  EXPECT_TRUE(p->request.chat);
  ASSERT_EQ(p->request.messages.size(), 2u);
  EXPECT_EQ(p->request.messages[1].content, "hi there");
  EXPECT_EQ(p->request.max_tokens, 12);
  EXPECT_FLOAT_EQ(p->request.sampling.temperature, 0.5f);
  EXPECT_EQ(p->request.sampling.top_k, 40);
  EXPECT_EQ(p->request.sampling.seed, 7u);
  EXPECT_EQ(p->request.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(p->stream);
  EXPECT_TRUE(p->include_usage);
}

TEST(OpenAiCodec, DefaultsFollowOpenAi) {
  auto completion = Parse(TextApi::kCompletions, R"({"model":"m","prompt":"x"})");
  ASSERT_TRUE(completion.ok());
  EXPECT_EQ(completion->request.max_tokens, 16);
  EXPECT_FALSE(completion->stream);
  auto chat = Parse(TextApi::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  ASSERT_TRUE(chat.ok());
  EXPECT_EQ(chat->request.max_tokens, -1);
  auto one = Parse(TextApi::kCompletions, R"({"model":"m","prompt":["only one"],"max_tokens":16.0})");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->request.prompt, "only one");
}

TEST(OpenAiCodec, RefusesBadValuesNamingTheKey) {
  const std::pair<TextApi, const char*> cases[] = {
      {TextApi::kCompletions, R"({"model":"m","prompt":"x","max_tokens":-1})"},
      {TextApi::kCompletions, R"({"model":"m","prompt":"x","max_tokens":1.5})"},
      {TextApi::kCompletions, R"({"model":"m","prompt":"x","temperature":"hot"})"},
      {TextApi::kCompletions, R"({"model":"m","prompt":"x","top_p":1.5})"},
      {TextApi::kCompletions, R"({"model":"m","prompt":"x","stop":[1]})"},
      {TextApi::kCompletions, R"({"model":"m","prompt":"x","n":2})"},
      {TextApi::kCompletions, R"({"model":"m","prompt":["a","b"]})"},
      {TextApi::kCompletions, R"({"model":"m"})"},
      {TextApi::kCompletions, R"({"prompt":"x"})"},
      {TextApi::kCompletions, R"({"model":7,"prompt":"x"})"},
      {TextApi::kChat, R"({"model":"m","messages":[]})"},
      {TextApi::kChat, R"({"model":"m","messages":[{"content":"x"}]})"},
      {TextApi::kChat, R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})"},
      {TextApi::kChat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":1})"},
      {TextApi::kTritonGenerate, R"({"max_tokens":1})"},
      {TextApi::kWebSocket, R"({"type":"generate","model":"m","prompt":"x"})"},
      {TextApi::kWebSocket, R"({"type":"generate","id":"a","model":"m","prompt":"x","messages":[]})"},
      {TextApi::kCompletions, "{"},
      {TextApi::kCompletions, "[]"},
      {TextApi::kCompletions, "{\"model\":\"m\",\"prompt\":\"\xff\"}"},
  };
  for (const auto& [api, body] : cases) {
    auto p = Parse(api, body);
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << body;
  }
  EXPECT_NE(Parse(TextApi::kCompletions, R"({"model":"m","prompt":"x","max_tokens":-1})").status().message().find(
                "max_tokens"),
            std::string::npos);
}

TEST(OpenAiCodec, LogitBiasAndRefusedFeatures) {
  auto p = Parse(TextApi::kCompletions, R"({"model":"m","prompt":"x","logit_bias":{"5":-100,"17":2.5},
      "logprobs":null,"echo":false,"tools":[],"best_of":1})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->request.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(p->request.sampling.logit_bias[1].first, 17);
  EXPECT_FLOAT_EQ(p->request.sampling.logit_bias[1].second, 2.5f);
  for (const char* body : {R"({"model":"m","prompt":"x","logprobs":3})", R"({"model":"m","prompt":"x","echo":true})",
                           R"({"model":"m","prompt":"x","best_of":2})",
                           R"({"model":"m","prompt":"x","response_format":{"type":"json_object"}})",
                           R"({"model":"m","prompt":"x","logit_bias":{"a":1}})",
                           R"({"model":"m","prompt":"x","logit_bias":{"1":101}})"}) {
    EXPECT_EQ(Parse(TextApi::kCompletions, body).status().code(), StatusCode::kInvalidArgument) << body;
  }
  EXPECT_NE(Parse(TextApi::kCompletions, R"({"model":"m","prompt":"x","echo":true})").status().message().find(
                "'echo' is not supported"),
            std::string::npos);
}

TEST(OpenAiCodec, TritonGenerateTakesParametersAndThePathModel) {
  auto p = ParseGenerationBody(TextApi::kTritonGenerate,
                               R"({"text_input":"hi","parameters":{"max_tokens":5,"temperature":0}})", "tiny");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->model, "tiny");
  EXPECT_EQ(p->request.prompt, "hi");
  EXPECT_EQ(p->request.max_tokens, 5);
  EXPECT_EQ(p->request.sampling.temperature, 0.0f);
}

bool IsJson(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  return !parser.parse(text.data(), text.size()).get(e);
}

TEST(OpenAiCodec, StreamsAreSseEventsEndingInDone) {
  ResponseIdentity who{TextApi::kChat, "chatcmpl-1", 1700000000, "m", 1, ""};
  const std::string role = ChatRoleChunk(who);
  ASSERT_EQ(role.rfind("data: ", 0), 0u);
  ASSERT_EQ(role.substr(role.size() - 2), "\n\n");
  EXPECT_TRUE(IsJson(role.substr(6, role.size() - 8)));
  EXPECT_NE(role.find(R"("delta":{"role":"assistant","content":""})"), std::string::npos);
  const std::string chunk = TextChunk(who, "h\xC3\xA9");
  EXPECT_NE(chunk.find(R"("delta":{"content":"h)"), std::string::npos);
  GenerationStats stats;
  stats.finish_reason = "length";
  stats.prompt_tokens = 3;
  stats.completion_tokens = 4;
  const std::string end = StreamEnd(who, stats, /*include_usage=*/true);
  EXPECT_NE(end.find(R"("finish_reason":"length")"), std::string::npos);
  EXPECT_NE(end.find(R"("choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"compute_us":0})"),
            std::string::npos);
  EXPECT_EQ(end.substr(end.size() - 14), "data: [DONE]\n\n");
  EXPECT_EQ(StreamEnd(who, stats, false).find("usage"), std::string::npos);
}

TEST(OpenAiCodec, ErrorsHaveOpenAiShape) {
  const std::string body = ErrorBody(TextApi::kChat, NotFound("no model 'x'"));
  EXPECT_EQ(body, R"({"error":{"message":"no model 'x'","type":"not_found_error","code":404}})");
  EXPECT_EQ(ErrorBody(TextApi::kTritonGenerate, InvalidArgument("bad")), R"({"error":"bad"})");
  ResponseIdentity who{TextApi::kCompletions, "cmpl-1", 1, "m", 1, ""};
  const std::string mid = StreamError(who, Internal("decode failed"));
  EXPECT_EQ(mid.rfind("data: {\"error\":{", 0), 0u);
  EXPECT_EQ(mid.substr(mid.size() - 14), "data: [DONE]\n\n");
  EXPECT_EQ(WebSocketError("", InvalidArgument("x")), R"({"type":"error","id":null,"error":{"message":"x","type":"invalid_request_error","code":400}})");
}

TEST(OpenAiCodec, WholeAnswers) {
  ResponseIdentity who{TextApi::kCompletions, "cmpl-1", 5, "m", 2, ""};
  GenerationStats stats;
  stats.finish_reason = "stop";
  const std::string full = FullResponse(who, "text", stats);
  EXPECT_TRUE(IsJson(full));
  EXPECT_NE(full.find(R"("object":"text_completion")"), std::string::npos);
  EXPECT_NE(full.find(R"("text":"text")"), std::string::npos);
  who.api = TextApi::kTritonGenerate;
  EXPECT_NE(FullResponse(who, "t", stats).find(R"("model_version":"2","text_output":"t")"), std::string::npos);
}

}  // namespace
}  // namespace ferry
