#include "api/completion_service.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <chrono>
#include <mutex>
#include <set>

#include "api/status_mapping.h"
#include "common/json_writer.h"
#include "scheduling/generation_scheduler.h"

namespace ferry {
namespace {

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Renders one generation in its API's wire format onto a channel.
class ChannelSink final : public GenerationSink {
 public:
  ChannelSink(ResponseIdentity who, bool stream, bool include_usage, std::shared_ptr<GenerationChannel> channel,
              std::function<void()> on_finish, std::function<void(const GenerationStats&)> charge)
      : who_(std::move(who)),
        stream_(stream),
        include_usage_(include_usage),
        channel_(std::move(channel)),
        on_finish_(std::move(on_finish)),
        charge_(std::move(charge)) {}

  // Chat streams open with the role; whichever thread gets here first sends it, before any text.
  void Begin() {
    std::call_once(begun_, [&] {
      if (stream_) channel_->Open();
      if (stream_ && who_.api == TextApi::kChat) channel_->Stream(ChatRoleChunk(who_));
    });
  }

  void OnText(std::string_view text) override {
    Begin();
    if (stream_) {
      channel_->Stream(TextChunk(who_, text));
    } else {
      text_ += text;
    }
  }

  // A generation cancelled or failed part way is charged what it used all the same.
  void OnAbandoned(const GenerationStats& used) override {
    if (charge_) charge_(used);
  }

  void OnFinish(const Result<GenerationStats>& outcome) override {
    Begin();
    if (outcome.ok() && charge_) charge_(*outcome);  // before the answer: a client reading usage sees it
    if (outcome.ok()) {
      if (stream_) {
        channel_->Stream(StreamEnd(who_, *outcome, include_usage_));
        if (who_.api != TextApi::kWebSocket) channel_->EndStream();
      } else {
        channel_->Reply(200, FullResponse(who_, text_, *outcome));
      }
    } else if (who_.api == TextApi::kWebSocket && outcome.status().code() == StatusCode::kCancelled) {
      GenerationStats cancelled;
      cancelled.finish_reason = "cancelled";
      channel_->Stream(StreamEnd(who_, cancelled, false));
    } else if (stream_) {
      channel_->Stream(StreamError(who_, outcome.status()));
      if (who_.api != TextApi::kWebSocket) channel_->EndStream();
    } else {
      channel_->Reply(HttpStatusFor(outcome.status().code()), ErrorBody(who_.api, outcome.status()));
    }
    if (on_finish_) on_finish_();
  }

 private:
  const ResponseIdentity who_;
  const bool stream_;
  const bool include_usage_;
  std::shared_ptr<GenerationChannel> channel_;
  std::function<void()> on_finish_;
  std::function<void(const GenerationStats&)> charge_;
  std::once_flag begun_;
  std::string text_;
};

}  // namespace

Status CompletionService::Start(TextApi api, std::string_view body, std::string_view model_from_path,
                                bool force_stream, std::shared_ptr<CancelToken> cancel,
                                std::shared_ptr<GenerationChannel> channel, Priority priority,
                                const std::string& caller) {
  FERRY_ASSIGN_OR_RETURN(ParsedGeneration parsed, ParseGenerationBody(api, body, model_from_path));
  if (force_stream) parsed.stream = true;
  parsed.request.priority = priority;
  parsed.caller = caller;
  return StartParsed(std::move(parsed), api, std::move(cancel), std::move(channel), nullptr);
}

Status CompletionService::CheckJob(TextApi api, std::string_view body, const std::string& model) {
  FERRY_ASSIGN_OR_RETURN(ParsedGeneration parsed, ParseGenerationBody(api, body, model));
  if (parsed.stream) return InvalidArgument("a job cannot stream: drop 'stream' (the result is stored whole)");
  Result<ModelHandle> handle = manager_->Get(parsed.model, std::nullopt);  // wakes a sleeping model
  const bool generates = handle.ok() ? (*handle)->scheduler().generator() != nullptr : false;
  if (!handle.ok()) {
    FERRY_ASSIGN_OR_RETURN(const ModelConfig config, manager_->ConfigOf(parsed.model, std::nullopt));
    if (GeneratesText(config)) return Status::Ok();  // asleep: a language model all the same
  }
  if (!generates) {
    return InvalidArgument(fmt::format("model '{}' is not a language model; give an OIP v2 request ('inputs')", model));
  }
  return Status::Ok();
}

Status CompletionService::StartParsed(ParsedGeneration&& parsed, TextApi api, std::shared_ptr<CancelToken> cancel,
                                      std::shared_ptr<GenerationChannel> channel, std::function<void()> on_finish) {
  if (usage_ != nullptr) FERRY_RETURN_IF_ERROR(usage_->Admit(parsed.caller, parsed.model));
  // Token rates pace online traffic; jobs and batches are paced by their lower priority instead.
  const bool online = parsed.request.priority == Priority::kOnline;
  if (keys_ != nullptr && online) FERRY_RETURN_IF_ERROR(keys_->AdmitTokens(parsed.caller));
  Result<ModelHandle> handle = manager_->Get(parsed.model, std::nullopt);
  if (handle.ok()) {
    return StartOn(std::move(handle).value(), std::move(parsed), api, std::move(cancel), std::move(channel),
                   std::move(on_finish));
  }
  // Asleep (unloaded while idle): wait for the load; what fails after this goes out on the channel.
  if (!manager_->Servable(parsed.model, std::nullopt).ok()) return handle.status();
  auto pending = std::make_shared<ParsedGeneration>(std::move(parsed));
  const std::string model = pending->model;
  manager_->Acquire(model, std::nullopt, std::nullopt,
                    [this, pending, api, cancel, channel, on_finish](Result<AcquiredModel> got) {
                      const std::string client_id = pending->client_id;
                      Status s = got.ok() ? StartOn(std::move(got->handle), std::move(*pending), api, cancel, channel,
                                                    on_finish)
                                          : got.status();
                      if (s.ok()) return;
                      // As the synchronous callers would: the generation ends, its error goes out.
                      if (on_finish) on_finish();
                      if (api == TextApi::kWebSocket) return channel->Stream(WebSocketError(client_id, s));
                      channel->Reply(HttpStatusFor(s.code()), ErrorBody(api, s));
                    });
  return Status::Ok();
}

Status CompletionService::StartOn(ModelHandle handle, ParsedGeneration&& parsed, TextApi api,
                                  std::shared_ptr<CancelToken> cancel, std::shared_ptr<GenerationChannel> channel,
                                  std::function<void()> on_finish) {
  GenerationScheduler* generator = handle->scheduler().generator();
  if (generator == nullptr) {
    return InvalidArgument(fmt::format("model '{}' is not a language model; use /v2/models/{}/infer", parsed.model,
                                       parsed.model));
  }
  ResponseIdentity who;
  who.api = api;
  who.id = NewResponseId(api);
  who.created = UnixSeconds();
  who.model = parsed.model;
  who.model_version = handle->version();
  who.client_id = parsed.client_id;
  ConcurrencyLimits::Slot slot;
  if (limits_ != nullptr) {
    FERRY_ASSIGN_OR_RETURN(slot, limits_->Enter(parsed.model, handle->config().max_concurrent_requests));
  }
  if (!cancel) cancel = CancelToken::Create();
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    generation = next_generation_++;
    active_[generation] = cancel;
  }
  auto finished = [this, generation, on_finish = std::move(on_finish), slot]() mutable {
    slot.reset();  // the generation is over: its model may take another
    {
      std::lock_guard lock(mu_);
      active_.erase(generation);
    }
    if (on_finish) on_finish();
  };
  std::function<void(const GenerationStats&)> charge;
  KeyRegistry* keys = parsed.request.priority == Priority::kOnline ? keys_ : nullptr;
  if (usage_ != nullptr || keys != nullptr) {
    charge = [usage = usage_, keys, caller = parsed.caller, model = parsed.model](const GenerationStats& s) {
      if (usage != nullptr) {
        usage->Charge(UsageCharge{caller, model, UsageUnits{1, s.compute_us, s.prompt_tokens, s.completion_tokens}});
      }
      if (keys != nullptr) keys->ChargeTokens(caller, int64_t{s.prompt_tokens} + s.completion_tokens);
    };
  }
  auto sink = std::make_shared<ChannelSink>(std::move(who), parsed.stream, parsed.include_usage, channel,
                                            std::move(finished), std::move(charge));
  parsed.request.sink = sink;
  parsed.request.cancel = std::move(cancel);
  Status queued = generator->Generate(std::move(parsed.request));
  if (!queued.ok()) {
    std::lock_guard lock(mu_);
    active_.erase(generation);
    return queued;
  }
  sink->Begin();
  return Status::Ok();
}

void CompletionService::CancelAll() {
  std::lock_guard lock(mu_);
  for (auto& [id, weak] : active_) {
    if (auto cancel = weak.lock()) cancel->Cancel();
  }
}

std::string CompletionService::ListModelsJson() const {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const ModelHandle& handle : manager_->ReadyHandles()) {
    GenerationScheduler* generator = handle->scheduler().generator();
    if (generator == nullptr) continue;
    w.BeginObject().Key("id").String(handle->config().name).Key("object").String("model");
    w.Key("created").Int(0).Key("owned_by").String("ferry");
    w.Key("max_model_len").Int(generator->context_per_sequence()).EndObject();
  }
  // Asleep (unloaded while idle): listed all the same, since a request wakes it; its context length is
  // known once loaded.
  std::set<std::string> listed;
  for (const VersionStatus& s : manager_->Index()) {
    if (!s.asleep || !listed.insert(s.model).second) continue;
    Result<ModelConfig> config = manager_->ConfigOf(s.model, std::nullopt);
    if (!config.ok() || !GeneratesText(*config)) continue;
    w.BeginObject().Key("id").String(s.model).Key("object").String("model");
    w.Key("created").Int(0).Key("owned_by").String("ferry").EndObject();
  }
  w.EndArray().EndObject();
  return json;
}

void CompletionService::Conversation::OnMessage(std::string_view message) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view type, id;
  if (parser.parse(message.data(), message.size()).get(root) || !root.is_object()) {
    return channel_->Stream(WebSocketError({}, InvalidArgument("each message must be a JSON object")));
  }
  // Read first, so that errors name the generation.
  if (root["id"].get_string().get(id)) id = {};
  if (root["type"].get_string().get(type)) {
    return channel_->Stream(WebSocketError(id, InvalidArgument("'type' must be \"generate\" or \"cancel\"")));
  }
  if (type == "cancel") {
    std::lock_guard lock(mu_);
    auto it = running_.find(std::string(id));
    if (it == running_.end()) {
      return channel_->Stream(WebSocketError(id, NotFound("no generation with this id is running")));
    }
    it->second->Cancel();
    return;
  }
  if (type != "generate") {
    return channel_->Stream(WebSocketError(id, InvalidArgument("'type' must be \"generate\" or \"cancel\"")));
  }
  Result<ParsedGeneration> parsed = ParseGenerationBody(TextApi::kWebSocket, message);
  if (!parsed.ok()) return channel_->Stream(WebSocketError(id, parsed.status()));
  parsed->caller = caller_;
  const std::string client_id = parsed->client_id;
  auto cancel = CancelToken::Create();
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (running_.count(client_id) > 0) {
      return channel_->Stream(WebSocketError(client_id, FailedPrecondition("a generation with this id is running")));
    }
    if (running_.size() >= kMaxGenerationsPerConnection) {
      return channel_->Stream(WebSocketError(
          client_id, ResourceExhausted(fmt::format("at most {} generations at once per connection",
                                                   kMaxGenerationsPerConnection))));
    }
    running_[client_id] = cancel;
  }
  // The generation's last call removes its id, unless the connection is gone by then.
  Status started = service_->StartParsed(std::move(parsed).value(), TextApi::kWebSocket, cancel, channel_,
                                         [weak = weak_from_this(), client_id] {
                                           if (auto self = weak.lock()) self->Finished(client_id);
                                         });
  if (!started.ok()) {
    Finished(client_id);
    channel_->Stream(WebSocketError(client_id, started));
  }
}

void CompletionService::Conversation::Finished(const std::string& id) {
  std::lock_guard lock(mu_);
  running_.erase(id);
}

void CompletionService::Conversation::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& [id, cancel] : running_) cancel->Cancel();
}

}  // namespace ferry
