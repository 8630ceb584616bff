#pragma once
// Whether a path lies at or below a folder, compared as text: both must already be canonical (links
// resolved, no "..", no trailing separator but the root's own), as the callers make them.
#include <filesystem>
#include <string>

namespace ferry {

inline bool IsPathWithin(const std::filesystem::path& path, const std::filesystem::path& root) {
  const std::string p = path.string(), r = root.string();
  return p == r || (p.size() > r.size() && p.compare(0, r.size(), r) == 0 && (r.back() == '/' || p[r.size()] == '/'));
}

}  // namespace ferry
