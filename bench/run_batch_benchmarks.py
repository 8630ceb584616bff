#!/usr/bin/env python3
"""B19, batch inference (docs/benchmarks.md):

    python3 bench/run_batch_benchmarks.py               # ~4 min
    python3 bench/run_batch_benchmarks.py --records 50000 --reps 5

On the shapes example (OpenCV DNN, [3,32,32] FP32 in, 2 threads), over a JSONL of `--records` OIP
requests (about 12 KB each, the same file for everyone), interleaved per rep:
  limit    the same runtime in-process (bench_inprocess_limit) at its best batch size, rows/s;
  offline  `ferry batch` records/s (its own timing of the run, without the model load);
  server   a server batch (POST /v1/batches over a path) records/s, from the POST to `completed`;
  python   bench/peers/batch_cv2.py: json + numpy + cv2.dnn (the same OpenCV 4.6) on the same file.
Then online p50/p99 at c=1 (binary input, bench_load_client) on the same model with the server idle,
and again while a server batch runs on it. And an OpenAI-format batch of `--llm-requests` chat
requests over the tiny language model, in generated tokens/s, against the same requests sent online
by 4 clients at once (every slot busy).
Needs build/release (ferry, bench_load_client, bench_inprocess_limit). Standard library only (the
peer runs under Debian's /usr/bin/python3 with python3-opencv). Raw results: bench/results/batch-<stamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks as rb  # noqa: E402

SHAPES = rb.EXAMPLES / "shapes"


def write_input(path: Path, n: int, seed: int = 1) -> None:
    """n records of 8-bit pixel values (about 12 KB of JSON each), drawn from 256 distinct images."""
    rng = random.Random(seed)
    images = [json.dumps([rng.randrange(256) for _ in range(3 * 32 * 32)]) for _ in range(256)]
    with open(path, "w") as f:
        for i in range(n):
            f.write(f'{{"id": "r{i}", "inputs": [{{"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", '
                    f'"data": {images[i % 256]}}}]}}\n')


def post(port: int, path: str, body: dict, timeout=60) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def get(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def wait_batch(port: int, batch_id: str, timeout=1200) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = get(port, f"/v1/batches/{batch_id}")
        if b["status"] in ("completed", "failed", "cancelled"):
            return b
        time.sleep(0.01)
    raise RuntimeError(f"batch {batch_id} did not finish")


def batch_server(workdir: Path, name: str, repo: Path, input_root: Path) -> rb.Server:
    port = rb.free_port()
    cmd = [str(rb.FERRY), "serve", "--model-repository", str(repo), "--http-address", "127.0.0.1",
           "--http-port", str(port), "--model-control-mode", "none", "--batch-input-root", str(input_root),
           "--data-dir", str(workdir / f"{name}-data")]
    return rb.Server(name, cmd, port, workdir)


def run_offline(workdir: Path, input_path: Path, rep: int) -> dict:
    out = workdir / f"offline-{rep}.jsonl"
    r = subprocess.run(rb.PIN + [str(rb.FERRY), "batch", "--model-repository", str(rb.EXAMPLES), "--model", "shapes",
                        "--input", str(input_path), "--output", str(out), "--progress", "none"],
                       capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    m = re.search(r"this run: (\d+) records in ([\d.]+) s", r.stderr)
    out.unlink()
    return {"records": int(m.group(1)), "seconds": float(m.group(2)), "records_per_s": int(m.group(1)) / float(m.group(2))}


def run_server_batch(workdir: Path, input_path: Path, rep: int) -> dict:
    srv = batch_server(workdir, f"ferry-batch-{rep}", rb.EXAMPLES, input_path.parent)
    srv.start()
    try:
        start = time.perf_counter()
        status, batch = post(srv.port, "/v1/batches", {"model": "shapes", "input": input_path.name})
        if status != 200:
            raise RuntimeError(batch)
        done = wait_batch(srv.port, batch["id"])
        seconds = time.perf_counter() - start
    finally:
        srv.stop()
    n = done["request_counts"]["completed"]
    return {"records": n, "seconds": seconds, "records_per_s": n / seconds, "status": done["status"]}


def run_python(workdir: Path, input_path: Path, rep: int) -> dict:
    out = workdir / f"python-{rep}.jsonl"
    r = subprocess.run(rb.PIN + ["/usr/bin/python3", str(rb.ROOT / "bench" / "peers" / "batch_cv2.py"), "--model",
                        str(SHAPES / "1" / "model.onnx"), "--input", str(input_path), "--output", str(out),
                        "--batch", "8"], capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    out.unlink()
    return json.loads(r.stdout.strip().splitlines()[-1])


def online_during_batch(workdir: Path, input_path: Path, duration: float) -> dict:
    online = ["--model", "shapes", "--input-name", "image", "--shape", "1,3,32,32", "--format", "binary",
              "--binary-output", "--connections", "1"]
    srv = batch_server(workdir, "ferry-online", rb.EXAMPLES, input_path.parent)
    srv.start()
    try:
        rb.run_client(srv, online, 2, 0)
        idle = rb.run_client(srv, online, duration)
        status, batch = post(srv.port, "/v1/batches", {"model": "shapes", "input": input_path.name})
        time.sleep(0.5)
        busy = rb.run_client(srv, online, duration)
        during = get(srv.port, f"/v1/batches/{batch['id']}")
        # How far the batch got while online traffic ran beside it.
        return {"idle": idle, "busy": busy, "batch_status_after": during["status"],
                "batch_records_after": during["records_done"]}
    finally:
        srv.stop()


def llm_tokens(workdir: Path, requests: int) -> dict:
    bodies = [{"model": "tiny_llm", "max_tokens": 64, "temperature": 0.8, "seed": i, "ignore_eos": True,
               "messages": [{"role": "user", "content": f"Tell me about licence number {i}"}]} for i in range(requests)]
    (workdir / "llm-in").mkdir(exist_ok=True)
    path = workdir / "llm-in" / "chat.jsonl"
    path.write_text("".join(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                                        "body": b}) + "\n" for i, b in enumerate(bodies)))
    srv = batch_server(workdir, "ferry-llm", rb.EXAMPLES, path.parent)
    srv.start()
    try:
        start = time.perf_counter()
        status, batch = post(srv.port, "/v1/batches", {"input": path.name, "endpoint": "/v1/chat/completions",
                                                       "completion_window": "24h"})
        done = wait_batch(srv.port, batch["id"])
        batch_s = time.perf_counter() - start
        out = get_file(srv.port, done["output_file_id"])
        batch_tokens = sum(json.loads(line)["response"]["body"]["usage"]["completion_tokens"] for line in out.splitlines())
        tokens, lock = [0], threading.Lock()
        queue = list(bodies)

        def client():
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                status, answer = post(srv.port, "/v1/chat/completions", body, timeout=300)
                with lock:
                    tokens[0] += answer["usage"]["completion_tokens"]
        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        online_s = time.perf_counter() - start
    finally:
        srv.stop()
    return {"requests": requests, "batch": {"tokens": batch_tokens, "seconds": batch_s, "tokens_per_s": batch_tokens / batch_s},
            "online_4_clients": {"tokens": tokens[0], "seconds": online_s, "tokens_per_s": tokens[0] / online_s}}


def get_file(port: int, file_id: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", f"/v1/files/{file_id}/content")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def summarize(results: dict) -> str:
    runs = results["runs"]
    lines = []

    def med(kind):
        xs = [r["records_per_s"] for r in runs if r["kind"] == kind]
        return rb.med(xs), min(xs), max(xs)
    limit = med("limit")
    lines.append(f"limit (in-process, best batch): {limit[0]:.0f} rows/s (min {limit[1]:.0f}, max {limit[2]:.0f})")
    for kind in ("offline", "server", "python"):
        m = med(kind)
        lines.append(f"{kind:8s}: {m[0]:.0f} records/s (min {m[1]:.0f}, max {m[2]:.0f}); "
                     f"{m[0] / limit[0]:.2f}x the limit")
    py = med("python")[0]
    for kind in ("offline", "server"):
        lines.append(f"{kind} / python: {med(kind)[0] / py:.2f}x")
    o = results.get("online")
    if o:
        lines.append(f"online c=1 p50/p99 idle {o['idle']['latency_us']['p50']:.0f}/{o['idle']['latency_us']['p99']:.0f} us; "
                     f"during a batch {o['busy']['latency_us']['p50']:.0f}/{o['busy']['latency_us']['p99']:.0f} us "
                     f"({o['busy']['latency_us']['p99'] / o['idle']['latency_us']['p99']:.2f}x idle p99); "
                     f"the batch had done {o['batch_records_after']} records ({o['batch_status_after']})")
    llm = results.get("llm")
    if llm:
        lines.append(f"LLM: batch {llm['batch']['tokens_per_s']:.0f} tok/s, online with 4 clients "
                     f"{llm['online_4_clients']['tokens_per_s']:.0f} tok/s "
                     f"({llm['batch']['tokens_per_s'] / llm['online_4_clients']['tokens_per_s']:.2f}x)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--online-duration", type=float, default=8)
    ap.add_argument("--llm-requests", type=int, default=32)
    ap.add_argument("--out", default=str(rb.ROOT / "bench" / "results"))
    args = ap.parse_args()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results = {"meta": {"started": stamp, "machine": rb.machine_info(), "args": vars(args)}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="ferry-bench-batch-") as tmp:
        workdir = Path(tmp)
        (workdir / "in").mkdir()
        input_path = workdir / "in" / "shapes.jsonl"
        write_input(input_path, args.records)
        long_input = workdir / "in" / "shapes-long.jsonl"
        write_input(long_input, args.records * 3, seed=2)
        order = ["limit", "offline", "server", "python"]
        for rep in range(args.reps):
            rb.wait_for_load(1.0, 120, f"rep {rep}")
            for kind in order[rep % 4:] + order[:rep % 4]:
                if kind == "limit":
                    res = rb.run_inprocess(SHAPES, 50, 3, "1x1,1x2,1x4,1x8")
                    best = max(res["throughput"], key=lambda t: t["rows_per_s"])
                    run = {"records_per_s": best["rows_per_s"], "batch": best["batch"], "raw": res}
                else:
                    run = {"offline": run_offline, "server": run_server_batch, "python": run_python}[kind](
                        workdir, input_path, rep)
                run.update(kind=kind, rep=rep)
                rb.log(f"rep {rep} {kind}: {run['records_per_s']:.0f} records/s")
                results["runs"].append(run)
        results["online"] = online_during_batch(workdir, long_input, args.online_duration)
        results["llm"] = llm_tokens(workdir, args.llm_requests)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"batch-{stamp}.json"
    path.write_text(json.dumps(results, indent=1))
    print(summarize(results))
    print(f"raw results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
