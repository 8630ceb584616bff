#include "backend/identity_backend.h"

#include <fmt/format.h>

namespace ferry {
namespace {

class IdentityInstance final : public ModelInstance {
 public:
  explicit IdentityInstance(std::vector<std::string> output_names) : output_names_(std::move(output_names)) {}

  Result<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    if (inputs.size() != output_names_.size()) return Internal("identity: input count changed after load");
    std::vector<Tensor> outputs = inputs;  // Buffers are shared, so this copies no tensor bytes.
    for (size_t i = 0; i < outputs.size(); ++i) outputs[i].name = output_names_[i];
    return outputs;
  }

 private:
  std::vector<std::string> output_names_;
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
    return std::unique_ptr<ModelInstance>(new IdentityInstance(std::move(names)));
  }
};

}  // namespace

std::unique_ptr<Backend> MakeIdentityBackend() { return std::make_unique<IdentityBackend>(); }

}  // namespace ferry
