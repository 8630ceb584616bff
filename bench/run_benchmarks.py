#!/usr/bin/env python3
"""Runs Ferry's serving benchmarks B1, B2, B3 and B6 (docs/benchmarks.md) and prints their ratios.

    python3 bench/run_benchmarks.py                      # full: 10 s runs, 5 interleaved reps (~30 min)
    python3 bench/run_benchmarks.py --quick              # 2 s runs, 1 rep (~3 min): a smoke test
    python3 bench/run_benchmarks.py --summarize bench/results/<file>.json   # re-print a table

Needs: build/release (bash scripts/build.sh release: ferry, bench_load_client, bench_inprocess_limit),
wrk and nginx on PATH (Debian's wrk and nginx-light), and .venv-bench with bench/requirements.txt for the
FastAPI peers (B1 only; skipped with a warning when absent). Standard library only.

What runs (one server at a time, on loopback; the load generator shares the machine's cores):
  B1  wrk -t1 at c=1 and c=64 on GET /v2/health/ready and POST /v2/models/identity/infer (a 16-byte FP32
      tensor as OIP JSON) against Ferry (built-in identity backend), nginx `return 200` (1 worker), FastAPI
      on uvicorn[standard] (httptools + uvloop) and FastAPI on default uvicorn (h11 + asyncio), 1 worker.
  B2  c=1 latency: Ferry p50 minus the in-process p50 (bench_inprocess_limit: the OpenCV backend's
      Execute, loaded as the server loads it) for the tiny ONNX identity model (64-byte JSON input) and
      the cnn (602,112-byte binary input), with the shipped configs (dynamic batching on: 100 / 500 us
      queue delay) and with batching removed; Ferry's /metrics gives the server-side breakdown.
  B3  cnn closed loop at c=1 and c=2 vs the in-process limit; p99/p50 at c=1.
  B6  c=8: cnn and the tiny model with dynamic batching on vs off, and the cnn vs in-process batch 8.
Each rep runs every server and the in-process limit once, in an order rotated per rep (interleaved).
Before the run it waits (up to 20 min) for the 1-minute load average to fall below --max-load, and
before each rep for the machine to be idle with none of our processes running; the CPU time other
processes used during each measurement is recorded as other_cpu_cores.
Raw results go to bench/results/<UTC timestamp>.json (gitignored).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "release"
FERRY = BUILD / "ferry"
LOAD_CLIENT = BUILD / "bench" / "bench_load_client"
INPROCESS = BUILD / "bench" / "bench_inprocess_limit"
VENV_BENCH = ROOT / ".venv-bench"
EXAMPLES = ROOT / "examples" / "models"
TICKS = os.sysconf("SC_CLK_TCK")
PIN: list[str] = []  # ["taskset", "-c", CPU] with --pin: every server and client on that one CPU

B1_POST_BODY = ('{"id":"bench","inputs":[{"name":"INPUT0","shape":[4],"datatype":"FP32",'
                '"data":[1.5,-0.25,2.0,0.125]}]}')


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- machine

def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def proc_cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (all threads)


def busy_cores(seconds: float) -> float:
    b0, _ = cpu_busy_ticks()
    time.sleep(seconds)
    b1, _ = cpu_busy_ticks()
    return (b1 - b0) / TICKS / seconds


def wait_for_load(max_load: float, max_wait_s: float, what: str) -> dict:
    """Polls the 1-minute load average every 30 s until it is below max_load."""
    start = time.time()
    first = loadavg()
    while loadavg() >= max_load and time.time() - start < max_wait_s:
        log(f"{what}: load average {loadavg():.2f} >= {max_load}; waiting (30 s polls)")
        time.sleep(30)
    return {"loadavg_first": first, "loadavg_at_start": loadavg(), "waited_s": round(time.time() - start, 1),
            "gave_up": loadavg() >= max_load}


def wait_for_idle(max_busy: float, max_wait_s: float) -> dict:
    """With none of our processes running: waits until the machine's busy cores over 2 s are below max_busy."""
    start = time.time()
    busy = busy_cores(2)
    while busy >= max_busy and time.time() - start < max_wait_s:
        log(f"machine busy ({busy:.2f} cores used by others); waiting")
        time.sleep(10)
        busy = busy_cores(2)
    return {"idle_busy_cores": round(busy, 3), "idle_wait_s": round(time.time() - start, 1),
            "loadavg": loadavg()}


def machine_info() -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip()
        except (OSError, subprocess.SubprocessError):
            return None
    info = {
        "nproc": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(),
        "mem_total_kb": int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)),
        "git_commit": out(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
        "git_dirty": bool(out(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])),
        "nginx": out(["nginx", "-v"]), "wrk": (out(["wrk", "--version"]) or "").splitlines()[0:1],
        "ferry_binary_mtime": dt.datetime.utcfromtimestamp(FERRY.stat().st_mtime).isoformat() + "Z"
        if FERRY.exists() else None,
        "load_generator_shares_cores": True,
        "cpuidle_driver": read_text("/sys/devices/system/cpu/cpuidle/current_driver"),
        "guest_halt_poll_ns": read_text("/sys/module/haltpoll/parameters/guest_halt_poll_ns"),
    }
    py = VENV_BENCH / "bin" / "python"
    if py.exists():
        info["python_peers"] = out([str(py), "-c", "import fastapi, uvicorn, sys; "
                                    "print(sys.version.split()[0], 'fastapi', fastapi.__version__, "
                                    "'uvicorn', uvicorn.__version__)"])
    return info


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_results(prefix: str, results: dict) -> Path:
    """Writes raw results to bench/results/<prefix>-<UTC timestamp>.json and says where."""
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{prefix}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=1))
    log(f"raw results: {path}")
    return path


# ----------------------------------------------------------------------------------------- servers

class Server:
    """One server process under test. CPU time is read from /proc while it runs."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path, env=None, cwd=None):
        self.name, self.cmd, self.port = name, cmd, port
        self.log_path = workdir / f"{name}.log"
        self.env, self.cwd = env, cwd
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> None:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(PIN + self.cmd, stdout=logf, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        deadline = time.time() + timeout_s
        url = f"http://127.0.0.1:{self.port}/v2/health/ready"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {timeout_s} s; see {self.log_path}")

    def cpu_ticks(self) -> int:
        return proc_cpu_ticks(self.proc.pid) if self.proc else 0

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.proc.pid}) did not exit 15 s after SIGTERM: killing it")
            self.proc.kill()
            self.proc.wait()
        if self.proc.returncode not in (0, -signal.SIGTERM):
            log(f"{self.name} exited with status {self.proc.returncode}; see {self.log_path}")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.read().decode()


def ferry_server(name: str, repo: Path, workdir: Path, io_threads: int | None = None) -> Server:
    port = free_port()
    cmd = [str(FERRY), "serve", "--model-repository", str(repo), "--http-address", "127.0.0.1",
           "--http-port", str(port), "--model-control-mode", "none"]
    if io_threads:
        cmd += ["--http-thread-count", str(io_threads)]
    return Server(name, cmd, port, workdir)


def nginx_server(workdir: Path) -> Server:
    port = free_port()
    prefix = workdir / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = (ROOT / "bench" / "peers" / "nginx.conf").read_text().replace("127.0.0.1:18080", f"127.0.0.1:{port}")
    (prefix / "nginx.conf").write_text(conf)
    return Server("nginx", ["nginx", "-e", "stderr", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], port, workdir)


def fastapi_server(stack: str, workdir: Path) -> Server:
    port = free_port()
    http, loop = ("httptools", "uvloop") if stack == "standard" else ("h11", "asyncio")
    cmd = [str(VENV_BENCH / "bin" / "uvicorn"), "--app-dir", str(ROOT / "bench" / "peers"), "fastapi_app:app",
           "--host", "127.0.0.1", "--port", str(port), "--http", http, "--loop", loop,
           "--log-level", "warning", "--no-access-log"]
    return Server(f"fastapi-{stack}", cmd, port, workdir)


# ----------------------------------------------------------------------------------- model repos

def make_repos(workdir: Path) -> dict[str, Path]:
    """b1: the built-in identity backend (FP32 [4], no batching). batch: cnn + identity as shipped.
    nobatch: the same with dynamic_batching removed."""
    repos = {}
    b1 = workdir / "repo-b1"
    (b1 / "identity" / "1").mkdir(parents=True, exist_ok=True)
    (b1 / "identity" / "config.yaml").write_text(
        "backend: identity\nmax_batch_size: 0\n"
        "inputs:\n  - {name: INPUT0, datatype: FP32, dims: [4]}\n"
        "outputs:\n  - {name: OUTPUT0, datatype: FP32, dims: [4]}\n"
        "instance_group: {count: 1}\nmax_queue_size: 1024\n")
    repos["b1"] = b1
    for variant in ("batch", "nobatch"):
        repo = workdir / f"repo-{variant}"
        for model in ("cnn", "identity"):
            dst = repo / model
            shutil.copytree(EXAMPLES / model, dst, dirs_exist_ok=True)
            if variant == "nobatch":
                cfg = dst / "config.yaml"
                lines = [l for l in cfg.read_text().splitlines() if not l.startswith("dynamic_batching:")]
                cfg.write_text("\n".join(lines) + "\n")
        repos[variant] = repo
    return repos


# ----------------------------------------------------------------------------------------- clients

WRK_LUA = r"""
{setup}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"min":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.min, latency.max))
end
"""


def write_wrk_scripts(workdir: Path) -> dict[str, Path]:
    post = (f"wrk.method = \"POST\"\nwrk.body = '{B1_POST_BODY}'\n"
            "wrk.headers[\"Content-Type\"] = \"application/json\"")
    scripts = {}
    for name, setup in (("get", ""), ("post", post)):
        p = workdir / f"wrk-{name}.lua"
        p.write_text(WRK_LUA.replace("{setup}", setup))
        scripts[name] = p
    return scripts


def measure(server: Server | None, cmd: list[str], timeout_s: float) -> tuple[str, dict]:
    """Runs a client command; returns its stdout and the CPU accounting of the window."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, _ = cpu_busy_ticks()
    s0 = server.cpu_ticks() if server else 0
    t0 = time.monotonic()
    r = subprocess.run(PIN + cmd, capture_output=True, text=True, timeout=timeout_s)
    wall = time.monotonic() - t0
    b1, _ = cpu_busy_ticks()
    s1 = server.cpu_ticks() if server else 0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    server_s = (s1 - s0) / TICKS
    busy_s = (b1 - b0) / TICKS
    cpu = {"wall_s": round(wall, 3), "server_cpu_s": round(server_s, 3), "client_cpu_s": round(client_s, 3),
           "other_cpu_cores": round(max(0.0, busy_s - server_s - client_s) / wall, 3), "loadavg": loadavg()}
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r.stdout, cpu


def run_wrk(server: Server, path: str, conns: int, duration: float, script: Path) -> dict:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script),
           f"http://127.0.0.1:{server.port}{path}"]
    out, cpu = measure(server, cmd, duration + 60)
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"no result from wrk: {out[-1000:]}")
    res = json.loads(m.group(1))
    errs = sum(res["errors"].values())
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["error_count"] = errs
    res["cpu"] = cpu
    res["server_cpu_us_per_req"] = cpu["server_cpu_s"] * 1e6 / max(1, res["requests"])
    return res


def run_client(server: Server, args: list[str], duration: float, warmup: float = 1.0) -> dict:
    cmd = [str(LOAD_CLIENT), "--port", str(server.port), "--duration-s", str(duration), "--warmup-s", str(warmup)] + args
    out, cpu = measure(server, cmd, duration + warmup + 120)
    res = json.loads(out.strip().splitlines()[-1])
    res["cpu"] = cpu
    return res


def run_inprocess(model_dir: Path, iters: int, duration: float, configs: str) -> dict:
    cmd = [str(INPROCESS), "--model-dir", str(model_dir), "--iters", str(iters), "--duration-s", str(duration),
           "--configs", configs]
    out, cpu = measure(None, cmd, 600)
    res = json.loads(out.strip().splitlines()[-1])
    res["cpu"] = cpu
    return res


def scrape_metrics(server: Server) -> dict[str, float]:
    """Sums and counts of Ferry's per-model histograms, keyed 'metric{model}_sum' / '_count'."""
    values = {}
    for line in server.get("/metrics").splitlines():
        m = re.match(r'(ferry_inference_\w+?)_(sum|count)\{[^}]*model="([^"]+)"[^}]*\}\s+(\S+)', line)
        if m:
            values[f"{m.group(1)}|{m.group(3)}|{m.group(2)}"] = float(m.group(4))
    return values


def metrics_breakdown(before: dict, after: dict, model: str) -> dict:
    """Mean per request over the window (includes the client's warm-up second) of queue/compute/request."""
    out = {}
    for name, key in (("queue", "ferry_inference_queue_duration_us"),
                      ("compute", "ferry_inference_compute_duration_us"),
                      ("in_server", "ferry_inference_request_duration_us"),
                      ("batch_size", "ferry_inference_batch_size")):
        n = after.get(f"{key}|{model}|count", 0) - before.get(f"{key}|{model}|count", 0)
        s = after.get(f"{key}|{model}|sum", 0) - before.get(f"{key}|{model}|sum", 0)
        out[f"{name}_mean"] = round(s / n, 2) if n else None
    return out


# ------------------------------------------------------------------------------------------- runs

CNN_ARGS = ["--model", "cnn", "--input-name", "image", "--shape", "1,3,224,224", "--format", "binary",
            "--binary-output"]
TINY_ARGS = ["--model", "identity", "--input-name", "INPUT0", "--shape", "1,16", "--format", "json"]


def b1_rep(rep: int, args, workdir: Path, repos, scripts, record) -> None:
    servers = [lambda: ferry_server("ferry", repos["b1"], workdir)]
    servers.append(lambda: nginx_server(workdir))
    if (VENV_BENCH / "bin" / "uvicorn").exists():
        servers.append(lambda: fastapi_server("standard", workdir))
        servers.append(lambda: fastapi_server("h11", workdir))
    for extra in args.b1_ferry_io_threads:
        servers.append(lambda t=extra: ferry_server(f"ferry-io{t}", repos["b1"], workdir, io_threads=t))
    shift = rep % len(servers)
    cases = [("get", "/v2/health/ready"), ("post", "/v2/models/identity/infer")]
    for make in servers[shift:] + servers[:shift]:
        srv = make()
        srv.start()
        try:
            run_wrk(srv, "/v2/health/ready", 8, 1, scripts["get"])  # warm-up, not recorded
            order = [(e, c) for e in cases for c in args.b1_conns]
            if rep % 2:
                order.reverse()
            for (kind, path), conns in order:
                res = run_wrk(srv, path, conns, args.duration, scripts[kind])
                record({**res, "bench": "B1", "rep": rep, "server": srv.name, "endpoint": kind, "conns": conns})
                log(f"B1 rep {rep} {srv.name:18s} {kind:4s} c={conns:<3d} {res['rps']:>9.0f} req/s "
                    f"p50 {res['latency_us']['p50']} us errors {res['error_count']}")
        finally:
            srv.stop()


def serving_rep(rep: int, args, workdir: Path, repos, record) -> None:
    """B2/B3/B6: Ferry with the shipped configs, Ferry with batching removed, and the in-process limit."""
    d = args.duration
    iters = max(50, int(d * 30))

    def inprocess():
        if args.cnn_conns:
            cnn = run_inprocess(repos["batch"] / "cnn", iters, d, "1x1,2x1,1x2,1x8")
            record({**cnn, "bench": "limit", "rep": rep, "model": "cnn"})
            log(f"limit rep {rep} cnn p50 {cnn['latency_b1']['p50_us']:.0f} us; "
                + ", ".join(f"{t['instances']}x{t['batch']}: {t['rows_per_s']:.1f}/s" for t in cnn["throughput"]))
        tiny = run_inprocess(repos["batch"] / "identity", 20000, min(d, 2), "1x1,1x8")
        record({**tiny, "bench": "limit", "rep": rep, "model": "identity"})
        b1 = run_inprocess(repos["b1"] / "identity", 20000, min(d, 2), "1x1")
        record({**b1, "bench": "limit", "rep": rep, "model": "identity-builtin"})
        log(f"limit rep {rep} identity onnx p50 {tiny['latency_b1']['p50_us']} us, "
            f"built-in {b1['latency_b1']['p50_us']} us")

    def ferry(variant: str):
        def run():
            srv = ferry_server(f"ferry-{variant}", repos[variant], workdir)
            srv.start()
            try:
                # Warm-up of both models (first requests allocate), not recorded.
                if args.cnn_conns:
                    run_client(srv, CNN_ARGS + ["--connections", "2"], 1, 0)
                run_client(srv, TINY_ARGS + ["--connections", "2"], 1, 0)
                cases = [("cnn", c) for c in args.cnn_conns] + [("identity", c) for c in args.tiny_conns]
                if rep % 2:
                    cases.reverse()
                for model, conns in cases:
                    before = scrape_metrics(srv)
                    res = run_client(srv, (CNN_ARGS if model == "cnn" else TINY_ARGS) + ["--connections", str(conns)], d)
                    res["server_breakdown_us"] = metrics_breakdown(before, scrape_metrics(srv), model)
                    record({**res, "bench": "serving", "rep": rep, "server": srv.name, "config": variant,
                            "model": model, "conns": conns})
                    log(f"serve rep {rep} {srv.name:14s} {model:8s} c={conns} {res['throughput_rps']:>9.1f} req/s "
                        f"p50 {res['latency_us']['p50']:.0f} p99 {res['latency_us']['p99']:.0f} us "
                        f"errors {res['errors']} {res['server_breakdown_us']}")
            finally:
                srv.stop()
        return run

    def floor():
        """nginx reading the same cnn request and answering a constant: the transfer floor for B2."""
        srv = nginx_server(workdir)
        srv.start()
        try:
            run_client(srv, CNN_ARGS + ["--connections", "1"], 1, 0)
            res = run_client(srv, CNN_ARGS + ["--connections", "1"], d)
            record({**res, "bench": "floor", "rep": rep, "server": "nginx", "model": "cnn", "conns": 1})
            log(f"floor rep {rep} nginx cnn-sized POST c=1 p50 {res['latency_us']['p50']:.0f} us errors {res['errors']}")
        finally:
            srv.stop()

    steps = [inprocess, ferry("batch"), ferry("nobatch")] + ([floor] if args.cnn_conns else [])
    shift = rep % len(steps)
    for step in steps[shift:] + steps[:shift]:
        step()


# ------------------------------------------------------------------------------------ summarising

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def mmm(xs):
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs)) if xs else (None, None, None)


def fmt_num(x, digits=0):
    if x is None:
        return "n/a"
    if abs(x) >= 10000 and digits == 0:
        return f"{x / 1000:.1f}k"
    return f"{x:.{digits}f}"


def fmt_mmm(t, digits=0, unit=""):
    m, lo, hi = t
    if m is None:
        return "n/a"
    return f"{fmt_num(m, digits)}{unit} [{fmt_num(lo, digits)}–{fmt_num(hi, digits)}]"


def verdict(value, target, higher_is_better=True):
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "**hit**" if ok else "**MISS**"


def paired_ratios(runs, num_sel, den_sel, key):
    """Per-rep ratios num/den (runs are interleaved within a rep), as (median, min, max)."""
    by_rep = {}
    for r in runs:
        if num_sel(r):
            by_rep.setdefault(r["rep"], [None, None])[0] = key(r)
        elif den_sel(r):
            by_rep.setdefault(r["rep"], [None, None])[1] = key(r)
    ratios = [a / b for a, b in by_rep.values() if a is not None and b not in (None, 0)]
    return mmm(ratios)


def summarize(results: dict, max_other: float | None = None) -> str:
    runs = results["runs"]
    lines = []
    dropped = 0
    if max_other is not None:
        kept = [r for r in runs if r.get("cpu", {}).get("other_cpu_cores", 0) <= max_other]
        dropped = len(runs) - len(kept)
        runs = kept
    meta = results["meta"]
    lines.append(f"Machine: {meta['machine']['cpu_model']}, {meta['machine']['nproc']} cores; load generator on the "
                 f"same cores. Duration {meta['args']['duration']} s x {meta['args']['reps']} reps "
                 f"(median [min–max] over reps; ratios are per-rep pairs). Load average at start "
                 f"{meta['load']['loadavg_at_start']}."
                 + (f" **Pinned: every server and client on CPU {meta['args']['pin']}.**" if meta['args'].get('pin')
                    is not None else ""))
    if max_other is not None:
        lines.append(f"Runs during which other processes used more than {max_other} cores are left out: {dropped} "
                     f"of {len(runs) + dropped}.")
    lines.append("")

    # ---- B1
    b1 = [r for r in runs if r["bench"] == "B1"]
    if b1:
        servers = sorted({r["server"] for r in b1}, key=lambda s: (not s.startswith("ferry"), s))
        lines.append("### B1 HTTP floor (wrk -t1, keep-alive)")
        lines.append("")
        lines.append("| endpoint | c | " + " | ".join(f"{s} req/s" for s in servers) + " | "
                     "Ferry/nginx | Ferry/FastAPI std | Ferry/FastAPI h11 |")
        lines.append("|---|---|" + "---|" * (len(servers) + 3))
        for endpoint in ("get", "post"):
            for conns in sorted({r["conns"] for r in b1}):
                sel = [r for r in b1 if r["endpoint"] == endpoint and r["conns"] == conns]
                if not sel:
                    continue
                cells = [fmt_mmm(mmm([r["rps"] for r in sel if r["server"] == s])) for s in servers]
                ratios = []
                for peer, target in (("nginx", 0.7), ("fastapi-standard", 3.0), ("fastapi-h11", 8.0)):
                    t = paired_ratios(sel, lambda r: r["server"] == "ferry", lambda r, p=peer: r["server"] == p,
                                      lambda r: r["rps"])
                    ratios.append(f"{fmt_mmm(t, 2, '×')} (≥{target}: {verdict(t[0], target)})" if t[0] else "n/a")
                lines.append(f"| {endpoint.upper()} | {conns} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        lines.append("")
        lines.append("| endpoint (c=1) | " + " | ".join(f"{s} p50 µs" for s in servers) + " | Ferry/nginx p50 (≤1.3) |")
        lines.append("|---|" + "---|" * (len(servers) + 1))
        for endpoint in ("get", "post"):
            sel = [r for r in b1 if r["endpoint"] == endpoint and r["conns"] == 1]
            if not sel:
                continue
            cells = [fmt_mmm(mmm([r["latency_us"]["p50"] for r in sel if r["server"] == s])) for s in servers]
            t = paired_ratios(sel, lambda r: r["server"] == "ferry", lambda r: r["server"] == "nginx",
                              lambda r: r["latency_us"]["p50"])
            lines.append(f"| {endpoint.upper()} | " + " | ".join(cells) +
                         f" | {fmt_mmm(t, 2, '×')} {verdict(t[0], 1.3, False)} |")
        lines.append("")
        lines.append("| server | CPU µs per request, GET c=64 | POST c=64 | errors (all runs) |")
        lines.append("|---|---|---|---|")
        for s in servers:
            g = mmm([r["server_cpu_us_per_req"] for r in b1 if r["server"] == s and r["endpoint"] == "get"
                     and r["conns"] == max(args_conns(b1))])
            p = mmm([r["server_cpu_us_per_req"] for r in b1 if r["server"] == s and r["endpoint"] == "post"
                     and r["conns"] == max(args_conns(b1))])
            e = sum(r["error_count"] for r in b1 if r["server"] == s)
            lines.append(f"| {s} | {fmt_mmm(g, 1)} | {fmt_mmm(p, 1)} | {e} |")
        lines.append("")

    serving = [r for r in runs if r["bench"] == "serving"]
    limits = [r for r in runs if r["bench"] == "limit"]
    if serving and limits:
        def lim(model, fn):
            return [fn(r) for r in limits if r["model"] == model]

        def tp(r, k, b):
            for t in r["throughput"]:
                if t["instances"] == k and t["batch"] == b:
                    return t["rows_per_s"]
            return None

        def srv(config, model, conns, fn):
            return [fn(r) for r in serving if r["config"] == config and r["model"] == model and r["conns"] == conns]

        def srv_by_rep(config, model, conns, fn):
            return {r["rep"]: fn(r) for r in serving if r["config"] == config and r["model"] == model
                    and r["conns"] == conns}

        def lim_by_rep(model, fn):
            return {r["rep"]: fn(r) for r in limits if r["model"] == model}

        def paired(a: dict, b: dict, op):
            vals = [op(a[k], b[k]) for k in a if k in b and a[k] is not None and b[k] is not None]
            return mmm(vals)

        # ---- B2
        lines.append("### B2 per-request overhead at c=1 (p50 over HTTP − in-process p50)")
        lines.append("")
        lines.append("| model, input | config | Ferry p50 µs | in-process p50 µs | overhead µs | target | "
                     "server breakdown (means µs: queue / compute / in-server; outside = client mean − in-server) |")
        lines.append("|---|---|---|---|---|---|---|")
        for model, label, target in (("identity", "identity ONNX, 64 B JSON", 50),
                                     ("cnn", "cnn, 602,112 B binary", 150)):
            for config in ("nobatch", "batch"):
                if not srv(config, model, 1, lambda r: 1):
                    continue
                fe = srv_by_rep(config, model, 1, lambda r: r["latency_us"]["p50"])
                li = lim_by_rep(model, lambda r: r["latency_b1"]["p50_us"])
                over = paired(fe, li, lambda a, b: a - b)
                bd = [r["server_breakdown_us"] for r in serving if r["config"] == config and r["model"] == model
                      and r["conns"] == 1]
                q = med([b["queue_mean"] for b in bd])
                c = med([b["compute_mean"] for b in bd])
                s = med([b["in_server_mean"] for b in bd])
                cm = med(srv(config, model, 1, lambda r: r["latency_us"]["mean"]))
                outside = cm - s if cm is not None and s is not None else None
                cfg = "batching off" if config == "nobatch" else "shipped (batching on)"
                tgt = f"≤{target}: {verdict(over[0], target, False)}" if config == "nobatch" else \
                    "(includes the configured queue delay)"
                lines.append(f"| {label} | {cfg} | {fmt_mmm(mmm(list(fe.values())), 1)} | "
                             f"{fmt_mmm(mmm(list(li.values())), 1)} | {fmt_mmm(over, 1)} | {tgt} | "
                             f"{fmt_num(q, 1)} / {fmt_num(c, 1)} / {fmt_num(s, 1)}; outside {fmt_num(outside, 1)} |")
        floor = [r["latency_us"]["p50"] for r in runs if r["bench"] == "floor"]
        if floor:
            lines.append(f"| (floor) nginx reading the same 602,112 B request, constant answer | | {fmt_mmm(mmm(floor), 1)} "
                         "| | | | |")
        b1_post = [r for r in runs if r["bench"] == "B1" and r["server"] == "ferry" and r["endpoint"] == "post"
                   and r["conns"] == 1]
        if b1_post:
            fe = {r["rep"]: r["latency_us"]["p50"] for r in b1_post}
            li = lim_by_rep("identity-builtin", lambda r: r["latency_b1"]["p50_us"])
            over = paired(fe, li, lambda a, b: a - b)
            lines.append(f"| built-in identity, 16 B JSON (wrk) | no batching | {fmt_mmm(mmm(list(fe.values())), 1)} | "
                         f"{fmt_mmm(mmm(list(li.values())), 1)} | {fmt_mmm(over, 1)} | ≤50: {verdict(over[0], 50, False)} | |")
        lines.append("")

        # ---- B3
        if not lim("cnn", lambda r: 1):
            serving_has_cnn = False
        else:
            serving_has_cnn = True
        if serving_has_cnn:
            lines.append("### B3 cnn served vs in-process limit (binary input, shipped config: 1 instance, 2 OpenCV "
                         "threads, batching on)")
            lines.append("")
            lines.append("| c | Ferry req/s | limit rows/s (what) | Ferry/limit | target | Ferry p50 / p99 µs | p99/p50 |")
            lines.append("|---|---|---|---|---|---|---|")
            for conns in args_conns(serving, "cnn"):
                if conns > 2:
                    continue
                for config in ("batch", "nobatch"):
                    fe = srv_by_rep(config, "cnn", conns, lambda r: r["throughput_rps"])
                    if not fe:
                        continue
                    if conns == 1:
                        li = lim_by_rep("cnn", lambda r: tp(r, 1, 1))
                        what = "1 instance, batch 1"
                    else:
                        li = lim_by_rep("cnn", lambda r: max(x for x in (tp(r, 1, 1), tp(r, 2, 1), tp(r, 1, 2)) if x))
                        what = "best of 1×b1, 2×b1, 1×b2"
                    ratio = paired(fe, li, lambda a, b: a / b)
                    target = "≥0.95: " + verdict(ratio[0], 0.95) if conns == 2 else "(context)"
                    p50 = srv(config, "cnn", conns, lambda r: r["latency_us"]["p50"])
                    p99 = srv(config, "cnn", conns, lambda r: r["latency_us"]["p99"])
                    tail = mmm([r["latency_us"]["p99"] / r["latency_us"]["p50"] for r in serving
                                if r["config"] == config and r["model"] == "cnn" and r["conns"] == conns])
                    tail_s = fmt_mmm(tail, 2) + (f" (≤1.2: {verdict(tail[0], 1.2, False)})" if conns == 1 else "")
                    cfg = "" if config == "batch" else " (batching off)"
                    lines.append(f"| {conns}{cfg} | {fmt_mmm(mmm(list(fe.values())), 1)} | "
                                 f"{fmt_mmm(mmm(list(li.values())), 1)} ({what}) | {fmt_mmm(ratio, 2, '×')} | {target} | "
                                 f"{fmt_num(med(p50))} / {fmt_num(med(p99))} | {tail_s} |")
            lines.append("")
            lines.append("In-process limit (cnn, rows/s): " + ", ".join(
                f"{k}×b{b} {fmt_mmm(mmm(lim('cnn', lambda r, k=k, b=b: tp(r, k, b))), 1)}"
                for k, b in ((1, 1), (2, 1), (1, 2), (1, 8))) +
                f"; Execute p50 {fmt_mmm(mmm(lim('cnn', lambda r: r['latency_b1']['p50_us'])))} µs, bare "
                f"cv::dnn forward p50 {fmt_mmm(mmm(lim('cnn', lambda r: (r['raw_forward_b1'] or {}).get('p50_us'))))} µs; "
                f"the limit's own p99/p50 (1×b1 loop) {fmt_mmm(mmm(lim('cnn', lambda r: next((t['call']['p99_us'] / t['call']['p50_us'] for t in r['throughput'] if t['instances'] == 1 and t['batch'] == 1), None))), 2)}.")
            lines.append("")

        # ---- B6
        if not any(c >= 2 for m in ("cnn", "identity") for c in args_conns(serving, m)):
            lines.append("")
            return_early = True
        else:
            return_early = False
        b6_lines_start = len(lines)
        lines.append("### B6 dynamic batching at c=8")
        lines.append("")
        lines.append("| model | on req/s | off req/s | on/off | target | on vs in-process batch 8 | "
                     "on p50 / p99 µs | mean batch (on) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for model, target in (("cnn", 1.3), ("identity", 3.0)):
            if not args_conns(serving, model) or max(args_conns(serving, model)) < 2:
                continue
            conns = max(args_conns(serving, model))
            on = srv_by_rep("batch", model, conns, lambda r: r["throughput_rps"])
            off = srv_by_rep("nobatch", model, conns, lambda r: r["throughput_rps"])
            if not on or not off:
                continue
            ratio = paired(on, off, lambda a, b: a / b)
            vs_b8 = "n/a"
            if model == "cnn":
                b8 = lim_by_rep("cnn", lambda r: tp(r, 1, 8))
                t = paired(on, b8, lambda a, b: a / b)
                vs_b8 = f"{fmt_mmm(t, 2, '×')} (≥0.9: {verdict(t[0], 0.9)}); limit {fmt_mmm(mmm(list(b8.values())), 1)}"
            p50 = med(srv("batch", model, conns, lambda r: r["latency_us"]["p50"]))
            p99 = med(srv("batch", model, conns, lambda r: r["latency_us"]["p99"]))
            mb = med(srv("batch", model, conns, lambda r: r["server_breakdown_us"]["batch_size_mean"]))
            lines.append(f"| {model} (c={conns}) | {fmt_mmm(mmm(list(on.values())), 1)} | "
                         f"{fmt_mmm(mmm(list(off.values())), 1)} | {fmt_mmm(ratio, 2, '×')} | "
                         f"≥{target}: {verdict(ratio[0], target)} | {vs_b8} | {fmt_num(p50)} / {fmt_num(p99)} | "
                         f"{fmt_num(mb, 2)} |")
        cnn_b8_p50 = med(lim("cnn", lambda r: next((t["call"]["p50_us"] for t in r["throughput"]
                                                    if t["instances"] == 1 and t["batch"] == 8), None)))
        p99 = med(srv("batch", "cnn", max(args_conns(serving, "cnn") or [0]), lambda r: r["latency_us"]["p99"]))
        if cnn_b8_p50 and p99:
            bound = 500 + 2 * cnn_b8_p50
            lines.append("")
            lines.append(f"cnn p99 with batching {fmt_num(p99)} µs vs queue delay + 2 × in-process batch-8 time = "
                         f"500 + 2 × {fmt_num(cnn_b8_p50)} = {fmt_num(bound)} µs: {verdict(p99, bound, False)}.")
        lines.append("")
        if return_early:
            del lines[b6_lines_start:]
    other = [r["cpu"]["other_cpu_cores"] for r in runs if "cpu" in r]
    if other:
        lines.append(f"CPU used by other processes during measurements: median {med(other):.2f} cores, "
                     f"max {max(other):.2f}.")
    return "\n".join(lines)


def args_conns(runs, model=None):
    return sorted({r["conns"] for r in runs if model is None or r.get("model") == model})


# ------------------------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s runs, 1 rep")
    ap.add_argument("--duration", type=float, help="seconds per measured run (default 10; quick 2)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 5; quick 1)")
    ap.add_argument("--only", default="B1,B2,B3,B6", help="comma-separated subset (B2/B3/B6 share their runs)")
    ap.add_argument("--b1-conns", default="1,64")
    ap.add_argument("--cnn-conns", default="1,2,8")
    ap.add_argument("--tiny-conns", default="1,8")
    ap.add_argument("--b1-ferry-io-threads", default="", help="extra Ferry variants for B1, e.g. '1'")
    ap.add_argument("--pin", metavar="CPU", help="run every server and client on this one CPU (taskset): "
                    "c=1 latency without the cost of waking an idle vCPU")
    ap.add_argument("--max-load", type=float, default=1.0, help="wait for the 1-min load average below this")
    ap.add_argument("--max-busy", type=float, default=0.3, help="cores others may use before a rep starts")
    ap.add_argument("--max-wait", type=float, default=1200, help="seconds to wait for a quiet machine")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--summarize", metavar="RESULTS_JSON", help="print the table of an earlier run and exit")
    ap.add_argument("--max-other", type=float, help="with --summarize: leave out runs during which other "
                    "processes used more than this many cores")
    args = ap.parse_args()

    if args.summarize:
        print(summarize(json.loads(Path(args.summarize).read_text()), args.max_other))
        return 0
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.reps = args.reps or (1 if args.quick else 5)
    args.b1_conns = [int(x) for x in args.b1_conns.split(",") if x]
    args.cnn_conns = [int(x) for x in args.cnn_conns.split(",") if x]
    args.tiny_conns = [int(x) for x in args.tiny_conns.split(",") if x]
    args.b1_ferry_io_threads = [int(x) for x in args.b1_ferry_io_threads.split(",") if x]
    only = {x.strip().upper() for x in args.only.split(",")}
    if args.pin is not None:
        PIN[:] = ["taskset", "-c", str(args.pin)]

    for binary in (FERRY, LOAD_CLIENT, INPROCESS):
        if not binary.exists():
            print(f"missing {binary}: run `bash scripts/build.sh release`", file=sys.stderr)
            return 2
    if "B1" in only:
        for tool in ("wrk", "nginx"):
            if not shutil.which(tool):
                print(f"missing {tool}: apt-get install wrk nginx-light", file=sys.stderr)
                return 2
        if not (VENV_BENCH / "bin" / "uvicorn").exists():
            log("no .venv-bench: the FastAPI peers are skipped (see bench/requirements.txt)")

    load = {"loadavg_at_start": loadavg(), "waited_s": 0}
    if not args.no_wait:
        load = wait_for_load(args.max_load, args.max_wait, "start")
    log(f"load average {load['loadavg_at_start']}")

    stamp = dt.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / f"{stamp}.json"
    results = {"meta": {"started": stamp, "machine": machine_info(), "load": load,
                        "args": {k: v for k, v in vars(args).items()},
                        "command": " ".join([sys.executable] + sys.argv)},
               "reps": [], "runs": []}

    def save():
        out_path.write_text(json.dumps(results, indent=1))

    def record(entry: dict):
        results["runs"].append(entry)
        save()

    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        workdir = Path(tmp)
        repos = make_repos(workdir)
        scripts = write_wrk_scripts(workdir)
        for rep in range(args.reps):
            idle = {"loadavg": loadavg()} if args.no_wait else wait_for_idle(args.max_busy, args.max_wait)
            results["reps"].append({"rep": rep, **idle})
            log(f"rep {rep + 1}/{args.reps}: {idle}")
            if "B1" in only:
                b1_rep(rep, args, workdir, repos, scripts, record)
            if only & {"B2", "B3", "B6"}:
                serving_rep(rep, args, workdir, repos, record)
        results["meta"]["finished"] = dt.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
        save()
        if args.reps:
            logs = sorted(workdir.glob("*.log"))
            errors = [f"{p.name}: {line}" for p in logs for line in p.read_text(errors="replace").splitlines()
                      if "error" in line.lower()][:20]
            if errors:
                log("server log lines with 'error':\n  " + "\n  ".join(errors))
    print(summarize(results))
    print(f"\nraw results: {out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
