#!/usr/bin/env python3
"""Runs the whole rug-cutting line and compares the models (served by Ferry) with the classical
baseline on the same rugs:

  1. starts line_sim (the line, its PLC and camera) and Ferry (unless --ferry-url is given);
  2. accuracy: N held-out rugs (seeds from 10000, S1 and L1 alternating), triggered camera, once with
     the models through Ferry and once with the baseline, each rug searched, aligned and cut;
  3. timing: a shorter pass in free-run (real time, 30 fps) for frame-to-command latency and dropped
     frames;
  4. prints a Markdown table and writes the numbers as JSON (--out).

Run from the repository root: .venv/bin/python examples/rug-cutting/run_line.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from controller import (BaselineVision, CameraClient, Controller, FerryVision, Params,  # noqa: E402
                        PlcLink, RugResult)

MODELS = HERE / "models"
MODEL_NAMES = ("line_search", "line_tracking")
FIRST_HELD_OUT_SEED = 10000  # the models were trained on seeds below this
# The knife must stay inside the cutting line: the blade is ~0.5 mm thick, so its centre may stray at
# most line_width/2 - 0.25 mm from the line's centre before it cuts into a rug.
BLADE_HALF_MM = 0.25


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[run_line] {msg}", file=sys.stderr, flush=True)


def start_line_sim(width_mm: float, workdir: Path) -> tuple[subprocess.Popen, int, int]:
    mb, cam = free_port(), free_port()
    errlog = open(workdir / "line_sim.log", "w")
    proc = subprocess.Popen([sys.executable, str(HERE / "line_sim.py"), "--modbus-port", str(mb),
                             "--camera-port", str(cam), "--width-mm", str(width_mm)],
                            stdout=subprocess.PIPE, stderr=errlog, text=True)
    line = proc.stdout.readline()
    if not line or not json.loads(line).get("ready"):
        proc.kill()
        raise RuntimeError(f"line_sim did not start; its log:\n{(workdir / 'line_sim.log').read_text()[-3000:]}")
    return proc, mb, cam


def ferry_binary() -> Path:
    env = os.environ.get("FERRY_BINARY")
    return Path(env).resolve() if env else ROOT / "build" / "release" / "ferry"


def missing_models(models: Path) -> list[str]:
    return [m for m in MODEL_NAMES if not (models / m / "1" / "model.onnx").exists()]


def start_ferry(binary: Path, models: Path, workdir: Path, timeout_s: float = 60.0):
    if not binary.exists():
        raise RuntimeError(f"Ferry is not built ({binary} is missing): run the project's install and "
                           "build first, pass --ferry-url to use a running server, or --vision baseline")
    missing = missing_models(models)
    if missing:
        raise RuntimeError(f"models missing in {models}: {', '.join(missing)} (model.onnx under <name>/1/)")
    port = free_port()
    logf = open(workdir / "ferry.log", "w")
    proc = subprocess.Popen([str(binary), "serve", "--model-repository", str(models), "--http-address",
                             "127.0.0.1", "--http-port", str(port), "--data-dir", str(workdir / "ferry-data"),
                             "--model-control-mode", "none"], stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Ferry exited with {proc.returncode}:\n{(workdir / 'ferry.log').read_text()[-3000:]}")
        if all(_ready(port, m) for m in MODEL_NAMES):
            return proc, f"ws://127.0.0.1:{port}"
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"Ferry's models were not ready in {timeout_s:.0f} s:\n"
                       f"{(workdir / 'ferry.log').read_text()[-3000:]}")


def _ready(port: int, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log(f"{name} ignored SIGTERM; killing it")
        proc.kill()
        proc.wait()


def rug_list(n: int) -> list[tuple[str, int]]:
    return [("S1" if i % 2 == 0 else "L1", FIRST_HELD_OUT_SEED + i) for i in range(n)]


def run_pass(vision_name: str, rugs, camera: str, cam: CameraClient, plc: PlcLink, events: queue.Queue,
             ferry_url: str | None, args, params: Params) -> list[dict]:
    vision = BaselineVision(events) if vision_name == "baseline" else FerryVision(ferry_url, events, log)
    out = []
    try:
        for kind, seed in rugs:
            ctl = Controller(cam, plc, vision, events, params, log=log if args.verbose else (lambda m: None))
            t0 = time.monotonic()
            try:
                ctl.run_rug(kind, seed, args.width_mm, camera, args.latency_ms)
                ctl.finish()
                res = ctl.res
            except (TimeoutError, ConnectionError, RuntimeError) as e:
                if cam.closed:
                    raise
                res = RugResult(kind, seed, vision_name, camera, failure=f"{type(e).__name__}: {e}")
            if hasattr(vision, "server_dropped"):
                # Ferry's drop count is per connection and cumulative: charge each rug its own share.
                res.dropped_server = getattr(vision, "dropped", 0) - sum(r["dropped_server"] for r in out)
            d = asdict(res)
            tol = (res.line_width_mm / 2 - BLADE_HALF_MM) if res.line_width_mm else None
            d["tolerance_mm"] = tol
            d["within"] = bool(res.ok and tol is not None and res.cut_max_mm is not None and res.cut_max_mm <= tol)
            out.append(d)
            stop_txt = f"{res.stop_error_mm:+.2f}" if res.stop_error_mm is not None else "n/a"
            cut_txt = (f"rms {res.cut_rms_mm:.2f} max {res.cut_max_mm:.2f} (tol {tol:.2f})"
                       if res.cut_max_mm is not None and tol is not None else "no cut")
            log(f"{vision_name:8s} {camera:9s} {kind}/{seed}: stop {stop_txt} mm, cut {cut_txt}, "
                f"{'ok' if res.ok else 'FAILED ' + str(res.failure)} ({time.monotonic() - t0:.1f} s)")
    finally:
        vision.close()
    return out


def _pct(vals, q):
    return float(np.percentile(vals, q)) if len(vals) else None


def summarize(runs: list[dict]) -> dict:
    stops = [abs(r["stop_error_mm"]) for r in runs if r["stop_error_mm"] is not None]
    cuts = [r for r in runs if r["cut_rms_mm"] is not None and r["ok"]]
    lat = [x for r in runs for x in r["latency_ms"]]
    frames = sum(r["frames"] for r in runs)
    dropped = sum(r["dropped"] for r in runs)
    return {
        "rugs": len(runs), "completed": sum(1 for r in runs if r["ok"]),
        "stop_mean_mm": float(np.mean(stops)) if stops else None, "stop_p95_mm": _pct(stops, 95),
        "stop_max_mm": max(stops) if stops else None,
        # RMS pooled over every cut (each cut weighs by its length in samples)
        "cut_rms_mm": (float(np.sqrt(sum(r["cut_rms_mm"] ** 2 for r in cuts) / len(cuts))) if cuts else None),
        "cut_max_mm": max(r["cut_max_mm"] for r in cuts) if cuts else None,
        "within_share": sum(1 for r in runs if r["within"]) / len(runs) if runs else None,
        "tolerance_mm_min": min((r["tolerance_mm"] for r in runs if r["tolerance_mm"]), default=None),
        "latency_p50_ms": _pct(lat, 50), "latency_p99_ms": _pct(lat, 99),
        "frames": frames, "dropped": dropped, "dropped_share": dropped / frames if frames else None,
        "dropped_by_server": sum(r["dropped_server"] for r in runs),
        "plc_faults": sum(r["plc_faults"] for r in runs),
        "failures": [f"{r['kind']}/{r['seed']}: {r['failure']}" for r in runs if not r["ok"]],
    }


def _f(v, fmt="{:.2f}"):
    return "—" if v is None else fmt.format(v)


def table(summary: dict, visions: list[str]) -> str:
    rows = [
        ("Rugs completed (triggered)", lambda s: f"{s['acc']['completed']}/{s['acc']['rugs']}"),
        ("Stop-position error, mean (mm)", lambda s: _f(s["acc"]["stop_mean_mm"])),
        ("Stop-position error, p95 (mm)", lambda s: _f(s["acc"]["stop_p95_mm"])),
        ("Stop-position error, max (mm)", lambda s: _f(s["acc"]["stop_max_mm"])),
        ("Tracking error along the cut, RMS (mm)", lambda s: _f(s["acc"]["cut_rms_mm"])),
        ("Tracking error along the cut, max (mm)", lambda s: _f(s["acc"]["cut_max_mm"])),
        ("Cuts inside the line (|err| ≤ width/2 − 0.25 mm)", lambda s: _f(s["acc"]["within_share"], "{:.0%}")),
        ("Frame-to-command latency p50 (ms, free-run)", lambda s: _f(s["rt"]["latency_p50_ms"], "{:.1f}")),
        ("Frame-to-command latency p99 (ms, free-run)", lambda s: _f(s["rt"]["latency_p99_ms"], "{:.1f}")),
        ("Dropped frames (free-run)", lambda s: (f"{s['rt']['dropped']}/{s['rt']['frames']}"
                                                 f" ({_f(s['rt']['dropped_share'], '{:.1%}')})"
                                                 if s["rt"]["frames"] else "—")),
        ("Stop / cut in free-run, max (mm)", lambda s: f"{_f(s['rt']['stop_max_mm'])} / {_f(s['rt']['cut_max_mm'])}"),
    ]
    head = "| | " + " | ".join("models via Ferry" if v == "ferry" else "baseline" for v in visions) + " |"
    lines = [head, "|---|" + "---|" * len(visions)]
    for name, fn in rows:
        lines.append(f"| {name} | " + " | ".join(fn(summary[v]) for v in visions) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the rug-cutting line: models via Ferry vs the baseline.")
    ap.add_argument("--rugs", type=int, default=10, help="rugs in the accuracy pass (triggered camera)")
    ap.add_argument("--freerun-rugs", type=int, default=2, help="rugs in the real-time pass")
    ap.add_argument("--quick", action="store_true", help="2 rugs, 1 free-run rug, 800 mm wide")
    ap.add_argument("--vision", choices=["both", "ferry", "baseline"], default="both")
    ap.add_argument("--ferry-url", help="use this running Ferry (ws://host:port) instead of starting one")
    ap.add_argument("--models", type=Path, default=MODELS, help="model repository for the Ferry we start")
    ap.add_argument("--width-mm", type=float, default=1600.0)
    ap.add_argument("--latency-ms", type=float, default=20.0,
                    help="triggered mode: how late a command takes effect after its frame")
    ap.add_argument("--out", type=Path, help="write all numbers as JSON here")
    ap.add_argument("--verbose", action="store_true", help="log every phase change and link event")
    args = ap.parse_args(argv)
    if args.quick:
        args.rugs, args.freerun_rugs, args.width_mm = min(args.rugs, 2), min(args.freerun_rugs, 1), 800.0
    if args.rugs < 1 or args.freerun_rugs < 0:
        ap.error("--rugs must be at least 1 and --freerun-rugs not negative")
    visions = ["ferry", "baseline"] if args.vision == "both" else [args.vision]

    workdir = Path(tempfile.mkdtemp(prefix="rug-line-"))
    rc = 2
    sim = ferry = None
    cam = plc = None
    try:
        sim, mb_port, cam_port = start_line_sim(args.width_mm, workdir)
        ferry_url = args.ferry_url
        if "ferry" in visions and not ferry_url:
            log("starting Ferry")
            ferry, ferry_url = start_ferry(ferry_binary(), args.models, workdir)
        events: queue.Queue = queue.Queue()
        cam = CameraClient("127.0.0.1", cam_port, events)
        plc = PlcLink("127.0.0.1", mb_port, log)
        params = Params()
        summary, raw = {}, {}
        for v in visions:
            acc = run_pass(v, rug_list(args.rugs), "triggered", cam, plc, events, ferry_url, args, params)
            rt = run_pass(v, rug_list(args.freerun_rugs), "freerun", cam, plc, events, ferry_url, args, params)
            summary[v] = {"acc": summarize(acc), "rt": summarize(rt)}
            raw[v] = {"triggered": acc, "freerun": rt}
        md = table(summary, visions)
        print(md)
        widths = [r["line_width_mm"] for v in raw.values() for r in v["triggered"] if r["line_width_mm"]]
        print(f"\n{args.rugs} rugs (S1/L1 alternating, seeds {FIRST_HELD_OUT_SEED}–"
              f"{FIRST_HELD_OUT_SEED + args.rugs - 1}, {args.width_mm:.0f} mm wide), triggered camera with "
              f"commands taking effect {args.latency_ms:.0f} ms after their frame; {args.freerun_rugs} rug(s) "
              f"in free-run at 30 fps." + (f" Line widths {min(widths):.1f}–{max(widths):.1f} mm." if widths else ""))
        for v in visions:
            for part in ("acc", "rt"):
                for f in summary[v][part]["failures"]:
                    print(f"- {v} ({'triggered' if part == 'acc' else 'free-run'}) failed {f}")
        if args.out:
            for v in raw.values():
                for runs in v.values():
                    for r in runs:
                        lat = r.pop("latency_ms")
                        r["latency_p50_ms"] = _pct(lat, 50)
            args.out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v
                                                     for k, v in vars(args).items()},
                                            "blade_half_mm": BLADE_HALF_MM, "summary": summary,
                                            "markdown": md, "runs": raw}, indent=1))
            log(f"wrote {args.out}")
        # A rug a vision could not finish is a result (it is in the table), not an error of the run.
        rc = 0
        return rc
    except RuntimeError as e:
        log(f"error: {e}")
        return rc
    finally:
        if cam is not None:
            try:
                cam.send({"cmd": "quit"})
            except OSError:
                pass
            cam.close()
        if plc is not None:
            plc.close()
        stop(sim, "line_sim")
        stop(ferry, "Ferry")
        if rc == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
