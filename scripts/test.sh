#!/usr/bin/env bash
# Installs what Ferry needs, builds everything, and runs the whole test suite:
#   1. release build: unit + integration tests (ctest), then the end-to-end suite (pytest) against it,
#      with the official tritonclient and perf_analyzer;
#   2. ASan + UBSan build: unit + integration tests, and the end-to-end suite again against it;
#   3. clang libFuzzer targets, each for FERRY_FUZZ_SECONDS (default 60) from its seed corpus.
# Ends with one line "N passed, N failed" over the steps.
set -uo pipefail
cd "$(dirname "$0")/.."

set -e
bash scripts/install-deps.sh
bash scripts/setup-python.sh
set +e

passed=0
failed=0
failures=()
step() {
  local name=$1
  shift
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

export CTEST_OUTPUT_ON_FAILURE=1
step "build release" bash scripts/build.sh release
step "ctest release" ctest --test-dir build/release --timeout 300 -j1
step "e2e release" env FERRY_BINARY=build/release/ferry .venv/bin/pytest tests/e2e -q -p no:cacheprovider

step "build asan" bash scripts/build.sh asan
step "ctest asan" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --timeout 600 -j1
# TBB_ENABLE_SANITIZERS: OpenVINO's TBB otherwise dlopens with RTLD_DEEPBIND, which ASan refuses.
step "e2e asan" env FERRY_BINARY=build/asan/ferry ASAN_OPTIONS=detect_leaks=1 \
  TBB_ENABLE_SANITIZERS=1 LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp" \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  .venv/bin/pytest tests/e2e -q -p no:cacheprovider

step "build fuzz" bash scripts/build.sh fuzz
for target in build/fuzz/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  corpus=tests/fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  # RSS up to 2 GiB (libFuzzer's default): ASan keeps up to 256 MB of freed memory in quarantine, spread
  # over its size classes, so a target with much allocation churn (YAML) passes 512 MB within a minute
  # with nothing live; a single allocation over 512 MB still fails, and leaks fail through LSan.
  step "$name" "$target" -max_total_time="${FERRY_FUZZ_SECONDS:-60}" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=1 \
    -print_final_stats=1 "$work" "$corpus"
  rm -rf "$work"
done

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
