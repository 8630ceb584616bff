#!/usr/bin/env python3
"""Slow clients (R10 of shared/reliability.md; "Slow clients" in docs/benchmarks.md): slowloris and slow
bodies against a server with its default limits, while a canary on fresh connections reads readiness.

    .venv/bin/python bench/run_slow_clients_benchmark.py               # the issue's run: 5,000 + 500, 60 s
    .venv/bin/python bench/run_slow_clients_benchmark.py --seconds 20  # shorter

Needs build/release/ferry. Two arrangements, each `--seconds` long:
  one-address   5,000 connections dripping a header line and 500 dripping a body byte, every second, from
                127.0.0.1 (one client), reopened whenever the server closes them;
  many-address  the same spread over 50 addresses of 127.0.0.0/8 (100 + 10 each): a botnet, which the
                per-address cap does not stop, so only the header deadline and body rate free slots.
The canary (GET /v2/health/ready every 20 ms from 127.0.0.2, a fresh connection each) reports its success
rate and latency percentiles; the slow side reports how long the server let each connection live.
Raw results go to bench/results/slow-clients-<UTC timestamp>.json.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import run_benchmarks as rb  # noqa: E402
from slow_clients import Canary, SlowClients, percentile  # noqa: E402


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "identity" / "1").mkdir(parents=True)
    (repo / "identity" / "config.yaml").write_text(
        "name: identity\nbackend: identity\nmax_batch_size: 8\n"
        "inputs:\n  - {name: INPUT0, datatype: FP32, dims: [4]}\noutputs:\n  - {name: OUTPUT0, datatype: FP32, dims: [4]}\n")
    return repo


def summarize_slow(slow: list[SlowClients]) -> dict:
    ended = [e for s in slow for e in s.ended]
    out = {"peak_open": sum(s.peak_open for s in slow), "connect_failures": sum(s.connect_failures for s in slow)}
    for kind in ("header", "body"):
        closed = [e.lived_s for e in ended if e.kind == kind and e.status is None]
        refused = [e.lived_s for e in ended if e.kind == kind and e.status == 503]
        out[kind] = {"closed_by_server": len(closed), "refused_503": len(refused),
                     "lived_s_p50": percentile(closed, 50), "lived_s_max": max(closed, default=float("nan")),
                     "refused_s_p99": percentile(refused, 99),
                     "other": sorted({str(e.status) for e in ended if e.kind == kind and e.status not in (None, 503)})}
    return out


def run(port: int, sources: list[str], headers: int, bodies: int, seconds: float) -> dict:
    slow = [SlowClients(port, headers=headers // len(sources), bodies=bodies // len(sources), drip_s=1.0, source=a)
            for a in sources]
    for s in slow:
        s.start()
    time.sleep(2)  # let the first wave connect
    canary = Canary(port, source="127.0.0.2", every_s=0.02)
    canary.start()
    time.sleep(seconds)
    canary.stop()
    for s in slow:
        s.stop()
    ms = [m for m, _ in canary.samples]
    ok = sum(1 for _, o in canary.samples if o == 200)
    failures: dict[str, int] = {}
    for _, o in canary.samples:
        if o != 200:
            failures[str(o)] = failures.get(str(o), 0) + 1
    return {"canary": {"calls": len(ms), "ok": ok, "success": ok / max(1, len(ms)), "failures": failures,
                       "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=0)},
            "slow": summarize_slow(slow)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--headers", type=int, default=5000)
    ap.add_argument("--bodies", type=int, default=500)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = Path(tempfile.mkdtemp(prefix="ferry-slow-"))
    server = rb.ferry_server("ferry", make_repo(work), work, io_threads=2)
    server.start()
    results = {"machine": rb.machine_info(), "args": vars(args)}
    try:
        for name, sources in (("one_address", ["127.0.0.1"]),
                              ("many_addresses", [f"127.0.1.{i}" for i in range(1, 51)])):
            r = run(server.port, sources, args.headers, args.bodies, args.seconds)
            results[name] = r
            c, s = r["canary"], r["slow"]
            rb.log(f"{name}: canary {c['ok']}/{c['calls']} ok ({100 * c['success']:.2f} %), p50 {c['p50_ms']:.1f} ms, "
                   f"p99 {c['p99_ms']:.1f} ms, max {c['max_ms']:.0f} ms, failures {c['failures']}; slow peak open "
                   f"{s['peak_open']}; headers closed {s['header']['closed_by_server']} (lived p50 "
                   f"{s['header']['lived_s_p50']:.1f} s, max {s['header']['lived_s_max']:.1f} s), refused "
                   f"{s['header']['refused_503']}; bodies closed {s['body']['closed_by_server']} (max "
                   f"{s['body']['lived_s_max']:.1f} s), refused {s['body']['refused_503']}")
            time.sleep(12)  # the last slow connections time out before the next arrangement
        status = server.get("/v2/health/ready")
        results["ready_after"] = status
    finally:
        server.stop()
    rb.save_results("slow-clients", results)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
