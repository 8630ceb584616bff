#!/usr/bin/env python3
"""Benchmarks for asynchronous jobs (B12's job part, docs/benchmarks.md):

    python3 bench/run_job_benchmarks.py            # ~4 min
    python3 bench/run_job_benchmarks.py --submits 5000 --backlog 10000

J1  submit throughput and latency: `--clients` threads each submit jobs (the identity example, a 64-byte
    JSON tensor) over keep-alive connections, each with its own Idempotency-Key, against a Ferry with
    `--job-durability durable` and then `fast`. Reported: submits/s and submit p50/p99 (each 202 was
    sent after its commit). Jobs run meanwhile (2 at a time) and share the machine.
J2  online latency under a job backlog: closed-loop c=1 online requests to the shapes example (12 KB
    binary input, bench_load_client) with no jobs, then again while `--backlog` jobs for the same model
    wait in the store and the runner works through them at job priority. Reported: online p50/p99 both
    ways, and the job counts before and after the measurement (the backlog must outlast it).
Needs build/release (ferry, bench_load_client). Standard library only. Raw results go to
bench/results/jobs-<UTC stamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server, client and machine helpers)

IDENTITY_JOB = json.dumps({"model": "identity", "request": {"inputs": [
    {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": [float(i) for i in range(16)]}]}}).encode()


def shapes_job() -> bytes:
    # The shapes classifier's input as OIP JSON (jobs take JSON): 3,072 values, ~12 KB a job.
    return json.dumps({"model": "shapes", "request": {"inputs": [
        {"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.5] * (3 * 32 * 32)}]}}).encode()


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def submit_many(port: int, body: bytes, total: int, clients: int, prefix: str) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            conn.request("POST", "/v1/jobs", body=body, headers={"Idempotency-Key": f"{prefix}-{i}",
                                                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            mine.append((time.perf_counter() - t0) * 1e6)
            if resp.status != 202:
                with lock:
                    errors.append(f"{resp.status}")
        conn.close()
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"submits": len(latencies), "seconds": round(wall, 3), "submits_per_s": round(len(latencies) / wall, 1),
            "p50_us": round(percentile(latencies, 50)), "p99_us": round(percentile(latencies, 99)),
            "errors": len(errors), "error_sample": errors[:5]}


def job_counts(server: rb.Server) -> dict:
    counts = {}
    for state in ("queued", "running", "succeeded"):
        token, n = None, 0
        while True:
            page = json.loads(server.get(f"/v1/jobs?status={state}&page_size=1000" + (f"&page_token={token}" if token else "")))
            n += len(page["jobs"])
            token = page.get("next_page_token")
            if not token:
                break
        counts[state] = n
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--submits", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--backlog", type=int, default=10000, help="jobs waiting during J2")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per online measurement")
    ap.add_argument("--out", default=str(rb.ROOT / "bench" / "results"))
    args = ap.parse_args()
    stamp = dt.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    results = {"meta": {"started": stamp, "machine": rb.machine_info(), "args": vars(args),
                        "command": " ".join([sys.executable] + sys.argv)}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="ferry-bench-jobs-") as tmp:
        workdir = Path(tmp)
        for durability in ("durable", "fast"):
            srv = rb.ferry_server(f"ferry-{durability}", rb.EXAMPLES, workdir)
            srv.cmd += ["--data-dir", str(workdir / f"data-{durability}"), "--job-durability", durability,
                        "--max-active-jobs", str(args.submits + 10)]
            srv.start(timeout_s=180)
            try:
                submit_many(srv.port, IDENTITY_JOB, 200, args.clients, "warm")
                res = submit_many(srv.port, IDENTITY_JOB, args.submits, args.clients, "j1")
                results["runs"].append({"bench": "J1", "durability": durability, **res})
                rb.log(f"J1 {durability}: {res}")
            finally:
                srv.stop()

        srv = rb.ferry_server("ferry-backlog", rb.EXAMPLES, workdir)
        srv.cmd += ["--data-dir", str(workdir / "data-backlog"), "--max-active-jobs", str(args.backlog + 10)]
        srv.start(timeout_s=180)
        try:
            online = ["--model", "shapes", "--input-name", "image", "--shape", "1,3,32,32", "--format", "binary",
                      "--binary-output", "--connections", "1"]
            rb.run_client(srv, online, 2, 0)
            quiet = rb.run_client(srv, online, args.duration)
            results["runs"].append({"bench": "J2", "backlog": 0, **quiet})
            rb.log(f"J2 no backlog: p50 {quiet['latency_us']['p50']:.0f} p99 {quiet['latency_us']['p99']:.0f} us")
            body = shapes_job()
            submit_many(srv.port, body, args.backlog, args.clients, "backlog")
            before = job_counts(srv)
            busy = rb.run_client(srv, online, args.duration)
            after = job_counts(srv)
            results["runs"].append({"bench": "J2", "backlog": args.backlog, "jobs_before": before,
                                    "jobs_after": after, **busy})
            rb.log(f"J2 backlog {before}: p50 {busy['latency_us']['p50']:.0f} p99 {busy['latency_us']['p99']:.0f} us; "
                   f"after {after}")
        finally:
            srv.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"jobs-{stamp}.json"
    path.write_text(json.dumps(results, indent=1))
    for r in results["runs"]:
        if r["bench"] == "J1":
            print(f"J1 {r['durability']:8s} {r['submits_per_s']:8.1f} submits/s  p50 {r['p50_us']} us  "
                  f"p99 {r['p99_us']} us  errors {r['errors']}")
        else:
            print(f"J2 backlog {r['backlog']:6d}  online shapes c=1 p50 {r['latency_us']['p50']:.0f} us  "
                  f"p99 {r['latency_us']['p99']:.0f} us  ({r['throughput_rps']:.1f} req/s)")
    print(f"raw results: {path.relative_to(rb.ROOT) if path.is_relative_to(rb.ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
