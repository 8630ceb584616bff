"""Admission by expected wait: a model with `max_queue_wait_ms` refuses at once the online requests that
would wait longer than that (503 with Retry-After and a reason), while the ones it admits succeed, and
jobs are never shed this way. An identity model taking 100 ms per request (one instance, no batching)
with a 150 ms bound: with one request running, a second is expected to wait ~50 ms, a third ~150 ms, a
fourth ~250 ms (refused).

A model with `max_concurrent_requests: 3` (200 ms per request) answers at most three at a time: the
rest of a burst gets 503 with Retry-After and the cap as the reason, and once the burst is over the
model takes requests again; jobs the cap refuses wait and run later without spending their attempts.
"""
from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pytest

from conftest import FerryServer, write_identity_model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("admission")
    repo = root / "models"
    write_identity_model(repo, "slow", [("FP32", [4])], max_batch_size=0,
                         extra="parameters: {execute_delay_ms: 100}\nmax_queue_wait_ms: 150\nmax_queue_size: 64")
    write_identity_model(repo, "capped", [("FP32", [4])], max_batch_size=0,
                         extra="parameters: {execute_delay_ms: 200}\nmax_concurrent_requests: 3\n"
                               "instance_group: {count: 3}")
    s = FerryServer(repo=repo, log_path=root / "ferry.log", extra_args=["--data-dir", str(root / "data")])
    s.start()
    yield s
    assert s.stop() == 0, s.log_text()


def infer(server, value: float, model: str = "slow"):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [value] * 4}]}
    return server.request("POST", f"/v2/models/{model}/infer", json.dumps(body).encode(), timeout=30)


def test_requests_expected_to_wait_too_long_are_refused_at_once_and_the_rest_succeed(server):
    assert infer(server, 0.0)[0] == 200  # teaches the model's execution time
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: infer(server, float(i)), range(12)))
    codes = [a[0] for a in answers]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 2 and codes.count(503) >= 1, codes
    for status, headers, body in answers:
        if status == 503:
            assert int(headers["retry-after"]) >= 1
            assert "max_queue_wait_ms (150)" in json.loads(body)["error"], body
        else:
            assert json.loads(body)["outputs"][0]["data"][0] in [float(i) for i in range(12)]


def test_jobs_are_queued_not_shed(server):
    body = {"model": "slow", "request": {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4],
                                                     "data": [1.0] * 4}]}}
    codes = [server.request("POST", "/v1/jobs", json.dumps(body).encode())[0] for _ in range(8)]
    assert codes == [202] * 8, codes


def test_a_concurrency_cap_refuses_past_its_slots_and_frees_them_after(server):
    import threading
    import time
    start = threading.Barrier(10)

    def burst(i):
        start.wait()
        t0 = time.monotonic()
        answer = infer(server, float(i), "capped")
        return answer, time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(burst, range(10)))
    codes = [a[0][0] for a in answers]
    assert set(codes) <= {200, 503}, codes
    assert 3 <= codes.count(200) <= 6 and codes.count(503) >= 4, codes
    for (status, headers, body), seconds in answers:
        if status == 503:
            assert int(headers["retry-after"]) >= 1
            assert "limit of 3 concurrent requests" in json.loads(body)["error"], body
            assert seconds < 0.35, seconds  # refused at once: a wait for a slot would take 0.4 s
    for i in range(3):  # the slots are free again
        assert infer(server, float(i), "capped")[0] == 200


def test_jobs_the_cap_refuses_wait_and_run_without_spending_attempts(server):
    import re
    import time

    def deferred() -> float:
        text = server.get("/metrics")[2].decode()
        m = re.search(r'ferry_job_attempts_total\{[^}]*model="capped"[^}]*outcome="deferred"[^}]*\} (\S+)', text) or \
            re.search(r'ferry_job_attempts_total\{[^}]*outcome="deferred"[^}]*model="capped"[^}]*\} (\S+)', text)
        return float(m.group(1)) if m else 0.0

    before = deferred()
    job = {"model": "capped", "max_attempts": 1,
           "request": {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [7.0] * 4}]}}

    def hold(_):  # three clients keep every slot busy for about a second
        return [infer(server, 1.0, "capped")[0] for _ in range(5)]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        holders = [pool.submit(hold, i) for i in range(3)]
        time.sleep(0.1)
        ids = []
        for _ in range(4):
            status, _, body = server.request("POST", "/v1/jobs", json.dumps(job).encode())
            assert status == 202, body
            ids.append(json.loads(body)["id"])
        codes = [c for h in holders for c in h.result()]
    assert set(codes) <= {200, 503}, codes
    for job_id in ids:
        status, _, body = server.request("GET", f"/v1/jobs/{job_id}?wait=30s", timeout=40)
        got = json.loads(body)
        assert status == 200 and got["status"] == "succeeded", got
        assert got["attempts"] == 1, got  # refusals spent none of its one attempt
    assert deferred() > before, "no job was refused by the cap: the test did not exercise it"
