#!/usr/bin/env python3
"""Scale to zero (issue: cloud costs; "Scale to zero" in docs/benchmarks.md): what a request pays when it
wakes a model that was unloaded while idle, and whether sleep and wake cycles give memory back.

    .venv/bin/python bench/run_scale_to_zero_benchmarks.py             # 20 wakes per model, 100 cycles
    .venv/bin/python bench/run_scale_to_zero_benchmarks.py --quick     # 5 wakes per model, 20 cycles

Needs build/release/ferry. One server (defaults otherwise, `--http-thread-count 2`) serves copies of three
examples with `idle_unload_s: 0.3`: `cnn` (OpenCV DNN, 1x3x224x224 FP32, binary input), `shapes_openvino`
(OpenVINO, 1x3x32x32) and `tiny_llm` (llama.cpp; a 4-token greedy completion). For each: the warm
request's latency (median of 20 on the loaded model), then N times: wait until the index says the model
is asleep, send one request and time it on the client, keeping the server's `x-ferry-cold-start-ms`
(tensor models) and its `ferry_model_cold_start_duration_seconds` histogram. Then the cycles: the CNN
woken and put back to sleep C times, the server's RSS (VmRSS) read right after each wake's answer and
after each sleep, and its open file descriptors after each sleep. Raw results go to bench/results/scale-to-zero-<UTC timestamp>.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402  (the shared server and machine helpers)

ADMIN = "bench-admin"
IDLE_S = 0.3
MODELS = ("cnn", "shapes_openvino", "tiny_llm")


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    for name in MODELS:
        shutil.copytree(rb.EXAMPLES / name, repo / name, ignore=shutil.ignore_patterns("reference"))
        cfg = repo / name / "config.yaml"
        cfg.write_text(cfg.read_text() + f"idle_unload_s: {IDLE_S}\n")
    return repo


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout=60.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def binary_infer_body(name: str, x: np.ndarray) -> tuple[bytes, dict]:
    header = json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": list(x.shape),
                                     "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                  "Content-Type": "application/octet-stream"}


def make_requests() -> dict:
    rng = np.random.default_rng(1)
    cnn_body, cnn_headers = binary_infer_body("image", rng.random((1, 3, 224, 224), dtype=np.float32))
    ov_body, ov_headers = binary_infer_body("image", rng.random((1, 3, 32, 32), dtype=np.float32))
    llm = json.dumps({"model": "tiny_llm", "prompt": "The cat", "max_tokens": 4, "temperature": 0}).encode()
    return {
        "cnn": ("POST", "/v2/models/cnn/infer", cnn_body, cnn_headers),
        "shapes_openvino": ("POST", "/v2/models/shapes_openvino/infer", ov_body, ov_headers),
        "tiny_llm": ("POST", "/v1/completions", llm, {"Content-Type": "application/json"}),
    }


def asleep(port: int, model: str) -> bool:
    status, _, body = request(port, "POST", "/v2/repository/index", b"{}", {"Authorization": f"Bearer {ADMIN}"})
    assert status == 200, body
    return any(e["name"] == model and "asleep" in e.get("reason", "") for e in json.loads(body))


def wait_asleep(port: int, model: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if asleep(port, model):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{model} never fell asleep")


def timed(port: int, req) -> tuple[float, dict]:
    method, path, body, headers = req
    t0 = time.perf_counter()
    status, h, data = request(port, method, path, body, headers)
    ms = (time.perf_counter() - t0) * 1000
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {data[:300]!r}")
    return ms, h


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def proc_status(pid: int) -> dict:
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    return {"rss_mb": rss_kb / 1024, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def cold_start_histogram(server: rb.Server, model: str) -> dict:
    text = server.get("/metrics")
    out = {}
    for key in ("sum", "count"):
        prefix = f'ferry_model_cold_start_duration_seconds_{key}{{model="{model}"}} '
        out[key] = next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--wakes", type=int, default=None)
    ap.add_argument("--cycles", type=int, default=None)
    args = ap.parse_args()
    wakes = args.wakes or (5 if args.quick else 20)
    cycles = args.cycles or (20 if args.quick else 100)

    work = Path(tempfile.mkdtemp(prefix="ferry-s2z-"))
    repo = make_repo(work)
    port = rb.free_port()
    cmd = [str(rb.FERRY), "serve", "--model-repository", str(repo), "--http-address", "127.0.0.1",
           "--http-port", str(port), "--model-control-mode", "none", "--http-thread-count", "2",
           "--admin-key", ADMIN, "--data-dir", str(work / "data")]
    server = rb.Server("ferry", cmd, port, work)
    server.start()
    reqs = make_requests()
    results = {"machine": rb.machine_info(), "wakes": wakes, "cycles": cycles, "idle_unload_s": IDLE_S,
               "models": {}}
    try:
        for model in MODELS:
            warm = [timed(port, reqs[model])[0] for _ in range(20)]
            client, header = [], []
            for _ in range(wakes):
                wait_asleep(port, model)
                ms, h = timed(port, reqs[model])
                client.append(ms)
                if "x-ferry-cold-start-ms" in h:
                    header.append(float(h["x-ferry-cold-start-ms"]))
            hist = cold_start_histogram(server, model)
            results["models"][model] = {"warm_ms": warm, "cold_client_ms": client, "cold_header_ms": header,
                                        "histogram": hist}
            rb.log(f"{model}: warm p50 {statistics.median(warm):.2f} ms; cold p50 {pct(client, 50):.1f} ms "
                   f"p99 {pct(client, 99):.1f} ms; server's load mean "
                   f"{1000 * hist['sum'] / max(1, hist['count']):.1f} ms over {hist['count']:.0f}")
        samples = []
        for i in range(cycles):
            timed(port, reqs["cnn"])
            awake = proc_status(server.proc.pid)
            wait_asleep(port, "cnn")
            samples.append({**proc_status(server.proc.pid), "awake_rss_mb": awake["rss_mb"]})
        results["cycles_samples"] = samples
        rss = [s["rss_mb"] for s in samples]
        fds = [s["fds"] for s in samples]
        awake_rss = [s["awake_rss_mb"] for s in samples]
        rb.log(f"cycles: RSS asleep first {rss[0]:.1f} MB, second {rss[1]:.1f}, last {rss[-1]:.1f} MB, "
               f"max {max(rss):.1f} MB; awake median {statistics.median(awake_rss):.1f} MB; "
               f"fds first {fds[0]}, last {fds[-1]}, max {max(fds)}")
    finally:
        server.stop()
    rb.save_results("scale-to-zero", results)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
