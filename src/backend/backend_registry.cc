#include "backend/backend.h"

namespace ferry {

void BackendRegistry::Register(std::unique_ptr<Backend> backend) { backends_.push_back(std::move(backend)); }

Backend* BackendRegistry::Find(std::string_view name) const {
  for (const auto& b : backends_) {
    if (b->name() == name) return b.get();
  }
  return nullptr;
}

std::vector<std::string> BackendRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& b : backends_) names.emplace_back(b->name());
  return names;
}

}  // namespace ferry
