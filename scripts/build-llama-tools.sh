#!/usr/bin/env bash
# Builds llama.cpp's own command-line tools from third_party/llama.cpp into build/llama-tools/bin.
# They are only for making test models (llama-quantize, llama-completion) and for comparing Ferry
# against llama.cpp (llama-bench, llama-server); nothing here is linked into Ferry or committed.
#
#   scripts/build-llama-tools.sh                      # llama-quantize llama-bench llama-server
#   scripts/build-llama-tools.sh llama-completion     # any target names llama.cpp defines
#
# Safe to run again: CMake configures once, Ninja and ccache rebuild only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

src=third_party/llama.cpp
out=build/llama-tools
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=(llama-quantize llama-bench llama-server)
fi

if [ ! -f "$src/CMakeLists.txt" ]; then
  scripts/install-llama.sh
fi

# Same cache as scripts/build.sh; the base dir makes paths relative so objects compiled for the
# Ferry build of llama.cpp and for this one can share cache entries.
export CCACHE_BASEDIR="$PWD" CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"

if [ ! -f "$out/build.ninja" ]; then
  mkdir -p "$out"
  # GGML_NATIVE stays OFF so the binaries (and ccache entries) do not depend on this CPU.
  # LLAMA_USE_PREBUILT_UI=OFF: left ON, configuring llama-server tries to download a web UI.
  # The "unified" app binary and the tests are not needed and would double the build time.
  nice cmake -S "$src" -B "$out" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF \
    -DGGML_CCACHE=ON \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    >"$out/configure.log" 2>&1 || { cat "$out/configure.log" >&2; exit 1; }
fi

# Two jobs: the machine has two cores and other builds may be running.
nice cmake --build "$out" --parallel 2 --target "${targets[@]}"

for target in "${targets[@]}"; do
  if [ -x "$out/bin/$target" ]; then
    echo "$PWD/$out/bin/$target"
  fi
done
