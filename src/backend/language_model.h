#pragma once
// The interface a text-generation runtime (llama.cpp today) sits behind. The generation scheduler drives
// it; it never sees HTTP, JSON or requests, only token batches over numbered sequences.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "repository/model_config.h"

namespace ferry {

using TokenId = int32_t;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

struct SamplingParams {
  float temperature = 1.0f;     // 0: greedy
  float top_p = 1.0f;           // 1: off
  int32_t top_k = 0;            // 0: off
  float min_p = 0.0f;           // 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int32_t repeat_last_n = 64;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint32_t seed = 0xFFFFFFFFu;  // 0xFFFFFFFF: a random seed
  std::vector<std::pair<TokenId, float>> logit_bias;  // added to those tokens' logits
  bool ban_end_of_generation = false;  // never sample an end token (for ignore_eos)
};

// One token of a decode batch: `sequence` (0 .. max_sequences-1) at `position`; `want_logits` asks for
// the next-token distribution after it, which MakeSampler's sampler then reads by the entry's index.
struct DecodeEntry {
  TokenId token = 0;
  int32_t position = 0;
  int32_t sequence = 0;
  bool want_logits = false;
};

// Per-request sampling state (penalty history, RNG). Used on the generation thread only.
class TokenSampler {
 public:
  virtual ~TokenSampler() = default;
  // Samples from the logits of entry `batch_index` of the last Decode and records the token.
  virtual TokenId Sample(int32_t batch_index) = 0;
};

// One loaded model with one context of `max_sequences` independent sequences. The vocabulary methods
// are thread-safe; Decode, ClearSequence and samplers belong to the one generation thread.
class LanguageModel {
 public:
  virtual ~LanguageModel() = default;

  // Text -> tokens; `add_bos` adds the model's begin token if its vocabulary asks for one;
  // `parse_special` lets control tokens written in the text (as chat templates do) become tokens.
  virtual Result<std::vector<TokenId>> Tokenize(std::string_view text, bool add_bos, bool parse_special) const = 0;
  // The bytes a token stands for (control tokens: empty). May be part of a UTF-8 character.
  virtual std::string TokenBytes(TokenId token) const = 0;
  virtual bool IsEndOfGeneration(TokenId token) const = 0;
  // The prompt for a chat, from the template in the model's metadata, ending with the assistant's turn.
  virtual Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t max_sequences() const = 0;
  virtual int32_t context_per_sequence() const = 0;  // positions available to each sequence
  virtual int32_t max_batch_tokens() const = 0;      // entries one Decode accepts

  virtual Status Decode(std::span<const DecodeEntry> batch) = 0;
  // Forgets everything sequence `sequence` has decoded, so that it can start a new request.
  virtual void ClearSequence(int32_t sequence) = 0;
  virtual std::unique_ptr<TokenSampler> MakeSampler(const SamplingParams& params) = 0;
};

// Loads language models from a version folder (<version_dir>/<config.model_filename>). Thread-safe.
class LanguageModelLoader {
 public:
  virtual ~LanguageModelLoader() = default;
  virtual Result<std::unique_ptr<LanguageModel>> Load(const ModelConfig& config,
                                                      const std::filesystem::path& version_dir) = 0;
};

}  // namespace ferry
