#include "backend/llama_cpp/llama_backend.h"

#include <fmt/format.h>
#include <llama.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <mutex>
#include <thread>

namespace ferry {
namespace {

struct LlamaOptions {
  int32_t slots = 4;
  int32_t context_per_slot = 2048;
  int32_t batch_tokens = 512;
  int32_t gpu_layers = 0;
};

Result<int32_t> ParseIntOption(const std::string& key, const std::string& value, int32_t min, int32_t max) {
  int32_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size() || n < min || n > max) {
    return InvalidArgument(fmt::format("parameter '{}' must be an integer in {}..{}, got '{}'", key, min, max, value));
  }
  return n;
}

Result<LlamaOptions> ParseOptions(const ModelConfig& config) {
  LlamaOptions options;
  for (const auto& [key, value] : config.backend_options) {
    if (key == "slots") {
      FERRY_ASSIGN_OR_RETURN(options.slots, ParseIntOption(key, value, 1, 256));
    } else if (key == "context_per_slot") {
      FERRY_ASSIGN_OR_RETURN(options.context_per_slot, ParseIntOption(key, value, 16, 1 << 20));
    } else if (key == "batch_tokens") {
      FERRY_ASSIGN_OR_RETURN(options.batch_tokens, ParseIntOption(key, value, 1, 1 << 16));
    } else if (key == "gpu_layers") {
      FERRY_ASSIGN_OR_RETURN(options.gpu_layers, ParseIntOption(key, value, -1, 100000));
    } else {
      return InvalidArgument("unknown parameter '" + key +
                             "' for the llama_cpp backend (known: slots, context_per_slot, batch_tokens, gpu_layers)");
    }
  }
  if (config.instance_count != 1) {
    return InvalidArgument("the llama_cpp backend runs one instance per model; use parameters.slots for parallelism");
  }
  return options;
}

// llama.cpp logs through ggml's callback; route it to spdlog (its info is model-loading detail: debug).
void LogFromLlama(ggml_log_level level, const char* text, void*) {
  std::string_view line(text);
  while (!line.empty() && (line.back() == '\n')) line.remove_suffix(1);
  if (line.empty()) return;
  if (level == GGML_LOG_LEVEL_ERROR) {
    spdlog::error("llama.cpp: {}", line);
  } else if (level == GGML_LOG_LEVEL_WARN) {
    spdlog::warn("llama.cpp: {}", line);
  } else {
    spdlog::debug("llama.cpp: {}", line);
  }
}

void InitLlamaOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(LogFromLlama, nullptr);
    llama_backend_init();
  });
}

struct ModelDeleter {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
struct ContextDeleter {
  void operator()(llama_context* c) const { llama_free(c); }
};
struct SamplerDeleter {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};

class LlamaSampler final : public TokenSampler {
 public:
  LlamaSampler(llama_sampler* chain, llama_context* ctx) : chain_(chain), ctx_(ctx) {}
  TokenId Sample(int32_t batch_index) override { return llama_sampler_sample(chain_.get(), ctx_, batch_index); }

 private:
  std::unique_ptr<llama_sampler, SamplerDeleter> chain_;
  llama_context* ctx_;
};

class LlamaLanguageModel final : public LanguageModel {
 public:
  LlamaLanguageModel(std::unique_ptr<llama_model, ModelDeleter> model,
                     std::unique_ptr<llama_context, ContextDeleter> ctx, int32_t batch_tokens)
      : model_(std::move(model)),
        ctx_(std::move(ctx)),
        vocab_(llama_model_get_vocab(model_.get())),
        batch_(llama_batch_init(batch_tokens, 0, 1)),
        batch_tokens_(batch_tokens) {
    const char* tmpl = llama_model_chat_template(model_.get(), nullptr);
    if (tmpl != nullptr) chat_template_ = tmpl;
    for (TokenId t = 0; t < llama_vocab_n_tokens(vocab_); ++t) {
      if (llama_vocab_is_eog(vocab_, t)) end_tokens_.push_back(t);
    }
  }
  ~LlamaLanguageModel() override { llama_batch_free(batch_); }

  Result<std::vector<TokenId>> Tokenize(std::string_view text, bool add_bos, bool parse_special) const override {
    if (text.size() > static_cast<size_t>(INT32_MAX / 2)) return InvalidArgument("prompt too long");
    std::vector<TokenId> tokens(text.size() + 2);
    int32_t n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                               static_cast<int32_t>(tokens.size()), add_bos, parse_special);
    if (n < 0 && n != INT32_MIN) {
      tokens.resize(static_cast<size_t>(-n));
      n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                         static_cast<int32_t>(tokens.size()), add_bos, parse_special);
    }
    if (n < 0) return InvalidArgument("the prompt could not be tokenized");
    tokens.resize(static_cast<size_t>(n));
    return tokens;
  }

  std::string TokenBytes(TokenId token) const override {
    char buf[256];
    const int32_t n = llama_token_to_piece(vocab_, token, buf, sizeof buf, 0, /*special=*/false);
    if (n >= 0) return std::string(buf, static_cast<size_t>(n));
    std::string big(static_cast<size_t>(-n), '\0');
    const int32_t m = llama_token_to_piece(vocab_, token, big.data(), -n, 0, false);
    big.resize(static_cast<size_t>(std::max(0, m)));
    return big;
  }

  bool IsEndOfGeneration(TokenId token) const override { return llama_vocab_is_eog(vocab_, token); }

  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages) const override {
    if (chat_template_.empty()) {
      return FailedPrecondition("this model has no chat template in its metadata; use /v1/completions");
    }
    std::vector<llama_chat_message> chat;
    size_t total = 0;
    for (const auto& m : messages) {
      chat.push_back({m.role.c_str(), m.content.c_str()});
      total += m.role.size() + m.content.size();
    }
    std::string out(2 * total + 256, '\0');
    int32_t n = llama_chat_apply_template(chat_template_.c_str(), chat.data(), chat.size(), /*add_ass=*/true,
                                          out.data(), static_cast<int32_t>(out.size()));
    if (n > static_cast<int32_t>(out.size())) {
      out.resize(static_cast<size_t>(n));
      n = llama_chat_apply_template(chat_template_.c_str(), chat.data(), chat.size(), true, out.data(), n);
    }
    if (n < 0) return FailedPrecondition("llama.cpp does not support this model's chat template");
    out.resize(static_cast<size_t>(n));
    return out;
  }

  int32_t vocab_size() const override { return llama_vocab_n_tokens(vocab_); }
  int32_t max_sequences() const override { return static_cast<int32_t>(llama_n_seq_max(ctx_.get())); }
  int32_t context_per_sequence() const override { return static_cast<int32_t>(llama_n_ctx_seq(ctx_.get())); }
  int32_t max_batch_tokens() const override { return batch_tokens_; }

  Status Decode(std::span<const DecodeEntry> entries) override {
    if (entries.empty()) return Status::Ok();
    if (entries.size() > static_cast<size_t>(batch_tokens_)) {
      return Internal(fmt::format("decode batch of {} tokens exceeds {}", entries.size(), batch_tokens_));
    }
    batch_.n_tokens = static_cast<int32_t>(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      batch_.token[i] = entries[i].token;
      batch_.pos[i] = entries[i].position;
      batch_.n_seq_id[i] = 1;
      batch_.seq_id[i][0] = entries[i].sequence;
      batch_.logits[i] = entries[i].want_logits ? 1 : 0;
    }
    const int32_t rc = llama_decode(ctx_.get(), batch_);
    if (rc == 1) return Unavailable("no room left in the KV cache for this batch");
    if (rc != 0) return Internal(fmt::format("llama_decode failed ({})", rc));
    return Status::Ok();
  }

  void ClearSequence(int32_t sequence) override { llama_memory_seq_rm(llama_get_memory(ctx_.get()), sequence, -1, -1); }

  std::unique_ptr<TokenSampler> MakeSampler(const SamplingParams& p) override {
    llama_sampler_chain_params chain_params = llama_sampler_chain_default_params();
    chain_params.no_perf = true;
    llama_sampler* chain = llama_sampler_chain_init(chain_params);
    std::vector<llama_logit_bias> biases;
    for (const auto& [token, bias] : p.logit_bias) biases.push_back({token, bias});
    if (p.ban_end_of_generation) {
      for (TokenId t : end_tokens_) biases.push_back({t, -INFINITY});
    }
    if (!biases.empty()) {
      llama_sampler_chain_add(chain, llama_sampler_init_logit_bias(llama_vocab_n_tokens(vocab_),
                                                                   static_cast<int32_t>(biases.size()), biases.data()));
    }
    if (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
      llama_sampler_chain_add(chain, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab_), p.repeat_last_n, p.repeat_penalty,
                                                                  p.frequency_penalty, p.presence_penalty));
    }
    if (p.temperature <= 0.0f) {
      llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    } else {
      if (p.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.top_k));
      if (p.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.top_p, 1));
      if (p.min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.min_p, 1));
      llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
      llama_sampler_chain_add(chain, llama_sampler_init_dist(p.seed));
    }
    return std::make_unique<LlamaSampler>(chain, ctx_.get());
  }

 private:
  std::unique_ptr<llama_model, ModelDeleter> model_;
  std::unique_ptr<llama_context, ContextDeleter> ctx_;
  const llama_vocab* vocab_;
  llama_batch batch_;
  const int32_t batch_tokens_;
  std::string chat_template_;
  std::vector<TokenId> end_tokens_;
};

class LlamaLoader final : public LanguageModelLoader {
 public:
  Result<std::unique_ptr<LanguageModel>> Load(const ModelConfig& config,
                                              const std::filesystem::path& version_dir) override {
    InitLlamaOnce();
    FERRY_ASSIGN_OR_RETURN(LlamaOptions options, ParseOptions(config));
    const std::filesystem::path file = version_dir / config.model_filename;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      return NotFound(fmt::format("model file '{}' not found in version folder", config.model_filename));
    }
    llama_model_params model_params = llama_model_default_params();
    model_params.n_gpu_layers = options.gpu_layers;
    std::unique_ptr<llama_model, ModelDeleter> model(llama_model_load_from_file(file.c_str(), model_params));
    if (!model) return InvalidArgument(fmt::format("'{}' is not a GGUF model llama.cpp can load", config.model_filename));

    const int32_t trained = llama_model_n_ctx_train(model.get());
    int32_t per_slot = options.context_per_slot;
    if (trained > 0 && per_slot > trained) {
      spdlog::warn("model '{}': context_per_slot {} exceeds the {} positions it was trained for; using {}",
                   config.name, per_slot, trained, trained);
      per_slot = trained;
    }
    llama_context_params ctx_params = llama_context_default_params();
    ctx_params.n_seq_max = static_cast<uint32_t>(options.slots);
    ctx_params.n_ctx = static_cast<uint32_t>(per_slot) * static_cast<uint32_t>(options.slots);
    ctx_params.n_batch = static_cast<uint32_t>(options.batch_tokens);
    ctx_params.n_ubatch = static_cast<uint32_t>(options.batch_tokens);
    // Sequences share no prefix here; separate KV streams are faster when they do not (llama.h).
    ctx_params.kv_unified = false;
    ctx_params.no_perf = true;
    const int32_t threads = config.threads_per_instance > 0
                                ? static_cast<int32_t>(config.threads_per_instance)
                                : static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
    ctx_params.n_threads = threads;
    ctx_params.n_threads_batch = threads;
    std::unique_ptr<llama_context, ContextDeleter> ctx(llama_init_from_model(model.get(), ctx_params));
    if (!ctx) return Internal("llama.cpp could not create a context for this model (out of memory?)");
    return std::unique_ptr<LanguageModel>(
        std::make_unique<LlamaLanguageModel>(std::move(model), std::move(ctx), options.batch_tokens));
  }
};

class LlamaBackend final : public Backend {
 public:
  std::string_view name() const override { return "llama_cpp"; }
  Result<std::unique_ptr<ModelInstance>> CreateInstance(const ModelConfig&, const std::filesystem::path&) override {
    return FailedPrecondition("the llama_cpp backend generates text; it has no tensor instances");
  }
  LanguageModelLoader* language_models() override { return &loader_; }

 private:
  LlamaLoader loader_;
};

}  // namespace

std::unique_ptr<Backend> MakeLlamaBackend() { return std::make_unique<LlamaBackend>(); }

}  // namespace ferry
