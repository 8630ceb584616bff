#include "scheduling/apportion.h"

#include <algorithm>
#include <numeric>

namespace ferry {

std::vector<int64_t> Apportion(int64_t total, const std::vector<int64_t>& weights) {
  std::vector<int64_t> shares(weights.size(), 0);
  if (weights.empty()) return shares;
  std::vector<int64_t> w = weights;
  int64_t sum = std::accumulate(w.begin(), w.end(), int64_t{0});
  if (sum <= 0) {
    std::fill(w.begin(), w.end(), 1);
    sum = static_cast<int64_t>(w.size());
  }
  // Floors first (in 128 bits: total x weight may overflow 64), then one unit each to the largest
  // remainders, ties to the earliest.
  std::vector<std::pair<__int128, size_t>> remainders;
  int64_t given = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const __int128 product = static_cast<__int128>(total) * w[i];
    shares[i] = static_cast<int64_t>(product / sum);
    given += shares[i];
    remainders.emplace_back(product % sum, i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total && k < remainders.size(); ++k, ++given) ++shares[remainders[k].second];
  return shares;
}

}  // namespace ferry
