#!/usr/bin/env bash
# Creates .venv (Debian's Python 3.11) with the pinned tools the tests and benchmarks use, and unpacks
# perf_analyzer from the tritonclient 2.41.0 wheel: the standalone perf-analyzer wheels need glibc 2.38,
# newer than Debian 12's 2.36, while this build runs here once given libb64 and the CUDA runtime library
# (no GPU is used).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt

pa_dir=.venv/perf_analyzer
if [ ! -x "$pa_dir/bin/perf_analyzer" ]; then
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp" tritonclient==2.41.0
  mkdir -p "$pa_dir/bin"
  (cd "$tmp" && python3 -m zipfile -e tritonclient-2.41.0-*.whl x)
  cp "$tmp"/x/tritonclient-2.41.0.data/data/bin/perf_analyzer "$pa_dir/bin/perf_analyzer.real"
  chmod +x "$pa_dir/bin/perf_analyzer.real"
  cudart=$(.venv/bin/python -c "import nvidia.cuda_runtime, os; print(os.path.join(list(nvidia.cuda_runtime.__path__)[0], 'lib'))")
  cat > "$pa_dir/bin/perf_analyzer" <<WRAP
#!/usr/bin/env bash
LD_LIBRARY_PATH="$cudart\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$(dirname "\$0")/perf_analyzer.real" "\$@"
WRAP
  chmod +x "$pa_dir/bin/perf_analyzer"
  rm -rf "$tmp"
fi
