#!/usr/bin/env python3
"""Runs the hybrid benchmark (B15 of shared/benchmarks.md; "Hybrid serving" in docs/benchmarks.md): a
precomputed table's answer against the live model's, the response cache's hit against its miss, and
what a table costs per million entries.

    .venv/bin/python bench/run_hybrid_benchmarks.py                # 5 s runs, 3 interleaved reps, 1M entries
    .venv/bin/python bench/run_hybrid_benchmarks.py --quick        # 2 s runs, 1 rep, 100,000 entries

Needs build/release (ferry, bench/bench_load_client). What runs, each rep in an order rotated per rep,
against one server (`--http-thread-count 2`, the defaults otherwise):
  live      `ident`: the built-in identity backend, FP32 [16], no key: the online path's floor
  hit       `ident_table`: the same model fronted by a table; every request carries a key it holds
  miss      `ident_table` with a key the table lacks: the lookup, then the model
  cnn-hit   examples/models/cnn with `response_cache: true`, the same 1x3x224x224 binary request
  cnn-miss  the same request with `Cache-Control: no-cache` (the model runs)
at c=1 and c=4 (JSON input for the identity models, binary for the CNN). Then `ferry precompute load`
of N entries (16 FP32 values each, CSV) into a fresh data folder: load time, tables.db bytes per entry,
and the memory front's bytes per entry after touching 20,000 keys. Raw results go to
bench/results/hybrid-<UTC timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server, client and machine helpers)

IDENT = ("backend: identity\nmax_batch_size: 8\ninputs:\n  - {name: INPUT0, datatype: FP32, dims: [16]}\n"
         "outputs:\n  - {name: OUTPUT0, datatype: FP32, dims: [16]}\ninstance_group: {count: 1}\n"
         "max_queue_size: 1024\n")


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    for name, extra in (("ident", ""), ("ident_table", "precomputed: {table: bench}\n")):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.yaml").write_text(IDENT + extra)
    shutil.copytree(rb.EXAMPLES / "cnn", repo / "cnn")
    cfg = repo / "cnn" / "config.yaml"
    cfg.write_text(cfg.read_text() + "response_cache: true\n")
    return repo


def write_table(path: Path, rows: int) -> None:
    with path.open("w") as f:
        f.write("id," + ",".join(f"OUTPUT0_{k}" for k in range(16)) + "\n")
        values = ",".join(str(k * 0.5) for k in range(16))
        for i in range(rows):
            f.write(f"user-{i},{values}\n")


def load_table(repo: Path, data: Path, table: Path) -> dict:
    start = time.monotonic()
    out = subprocess.run([str(rb.FERRY), "precompute", "load", "--model-repository", str(repo), "--model",
                          "ident_table", "--table", "bench", "--file", str(table), "--data-dir", str(data)],
                         capture_output=True, text=True, check=True)
    return {"seconds": time.monotonic() - start, "info": json.loads(out.stdout)}


CASES = {
    "live": ["--model", "ident", "--shape", "1,16"],
    "hit": ["--model", "ident_table", "--shape", "1,16", "--parameters", '"key":"user-7"'],
    "miss": ["--model", "ident_table", "--shape", "1,16", "--parameters", '"key":"nobody"'],
    "cnn-hit": ["--model", "cnn", "--input-name", "image", "--shape", "1,3,224,224", "--format", "binary"],
    "cnn-miss": ["--model", "cnn", "--input-name", "image", "--shape", "1,3,224,224", "--format", "binary",
                 "--header", "Cache-Control: no-cache"],
}


def memory_per_entry(server: rb.Server, touched: int) -> dict:
    import urllib.request
    body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16], "data": [0] * 16}]})
    sources = {}
    for i in range(touched):
        req = json.loads(body)
        req["parameters"] = {"key": f"user-{i * 37}"}
        r = urllib.request.Request(f"http://127.0.0.1:{server.port}/v2/models/ident_table/infer",
                                   data=json.dumps(req).encode(), method="POST")
        with urllib.request.urlopen(r, timeout=10) as resp:
            src = resp.headers.get("x-ferry-source")
            sources[src] = sources.get(src, 0) + 1
    metrics = server.get("/metrics")
    held = {}
    for line in metrics.splitlines():
        if line.startswith("ferry_hybrid_memory{") and 'store="tables"' in line:
            what = "bytes" if 'what="bytes"' in line else "entries"
            held[what] = float(line.rsplit(" ", 1)[1])
    return {"touched": touched, "sources": sources, **held,
            "bytes_per_entry": held.get("bytes", 0) / max(1.0, held.get("entries", 0))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--conns", default="1,4")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.duration, args.entries = 1, 2.0, 100_000
    conns = [int(c) for c in args.conns.split(",") if c]
    work = Path(tempfile.mkdtemp(prefix="ferry-hybrid-bench-"))
    repo = make_repo(work)
    table = work / "table.csv"
    write_table(table, args.entries)
    record = {"machine": rb.machine_info(), "args": vars(args), "runs": [], "load": None, "memory": None}
    data = work / "data"
    record["load"] = load_table(repo, data, table)
    db = data / "tables.db"
    disk = sum(p.stat().st_size for p in data.glob("tables.db*"))
    record["load"]["disk_bytes"] = disk
    record["load"]["disk_bytes_per_entry"] = disk / args.entries
    rb.log(f"loaded {args.entries} entries in {record['load']['seconds']:.1f} s, {disk / 2**20:.0f} MiB on disk")
    port = rb.free_port()
    server = rb.Server("ferry-hybrid", [str(rb.FERRY), "serve", "--model-repository", str(repo), "--http-address",
                                        "127.0.0.1", "--http-port", str(port), "--model-control-mode", "none",
                                        "--data-dir", str(data)], port, work)
    server.start()
    try:
        names = list(CASES)
        for rep in range(args.reps):
            rb.wait_for_idle(0.3, 60)
            order = names[rep % len(names):] + names[:rep % len(names)]
            for c in conns:
                for name in order:
                    res = rb.run_client(server, CASES[name] + ["--connections", str(c)], args.duration)
                    res.update(rep=rep, case=name, c=c)
                    record["runs"].append(res)
                    rb.log(f"rep {rep} c={c} {name}: p50 {res['latency_us']['p50']:.0f} us, "
                           f"{res['throughput_rps']:.0f} req/s, errors {res['errors']}")
        record["memory"] = memory_per_entry(server, 20_000 if not args.quick else 2_000)
    finally:
        server.stop()
    stamp = dt.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    out = rb.ROOT / "bench" / "results" / f"hybrid-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    summarize(record)
    rb.log(f"raw results: {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def summarize(record: dict) -> None:
    runs = record["runs"]
    for c in sorted({r["c"] for r in runs}):
        print(f"\nc={c}: median [min-max] over reps")
        print("| case | p50 us | p99 us | req/s |")
        print("|---|---|---|---|")
        for name in CASES:
            sel = [r for r in runs if r["c"] == c and r["case"] == name]
            if not sel:
                continue
            def mm(key, sub=None):
                xs = [r[key][sub] if sub else r[key] for r in sel]
                return f"{statistics.median(xs):,.0f} [{min(xs):,.0f}-{max(xs):,.0f}]"
            print(f"| {name} | {mm('latency_us', 'p50')} | {mm('latency_us', 'p99')} | {mm('throughput_rps')} |")
        for num, den in (("hit", "live"), ("miss", "live"), ("cnn-hit", "cnn-miss")):
            ratios = []
            for rep in sorted({r["rep"] for r in runs}):
                a = [r for r in runs if r["c"] == c and r["rep"] == rep and r["case"] == num]
                b = [r for r in runs if r["c"] == c and r["rep"] == rep and r["case"] == den]
                if a and b:
                    ratios.append(a[0]["latency_us"]["p50"] / b[0]["latency_us"]["p50"])
            if ratios:
                print(f"p50 {num} / {den}: {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]")
    load, mem = record["load"], record["memory"]
    print(f"\nload: {load['info']['entries']:,} entries in {load['seconds']:.1f} s; "
          f"tables.db {load['disk_bytes'] / 2**20:.0f} MiB = {load['disk_bytes_per_entry']:.0f} B/entry "
          f"({load['disk_bytes_per_entry'] * 1e6 / 2**20:.0f} MiB per million)")
    if mem:
        print(f"memory front: {mem.get('entries', 0):,.0f} entries in {mem.get('bytes', 0) / 2**20:.1f} MiB = "
              f"{mem['bytes_per_entry']:.0f} B/entry; sources {mem['sources']}")


if __name__ == "__main__":
    sys.exit(main())
