#!/usr/bin/env python3
"""Runs B15 (docs/benchmarks.md): a 500-tree, depth-8 XGBoost model served by Ferry's xgboost backend,
against the same library called in-process and against MLServer's XGBoost runtime.

    .venv/bin/python bench/run_xgboost_benchmarks.py                 # 10 s runs, 3 interleaved reps
    .venv/bin/python bench/run_xgboost_benchmarks.py --quick         # 2 s runs, 1 rep
    .venv/bin/python bench/run_xgboost_benchmarks.py --build build/xgb --mlserver-venv /path/to/venv

Needs the build (ferry, bench/bench_load_client, bench/bench_inprocess_limit with FERRY_WITH_XGBOOST),
.venv with xgboost 1.7.4 (scripts/setup-python.sh) to train the model, and for the peer a virtual
environment holding bench/requirements-mlserver.txt (skipped with a note when absent):

    /usr/bin/python3 -m venv .venv-mlserver && .venv-mlserver/bin/pip install -r bench/requirements-mlserver.txt

The model: binary:logistic on 32 synthetic features (20,000 rows), 500 rounds of max_depth 8, trained
once and kept in bench/results/xgb500-repo/ (gitignored). Every runtime gets one compute thread: Ferry's config
says `instance_group: {count: 1, threads: 1}`; the in-process limit loads that config; MLServer runs with
OMP_NUM_THREADS=1 (XGBoost's default nthread is OpenMP's) and its default settings otherwise (one
inference worker process). What runs, each rep in an order rotated per rep:
  inprocess  bench_inprocess_limit: the backend's Execute at batch 1 (latency) and 1x64 (rows/s)
  ferry      bench_load_client, c=1, at batch 1 and batch 64, binary tensors and JSON; batch 64 at c=2
  mlserver   the same client, c=1, batch 1 and 64, JSON (MLServer has no binary tensor extension)
Raw results go to bench/results/xgboost-<UTC timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server, client and machine helpers)

FEATURES = 32
REPO = rb.ROOT / "bench" / "results" / "xgb500-repo"  # a link would leave the repository: refused
MODEL_DIR = REPO / "xgb500"
CONFIG = """name: xgb500
backend: xgboost
platform: xgboost
model_filename: model.json
max_batch_size: 64
inputs:
  - {name: features, datatype: FP32, dims: [32]}
outputs:
  - {name: probability, datatype: FP32, dims: [1]}
dynamic_batching: {max_queue_delay_us: 0}
instance_group: {count: 1, threads: 1}
max_queue_size: 256
"""


def make_model() -> Path:
    """Trains the 500-tree model once (about a minute on two cores) and writes it as a Ferry model folder."""
    model = MODEL_DIR / "1" / "model.json"
    if not model.exists():
        import numpy as np
        import xgboost as xgb

        rng = np.random.default_rng(500)
        x = rng.normal(0, 1, (20000, FEATURES)).astype(np.float32)
        logit = x[:, :8] @ rng.normal(0, 1, 8) + np.sin(3 * x[:, 8]) * x[:, 9] + 0.5 * x[:, 10] * x[:, 11]
        y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.float32)
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 8, "eta": 0.05, "tree_method": "hist",
                             "nthread": os.cpu_count(), "seed": 500}, xgb.DMatrix(x, label=y), 500)
        model.parent.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(model))
    (MODEL_DIR / "config.yaml").write_text(CONFIG)
    return MODEL_DIR


def mlserver_server(venv: Path, workdir: Path) -> rb.Server:
    folder = workdir / "mlserver"
    (folder / "xgb500").mkdir(parents=True, exist_ok=True)
    shutil.copy(MODEL_DIR / "1" / "model.json", folder / "xgb500" / "model.json")
    (folder / "xgb500" / "model-settings.json").write_text(json.dumps(
        {"name": "xgb500", "implementation": "mlserver_xgboost.XGBoostModel", "parameters": {"uri": "./model.json"}}))
    port = rb.free_port()
    (folder / "settings.json").write_text(json.dumps(
        {"http_port": port, "grpc_port": rb.free_port(), "metrics_port": rb.free_port(), "debug": False}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return rb.Server("mlserver", [str(venv / "bin" / "mlserver"), "start", str(folder)], port, workdir, env=env,
                     cwd=str(folder))


def client_args(batch: int, fmt: str, conns: int = 1) -> list[str]:
    args = ["--model", "xgb500", "--input-name", "features", "--shape", f"{batch},{FEATURES}", "--format", fmt,
            "--connections", str(conns)]
    return args + (["--binary-output"] if fmt == "binary" else [])


def check_answers(ferry_port: int, mlserver_port: int | None) -> dict:
    """One JSON request of 4 rows to each server: the answers must agree with each other."""
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [4, FEATURES],
                        "data": [((i * 37) % 100) / 25.0 - 2.0 for i in range(4 * FEATURES)]}]}

    def post(port):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/xgb500/infer", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["outputs"][0]["data"]

    out = {"ferry": post(ferry_port)}
    if mlserver_port:
        out["mlserver"] = post(mlserver_port)
        out["max_abs_diff"] = max(abs(a - b) for a, b in zip(out["ferry"], out["mlserver"]))
    return out


def rep(i: int, args, workdir: Path, record: dict) -> None:
    def inprocess():
        record["inprocess"].append(rb.run_inprocess(MODEL_DIR, args.iters, args.duration, "1x1,1x64"))

    def ferry():
        server = rb.ferry_server("ferry", REPO, workdir)
        server.start()
        try:
            runs = {f"{fmt}_b{b}": rb.run_client(server, client_args(b, fmt), args.duration)
                    for b in (1, 64) for fmt in ("binary", "json")}
            # Two connections: one request's transfer overlaps the other's compute (batches of 64 never merge).
            runs["binary_b64_c2"] = rb.run_client(server, client_args(64, "binary", 2), args.duration)
            record["ferry"].append(runs)
        finally:
            server.stop()

    def mlserver():
        if not args.mlserver_venv:
            return
        server = mlserver_server(args.mlserver_venv, workdir)
        server.start(timeout_s=120)
        try:
            record["mlserver"].append({f"json_b{b}": rb.run_client(server, client_args(b, "json"), args.duration)
                                       for b in (1, 64)})
            if i == 0:
                ferry_server = rb.ferry_server("ferry-check", REPO, workdir)
                ferry_server.start()
                try:
                    record["answers"] = check_answers(ferry_server.port, server.port)
                finally:
                    ferry_server.stop()
        finally:
            server.stop()

    order = [inprocess, ferry, mlserver]
    for step in order[i % 3:] + order[:i % 3]:
        rb.log(f"rep {i}: {step.__name__}")
        step()


def summarize(record: dict) -> str:
    med = statistics.median
    lines = []
    inproc_b1 = med(r["latency_b1"]["p50_us"] for r in record["inprocess"])
    inproc_b64 = med(t["rows_per_s"] for r in record["inprocess"] for t in r["throughput"] if t["batch"] == 64)
    lines.append(f"in-process (Execute, 1 thread): batch 1 p50 {inproc_b1:.0f} us; batch 64 {inproc_b64:,.0f} rows/s")
    for key in ("binary_b1", "json_b1", "binary_b64", "json_b64"):
        runs = [r[key] for r in record["ferry"]]
        batch = 64 if key.endswith("64") else 1
        rps = med(r["throughput_rps"] for r in runs)
        lines.append(f"ferry {key:10s} c=1: p50 {med(r['latency_us']['p50'] for r in runs):.0f} us, "
                     f"{rps:,.0f} req/s = {rps * batch:,.0f} rows/s")
    ferry_b64 = med(r["binary_b64"]["throughput_rps"] for r in record["ferry"]) * 64
    ferry_b64_c2 = med(r["binary_b64_c2"]["throughput_rps"] for r in record["ferry"]) * 64
    lines.append(f"ferry binary_b64   c=2: {ferry_b64_c2:,.0f} rows/s")
    lines.append(f"served / in-process at batch 64 (binary): c=1 {ferry_b64 / inproc_b64:.2f}x, "
                 f"c=2 {ferry_b64_c2 / inproc_b64:.2f}x (target >= 0.9)")
    if record["mlserver"]:
        for key in ("json_b1", "json_b64"):
            ml = med(r[key]["throughput_rps"] for r in record["mlserver"])
            fe = med(r[key]["throughput_rps"] for r in record["ferry"])
            lines.append(f"mlserver {key} c=1: p50 {med(r[key]['latency_us']['p50'] for r in record['mlserver']):.0f} us, "
                         f"{ml:,.0f} req/s; ferry/mlserver {fe / ml:.1f}x (JSON both; target >= 5x)")
        fe_bin = med(r["binary_b1"]["throughput_rps"] for r in record["ferry"])
        ml_b1 = med(r["json_b1"]["throughput_rps"] for r in record["mlserver"])
        lines.append(f"ferry binary b1 / mlserver json b1: {fe_bin / ml_b1:.1f}x")
    if "answers" in record and "max_abs_diff" in record["answers"]:
        lines.append(f"answers agree: max abs diff ferry vs mlserver {record['answers']['max_abs_diff']:.2g}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", type=Path, default=rb.BUILD)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--mlserver-venv", type=Path, default=rb.ROOT / ".venv-mlserver")
    args = p.parse_args()
    if args.quick:
        args.duration, args.reps, args.iters = 2.0, 1, 300
    rb.FERRY, rb.LOAD_CLIENT = args.build / "ferry", args.build / "bench" / "bench_load_client"
    rb.INPROCESS = args.build / "bench" / "bench_inprocess_limit"
    if not (args.mlserver_venv / "bin" / "mlserver").exists():
        rb.log(f"no MLServer in {args.mlserver_venv}: the peer is skipped")
        args.mlserver_venv = None
    make_model()
    record = {"machine": rb.machine_info(), "args": {k: str(v) for k, v in vars(args).items()},
              "inprocess": [], "ferry": [], "mlserver": []}
    with tempfile.TemporaryDirectory(prefix="ferry-xgb-bench-") as tmp:
        for i in range(args.reps):
            rep(i, args, Path(tmp), record)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = rb.ROOT / "bench" / "results" / f"xgboost-{stamp}.json"
    out.write_text(json.dumps(record, indent=1))
    print(summarize(record))
    print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
