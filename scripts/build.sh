#!/usr/bin/env bash
# Configures and builds one CMake preset (release by default) with ccache, two jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
# NOHASHDIR: debug builds (asan, fuzz) of a clone in another folder hit the cache too (BASEDIR makes
# their source paths relative; only the debug info's compilation folder still names the first build's).
export CCACHE_BASEDIR="$PWD" CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}" \
  CCACHE_NOHASHDIR=true
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
