#!/usr/bin/env bash
# Configures and builds one CMake preset (release by default) with ccache, two jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
export CCACHE_BASEDIR="$PWD" CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
