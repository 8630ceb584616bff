#pragma once
// A LanguageModel without weights, for scheduler and API tests: one token per byte (token = byte + 2,
// 0 = begin, 1 = end), and a "model" that continues every sequence with the next letter of the alphabet
// after the last token it decoded ('z' wraps to 'a'). Records every decode batch.
#include <chrono>
#include <mutex>
#include <thread>

#include "backend/language_model.h"
#include "common/clock.h"

namespace ferry::testing {

struct FakeModelLog {
  std::mutex mu;
  std::vector<std::vector<DecodeEntry>> batches;
  size_t Steps() {
    std::lock_guard lock(mu);
    return batches.size();
  }
  // The number of sequences in each decode step.
  std::vector<int> SequencesPerStep() {
    std::lock_guard lock(mu);
    std::vector<int> out;
    for (const auto& b : batches) {
      std::vector<int32_t> seen;
      for (const auto& e : b) {
        if (std::find(seen.begin(), seen.end(), e.sequence) == seen.end()) seen.push_back(e.sequence);
      }
      out.push_back(static_cast<int>(seen.size()));
    }
    return out;
  }
};

struct FakeModelOptions {
  int32_t sequences = 2;
  int32_t context = 64;
  int32_t batch_tokens = 16;
  char end_after = 0;  // after generating this letter the model emits the end token (0: never)
  std::chrono::milliseconds decode_delay{0};
  bool keep_log = true;  // false: record nothing (long fuzz runs)
  // Each decode moves this clock on by `clock_per_token` for every token in it (a decode's "time").
  FakeClock* clock = nullptr;
  Micros clock_per_token{0};
};

class FakeLanguageModel final : public LanguageModel {
 public:
  static constexpr TokenId kBegin = 0;
  static constexpr TokenId kEnd = 1;

  FakeLanguageModel(FakeModelOptions options, std::shared_ptr<FakeModelLog> log)
      : options_(options), log_(std::move(log)), last_(static_cast<size_t>(options.sequences), kBegin) {}

  Result<std::vector<TokenId>> Tokenize(std::string_view text, bool add_bos, bool) const override {
    std::vector<TokenId> tokens;
    if (add_bos) tokens.push_back(kBegin);
    for (unsigned char c : text) tokens.push_back(static_cast<TokenId>(c) + 2);
    return tokens;
  }
  std::string TokenBytes(TokenId token) const override {
    return token < 2 ? std::string() : std::string(1, static_cast<char>(token - 2));
  }
  bool IsEndOfGeneration(TokenId token) const override { return token == kEnd; }
  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages) const override {
    std::string prompt;
    for (const auto& m : messages) prompt += m.role + ":" + m.content + "\n";
    return prompt + "assistant:";
  }
  int32_t vocab_size() const override { return 258; }
  int32_t max_sequences() const override { return options_.sequences; }
  int32_t context_per_sequence() const override { return options_.context; }
  int32_t max_batch_tokens() const override { return options_.batch_tokens; }

  Status Decode(std::span<const DecodeEntry> batch) override {
    if (options_.decode_delay.count() > 0) std::this_thread::sleep_for(options_.decode_delay);
    if (options_.clock != nullptr) options_.clock->Advance(options_.clock_per_token * static_cast<int64_t>(batch.size()));
    predictions_.clear();
    for (const auto& e : batch) {
      if (e.position >= options_.context) return Internal("position past the context");
      last_[static_cast<size_t>(e.sequence)] = e.token;
      predictions_.push_back(Next(e.token));
    }
    if (!options_.keep_log) return Status::Ok();
    std::lock_guard lock(log_->mu);
    log_->batches.emplace_back(batch.begin(), batch.end());
    return Status::Ok();
  }
  void ClearSequence(int32_t sequence) override { last_[static_cast<size_t>(sequence)] = kBegin; }
  std::unique_ptr<TokenSampler> MakeSampler(const SamplingParams&) override {
    return std::make_unique<Sampler>(this);
  }

 private:
  class Sampler final : public TokenSampler {
   public:
    explicit Sampler(FakeLanguageModel* model) : model_(model) {}
    TokenId Sample(int32_t batch_index) override { return model_->predictions_.at(static_cast<size_t>(batch_index)); }

   private:
    FakeLanguageModel* model_;
  };

  TokenId Next(TokenId token) const {
    const char c = token < 2 ? 'a' - 1 : static_cast<char>(token - 2);
    if (options_.end_after != 0 && c == options_.end_after) return kEnd;
    const char next = (c >= 'a' && c < 'z') ? static_cast<char>(c + 1) : 'a';
    return static_cast<TokenId>(static_cast<unsigned char>(next)) + 2;
  }

  const FakeModelOptions options_;
  std::shared_ptr<FakeModelLog> log_;
  std::vector<TokenId> last_;
  std::vector<TokenId> predictions_;
};

}  // namespace ferry::testing
