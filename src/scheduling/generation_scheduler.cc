#include "scheduling/generation_scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "scheduling/apportion.h"
#include "scheduling/text_assembler.h"

namespace ferry {
namespace {

double MillisBetween(SteadyTime a, SteadyTime b) { return std::chrono::duration<double, std::milli>(b - a).count(); }
double SecondsBetween(SteadyTime a, SteadyTime b) { return std::chrono::duration<double>(b - a).count(); }
bool IsCancelled(const std::shared_ptr<CancelToken>& token) { return token && token->cancelled(); }

}  // namespace

struct GenerationScheduler::Waiting {
  GenerationRequest request;
  std::vector<TokenId> prompt;
  SteadyTime submitted;
};

struct GenerationScheduler::Slot {
  explicit Slot(int32_t sequence) : sequence(sequence) {}
  const int32_t sequence;
  std::unique_ptr<Waiting> work;  // null: free
  std::unique_ptr<TokenSampler> sampler;
  std::unique_ptr<TextAssembler> text;
  size_t prefilled = 0;           // prompt tokens already decoded
  int32_t position = 0;           // next position in the sequence
  TokenId next = 0;               // sampled, not yet decoded
  int32_t generated = 0;
  int32_t logits_index = -1;      // entry of this slot that asked for logits in the current batch
  size_t in_batch = 0;            // entries of this slot in the current batch
  int64_t compute_us = 0;         // its shares of the decodes so far
  SteadyTime started{}, first_token{}, last_token{};
  bool busy() const { return work != nullptr; }
  bool generating() const { return busy() && prefilled == work->prompt.size(); }
};

Result<std::unique_ptr<GenerationScheduler>> GenerationScheduler::Create(GenerationSchedulerOptions options,
                                                                         std::unique_ptr<LanguageModel> model) {
  if (!model) return InvalidArgument("no language model");
  if (model->max_sequences() < 1 || model->max_batch_tokens() < 1 || model->context_per_sequence() < 2) {
    return InvalidArgument("language model has no room for a sequence");
  }
  if (options.max_waiting == 0) return InvalidArgument("max_waiting must be at least 1");
  return std::unique_ptr<GenerationScheduler>(new GenerationScheduler(std::move(options), std::move(model)));
}

GenerationScheduler::GenerationScheduler(GenerationSchedulerOptions options, std::unique_ptr<LanguageModel> model)
    : options_(std::move(options)), model_(std::move(model)), context_per_sequence_(model_->context_per_sequence()) {
  for (int32_t i = 0; i < model_->max_sequences(); ++i) slots_.push_back(std::make_unique<Slot>(i));
  batch_.reserve(static_cast<size_t>(model_->max_batch_tokens()));
  thread_ = std::thread([this] { Loop(); });
}

GenerationScheduler::~GenerationScheduler() { Drain(); }

Status GenerationScheduler::Submit(InferenceTask&&) {
  return InvalidArgument(fmt::format("model '{}' generates text: use /v1/completions, /v1/chat/completions or "
                                     "/v2/models/{}/generate",
                                     options_.model_name, options_.model_name));
}

Status GenerationScheduler::Generate(GenerationRequest&& request) {
  if (!request.sink) return InvalidArgument("generation request without a sink");
  for (const auto& [token, bias] : request.sampling.logit_bias) {
    if (token < 0 || token >= model_->vocab_size()) {
      return InvalidArgument(fmt::format("logit_bias names token {}; this model's tokens are 0..{}", token,
                                         model_->vocab_size() - 1));
    }
  }
  // Like llama.cpp: ignoring the end token means never sampling it, not sampling it and going on.
  request.sampling.ban_end_of_generation = request.ignore_eos;
  std::string prompt_text;
  if (request.chat) {
    FERRY_ASSIGN_OR_RETURN(prompt_text, model_->ApplyChatTemplate(request.messages));
  }
  const std::string& text = request.chat ? prompt_text : request.prompt;
  // A chat template writes control tokens as text; a user's completion prompt must not smuggle them in.
  FERRY_ASSIGN_OR_RETURN(std::vector<TokenId> prompt,
                         model_->Tokenize(text, /*add_bos=*/true, /*parse_special=*/request.chat));
  if (prompt.empty()) return InvalidArgument("the prompt is empty");
  if (static_cast<int64_t>(prompt.size()) >= context_per_sequence_) {
    return InvalidArgument(fmt::format("the prompt is {} tokens; this model's context holds {} per request, output "
                                       "included",
                                       prompt.size(), context_per_sequence_));
  }
  auto waiting = std::make_unique<Waiting>();
  waiting->request = std::move(request);
  waiting->prompt = std::move(prompt);
  waiting->submitted = options_.clock->Now();
  {
    std::lock_guard lock(mu_);
    if (draining_) return Unavailable(fmt::format("model '{}' is unloading", options_.model_name));
    auto& queue = waiting_[static_cast<size_t>(waiting->request.priority)];
    if (queue.size() >= options_.max_waiting) {
      return Unavailable(fmt::format("model '{}' has {} requests waiting for a slot; retry later", options_.model_name,
                                     queue.size()));
    }
    queue.push_back(std::move(waiting));
  }
  cv_.notify_one();
  return Status::Ok();
}

size_t GenerationScheduler::QueueDepth() const {
  std::lock_guard lock(mu_);
  return WaitingLocked();
}

size_t GenerationScheduler::InFlight() const {
  std::lock_guard lock(mu_);
  return WaitingLocked() + static_cast<size_t>(running_);
}

size_t GenerationScheduler::WaitingLocked() const {
  return waiting_[0].size() + waiting_[1].size() + waiting_[2].size();
}

void GenerationScheduler::Drain() {
  {
    std::lock_guard lock(mu_);
    draining_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GenerationScheduler::Loop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return draining_ || WaitingLocked() > 0 || running_ > 0; });
      if (draining_ && WaitingLocked() == 0 && running_ == 0) return;
    }
    try {
      Step();
    } catch (const std::exception& e) {
      // The runtime must not throw; if it does, the requests in its slots fail and the loop lives on.
      spdlog::error("model '{}': generation step failed: {}", options_.model_name, e.what());
      FailAll(Internal(fmt::format("generation failed: {}", e.what())));
    } catch (...) {
      spdlog::error("model '{}': generation step failed", options_.model_name);
      FailAll(Internal("generation failed"));
    }
  }
}

void GenerationScheduler::Finish(Slot& slot, Result<GenerationStats> outcome) {
  if (outcome.ok() && slot.text) {
    std::string rest = slot.text->Flush();
    if (!rest.empty()) slot.work->request.sink->OnText(rest);
  }
  if (outcome.ok() && options_.observer) {
    options_.observer->OnFinished(*outcome, SecondsBetween(slot.work->submitted, options_.clock->Now()));
  }
  if (!outcome.ok() && slot.compute_us > 0) {
    GenerationStats used;
    used.finish_reason = "cancelled";
    used.prompt_tokens = static_cast<int32_t>(slot.prefilled);
    used.completion_tokens = slot.generated;
    used.compute_us = slot.compute_us;
    slot.work->request.sink->OnAbandoned(used);
  }
  slot.work->request.sink->OnFinish(outcome);
  model_->ClearSequence(slot.sequence);
  slot.work.reset();
  slot.sampler.reset();
  slot.text.reset();
  std::lock_guard lock(mu_);
  --running_;
}

void GenerationScheduler::EmitToken(Slot& slot, TokenId token, SteadyTime now) {
  GenerationRequest& request = slot.work->request;
  auto stats = [&](std::string reason) {
    GenerationStats s;
    s.finish_reason = std::move(reason);
    s.prompt_tokens = static_cast<int32_t>(slot.work->prompt.size());
    s.completion_tokens = slot.generated;
    s.queue_ms = MillisBetween(slot.work->submitted, slot.started);
    s.prompt_ms = MillisBetween(slot.started, slot.first_token);
    s.generation_ms = MillisBetween(slot.first_token, now);
    s.compute_us = slot.compute_us;
    return s;
  };
  if (slot.generated == 0) {
    slot.first_token = now;
    if (options_.observer) options_.observer->OnFirstToken(SecondsBetween(slot.work->submitted, now));
  } else if (options_.observer) {
    options_.observer->OnNextToken(SecondsBetween(slot.last_token, now));
  }
  slot.last_token = now;
  if (!request.ignore_eos && model_->IsEndOfGeneration(token)) return Finish(slot, stats("stop"));
  ++slot.generated;
  std::string text = slot.text->Append(model_->TokenBytes(token));
  if (!text.empty()) request.sink->OnText(text);
  if (slot.text->stopped()) return Finish(slot, stats("stop"));
  if (request.max_tokens >= 0 && slot.generated >= request.max_tokens) return Finish(slot, stats("length"));
  // Prompt plus output never exceed the context (the last token is sent, never decoded).
  if (slot.position + 1 >= context_per_sequence_) return Finish(slot, stats("length"));
  slot.next = token;
}

void GenerationScheduler::FailAll(const Status& error) {
  for (auto& slot : slots_) {
    if (slot->busy()) Finish(*slot, error);
  }
  ReportOccupancy();
}

int32_t GenerationScheduler::Admit() {
  std::vector<std::unique_ptr<Waiting>> dropped;
  {
    std::lock_guard lock(mu_);
    // Requests whose client left while waiting are answered now, not when a slot frees.
    for (auto& queue : waiting_) {
      for (auto it = queue.begin(); it != queue.end();) {
        if (IsCancelled((*it)->request.cancel)) {
          dropped.push_back(std::move(*it));
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& slot : slots_) {
      if (slot->busy()) continue;
      auto* queue = std::find_if(std::begin(waiting_), std::end(waiting_), [](auto& q) { return !q.empty(); });
      if (queue == std::end(waiting_)) break;
      slot->work = std::move(queue->front());
      queue->pop_front();
      ++running_;
    }
  }
  for (auto& w : dropped) w->request.sink->OnFinish(Cancelled("the client went away"));

  const SteadyTime now = options_.clock->Now();
  int32_t running = 0;
  for (auto& slot : slots_) {
    if (!slot->busy()) continue;
    if (IsCancelled(slot->work->request.cancel)) {
      Finish(*slot, Cancelled("the client went away"));
      continue;
    }
    if (!slot->sampler) {  // newly admitted
      slot->sampler = model_->MakeSampler(slot->work->request.sampling);
      slot->text = std::make_unique<TextAssembler>(slot->work->request.stop);
      slot->prefilled = 0;
      slot->position = 0;
      slot->generated = 0;
      slot->compute_us = 0;
      slot->started = now;
    }
    ++running;
  }
  return running;
}

int32_t GenerationScheduler::BuildBatch() {
  // The next token of every generating sequence first (they are what users are waiting on), then
  // prompt chunks of the others with what room is left.
  batch_.clear();
  int32_t budget = model_->max_batch_tokens();
  int32_t sequences = 0;
  for (auto& slot : slots_) {
    slot->logits_index = -1;
    slot->in_batch = 0;
    if (!slot->generating() || budget == 0) continue;
    slot->logits_index = static_cast<int32_t>(batch_.size());
    slot->in_batch = 1;
    batch_.push_back({slot->next, slot->position, slot->sequence, true});
    --budget;
    ++sequences;
  }
  for (auto& slot : slots_) {
    if (!slot->busy() || slot->generating() || budget == 0) continue;
    const auto& prompt = slot->work->prompt;
    const size_t take = std::min(prompt.size() - slot->prefilled, static_cast<size_t>(budget));
    for (size_t i = 0; i < take; ++i) {
      const size_t index = slot->prefilled + i;
      const bool last = index + 1 == prompt.size();
      if (last) slot->logits_index = static_cast<int32_t>(batch_.size());
      batch_.push_back({prompt[index], static_cast<int32_t>(index), slot->sequence, last});
    }
    slot->in_batch = take;
    budget -= static_cast<int32_t>(take);
    ++sequences;
  }
  return sequences;
}

void GenerationScheduler::SampleAll() {
  const SteadyTime done = options_.clock->Now();
  for (auto& slot : slots_) {
    if (!slot->busy() || slot->in_batch == 0) continue;
    // Advance what this decode consumed.
    if (slot->generating()) {
      ++slot->position;
    } else {
      slot->prefilled += slot->in_batch;
      slot->position = static_cast<int32_t>(slot->prefilled);
      if (!slot->generating()) continue;  // more prompt to read
    }
    const TokenId token = slot->sampler->Sample(slot->logits_index);
    EmitToken(*slot, token, done);
  }
}

bool GenerationScheduler::Step() {
  const int32_t running = Admit();
  // Before any token of a newly admitted request goes out, so that a client never sees its text
  // before the gauges count it.
  ReportOccupancy();
  if (running == 0) return false;
  const int32_t sequences = BuildBatch();
  if (batch_.empty()) return false;
  const SteadyTime start = options_.clock->Now();
  Status decoded = model_->Decode(batch_);
  ChargeDecode(std::chrono::duration_cast<Micros>(options_.clock->Now() - start).count());
  if (!decoded.ok()) {
    spdlog::error("model '{}': decode of {} tokens failed: {}", options_.model_name, batch_.size(), decoded.message());
    FailAll(decoded);
    return true;
  }
  if (options_.observer) options_.observer->OnDecodeStep(sequences, static_cast<int32_t>(batch_.size()));
  SampleAll();
  ReportOccupancy();
  return true;
}

void GenerationScheduler::ChargeDecode(int64_t took_us) {
  std::vector<int64_t> tokens;
  for (const auto& slot : slots_) tokens.push_back(slot->busy() ? static_cast<int64_t>(slot->in_batch) : 0);
  const std::vector<int64_t> shares = Apportion(took_us, tokens);
  for (size_t i = 0; i < slots_.size(); ++i) slots_[i]->compute_us += shares[i];
}

void GenerationScheduler::ReportOccupancy() {
  if (!options_.observer) return;
  int32_t running = 0;
  for (const auto& slot : slots_) running += slot->busy() ? 1 : 0;
  int32_t waiting = 0;
  {
    std::lock_guard lock(mu_);
    waiting = static_cast<int32_t>(WaitingLocked());
  }
  options_.observer->OnOccupancy(running, waiting);
}

}  // namespace ferry
