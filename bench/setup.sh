#!/usr/bin/env bash
# Installs what bench/run_benchmarks.py needs besides the build: wrk and nginx-light (Debian), and the
# FastAPI peers in .venv-bench (Debian's Python 3.11, bench/requirements.txt). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light
fi
if [ ! -x .venv-bench/bin/python ]; then
  /usr/bin/python3 -m venv .venv-bench
fi
.venv-bench/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
