#pragma once
// The scheduler of a language model, beside the DynamicBatcher: continuous batching over the model's
// sequence slots. One thread owns the model's context. Each iteration it moves waiting requests into
// free slots, drops those whose client went away (waiting, in prefill or decoding), and runs ONE decode
// holding a prompt chunk of every sequence still reading its prompt and the next token of every
// sequence generating; then it samples each generating sequence's token and streams its text.
// Thread-safe.
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/language_model.h"
#include "common/cancel_token.h"
#include "scheduling/scheduler.h"
#include "scheduling/task.h"

namespace ferry {

// Why a generation ended and what it cost, in llama.cpp's "timings" terms.
struct GenerationStats {
  std::string finish_reason;  // "stop" (end token or stop string) | "length" (max_tokens or context)
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double queue_ms = 0;       // submit -> first decode holding this request
  double prompt_ms = 0;      // first decode -> first generated token
  double generation_ms = 0;  // first generated token -> end
  // This request's share of the decodes it was in (each decode's time split by the tokens each
  // sequence put in it): what it is charged for. The shares of a decode sum to its time.
  int64_t compute_us = 0;
};

// Where a generation's output goes. Called on the generation thread, in order; must not block.
class GenerationSink {
 public:
  virtual ~GenerationSink() = default;
  // Text in whole UTF-8 characters; never empty.
  virtual void OnText(std::string_view text) = 0;
  // Called exactly once, last: the stats, or why it did not finish (kCancelled when the client left).
  virtual void OnFinish(const Result<GenerationStats>& outcome) = 0;
  // Called just before OnFinish with an error, when the generation had already used the model (it was
  // in at least one decode): what it used until then (prompt tokens read, tokens generated, its shares
  // of the decodes), so that it is charged all the same.
  virtual void OnAbandoned(const GenerationStats& used) {}
};

struct GenerationRequest {
  std::string prompt;                 // used as is, unless `chat`
  bool chat = false;                  // the prompt comes from `messages` and the model's chat template
  std::vector<ChatMessage> messages;
  SamplingParams sampling;
  int32_t max_tokens = -1;            // -1: until the end token or the context is full
  std::vector<std::string> stop;
  bool ignore_eos = false;
  // Free slots go to online requests first, then jobs, then bulk (batch) work; each class waits in a
  // queue of its own, bounded apart (max_waiting each), so a backlog of one never refuses another.
  Priority priority = Priority::kOnline;
  std::shared_ptr<CancelToken> cancel;  // may be null
  std::shared_ptr<GenerationSink> sink;
};

// Measurements the scheduler reports (metrics live outside scheduling). Called on the generation
// thread; must be cheap.
class GenerationObserver {
 public:
  virtual ~GenerationObserver() = default;
  virtual void OnDecodeStep(int32_t sequences, int32_t tokens) {}
  virtual void OnFirstToken(double seconds_since_submit) {}
  virtual void OnNextToken(double seconds_since_previous) {}
  virtual void OnFinished(const GenerationStats& stats, double seconds_since_submit) {}
  virtual void OnOccupancy(int32_t running, int32_t waiting) {}
};

struct GenerationSchedulerOptions {
  std::string model_name;     // for log lines
  size_t max_waiting = 64;    // requests waiting for a slot, per priority class; Unavailable beyond it
  std::shared_ptr<GenerationObserver> observer;  // may be null
  const Clock* clock = &Clock::Real();           // the times in GenerationStats and the observer's
};

class GenerationScheduler final : public Scheduler {
 public:
  static Result<std::unique_ptr<GenerationScheduler>> Create(GenerationSchedulerOptions options,
                                                             std::unique_ptr<LanguageModel> model);
  ~GenerationScheduler() override;

  // Tokenizes and checks the request on the caller's thread, then queues it. On OK the sink will get
  // OnFinish exactly once; otherwise the sink is never called: kInvalidArgument (prompt too long for the
  // context, bad template), kUnavailable (queue full or draining), kFailedPrecondition (no template).
  Status Generate(GenerationRequest&& request);

  // Tensor inference does not apply to a language model.
  Status Submit(InferenceTask&& task) override;
  size_t QueueDepth() const override;
  size_t QueueCapacity() const override { return options_.max_waiting; }
  size_t InFlight() const override;
  void Drain() override;
  GenerationScheduler* generator() override { return this; }

  int32_t context_per_sequence() const { return context_per_sequence_; }
  int32_t slots() const { return static_cast<int32_t>(slots_.size()); }

 private:
  struct Waiting;
  struct Slot;
  GenerationScheduler(GenerationSchedulerOptions options, std::unique_ptr<LanguageModel> model);
  void Loop();
  // One iteration: admit, drop cancelled, decode, sample. False when there was nothing to do.
  bool Step();
  // Answers waiting requests whose client left and moves waiting requests into free slots, highest
  // priority first; returns how many slots are busy.
  int32_t Admit();
  // Fills batch_: the next token of every generating sequence, then prompt chunks; returns the number
  // of sequences in it.
  int32_t BuildBatch();
  // After a decode: advances each sequence and samples the ones generating.
  void SampleAll();
  // Ends every busy slot with `error` (a failed decode, an exception from the runtime).
  void FailAll(const Status& error);
  size_t WaitingLocked() const;
  void Finish(Slot& slot, Result<GenerationStats> outcome);
  void EmitToken(Slot& slot, TokenId token, SteadyTime now);
  void ReportOccupancy();
  // Splits a decode's time among the busy slots by the tokens each put in it.
  void ChargeDecode(int64_t took_us);

  const GenerationSchedulerOptions options_;
  std::unique_ptr<LanguageModel> model_;
  const int32_t context_per_sequence_;
  std::vector<std::unique_ptr<Slot>> slots_;  // touched by the generation thread only
  std::vector<DecodeEntry> batch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Waiting>> waiting_[3];  // by Priority: online, job, bulk
  bool draining_ = false;
  int32_t running_ = 0;  // slots busy, for the idle wait
  std::thread thread_;
};

}  // namespace ferry
