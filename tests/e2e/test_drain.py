"""Drain on SIGTERM (R17 of shared/reliability.md, in small): with a streamed generation, an idle
WebSocket and a kept-alive connection open, SIGTERM turns readiness 503 within a second while the
listener still answers, new work gets 503 with Retry-After and "Connection: close", the WebSocket gets a
close frame ("going away", 1001), the stream runs to its end, and the server exits 0.
"""
from __future__ import annotations

import http.client
import json
import signal
import struct
import threading
import time

import pytest
import websocket

from conftest import FerryServer, make_repository

TINY = "tiny_llm"


@pytest.fixture
def server(tmp_path):
    s = FerryServer(repo=make_repository(tmp_path / "models"), log_path=tmp_path / "ferry.log",
                    extra_args=["--data-dir", str(tmp_path / "data")])
    s.start()
    yield s
    if not s.stopped and s.alive():
        s.process.kill()
        s.process.wait()


def test_sigterm_drains_streams_sockets_and_new_work(server):
    ws = websocket.create_connection(f"ws://{server.host}:{server.port}/v1/ws/generate", timeout=10)
    kept = http.client.HTTPConnection(server.host, server.port, timeout=10)
    kept.request("GET", "/v2/health/live")
    assert kept.getresponse().read()

    stream_result: dict = {}

    def stream() -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        body = {"model": TINY, "prompt": "Once", "max_tokens": 200, "ignore_eos": True, "temperature": 0, "stream": True}
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        events = [line for line in r.read().decode().splitlines() if line.startswith("data: ")]
        stream_result["status"], stream_result["events"] = r.status, events

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    time.sleep(0.3)  # the stream is under way
    server.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()

    # Readiness 503 within a second, on a fresh connection: the listener still answers.
    ready = None
    while time.monotonic() - sent < 1.0:
        ready = server.get("/v2/health/ready")[0]
        if ready == 503:
            break
        time.sleep(0.02)
    assert ready == 503
    # New work: 503, Retry-After, and the connection closes (readiness turns first, the listeners a moment after).
    while True:
        status, headers, data = server.request("POST", "/v2/models/identity/infer", b"{}")
        if status == 503 or time.monotonic() - sent > 1.0:
            break
        time.sleep(0.02)
    assert status == 503 and headers.get("retry-after") == "1" and headers.get("connection") == "close", headers
    assert "stopping" in json.loads(data)["error"]
    # The WebSocket is told the server is going away.
    ws.settimeout(5)
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert struct.unpack("!H", frame.data[:2])[0] == 1001, frame.data
    assert time.monotonic() - sent < 2.0
    # The stream ran to its end.
    t.join(timeout=60)
    assert stream_result.get("status") == 200, stream_result
    assert stream_result["events"][-1] == "data: [DONE]", stream_result["events"][-3:]
    finals = [json.loads(e[6:]) for e in stream_result["events"][:-1]]
    assert finals[-1]["choices"][0]["finish_reason"] == "length"
    assert server.process.wait(timeout=30) == 0, server.log_text()
    server.stopped = True
