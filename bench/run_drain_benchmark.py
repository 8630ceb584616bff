#!/usr/bin/env python3
"""SIGTERM drain under load (R17 of shared/reliability.md; "Drain" in docs/benchmarks.md).

    .venv/bin/python bench/run_drain_benchmark.py              # the three runs below
    .venv/bin/python bench/run_drain_benchmark.py --seconds 5  # less load before each signal

Needs build/release/ferry. The load (tests/e2e/drain_load.py): unary requests at 1.5x the capacity C of
an identity model taking 20 ms on each of two instances (C = 100/s), one fresh connection each, open
loop; streamed tiny_llm generations; camera-frame WebSockets sending frame after frame; queued jobs on
the same model. Three runs, each on a fresh data folder, each followed by a restart on that folder that
waits for every job:
  drain           SIGTERM after --seconds of load, with a 10 s drain timeout (--exit-timeout-secs);
  short-timeout   --exit-timeout-secs 2 while 24 generations need about 7 s;
  second-signal   a second SIGTERM 5 s after the first, while those 24 run on.
The generations start 0.3 s before the signal (they are quick: a 1,020-token one takes about 1.2 s with
four at once on tiny_llm's four slots).
Each reports when readiness turned 503, how every unary request ended (200, 503 with Connection: close,
or the listener gone once the drain was over; anything else is a failure), the streams and frame
sockets, the exit code and time, and the jobs after the restart (lost = not succeeded).
Raw results go to bench/results/drain-<UTC timestamp>.json.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import run_benchmarks as rb  # noqa: E402
from conftest import FerryServer  # noqa: E402
from drain_load import (CAPACITY_RPS, FrameResult, StreamResult, UnaryLoad, frame_socket, judge_unary,  # noqa: E402
                        make_drain_repository, sigterm, stream_generation, submit_jobs, wait_until_jobs_finish)


def run(name: str, work: Path, seconds: float, jobs: int, streams: int, frames: int, streams_late: bool,
        exit_timeout_s: float | None, second_signal_after_s: float | None) -> dict:
    """`streams_late`: the streams start just before the signal (tiny_llm's 4 slots take them in waves of
    about 1.2 s each, so 24 of them outlast a 2 s drain timeout); otherwise with the load."""
    root = work / name
    repo = make_drain_repository(root / "models")
    args = ["--data-dir", str(root / "data")]
    extra = args + (["--exit-timeout-secs", str(exit_timeout_s)] if exit_timeout_s is not None else [])
    s = FerryServer(repo=repo, log_path=root / "ferry.log", extra_args=extra)
    s.start()
    ids = submit_jobs(s, jobs)
    load = UnaryLoad(s, 1.5 * CAPACITY_RPS)
    load.start()
    stream_results = [StreamResult() for _ in range(streams)]
    frame_results = [FrameResult() for _ in range(frames)]
    stream_clients = [threading.Thread(target=stream_generation, args=(s, 1020, r), daemon=True)
                      for r in stream_results]  # 1020: as many as a slot's context takes
    clients = [threading.Thread(target=frame_socket, args=(s, r), daemon=True) for r in frame_results]
    clients += [] if streams_late else stream_clients
    for c in clients:
        c.start()
    time.sleep(seconds)
    if streams_late:
        for c in stream_clients:
            c.start()
        clients += stream_clients
        time.sleep(0.3)
    exited, signal_at, turned = sigterm(s)
    if second_signal_after_s is not None:
        exited.join(timeout=second_signal_after_s - (time.monotonic() - signal_at))
        if exited.code is None:
            s.process.send_signal(signal.SIGTERM)
    exited.join(timeout=120)
    s.stopped = True
    load.stop()
    for c in clients:
        c.join(timeout=60)
    verdict = judge_unary(load.outcomes, signal_at)
    last_ok = max((o.ended for o in load.outcomes if o.status == 200), default=signal_at)

    again = FerryServer(repo=repo, log_path=root / "ferry-again.log", extra_args=args)
    restarted = time.monotonic()
    again.start()
    states = wait_until_jobs_finish(again, ids, timeout_s=120)
    jobs_done_s = time.monotonic() - restarted
    again.stop()
    result = {
        "readiness_503_s": turned, "exit_code": exited.code, "exit_s": exited.at - signal_at,
        "unary": {"sent": len(load.outcomes), "ok_200": verdict.ok, "refused_503_close": verdict.refused_503,
                  "listener_gone": verdict.listener_gone, "failed": len(verdict.bad), "failures": verdict.bad[:20],
                  "last_200_after_signal_s": last_ok - signal_at},
        "streams": {"n": streams, "completed": sum(r.done and r.finish_reason == "length" for r in stream_results),
                    "cut": sum(not r.done for r in stream_results), "events_mean": sum(r.events for r in stream_results)
                    / max(1, streams), "errors": sorted({r.error for r in stream_results if r.error})},
        "frames": {"n": frames, "closed_1001": sum(r.close_code == 1001 for r in frame_results),
                   "answered": sum(r.answered for r in frame_results),
                   "other_ends": sorted({f"{r.close_code} {r.error}" for r in frame_results if r.close_code != 1001})},
        "jobs": {"submitted": jobs, "after_restart": states, "lost": jobs - states.get("succeeded", 0),
                 "all_done_after_restart_s": jobs_done_s},
    }
    u, st, fr, jb = result["unary"], result["streams"], result["frames"], result["jobs"]
    rb.log(f"{name}: readiness 503 after {turned if turned is None else round(turned, 3)} s; exit {exited.code} after "
           f"{result['exit_s']:.2f} s; unary {u['sent']}: {u['ok_200']} ok, {u['refused_503_close']} 503+close, "
           f"{u['listener_gone']} listener gone, {u['failed']} failed (last 200 at +{u['last_200_after_signal_s']:.2f} s); "
           f"streams {st['completed']}/{streams} completed, {st['cut']} cut; frames {fr['closed_1001']}/{frames} got "
           f"1001; jobs lost {jb['lost']} of {jobs} (all done {jb['all_done_after_restart_s']:.1f} s after restart)")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10, help="load before each SIGTERM")
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--streams", type=int, default=8, help="generations running at the signal (the first run)")
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferry-drain-"))
    results = {"machine": rb.machine_info(), "args": vars(args), "capacity_rps": CAPACITY_RPS}
    try:
        results["drain"] = run("drain", work, args.seconds, args.jobs, args.streams, args.frames, True, None, None)
        results["short_timeout"] = run("short-timeout", work, args.seconds, args.jobs, 24, args.frames, True, 2.0,
                                       None)
        results["second_signal"] = run("second-signal", work, args.seconds, args.jobs, 24, args.frames, True, None,
                                       5.0)
    finally:
        rb.save_results("drain", results)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
