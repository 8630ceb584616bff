#pragma once
// Splitting one execution's time among the requests that shared it, so that each is charged for its
// part and the parts add up to the whole: a batch's compute time by each task's rows, a decode's by
// each sequence's tokens. Pure. Thread-compatible.
#include <cstdint>
#include <vector>

namespace ferry {

// `total` in whole units split in proportion to `weights` (each >= 0), by largest remainders: the
// shares sum to `total` exactly. All weights zero: equal shares. Empty weights: empty.
std::vector<int64_t> Apportion(int64_t total, const std::vector<int64_t>& weights);

}  // namespace ferry
