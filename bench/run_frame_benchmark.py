#!/usr/bin/env python3
"""B11: camera frames over the WebSocket frame channel at a fixed rate, against the in-process limit.

A camera client sends one frame every 1/fps s (an absolute schedule, so a slow answer never delays the
next frame) to ws://.../v1/ws/frames/{model} for --duration s, and records when each frame's result
came back. Targets (shared/benchmarks.md B11): p99 frame-to-result latency <= the in-process
inference p99 + 3 ms, and <= 33 ms; zero backlog growth (frames neither answered nor dropped stay at
most the two the server may hold). The limit is bench_inprocess_limit: the model's Execute loaded as
the server loads it, on the tensor the backend takes (pre-processing counts against the server).

  .venv/bin/python bench/run_frame_benchmark.py                       # line_tracking, raw frames, 60 s
  .venv/bin/python bench/run_frame_benchmark.py --encoding jpeg --model line_search --duration 20
  .venv/bin/python bench/run_frame_benchmark.py --peer fastapi --encoding jpeg --size 640x480

--peer fastapi also measures bench/peers/fastapi_frames.py (FastAPI on uvicorn[standard], one worker,
from .venv-bench; bash bench/setup.sh): the same protocol, pre-processing (from config.yaml) and ONNX
run with cv2.dnn on one thread, the same latest-frame-wins policy, inference off the event loop. It
runs after Ferry (never at the same time) with the same client and frames, and the report gives the
ratio of overheads, (peer p99 - in-process p99) / (Ferry p99 - in-process p99) (target: >= 3).

Frames come from the rug-cutting simulator (examples/rug-cutting/rugsim), rendered at 320x240 and
scaled with cv2.resize to --size (640x480 is B11's camera; only --encoding jpeg, as the raw size is the
config's). Prints a Markdown table and writes JSON (--out).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "rug-cutting"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def make_frames(count: int, encoding: str, size: tuple[int, int] = (320, 240)) -> list[bytes]:
    """Views along a cut across simulated rugs of both types, as the camera would give them."""
    from rugsim.camera import Camera
    from rugsim.rug import Rug
    import cv2

    camera = Camera()
    frames = []
    rng = np.random.default_rng(11)
    for i in range(count):
        rug = Rug("S1" if i % 2 else "L1", 20000 + i // 10)
        x = 100.0 + 10.0 * (i % 10) * 12
        bgr = camera.render(rug, rug.line_y(x) + rng.uniform(-6, 6), x, t_s=i / 30, speed_mm_s=(150.0, 0.0), rng=rng)
        if (bgr.shape[1], bgr.shape[0]) != size:
            bgr = cv2.resize(bgr, size)
        if encoding == "jpeg":
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            frames.append(data.tobytes())
        else:
            frames.append(np.ascontiguousarray(bgr).tobytes())
    return frames


def inprocess_limit(binary: Path, model_dir: Path, iters: int) -> dict:
    out = subprocess.run([str(binary), "--model-dir", str(model_dir), "--iters", str(iters), "--configs", ""],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["latency_b1"]


def start_ferry(binary: Path, models: Path, port: int, data_dir: Path, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([str(binary), "serve", "--model-repository", str(models), "--http-port", str(port),
                             "--data-dir", str(data_dir), "--model-control-mode", "none"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    return wait_ready(proc, port, log, "ferry")


def start_fastapi(models: Path, port: int, log: Path) -> subprocess.Popen:
    uvicorn = ROOT / ".venv-bench" / "bin" / "uvicorn"
    if not uvicorn.exists():
        raise SystemExit("no .venv-bench: run bash bench/setup.sh")
    proc = subprocess.Popen([str(uvicorn), "--app-dir", str(ROOT / "bench" / "peers"), "fastapi_frames:app",
                             "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
                            env={**os.environ, "FERRY_MODELS": str(models)}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    return wait_ready(proc, port, log, "the FastAPI peer")


def wait_ready(proc: subprocess.Popen, port: int, log: Path, name: str) -> subprocess.Popen:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{name} did not become ready; see {log}:\n{log.read_text()[-2000:]}")


def stream(port: int, model: str, frames: list[bytes], fps: float, duration: float) -> dict:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/v1/ws/frames/{model}", timeout=10)
    sent_at: dict[int, float] = {}
    results: dict[int, tuple[float, float]] = {}  # frame -> (client latency ms, server_ms)
    outputs: dict[int, dict] = {}
    errors: list[dict] = []
    dropped = [0]
    backlog: list[int] = []  # frames neither answered nor dropped, sampled at each send
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                msg = json.loads(ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return  # closed at the end of the run
            now = time.perf_counter()
            if msg["type"] == "result":
                results[msg["frame"]] = ((now - sent_at[msg["frame"]]) * 1000, msg["server_ms"])
                outputs[msg["frame"]] = msg["outputs"]
                dropped[0] = msg["dropped"]
            else:
                errors.append(msg)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    total = int(duration * fps)
    start = time.perf_counter()
    for i in range(total):
        target = start + i / fps
        while (wait := target - time.perf_counter()) > 0:
            time.sleep(min(wait, 0.002))
        sent_at[i] = time.perf_counter()
        ws.send_binary(frames[i % len(frames)])
        backlog.append(i - len(results) - dropped[0] - len(errors))
    deadline = time.perf_counter() + 5
    while len(results) + dropped[0] + len(errors) < total and time.perf_counter() < deadline:
        time.sleep(0.01)
    done.set()
    ws.close()
    if not results:
        raise SystemExit(f"no frame was answered; errors: {errors[:3]}")
    latencies = [r[0] for r in results.values()]
    server = [r[1] for r in results.values()]
    half = len(backlog) // 2
    return {
        "frames_sent": total, "answered": len(results), "dropped": dropped[0], "errors": len(errors),
        "client_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies)},
        "server_ms": {"p50": percentile(server, 50), "p99": percentile(server, 99)},
        "backlog_max": max(backlog), "backlog_mean_first_half": statistics.fmean(backlog[:half]),
        "backlog_mean_second_half": statistics.fmean(backlog[half:]), "first_error": errors[0] if errors else None,
        "outputs": outputs,
    }


def run_server(name: str, args, frames: list[bytes]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if name == "ferry":
            proc = start_ferry(args.ferry, args.models, args.port, Path(tmp) / "data", Path(tmp) / "ferry.log")
        else:
            proc = start_fastapi(args.models, args.port + 1, Path(tmp) / "peer.log")
        try:
            return stream(args.port + (name != "ferry"), args.model, frames, args.fps, args.duration)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def output_gap(a: dict[int, dict], b: dict[int, dict]) -> float | None:
    """The largest difference between two servers' outputs for the frames both answered."""
    gaps = [abs(x - y) for i in a.keys() & b.keys() for name in a[i] for x, y in zip(a[i][name], b[i].get(name, []))]
    return max(gaps) if gaps else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=ROOT / "examples" / "rug-cutting" / "models")
    ap.add_argument("--model", default="line_tracking")
    ap.add_argument("--encoding", choices=["raw", "jpeg"], default="raw")
    ap.add_argument("--size", default="320x240", help="frame size WxH (not 320x240: --encoding jpeg only)")
    ap.add_argument("--peer", choices=["fastapi"], help="also measure this peer, after Ferry")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--ferry", type=Path, default=ROOT / "build" / "release" / "ferry")
    ap.add_argument("--limit-binary", type=Path, default=ROOT / "build" / "release" / "bench" / "bench_inprocess_limit")
    ap.add_argument("--port", type=int, default=18777, help="Ferry's; a peer gets the next one")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(size) == 2 and min(size) > 0
    except (ValueError, AssertionError):
        ap.error(f"--size takes WxH, e.g. 640x480, not {args.size!r}")
    if size != (320, 240) and args.encoding == "raw":
        ap.error("raw frames are the config's 320x240; other sizes need --encoding jpeg")

    limit = inprocess_limit(args.limit_binary, args.models / args.model, 500)
    frames = make_frames(90, args.encoding, size)
    servers = ["ferry"] + ([args.peer] if args.peer else [])
    runs = {name: run_server(name, args, frames) for name in servers}
    limit_p99_ms = limit["p99_us"] / 1000
    target = min(limit_p99_ms + 3.0, 33.0)
    for run in runs.values():
        run["latency_hit"] = run["client_ms"]["p99"] <= target
        run["backlog_hit"] = run["backlog_max"] <= 2
    outputs = {name: run.pop("outputs") for name, run in runs.items()}
    report = {"model": args.model, "encoding": args.encoding, "size": args.size, "fps": args.fps,
              "duration_s": args.duration, "inprocess_ms": {"p50": limit["p50_us"] / 1000, "p99": limit_p99_ms},
              **runs["ferry"], "target_p99_ms": target, "frame_bytes": len(frames[0])}
    print("| server | model | frames | in-process p50 / p99 | client p50 / p99 / max | server p50 / p99 | "
          "target p99 | dropped | backlog max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, run in runs.items():
        print(f"| {name} | {args.model} ({args.encoding} {args.size}, {len(frames[0])} B) | {run['frames_sent']} at "
              f"{args.fps:g}/s | {limit['p50_us'] / 1000:.2f} / {limit_p99_ms:.2f} ms | {run['client_ms']['p50']:.2f} / "
              f"{run['client_ms']['p99']:.2f} / {run['client_ms']['max']:.2f} ms | {run['server_ms']['p50']:.2f} / "
              f"{run['server_ms']['p99']:.2f} ms | ≤ {target:.2f} ms **{'hit' if run['latency_hit'] else 'MISS'}** | "
              f"{run['dropped']} | {run['backlog_max']} **{'hit' if run['backlog_hit'] else 'MISS'}** |")
        if run["errors"]:
            print(f"  {name}: {run['errors']} errors, the first: {run['first_error']}")
    if args.peer:
        peer = runs[args.peer]
        overhead = {name: run["client_ms"]["p99"] - limit_p99_ms for name, run in runs.items()}
        ratio = overhead[args.peer] / overhead["ferry"] if overhead["ferry"] > 0 else float("inf")
        gap = output_gap(outputs["ferry"], outputs[args.peer])
        report[args.peer] = {**peer, "overhead_p99_ms": overhead[args.peer]}
        report.update(overhead_p99_ms=overhead["ferry"], overhead_ratio=ratio, overhead_ratio_hit=ratio >= 3.0,
                      max_output_gap=gap)
        print(f"\np99 overhead over in-process: ferry {overhead['ferry']:.2f} ms, {args.peer} "
              f"{overhead[args.peer]:.2f} ms: {args.peer} / ferry = {ratio:.1f}x (target >= 3x: "
              f"**{'hit' if ratio >= 3.0 else 'MISS'}**); outputs agree within {gap if gap is None else f'{gap:.2g}'}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
