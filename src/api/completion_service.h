#pragma once
// Text generation for the transports: OpenAI completions and chat completions, Triton's generate, and
// generations over a WebSocket. Parses the body (openai_codec), finds the language model, queues the
// request on its GenerationScheduler and answers through a GenerationChannel as text arrives. Never
// touches a backend. Thread-safe.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "api/openai_codec.h"
#include "keys/key_registry.h"
#include "common/cancel_token.h"
#include "lifecycle/model_manager.h"
#include "scheduling/concurrency_limit.h"
#include "usage/usage_ledger.h"

namespace ferry {

// How a transport takes a generation's answer. Called from the generation thread; must not block.
class GenerationChannel {
 public:
  virtual ~GenerationChannel() = default;
  // The whole answer of a non-streamed request: 200 with the JSON, or an error status and body.
  virtual void Reply(int http_status, std::string json) = 0;
  // A streamed answer starts (HTTP: the 200 and its headers go out now, before the first token).
  virtual void Open() {}
  // One piece of a streamed answer (SSE events for HTTP, one message for a WebSocket).
  virtual void Stream(std::string message) = 0;
  // The streamed answer is complete.
  virtual void EndStream() = 0;
};

class CompletionService {
 public:
  explicit CompletionService(ModelManager* manager) : manager_(manager) {}

  // Starts a generation. A Status returned here means nothing was sent: the transport answers it with
  // ErrorBody(api, status) and the status's HTTP code. `model_from_path` is Triton's {m}.
  // `priority`: kJob for asynchronous jobs, kBulk for batch records (see GenerationRequest).
  // `caller` is admitted by its budgets first and charged the generation's tokens and compute time.
  Status Start(TextApi api, std::string_view body, std::string_view model_from_path, bool force_stream,
               std::shared_ptr<CancelToken> cancel, std::shared_ptr<GenerationChannel> channel,
               Priority priority = Priority::kOnline, const std::string& caller = "(none)");
  // Cost accounting (see InferenceService::SetUsage); may be null.
  void SetUsage(UsageLedger* usage) { usage_ = usage; }
  // Token rate limits of API keys (online generations are admitted and charged by the caller's key);
  // may be null.
  void SetKeys(KeyRegistry* keys) { keys_ = keys; }
  // The per-model caps on concurrent requests, shared with the inference service; may be null.
  void SetConcurrencyLimits(ConcurrencyLimits* limits) { limits_ = limits; }

  // For an asynchronous job: checks a generation body for `model` (which wins over the body's own) now,
  // so that a job that could never run is refused at submit. Jobs do not stream.
  Status CheckJob(TextApi api, std::string_view body, const std::string& model);

  // GET /v1/models: the language models ready to serve, in OpenAI's list form.
  std::string ListModelsJson() const;
  // Cancels every generation in progress: at shutdown, once no transport can deliver their text.
  void CancelAll();

  // One WebSocket connection: several generations at once, each under the client's id; a
  // {"type":"cancel","id":…} message cancels one; closing the connection cancels them all.
  class Conversation : public std::enable_shared_from_this<Conversation> {
   public:
    // Held by shared_ptr: generations still finishing refer to it weakly.
    Conversation(CompletionService* service, std::shared_ptr<GenerationChannel> channel,
                 std::string caller = "(none)")
        : service_(service), channel_(std::move(channel)), caller_(std::move(caller)) {}
    ~Conversation() { Close(); }
    // A text message from the client. Errors are answered on the channel; the connection stays open.
    void OnMessage(std::string_view message);
    void Close();

   private:
    friend class CompletionService;
    void Finished(const std::string& id);
    CompletionService* service_;
    std::shared_ptr<GenerationChannel> channel_;
    const std::string caller_;
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<CancelToken>> running_;
    bool closed_ = false;
  };
  // Limit of concurrent generations on one WebSocket.
  static constexpr size_t kMaxGenerationsPerConnection = 16;

 private:
  Status StartParsed(ParsedGeneration&& parsed, TextApi api, std::shared_ptr<CancelToken> cancel,
                     std::shared_ptr<GenerationChannel> channel, std::function<void()> on_finish);
  // StartParsed once the model is loaded (at once, or after a sleeping model woke).
  Status StartOn(ModelHandle handle, ParsedGeneration&& parsed, TextApi api, std::shared_ptr<CancelToken> cancel,
                 std::shared_ptr<GenerationChannel> channel, std::function<void()> on_finish);
  ModelManager* manager_;
  UsageLedger* usage_ = nullptr;
  KeyRegistry* keys_ = nullptr;
  ConcurrencyLimits* limits_ = nullptr;
  std::mutex mu_;
  uint64_t next_generation_ = 0;
  std::map<uint64_t, std::weak_ptr<CancelToken>> active_;  // for CancelAll
};

}  // namespace ferry
