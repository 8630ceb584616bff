#!/usr/bin/env python3
"""Sustained overload (R11 of shared/reliability.md; "Overload" in docs/benchmarks.md): the example CNN
driven open loop at twice its capacity, with and without `max_queue_wait_ms` (admission by expected
wait), against its latency at 80 % load.

    .venv/bin/python bench/run_overload_benchmark.py                 # 60 s at 2x per arrangement, ~4 min
    .venv/bin/python bench/run_overload_benchmark.py --overload-s 300  # R11's five minutes

Needs build/release (ferry, bench/bench_load_client). One server serves two copies of examples/models/cnn
(OpenCV DNN, dynamic batching up to 8, a 64-deep queue): `cnn` as shipped, and `cnn_bounded` with
`max_queue_wait_ms` (default 30). Steps, binary 1x3x224x224 requests: capacity C = closed-loop
throughput at 4 connections; open loop (`bench_load_client --rate`, latency from each request's slot)
at 0.8 C on `cnn`; then open loop at 2 C on each model while a probe reads /v2/health/ready ten times a
second. Reports goodput (200s per second) against C, admitted p50/p99, the rejections' count and p99, and
the probe's p99. Sync requests only: R11's 20 % of SSE streams is not part of this run. Raw results go to
bench/results/overload-<UTC timestamp>.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server and machine helpers)

CNN = ["--input-name", "image", "--shape", "1,3,224,224", "--format", "binary"]


def make_repo(root: Path, max_wait_ms: int) -> Path:
    repo = root / "repo"
    shutil.copytree(rb.EXAMPLES / "cnn", repo / "cnn")
    shutil.copytree(rb.EXAMPLES / "cnn", repo / "cnn_bounded")
    cfg = repo / "cnn_bounded" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("name: cnn\n", "name: cnn_bounded\n") + f"max_queue_wait_ms: {max_wait_ms}\n")
    return repo


def client(port: int, model: str, extra: list[str]) -> dict:
    cmd = [str(rb.LOAD_CLIENT), "--port", str(port), "--model", model, *CNN, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


class HealthProbe(threading.Thread):
    """GET /v2/health/ready every 100 ms on a fresh connection; keeps each latency (ms) and status."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.samples, self.stop = port, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v2/health/ready")
                status = conn.getresponse().status
                conn.close()
            except OSError:
                status = 0
            self.samples.append(((time.perf_counter() - t0) * 1000, status))
            self.stop.wait(max(0.0, 0.1 - (time.perf_counter() - t0)))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--overload-s", type=float, default=60)
    ap.add_argument("--max-wait-ms", type=int, default=30)
    ap.add_argument("--connections", type=int, default=256)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferry-overload-"))
    server = rb.ferry_server("ferry", make_repo(work, args.max_wait_ms), work, io_threads=2)
    server.start()
    results = {"machine": rb.machine_info(), "args": vars(args)}
    try:
        client(server.port, "cnn", ["-c", "4", "-d", "3"])  # warm both
        client(server.port, "cnn_bounded", ["-c", "4", "-d", "3"])
        cap = client(server.port, "cnn", ["-c", "4", "-d", "10"])
        c = cap["throughput_rps"]
        results["capacity"] = cap
        rb.log(f"capacity C = {c:.1f} req/s (closed loop, 4 connections; p50 {cap['latency_us']['p50'] / 1000:.1f} ms)")
        low = client(server.port, "cnn", ["-c", "64", "-d", "20", "--rate", f"{0.8 * c:.2f}"])
        results["load_80"] = low
        rb.log(f"0.8 C open loop: {low['throughput_rps']:.1f} ok/s, p50 {low['latency_us']['p50'] / 1000:.1f} ms, "
               f"p99 {low['latency_us']['p99'] / 1000:.1f} ms, non-200 {low['non_200']}")
        for model in ("cnn", "cnn_bounded"):
            probe = HealthProbe(server.port)
            probe.start()
            over = client(server.port, model, ["-c", str(args.connections), "-d", str(args.overload_s),
                                               "--rate", f"{2 * c:.2f}", "--timeout-s", "30"])
            probe.stop.set()
            probe.join()
            health = [ms for ms, _ in probe.samples]
            results[f"overload_{model}"] = {**over, "health_ms": health,
                                            "health_failures": sum(1 for _, s in probe.samples if s != 200)}
            rb.log(f"2 C on {model}: goodput {over['throughput_rps']:.1f} ok/s = {over['throughput_rps'] / c:.2f} C; "
                   f"admitted p50 {over['latency_us']['p50'] / 1000:.1f} ms p99 {over['latency_us']['p99'] / 1000:.1f} ms "
                   f"({over['latency_us']['p99'] / max(1, low['latency_us']['p99']):.2f}x the 0.8 C p99); "
                   f"rejected {over['non_200']} (p99 {over['rejected_latency_us']['p99'] / 1000:.1f} ms); "
                   f"transport errors {over['transport_errors']}; late starts {over['late_starts']}; "
                   f"health p99 {pct(health, 99):.1f} ms over {len(health)}")
            time.sleep(2)
    finally:
        server.stop()
    rb.save_results("overload", results)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
