#pragma once
// The fuzz targets' invariant check: a broken invariant aborts, which libFuzzer reports with the input.
#include <cstdio>
#include <cstdlib>

namespace fuzz {

inline void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace fuzz
