#pragma once
// ASCII case for protocol text (header names, hosts, origins): no locale.
#include <cctype>
#include <string>
#include <string_view>

namespace ferry {

inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace ferry
