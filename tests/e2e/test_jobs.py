"""Asynchronous jobs over /v1/jobs, against the real binary and its SQLite store.

- submit -> 202 only after the commit, long-poll, result equal to the online answer, idempotency keys,
  listing with paging and filters, cancel routes, and every bad submit a 4xx JSON error;
- the crash test: a client submits jobs, each with its own idempotency key, retrying unanswered
  submits with the same key, while the server is killed with SIGKILL at random moments and restarted
  on the same data folder. Afterwards every job that got a 202 exists and succeeded, no key made two
  jobs, and each has exactly one result. (Shortened for CI: FERRY_CRASH_JOBS / FERRY_CRASH_KILLS
  make it longer.)
"""
from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from conftest import FerryServer, make_repository

IDENTITY_ROW = [float(i) for i in range(16)]


def job_body(model: str = "identity", row=None, **extra) -> bytes:
    row = IDENTITY_ROW if row is None else row
    body = {"model": model,
            "request": {"inputs": [{"name": "INPUT0", "shape": [1, len(row)], "datatype": "FP32", "data": row}]},
            **extra}
    return json.dumps(body).encode()


def call(server: FerryServer, method: str, path: str, body: bytes | None = None, headers=None, timeout=30.0):
    status, hdrs, data = server.request(method, path, body=body, headers=headers or {}, timeout=timeout)
    return status, hdrs, (json.loads(data) if data else None)


def wait_final(server: FerryServer, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _, job = call(server, "GET", f"/v1/jobs/{job_id}?wait=10s", timeout=15)
        assert status == 200, job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} not final after 60 s: {job}")


def test_submit_wait_and_fetch_the_result(ferry):
    status, headers, job = call(ferry, "POST", "/v1/jobs", job_body(), {"Content-Type": "application/json"})
    assert status == 202, job
    assert headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["model"] == "identity" and job["attempts"] <= 1 and job["max_attempts"] == 3
    done = wait_final(ferry, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result_url"] == f"/v1/jobs/{job['id']}/result"
    assert done["attempts"] == 1 and "finished_at" in done and "started_at" in done
    status, _, result = call(ferry, "GET", done["result_url"])
    assert status == 200, result
    (out,) = result["outputs"]
    assert out["name"] == "OUTPUT0" and out["shape"] == [1, 16]
    assert out["data"] == [2 * x + 1 for x in IDENTITY_ROW]  # the identity example computes 2x + 1


def test_job_metrics_are_exported(ferry):
    _, _, job = call(ferry, "POST", "/v1/jobs", job_body())
    wait_final(ferry, job["id"])
    deadline = time.monotonic() + 10
    while True:  # the state gauges refresh once a second
        text = ferry.get("/metrics")[2].decode()
        if 'ferry_jobs{state="succeeded"}' in text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for needle in ('ferry_jobs{state="succeeded"}', 'ferry_jobs{state="queued"}',
                   'ferry_job_attempts_total{model="identity",outcome="succeeded"}',
                   'ferry_job_start_delay_seconds_count{model="identity"}',
                   'ferry_job_run_duration_seconds_count{model="identity"}'):
        assert needle in text, needle


def test_the_same_idempotency_key_returns_the_same_job(ferry):
    headers = {"Idempotency-Key": "e2e-idem-1"}
    s1, h1, first = call(ferry, "POST", "/v1/jobs", job_body(), headers)
    s2, h2, again = call(ferry, "POST", "/v1/jobs", job_body(), headers)
    assert s1 == 202 and s2 == 202
    assert first["id"] == again["id"]
    assert "idempotent-replayed" not in h1 and h2["idempotent-replayed"] == "true"
    assert again["idempotency_key"] == "e2e-idem-1"


def test_result_before_success_is_a_conflict_and_unknown_ids_are_404(ferry):
    status, _, err = call(ferry, "GET", "/v1/jobs/0123456789abcdef0123456789abcdef")
    assert status == 404 and "error" in err
    status, _, err = call(ferry, "GET", "/v1/jobs/0123456789abcdef0123456789abcdef/result")
    assert status == 404 and "error" in err
    status, _, err = call(ferry, "DELETE", "/v1/jobs/0123456789abcdef0123456789abcdef")
    assert status == 404 and "error" in err


def test_cancel_routes_leave_a_finished_job_as_it_is(ferry):
    _, _, job = call(ferry, "POST", "/v1/jobs", job_body())
    wait_final(ferry, job["id"])
    status, _, after = call(ferry, "DELETE", f"/v1/jobs/{job['id']}")
    assert status == 200 and after["status"] == "succeeded"
    status, _, after = call(ferry, "POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 200 and after["status"] == "succeeded"
    status, _, err = call(ferry, "PUT", f"/v1/jobs/{job['id']}")
    assert status == 405 and "error" in err


def test_listing_pages_and_filters(ferry):
    ids = []
    for i in range(5):
        _, _, job = call(ferry, "POST", "/v1/jobs", job_body(),
                         {"Idempotency-Key": f"e2e-list-{i}"})
        ids.append(job["id"])
    for job_id in ids:
        wait_final(ferry, job_id)
    seen, token = [], None
    while True:
        path = "/v1/jobs?status=succeeded&model=identity&page_size=2" + (f"&page_token={token}" if token else "")
        status, _, page = call(ferry, "GET", path)
        assert status == 200, page
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        assert all(j["status"] == "succeeded" and j["model"] == "identity" for j in page["jobs"])
        token = page.get("next_page_token")
        if not token:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    for bad in ("/v1/jobs?status=sleeping", "/v1/jobs?page_size=0", "/v1/jobs?page_size=x",
                "/v1/jobs?page_token=nonsense"):
        status, _, err = call(ferry, "GET", bad)
        assert status == 400 and "error" in err, bad


@pytest.mark.parametrize("body,expected", [
    (b"{not json", 400),
    (b"[]", 400),
    (json.dumps({"request": {"inputs": []}}).encode(), 400),                       # no model
    (json.dumps({"model": "identity"}).encode(), 400),                             # no request
    (json.dumps({"model": "nope", "request": {"inputs": []}}).encode(), 404),      # unknown model
    (job_body(row=[1.0, 2.0]), 400),                                               # wrong shape
    (job_body(colour="blue"), 400),                                                # unknown key
    (job_body(max_attempts=0), 400),
    (job_body(priority="high"), 400),
    (json.dumps({"model": "identity", "request": "inputs"}).encode(), 400),       # request not an object
    (json.dumps({"model": "identity", "request": {"inputs": [{"name": "INPUT0"}]}}).encode(), 400),
    (job_body(webhook_url="http://hooks.example.com/done"), 400),                  # no webhook_secret
    (job_body(webhook_url=42), 400),
])
def test_bad_submits_get_a_4xx_json_error(ferry, body, expected):
    status, _, err = call(ferry, "POST", "/v1/jobs", body)
    assert status == expected, err
    assert isinstance(err, dict) and err.get("error")
    assert ferry.get("/v2/health/live")[0] == 200


def test_an_oversized_or_badly_keyed_submit_is_refused(ferry):
    status, _, err = call(ferry, "POST", "/v1/jobs", job_body(), {"Idempotency-Key": "k" * 300})
    assert status == 400 and "Idempotency-Key" in err["error"]
    big = b'{"model":"identity","request":{"inputs":[]},"pad":"' + b"x" * (70 * 1024 * 1024) + b'"}'
    try:
        status, _, _ = ferry.request("POST", "/v1/jobs", body=big, timeout=30)
        assert status == 413
    except (ConnectionError, http.client.HTTPException):
        pass  # the server may close the connection after its 413, before the whole body was sent
    assert ferry.get("/v2/health/live")[0] == 200


FORBIDDEN_WEBHOOKS = [
    "http://127.0.0.1:{port}/hook", "http://127.1:{port}/hook", "http://2130706433:{port}/hook",
    "http://0x7f000001:{port}/hook", "http://017700000001:{port}/hook", "http://[::1]:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook", "http://0.0.0.0:{port}/hook", "http://localhost:{port}/hook",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://192.168.0.1/", "http://[fe80::1]/",
    "file:///etc/passwd", "gopher://127.0.0.1:{port}/_", "http://user@127.0.0.1:{port}/",
]


def test_webhook_urls_to_local_addresses_are_refused_and_never_contacted(ferry):
    import socket
    canary = socket.socket()
    canary.bind(("127.0.0.1", 0))
    canary.listen()
    canary.settimeout(0.2)
    port = canary.getsockname()[1]
    try:
        for template in FORBIDDEN_WEBHOOKS:
            url = template.format(port=port)
            status, _, err = call(ferry, "POST", "/v1/jobs", job_body(webhook_url=url))
            assert status == 400, (url, err)
            assert "webhook_url is not allowed" in err["error"], (url, err)
        with pytest.raises(socket.timeout):
            canary.accept()  # nothing connected
    finally:
        canary.close()


def test_a_store_that_cannot_write_answers_503_never_202_and_recovers(tmp_path: Path):
    """The job store's files hit a size limit (RLIMIT_FSIZE, as a full disk would): submits get 503 and
    never a 202, the server stays up, and once the limit is lifted submits succeed again without a
    restart. Every job that got a 202 is still there."""
    import shutil
    import subprocess
    if shutil.which("prlimit") is None:
        pytest.fail("prlimit (util-linux) is needed for this test")
    repo = make_repository(tmp_path / "models")
    server = FerryServer(repo=repo, log_path=tmp_path / "ferry.log",
                         extra_args=["--data-dir", str(tmp_path / "data"), "--model-control-mode", "none"])
    server.start()
    try:
        pid = server.process.pid
        limit = 1 << 20
        subprocess.run(["prlimit", "--pid", str(pid), f"--fsize={limit}:unlimited"], check=True)
        accepted, refused = [], 0
        pad = "x" * 8000  # a bigger request body fills the store sooner
        for i in range(1000):
            body = json.dumps({"model": "identity", "request": {"id": pad, "inputs": [
                {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": IDENTITY_ROW}]}}).encode()
            status, headers, reply = call(server, "POST", "/v1/jobs", body, {"Idempotency-Key": f"full-{i}"})
            if status == 202:
                accepted.append(reply["id"])
            else:
                assert status == 503, (status, reply)
                assert "retry-after" in headers and reply["error"]
                refused += 1
                if refused >= 5:
                    break
        assert refused >= 5, "the store never filled up"
        assert server.get("/v2/health/live")[0] == 200
        subprocess.run(["prlimit", "--pid", str(pid), "--fsize=unlimited:unlimited"], check=True)
        status, _, job = call(server, "POST", "/v1/jobs", job_body(), {"Idempotency-Key": "after-full"})
        assert status == 202, job
        for job_id in accepted + [job["id"]]:
            assert call(server, "GET", f"/v1/jobs/{job_id}")[0] == 200, job_id
        assert wait_final(server, job["id"])["status"] == "succeeded"
    finally:
        if server.alive():
            assert server.stop() == 0, server.log_text()


# ------------------------------------------------------------------------------------------ crash test

class Submitter(threading.Thread):
    """Submits one job per key, in order; an unanswered submit is retried with the same key."""

    def __init__(self, server_ref: dict, keys: list[str]):
        super().__init__(daemon=True)
        self.server_ref, self.keys = server_ref, keys
        self.accepted: dict[str, str] = {}  # key -> job id from a 202
        self.retries = 0
        self.error: str | None = None

    def run(self):
        try:
            for key in self.keys:
                while True:
                    server = self.server_ref["server"]
                    try:
                        status, _, job = call(server, "POST", "/v1/jobs", job_body(), {"Idempotency-Key": key},
                                              timeout=10)
                    except (OSError, http.client.HTTPException, json.JSONDecodeError):
                        status, job = None, None
                    if status == 202:
                        previous = self.accepted.setdefault(key, job["id"])
                        if previous != job["id"]:
                            self.error = f"key {key} answered with two ids: {previous} and {job['id']}"
                            return
                        break
                    if status not in (None, 503):
                        self.error = f"submit {key} got {status}: {job}"
                        return
                    self.retries += 1
                    time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = repr(e)


def test_no_accepted_job_is_lost_or_duplicated_across_sigkills(tmp_path: Path):
    jobs = int(os.environ.get("FERRY_CRASH_JOBS", "200"))
    kills = int(os.environ.get("FERRY_CRASH_KILLS", "5"))
    repo = make_repository(tmp_path / "models")
    data = tmp_path / "data"
    rng = random.Random(20261128)

    def start(n: int) -> FerryServer:
        server = FerryServer(repo=repo, log_path=tmp_path / f"ferry-{n}.log",
                             extra_args=["--data-dir", str(data), "--model-control-mode", "none"])
        server.start()
        return server

    server_ref = {"server": start(0)}
    keys = [f"crash-{i}" for i in range(jobs)]
    submitter = Submitter(server_ref, keys)
    submitter.start()
    try:
        for n in range(1, kills + 1):
            time.sleep(rng.uniform(0.2, 1.5))
            victim = server_ref["server"]
            victim.process.kill()  # SIGKILL: no drain, no flush beyond what was committed
            victim.process.wait()
            victim.stopped = True
            server_ref["server"] = start(n)
        submitter.join(timeout=600)
        assert not submitter.is_alive(), "the submitter did not finish"
        assert submitter.error is None, submitter.error
        assert len(submitter.accepted) == jobs

        server = server_ref["server"]
        deadline = time.monotonic() + 120
        listed: dict[str, dict] = {}
        while time.monotonic() < deadline:
            listed, token = {}, None
            while True:
                status, _, page = call(server, "GET", "/v1/jobs?page_size=1000" + (f"&page_token={token}" if token else ""))
                assert status == 200, page
                listed.update({j["id"]: j for j in page["jobs"]})
                token = page.get("next_page_token")
                if not token:
                    break
            if all(j["status"] in ("succeeded", "failed", "cancelled") for j in listed.values()):
                break
            time.sleep(0.2)
        accepted_ids = set(submitter.accepted.values())
        assert accepted_ids <= set(listed), f"lost: {sorted(accepted_ids - set(listed))[:5]}"
        assert len(listed) == jobs, f"{len(listed)} jobs for {jobs} keys: a retried submit made a second job"
        by_key = {}
        for j in listed.values():
            assert by_key.setdefault(j["idempotency_key"], j["id"]) == j["id"]
        not_done = [j for j in listed.values() if j["status"] != "succeeded"]
        assert not not_done, f"{len(not_done)} jobs did not succeed, e.g. {not_done[:3]}"
        for job_id in sorted(accepted_ids):
            status, _, result = call(server, "GET", f"/v1/jobs/{job_id}/result")
            assert status == 200 and result["outputs"][0]["data"] == [2 * x + 1 for x in IDENTITY_ROW]
        print(f"crash test: {jobs} jobs, {kills} SIGKILLs, {submitter.retries} retried submits")
    finally:
        last = server_ref["server"]
        if last.alive():
            assert last.stop() == 0, last.log_text()
