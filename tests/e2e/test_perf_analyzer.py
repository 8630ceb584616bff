"""Triton's perf_analyzer (unpacked by scripts/setup-python.sh) must run against Ferry unchanged."""
from __future__ import annotations

import re
import subprocess

import pytest

from conftest import ROOT

PERF_ANALYZER = ROOT / ".venv" / "perf_analyzer" / "bin" / "perf_analyzer"
THROUGHPUT = re.compile(r"Throughput: ([0-9.]+) infer/sec")
SUMMARY = re.compile(r"Concurrency: (\d+), throughput: ([0-9.]+) infer/sec")


@pytest.mark.skipif(not PERF_ANALYZER.exists(), reason="run scripts/setup-python.sh to unpack perf_analyzer")
@pytest.mark.parametrize("model,extra", [
    ("cnn", []),
    ("identity", []),
    # An identity-backend model with a variable dim and BYTES: perf_analyzer needs --shape.
    ("ident_bytes", ["--shape", "INPUT0:4"]),
], ids=["cnn", "identity", "ident_bytes"])
def test_perf_analyzer(ferry, model, extra):
    cmd = [str(PERF_ANALYZER), "-m", model, "-u", ferry.url, "-i", "http", "--concurrency-range", "1:2",
           "--measurement-interval", "2000", "-b", "1",
           # This checks protocol compatibility, not performance: on a shared 2-core machine the default
           # 10 % stability bar can take all 10 trials and fail the run for reasons that are not Ferry's.
           "--stability-percentage", "50", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-4000:]}"
    rates = [float(x) for x in THROUGHPUT.findall(output)]
    assert len(rates) >= 2 and all(r > 0 for r in rates), output[-4000:]
    levels = {int(c) for c, _ in SUMMARY.findall(output)}
    assert levels == {1, 2}, output[-4000:]
