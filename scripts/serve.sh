#!/usr/bin/env bash
# Installs what Ferry needs, builds it, and serves the example model repository on port 8000.
# Extra arguments go to `ferry serve` (see `build/release/ferry serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
exec build/release/ferry serve --model-repository examples/models --http-port 8000 "$@"
