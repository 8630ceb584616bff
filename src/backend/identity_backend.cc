#include "backend/identity_backend.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <thread>

namespace ferry {
namespace {

class IdentityInstance final : public ModelInstance {
 public:
  IdentityInstance(std::vector<std::string> output_names, int64_t delay_ms, int64_t memory_mb)
      : output_names_(std::move(output_names)), delay_ms_(delay_ms), ballast_(memory_mb * 1024 * 1024, 1) {}

  Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    if (inputs.size() != output_names_.size()) return Internal("identity: input count changed after load");
    // A model that takes time, for tests and benchmarks of what happens around a slow one.
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    std::vector<Tensor> outputs = inputs;  // Buffers are shared, so this copies no tensor bytes.
    for (size_t i = 0; i < outputs.size(); ++i) outputs[i].name = output_names_[i];
    return outputs;
  }

 private:
  std::vector<std::string> output_names_;
  int64_t delay_ms_;
  std::vector<char> ballast_;  // load_memory_mb, written so that it is resident
};

class IdentityBackend final : public Backend {
 public:
  std::string_view name() const override { return "identity"; }

  Result<std::unique_ptr<ModelInstance>> CreateInstance(const ModelConfig& config,
                                                        const std::filesystem::path& version_dir) override {
    if (config.inputs.size() != config.outputs.size()) {
      return InvalidArgument(fmt::format("identity model '{}' needs as many outputs as inputs", config.name));
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < config.inputs.size(); ++i) {
      const TensorSpec& in = config.inputs[i];
      const TensorSpec& out = config.outputs[i];
      if (in.dtype != out.dtype || in.dims != out.dims) {
        return InvalidArgument(fmt::format("identity model '{}': output '{}' must match input '{}' in type and dims",
                                           config.name, out.name, in.name));
      }
      names.push_back(out.name);
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(version_dir, ec)) {
      return NotFound(fmt::format("identity model '{}': version folder missing", config.name));
    }
    // execute_delay_ms as Triton's identity backend spells it; load_delay_ms makes a slow load (cold
    // starts), load_memory_mb a large model (memory budgets).
    int64_t delay_ms = 0;
    int64_t load_delay_ms = 0;
    int64_t memory_mb = 0;
    for (const auto& [key, value] : config.backend_options) {
      if (key != "execute_delay_ms" && key != "load_delay_ms" && key != "load_memory_mb") continue;
      int64_t& target = key == "execute_delay_ms" ? delay_ms : key == "load_delay_ms" ? load_delay_ms : memory_mb;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), target);
      if (ec != std::errc() || end != value.data() + value.size() || target < 0 || target > 60'000) {
        return InvalidArgument(fmt::format("identity model '{}': {} must be 0..60000, got '{}'", config.name, key,
                                           value));
      }
    }
    if (load_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(load_delay_ms));
    if (memory_mb > 4096) {
      return InvalidArgument(fmt::format("identity model '{}': load_memory_mb must be 0..4096", config.name));
    }
    return std::unique_ptr<ModelInstance>(new IdentityInstance(std::move(names), delay_ms, memory_mb));
  }
};

}  // namespace

std::unique_ptr<Backend> MakeIdentityBackend() { return std::make_unique<IdentityBackend>(); }

}  // namespace ferry
