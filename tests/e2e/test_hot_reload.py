"""Hot reload under steady traffic (reliability R14 a, b), on a server of this module's own in poll mode
(--repository-poll-secs 0.2) with --admin-key, so that POST /v2/repository/index is available.

The tests run in file order: (a) drops version 2 in, (b) then drops a corrupt version 3 in.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter

import numpy as np
import requests

from conftest import ADMIN_KEY, load_reference

REF = load_reference("identity")
REQUEST = json.dumps({"inputs": [{"name": "INPUT0", "shape": REF["input"]["shape"], "datatype": "FP32",
                                  "data": REF["input"]["data"]}]})
EXPECTED = np.array(REF["output"]["data"], dtype=np.float32)
SWITCH_TIMEOUT_S = 15.0


class SteadyTraffic:
    """Client threads sending identity inferences back to back; every answer is checked."""

    def __init__(self, base_url: str, threads: int = 2):
        self.url = f"{base_url}/v2/models/identity/infer"
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.versions: list[str] = []  # model_version of every good answer, in completion order
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=10)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"

    def _run(self):
        session = requests.Session()
        while not self.stop_event.is_set():
            try:
                r = session.post(self.url, data=REQUEST, headers={"Content-Type": "application/json"}, timeout=5)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code} {r.text[:300]}")
                body = r.json()
                out = np.array(body["outputs"][0]["data"], dtype=np.float32)
                if not np.allclose(out, EXPECTED, atol=REF["tolerance"]):
                    raise RuntimeError(f"wrong output {out[:4]}")
                with self.lock:
                    self.versions.append(body["model_version"])
            except Exception as e:  # noqa: BLE001 - every failure is recorded and asserted on
                with self.lock:
                    self.failures.append(f"{time.monotonic():.3f} {e!r}")

    def count(self) -> int:
        with self.lock:
            return len(self.versions) + len(self.failures)

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.versions)):
                    return
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"timed out waiting for {what}; versions seen {Counter(self.versions)}, "
                                 f"failures {self.failures[:5]}")

    def run_for(self, requests_more: int, timeout: float = 10.0):
        """Lets at least `requests_more` further requests complete."""
        target = self.count() + requests_more
        deadline = time.monotonic() + timeout
        while self.count() < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.count() >= target, "traffic stalled"


def drop_version(model_dir, version: int, fill) -> None:
    """Builds the version folder under a name the repository ignores, then renames it into place."""
    staging = model_dir / f"staging-{version}"
    if staging.exists():
        shutil.rmtree(staging)
    fill(staging)
    os.rename(staging, model_dir / str(version))


def repository_index(server) -> list[dict]:
    r = requests.post(f"{server.base_url}/v2/repository/index", data="{}",
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def index_entry(server, model: str, version: str) -> dict | None:
    for entry in repository_index(server):
        if entry.get("name") == model and entry.get("version") == version:
            return entry
    return None


def test_a_new_version_is_picked_up_without_failed_requests(ferry_admin):
    model_dir = ferry_admin.repo / "identity"
    with SteadyTraffic(ferry_admin.base_url) as traffic:
        traffic.run_for(50)
        traffic.wait_for(lambda v: v and v[-1] == "1", 5, "version 1 serving")
        drop_version(model_dir, 2, lambda d: shutil.copytree(model_dir / "1", d))
        traffic.wait_for(lambda v: v[-20:].count("2") == 20, SWITCH_TIMEOUT_S, "version 2 serving")
        traffic.run_for(50)
        traffic.stop()
        assert traffic.failures == [], f"{len(traffic.failures)} failed requests: {traffic.failures[:10]}"
        versions = traffic.versions
        assert "1" in versions and versions[-1] == "2"
        # Once version 2 answered, version 1 may finish only what was already in flight.
        first_two = versions.index("2")
        assert versions[first_two:].count("1") <= 2, Counter(versions[first_two:])
    meta = requests.get(f"{ferry_admin.base_url}/v2/models/identity", timeout=5).json()
    assert meta["versions"] == ["2"], meta
    entry = index_entry(ferry_admin, "identity", "2")
    assert entry is not None and entry["state"] == "READY", repository_index(ferry_admin)


def test_b_a_corrupt_version_keeps_the_old_one_serving(ferry_admin):
    model_dir = ferry_admin.repo / "identity"
    assert (model_dir / "2").is_dir(), "runs after test_a"

    def corrupt(d):
        d.mkdir()
        (d / "model.onnx").write_bytes(b"\x08\x07garbage, not an ONNX protobuf\xff\xfe" * 64)

    with SteadyTraffic(ferry_admin.base_url) as traffic:
        traffic.run_for(50)
        drop_version(model_dir, 3, corrupt)
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        entry = None
        while time.monotonic() < deadline:
            entry = index_entry(ferry_admin, "identity", "3")
            if entry is not None and entry["state"] == "UNAVAILABLE" and entry.get("reason"):
                break
            time.sleep(0.05)
        assert entry is not None and entry["state"] == "UNAVAILABLE", repository_index(ferry_admin)
        assert isinstance(entry.get("reason"), str) and entry["reason"], entry
        assert str(ferry_admin.repo) not in entry["reason"] and "/tmp" not in entry["reason"], entry
        traffic.run_for(50)
        traffic.stop()
        assert traffic.failures == [], f"{len(traffic.failures)} failed requests: {traffic.failures[:10]}"
        assert set(traffic.versions) == {"2"}, Counter(traffic.versions)
    served = index_entry(ferry_admin, "identity", "2")
    assert served is not None and served["state"] == "READY", repository_index(ferry_admin)
    r = requests.get(f"{ferry_admin.base_url}/v2/models/identity/versions/2/ready", timeout=5)
    assert r.status_code == 200
    r = requests.get(f"{ferry_admin.base_url}/v2/models/identity/versions/3/ready", timeout=5)
    assert 400 <= r.status_code < 600 and r.status_code != 200
    # The index is readable by any client allowed to infer; unloading needs the admin key.
    r = requests.post(f"{ferry_admin.base_url}/v2/repository/index", data="{}", timeout=5)
    assert r.status_code == 200, r.text
    r = requests.post(f"{ferry_admin.base_url}/v2/repository/models/identity/unload", timeout=5)
    assert r.status_code == 401, r.text
    r = requests.post(f"{ferry_admin.base_url}/v2/repository/models/identity/unload",
                      headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 401, r.text

