"""A unary request whose client goes away is cancelled: it leaves the model's queue without running.

An identity model taking 400 ms per request (one instance, no batching) gets six requests, each on its
own connection; with one running and five queued, every client closes its connection. The queued five
are dropped when the model next takes work, so a request sent afterwards runs after at most the one
that was already running: the model executes two requests, not seven.

Watching for the client does not cost keep-alive: sequential requests share one connection, and
pipelined requests (sent before the previous answer) are answered in order, over HTTP and HTTPS.
"""
from __future__ import annotations

import json
import socket
import struct
import time

import pytest

from conftest import FerryServer, identity_body, model_metric, wait_for, write_identity_model

SLOW_MS = 400


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("disconnect")
    repo = root / "models"
    write_identity_model(repo, "slow", [("FP32", [4])], max_batch_size=0,
                         extra=f"parameters: {{execute_delay_ms: {SLOW_MS}}}\nmax_queue_size: 64")
    write_identity_model(repo, "fast", [("FP32", [4])])
    s = FerryServer(repo=repo, log_path=root / "ferry.log", extra_args=["--data-dir", str(root / "data")])
    s.start()
    yield s
    assert s.stop() == 0, s.log_text()


def raw_request(path: str, body: bytes, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{connection}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_queued_requests_of_clients_that_left_never_run(server, how):
    executed = model_metric(server, "ferry_inference_exec_count_total", "slow")
    socks = []
    try:
        for i in range(6):
            sock = socket.create_connection((server.host, server.port), timeout=10)
            sock.sendall(raw_request("/v2/models/slow/infer", identity_body(float(i))))
            socks.append(sock)
        assert wait_for(lambda: model_metric(server, "ferry_inference_queue_depth", "slow") == 5, 5.0), \
            model_metric(server, "ferry_inference_queue_depth", "slow")
        for sock in socks:
            if how == "rst":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        socks = []
        status, _, body = server.request("POST", "/v2/models/slow/infer", identity_body(9.0), timeout=10)
        assert status == 200, body
        assert json.loads(body)["outputs"][0]["data"] == [9.0] * 4
        # The one running when its client left, and this one; the queued five were dropped.
        assert model_metric(server, "ferry_inference_exec_count_total", "slow") - executed == 2
        assert model_metric(server, "ferry_inference_queue_depth", "slow") == 0
    finally:
        for sock in socks:
            sock.close()
    assert server.alive()


def test_sequential_requests_keep_one_connection(server):
    conn = server.connection(timeout=10)
    try:
        first = None
        for i in range(20):
            conn.request("POST", "/v2/models/fast/infer", body=identity_body(float(i), batch=True))
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            assert resp.getheader("Connection", "").lower() != "close"
            assert json.loads(body)["outputs"][0]["data"] == [float(i)] * 4
            first = first or conn.sock
            assert conn.sock is first  # http.client would have opened a new one after a close
    finally:
        conn.close()


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_pipelined_requests_are_answered_in_order(server):
    requests = b"".join(raw_request("/v2/models/fast/infer", identity_body(float(i), batch=True)) for i in range(4))
    requests += raw_request("/v2/models/fast/infer", identity_body(4.0, batch=True), close=True)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(requests)
        received = read_until_closed(sock)
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 5, received
    for i, answer in enumerate(answers):
        assert answer.startswith(b"200 "), answer
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["outputs"][0]["data"] == [float(i)] * 4


def test_a_request_split_across_the_answer_of_the_previous_one(server):
    # The next request's first bytes arrive while the previous one runs (the watch reads them), the
    # rest after its answer.
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        second = raw_request("/v2/models/fast/infer", identity_body(2.0, batch=True), close=True)
        sock.sendall(raw_request("/v2/models/slow/infer", identity_body(1.0)) + second[:10])
        time.sleep(0.1)  # the slow request is running
        first = b""
        while b"\r\n\r\n" not in first or len(first.split(b"\r\n\r\n", 1)[1]) < 10:
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        sock.sendall(second[10:])
        received = first + read_until_closed(sock)
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [a[:4] for a in answers] == [b"200 ", b"200 "], received
    assert json.loads(answers[1].split(b"\r\n\r\n", 1)[1])["outputs"][0]["data"] == [2.0] * 4
