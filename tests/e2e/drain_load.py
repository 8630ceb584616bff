"""Load for drain runs (R17 of shared/reliability.md), shared by tests/e2e/test_drain.py (in small) and
bench/run_drain_benchmark.py (in full): unary requests at a fixed rate, SSE generations, camera-frame
WebSockets and async jobs, each recording how it ended, and the checks R17 makes of those records.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import signal
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import websocket

from conftest import FerryServer, identity_body, make_repository, write_identity_model

SLOW = "drain_slow"    # identity, SLOW_MS per request, SLOW_INSTANCES instances, no batching
SLOW_MS = 20
SLOW_INSTANCES = 2
CAPACITY_RPS = SLOW_INSTANCES * 1000 / SLOW_MS
FRAMES = "drain_frames"
FRAME_W, FRAME_H = 32, 24
LLM = "tiny_llm"

FRAME_CONFIG = f"""name: {FRAMES}
backend: identity
max_batch_size: 0
inputs:
  - {{name: frame, datatype: BYTES, dims: [1]}}
outputs:
  - {{name: pixels, datatype: FP32, dims: [1, 1, 12, 16]}}
preprocess:
  input: frame
  raw: {{width: {FRAME_W}, height: {FRAME_H}, channels: 3}}
  color: grey
  resize: [16, 12]
  tensor: {{name: input, dims: [1, 1, 12, 16]}}
"""


def make_drain_repository(dest: Path) -> Path:
    """The example models (tiny_llm among them), the slow model and the frame model."""
    repo = make_repository(dest)
    write_identity_model(repo, SLOW, [("FP32", [4])], max_batch_size=0,
                         extra=f"parameters: {{execute_delay_ms: {SLOW_MS}}}\n"
                               f"instance_group: {{count: {SLOW_INSTANCES}}}\nmax_queue_size: 100000")
    (repo / FRAMES / "1").mkdir(parents=True)
    (repo / FRAMES / "config.yaml").write_text(FRAME_CONFIG)
    return repo


@dataclass
class Outcome:
    sent: float              # monotonic
    ended: float
    status: int | None       # None: no HTTP answer
    close: bool = False      # the answer said "Connection: close"
    error: str = ""          # why there was no answer


class UnaryLoad(threading.Thread):
    """POSTs to the slow model at `rps`, open loop (one fresh connection each), until stopped."""

    def __init__(self, server: FerryServer, rps: float, workers: int = 128):
        super().__init__(daemon=True)
        self.server, self.rps = server, rps
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers)

    def _one(self, i: int) -> None:
        sent = time.monotonic()
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
        try:
            conn.request("POST", f"/v2/models/{SLOW}/infer", body=identity_body(float(i)))
            r = conn.getresponse()
            r.read()
            o = Outcome(sent, time.monotonic(), r.status, (r.getheader("Connection") or "").lower() == "close")
        except OSError as e:
            o = Outcome(sent, time.monotonic(), None, error=type(e).__name__)
        except http.client.HTTPException as e:
            o = Outcome(sent, time.monotonic(), None, error=type(e).__name__)
        finally:
            conn.close()
        with self._lock:
            self.outcomes.append(o)

    def run(self) -> None:
        start, i = time.monotonic(), 0
        while not self._halt.is_set():
            due = start + i / self.rps
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            self._pool.submit(self._one, i)
            i += 1

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self._pool.shutdown(wait=True)


@dataclass
class StreamResult:
    status: int | None = None
    events: int = 0
    done: bool = False           # "data: [DONE]" arrived
    finish_reason: str = ""
    error: str = ""


def stream_generation(server: FerryServer, max_tokens: int, result: StreamResult) -> None:
    """One streamed completion of tiny_llm, read to its end (or until the connection ends)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
    body = {"model": LLM, "prompt": "Once", "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0,
            "stream": True}
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        result.status = r.status
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                result.done = True
                continue
            result.events += 1
            reason = json.loads(line[6:])["choices"][0].get("finish_reason")
            result.finish_reason = reason or result.finish_reason
    except (OSError, http.client.HTTPException, ValueError) as e:
        result.error = type(e).__name__
    finally:
        conn.close()


@dataclass
class FrameResult:
    answered: int = 0
    close_code: int | None = None
    error: str = ""


def frame_socket(server: FerryServer, result: FrameResult) -> None:
    """Sends raw frames one at a time, each after the last one's answer, until the server closes."""
    frame = bytes(range(256)) * (FRAME_W * FRAME_H * 3 // 256)
    try:
        ws = websocket.create_connection(f"ws://{server.host}:{server.port}/v1/ws/frames/{FRAMES}", timeout=30)
    except (OSError, websocket.WebSocketException) as e:
        result.error = type(e).__name__
        return
    try:
        while True:
            ws.send_binary(frame)
            opcode, data = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                result.close_code = struct.unpack("!H", data.data[:2])[0] if len(data.data) >= 2 else None
                return
            result.answered += 1
    except (OSError, websocket.WebSocketException) as e:
        result.error = type(e).__name__
    finally:
        try:
            ws.close()
        except (OSError, websocket.WebSocketException):
            pass


def submit_jobs(server: FerryServer, n: int) -> list[str]:
    ids = []
    for i in range(n):
        body = {"model": SLOW, "request": json.loads(identity_body(float(i)))}
        status, _, data = server.request("POST", "/v1/jobs", json.dumps(body).encode(), timeout=30)
        assert status == 202, data
        ids.append(json.loads(data)["id"])
    return ids


def job_states(server: FerryServer, ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job_id in ids:
        status, _, data = server.request("GET", f"/v1/jobs/{job_id}", timeout=30)
        state = json.loads(data)["status"] if status == 200 else f"http {status}"
        counts[state] = counts.get(state, 0) + 1
    return counts


def wait_until_jobs_finish(server: FerryServer, ids: list[str], timeout_s: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = job_states(server, ids)
        if set(counts) <= {"succeeded", "failed", "cancelled"} or time.monotonic() > deadline:
            return counts
        time.sleep(0.25)


def readiness_turns(server: FerryServer, since: float, timeout_s: float = 5.0) -> float | None:
    """Seconds from `since` to readiness answering 503 on a fresh connection, or None."""
    while time.monotonic() - since < timeout_s:
        try:
            if server.get("/v2/health/ready", timeout=2)[0] == 503:
                return time.monotonic() - since
        except OSError:
            return None  # no answer: gone before it said so, or the probe's connection was dropped
        time.sleep(0.01)
    return None


@dataclass
class UnaryVerdict:
    ok: int = 0                   # answered 200
    refused_503: int = 0          # answered 503 with Connection: close, sent after the signal
    listener_gone: int = 0        # no answer: the drain was over and the listener closed
    bad: list[str] = field(default_factory=list)  # anything else


def judge_unary(outcomes: list[Outcome], signal_at: float) -> UnaryVerdict:
    """R17: requests in flight at the signal finish (200); later ones get 503 and Connection: close, or
    find the listener closed once the drain is over: refused, or reset when the listener closes with them
    still in the kernel's backlog, never answered. That is told apart from a failure mid-drain by time:
    no answer-less end before the server's last answer. A 503 for a request sent just before the signal
    is a race the client cannot see (it reached the server after the drain began) and counts as
    refused."""
    v = UnaryVerdict()
    last_answer = max((o.ended for o in outcomes if o.status is not None), default=signal_at)
    for o in outcomes:
        if o.status == 200:
            v.ok += 1
        elif o.status == 503 and o.close and o.sent > signal_at - 0.05:
            v.refused_503 += 1
        elif o.status is None and o.sent > signal_at and (o.error == "ConnectionRefusedError"
                                                           or o.ended >= last_answer - 0.05):
            v.listener_gone += 1
        else:
            v.bad.append(f"sent {o.sent - signal_at:+.3f}s, ended {o.ended - signal_at:+.3f}s: status {o.status} "
                         f"close={o.close} {o.error}")
    return v


class ExitWatch(threading.Thread):
    """Records when the server's process exits, and its code."""

    def __init__(self, server: FerryServer):
        super().__init__(daemon=True)
        self.server = server
        self.code: int | None = None
        self.at: float = float("inf")

    def run(self) -> None:
        self.code = self.server.process.wait()
        self.at = time.monotonic()


def sigterm(server: FerryServer) -> tuple[ExitWatch, float, float | None]:
    """Sends SIGTERM with an exit watch running; returns the watch, when the signal went, and how long
    after it readiness answered 503 (None: it never did)."""
    exited = ExitWatch(server)
    exited.start()
    server.process.send_signal(signal.SIGTERM)
    signal_at = time.monotonic()
    return exited, signal_at, readiness_turns(server, signal_at)
