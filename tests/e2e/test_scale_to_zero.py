"""Scale to zero end to end: models unloaded while idle, woken by the next request, which waits.

A repository of models with a short `idle_unload_s`: identity models (one with a slow load, one whose
cold-start timeout is shorter than its load), the OpenVINO shapes example and the tiny language model.
- an idle model goes to sleep; readiness, metadata, config, the index and /metrics leave it asleep;
- the request that wakes it gets its answer and `x-ferry-cold-start-ms`; the cold-start histogram counts;
- 50 concurrent requests at a sleeping model all succeed, and it is loaded once;
- a load longer than the cold-start timeout answers 503 with Retry-After, and the load goes on;
- the OpenVINO model and the language model answer the same after a wake as before their sleep;
- sleep and wake cycles leave the server's file descriptors flat;
- bad values (a config, a flag) are refused with a clear reason.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ADMIN_KEY, EXAMPLES, FerryServer, ferry_binary, repository_index

IDLE_S = 0.4


def identity(repo: Path, name: str, extra: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.yaml").write_text(
        f"name: {name}\nbackend: identity\nmax_batch_size: 8\n"
        "inputs:\n  - {name: INPUT0, datatype: FP32, dims: [4]}\n"
        "outputs:\n  - {name: OUTPUT0, datatype: FP32, dims: [4]}\n" + extra)


def copy_example(repo: Path, example: str, name: str, extra: str) -> None:
    shutil.copytree(EXAMPLES / example, repo / name, ignore=shutil.ignore_patterns("reference"))
    config = (repo / name / "config.yaml").read_text().replace(f"name: {example}\n", f"name: {name}\n")
    (repo / name / "config.yaml").write_text(config + extra)


def make_repo(root: Path) -> Path:
    repo = root / "models"
    identity(repo, "sleepy", f"idle_unload_s: {IDLE_S}\nparameters: {{load_delay_ms: 300}}\n")
    identity(repo, "crowd", f"idle_unload_s: {IDLE_S}\nparameters: {{load_delay_ms: 500}}\n")
    identity(repo, "cycles", f"idle_unload_s: {IDLE_S}\n")
    identity(repo, "slow_wake", f"idle_unload_s: {IDLE_S}\ncold_start_timeout_s: 0.3\n"
             "parameters: {load_delay_ms: 2000}\n")
    identity(repo, "awake", "")
    copy_example(repo, "shapes_openvino", "shapes_sleepy", f"idle_unload_s: {IDLE_S}\n")
    copy_example(repo, "tiny_llm", "llm_sleepy", f"idle_unload_s: {IDLE_S}\n")
    return repo


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_to_zero")
    s = FerryServer(repo=make_repo(root), log_path=root / "ferry.log",
                    extra_args=["--admin-key", ADMIN_KEY, "--data-dir", str(root / "data")])
    s.start()
    yield s
    assert s.stop() == 0, s.log_text()


def infer(server, model: str, values=(1.0, 2.0, 3.0, 4.0), timeout: float = 30.0):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, len(values)], "data": list(values)}]}
    return server.request("POST", f"/v2/models/{model}/infer", json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"}, timeout=timeout)


def entry(server, model: str) -> dict:
    return next(e for e in repository_index(server) if e["name"] == model)


def wait_asleep(server, model: str, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    e = None
    while time.monotonic() < deadline:
        e = entry(server, model)
        if "asleep" in e.get("reason", ""):
            return e
        time.sleep(0.05)
    raise AssertionError(f"{model} did not fall asleep: {e}")


def cold_starts(server, model: str) -> float:
    status, _, body = server.get("/metrics")
    assert status == 200
    m = re.search(rf'ferry_model_cold_start_duration_seconds_count\{{model="{model}"\}} (\S+)', body.decode())
    return float(m.group(1)) if m else 0.0


def test_an_idle_model_sleeps_and_reads_do_not_wake_it(server):
    assert infer(server, "sleepy")[0] == 200
    e = wait_asleep(server, "sleepy")
    assert e["state"] == "READY", e  # it answers requests: Triton's tools see it as available
    for path in ("/v2/models/sleepy/ready", "/v2/models/sleepy", "/v2/models/sleepy/config", "/metrics",
                 "/v2/health/ready"):
        assert server.get(path)[0] == 200, path
    ready_only = [x["name"] for x in json.loads(server.request(
        "POST", "/v2/repository/index", b'{"ready": true}', headers={"Authorization": f"Bearer {ADMIN_KEY}"})[2])]
    assert "sleepy" in ready_only
    assert "asleep" in entry(server, "sleepy")["reason"]  # still asleep after all of that
    assert entry(server, "awake")["state"] == "READY" and "asleep" not in entry(server, "awake")["reason"]


def test_the_request_that_wakes_it_waits_and_says_so(server):
    wait_asleep(server, "sleepy")
    before = cold_starts(server, "sleepy")
    t0 = time.monotonic()
    status, headers, body = infer(server, "sleepy", (5.0, 6.0, 7.0, 8.0))
    elapsed = time.monotonic() - t0
    assert status == 200, body
    assert json.loads(body)["outputs"][0]["data"] == [5.0, 6.0, 7.0, 8.0]
    waited = int(headers["x-ferry-cold-start-ms"])
    assert 250 <= waited <= elapsed * 1000 + 50, (waited, elapsed)
    assert cold_starts(server, "sleepy") == before + 1
    # Awake now: the next request pays nothing.
    status, headers, _ = infer(server, "sleepy")
    assert status == 200 and "x-ferry-cold-start-ms" not in headers


def test_fifty_concurrent_requests_at_a_sleeping_model_all_succeed(server):
    infer(server, "crowd")
    wait_asleep(server, "crowd")
    before = cold_starts(server, "crowd")
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda i: infer(server, "crowd", (float(i), 0.0, 0.0, 1.0)), range(50)))
    assert [a[0] for a in answers] == [200] * 50, [a[2][:200] for a in answers if a[0] != 200]
    assert [json.loads(a[2])["outputs"][0]["data"][0] for a in answers] == [float(i) for i in range(50)]
    assert any("x-ferry-cold-start-ms" in a[1] for a in answers)
    assert cold_starts(server, "crowd") == before + 1  # one load for all fifty


def test_a_load_longer_than_the_cold_start_timeout_is_a_503_with_retry_after(server):
    wait_asleep(server, "slow_wake")
    status, headers, body = infer(server, "slow_wake")
    assert status == 503, body
    assert entry(server, "slow_wake")["state"] == "LOADING"  # answered before its 2 s load ended
    assert int(headers["retry-after"]) >= 1
    assert "still loading" in json.loads(body)["error"]
    # The load goes on and the model serves once it is done.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        e = entry(server, "slow_wake")
        if e["state"] == "READY" and "asleep" not in e["reason"]:
            break
        time.sleep(0.1)
    status, _, _ = infer(server, "slow_wake")
    assert status == 200


def shapes_request(x: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.ravel().tolist()}]}).encode()


def test_openvino_and_language_models_answer_the_same_after_a_wake(server):
    x = np.random.default_rng(7).random((1, 3, 32, 32), dtype=np.float32)
    status, _, before = server.request("POST", "/v2/models/shapes_sleepy/infer", shapes_request(x), timeout=30)
    assert status == 200, before
    prompt = json.dumps({"model": "llm_sleepy", "prompt": "The cat", "max_tokens": 8, "temperature": 0}).encode()
    status, _, llm_before = server.request("POST", "/v1/completions", prompt,
                                           headers={"Content-Type": "application/json"}, timeout=60)
    assert status == 200, llm_before
    wait_asleep(server, "shapes_sleepy")
    wait_asleep(server, "llm_sleepy")
    listed = [m["id"] for m in json.loads(server.get("/v1/models")[2])["data"]]
    assert "llm_sleepy" in listed  # a sleeping language model is still offered
    assert "asleep" in entry(server, "llm_sleepy")["reason"]
    status, headers, after = server.request("POST", "/v2/models/shapes_sleepy/infer", shapes_request(x), timeout=30)
    assert status == 200, after
    assert "x-ferry-cold-start-ms" in headers
    assert json.loads(after)["outputs"] == json.loads(before)["outputs"]
    status, _, llm_after = server.request("POST", "/v1/completions", prompt,
                                          headers={"Content-Type": "application/json"}, timeout=60)
    assert status == 200, llm_after
    assert json.loads(llm_after)["choices"][0]["text"] == json.loads(llm_before)["choices"][0]["text"]
    assert cold_starts(server, "llm_sleepy") >= 1


def fd_count(server) -> int:
    """The fewest open descriptors over a few reads: a connection the test just closed may still be
    open on the server's side for a moment, and is not what this test looks for."""
    counts = []
    for _ in range(5):
        counts.append(len(os.listdir(f"/proc/{server.process.pid}/fd")))
        time.sleep(0.02)
    return min(counts)


def test_sleep_and_wake_cycles_leave_file_descriptors_flat(server):
    counts = []
    for _ in range(6):
        assert infer(server, "cycles")[0] == 200
        wait_asleep(server, "cycles")
        counts.append(fd_count(server))
    assert max(counts[1:]) <= counts[0] + 2, counts


def test_bad_values_are_refused_with_a_reason(tmp_path):
    repo = tmp_path / "models"
    identity(repo, "good", "")
    identity(repo, "bad_idle", "idle_unload_s: -1\n")
    s = FerryServer(repo=repo, log_path=tmp_path / "ferry.log", extra_args=["--admin-key", ADMIN_KEY])
    s.wait_for_every_model = False
    s.start()
    try:
        e = entry(s, "bad_idle")
        assert e["state"] == "UNAVAILABLE" and "idle_unload_s must be 0 (never) or more" in e["reason"], e
        assert infer(s, "good")[0] == 200
    finally:
        assert s.stop() == 0, s.log_text()
    out = subprocess.run([str(ferry_binary()), "serve", "--model-repository", str(repo), "--idle-unload-s", "-1"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "--idle-unload-s" in out.stderr + out.stdout


def memory_gauges(server) -> dict[str, float]:
    text = server.get("/metrics")[2].decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'ferry_model_memory_bytes\{model="([^"]+)",version="1"\} (\S+)', text)}


def test_a_memory_budget_puts_the_least_recently_used_to_sleep_and_refuses_what_cannot_fit(tmp_path):
    repo = tmp_path / "models"
    for name in ("m1", "m2", "m3"):
        identity(repo, name, "parameters: {load_memory_mb: 80}\n")
    identity(repo, "huge", "parameters: {load_memory_mb: 300}\n")
    s = FerryServer(repo=repo, log_path=tmp_path / "ferry.log",
                    extra_args=["--admin-key", ADMIN_KEY, "--model-memory-budget-mb", "200"])
    s.wait_for_every_model = False
    s.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            index = {e["name"]: e for e in repository_index(s)}
            if index["huge"]["state"] == "UNAVAILABLE" and sum("asleep" in index[m]["reason"] for m in
                                                               ("m1", "m2", "m3")) == 1:
                break
            time.sleep(0.05)
        index = {e["name"]: e for e in repository_index(s)}
        assert "needs" in index["huge"]["reason"] and "budget of 200.0 MiB" in index["huge"]["reason"], index
        asleep = [m for m in ("m1", "m2", "m3") if "asleep" in index[m]["reason"]]
        assert len(asleep) == 1, index
        gauges = memory_gauges(s)
        assert sum(gauges.values()) <= 200 * 2**20, gauges
        assert all(gauges[m] >= 70 * 2**20 for m in ("m1", "m2", "m3") if m not in asleep), gauges
        # The sleeping one answers (it waits for its load), and another goes to sleep to make room.
        status, headers, _ = infer(s, asleep[0])
        assert status == 200 and "x-ferry-cold-start-ms" in headers
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(memory_gauges(s).values()) > 200 * 2**20:
            time.sleep(0.05)
        assert sum(memory_gauges(s).values()) <= 200 * 2**20, memory_gauges(s)
        assert "asleep" not in entry(s, asleep[0])["reason"]
        assert infer(s, "huge")[0] == 503
    finally:
        assert s.stop() == 0, s.log_text()
