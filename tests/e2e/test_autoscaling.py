"""Instance autoscaling end to end: a model with instance_group {min: 1, max: 3} under a load one
instance cannot keep up with grows to three instances, serving every request, and shrinks back to one
once idle; each change is counted in /metrics and logged."""
from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from conftest import FerryServer, write_identity_model

BODY = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}).encode()


def metric(server: FerryServer, name: str, labels: str) -> float:
    status, _, body = server.get("/metrics")
    assert status == 200
    m = re.search(rf"^{name}\{{{labels}\}} (\S+)$", body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def scaled(tmp_path: Path):
    repo = tmp_path / "models"
    write_identity_model(repo, "scaled", [("FP32", [4])], max_batch_size=0, extra=(
        "parameters: {execute_delay_ms: '20'}\n"
        "instance_group: {min: 1, max: 3, scale_up_after_s: 0.3, scale_down_idle_s: 1, cooldown_s: 0.3}"))
    server = FerryServer(repo=repo, log_path=tmp_path / "ferry.log")
    server.start()
    yield server
    if not server.stopped:
        assert server.stop() == 0, server.log_text()


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_deep_queue_adds_instances_up_to_max_and_idleness_removes_them(scaled):
    instances = lambda: metric(scaled, "ferry_model_instances", 'model="scaled",version="1"')  # noqa: E731
    stop = threading.Event()
    statuses: list[int] = []
    lock = threading.Lock()

    def load():
        while not stop.is_set():
            status, _, _ = scaled.request("POST", "/v2/models/scaled/infer", BODY, timeout=10)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        grew = wait_for(lambda: instances() == 3, 20)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert grew, scaled.log_text()
    assert statuses and all(s == 200 for s in statuses), set(statuses)
    assert metric(scaled, "ferry_instance_scaling_total", 'direction="up",model="scaled"') == 2
    assert wait_for(lambda: instances() == 1, 20), scaled.log_text()
    assert metric(scaled, "ferry_instance_scaling_total", 'direction="down",model="scaled"') == 2
    log = scaled.log_text()
    assert log.count("scaled up") == 2 and log.count("scaled down") == 2, log
    # Still serving on the one left.
    assert scaled.request("POST", "/v2/models/scaled/infer", BODY)[0] == 200
