"""Hybrid serving end to end: precomputed tables in front of a model, and the response cache.

A repository of identity-backend models (the answer is the input, so a table's answer is told from the
model's by its values) with `precomputed:` and `response_cache:` blocks:
- a table published over the admin route answers keyed requests (hit, miss, no key, stale by age, by
  version, another version allowed), live answers written back, every answer saying its source;
- bad keys, bad table files (line numbers, nothing published, the old table still serving), unknown
  models and missing admin keys are 4xx JSON;
- five publishes while clients read: no failed request, no reader ever sent back to an older table;
- a table loaded with `ferry precompute load` into a server with 1 MiB of table memory: every key
  answers from the table;
- a batch with `publish` becomes the table its model reads;
- the cache: a second identical request answers from the cache with the same bytes, `no-cache`
  bypasses it, 20 identical requests to a slow model run it once, and a flood of distinct requests
  stays within the cache's budget.
"""
from __future__ import annotations

import concurrent.futures
import json
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ADMIN_KEY, FerryServer, ferry_binary

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
WIDTH = 4


def identity(repo: Path, name: str, extra: str, width: int = WIDTH) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.yaml").write_text(
        f"name: {name}\nbackend: identity\nmax_batch_size: 8\n"
        f"inputs:\n  - {{name: INPUT0, datatype: FP32, dims: [{width}]}}\n"
        f"outputs:\n  - {{name: OUTPUT0, datatype: FP32, dims: [{width}]}}\n" + extra)


def make_repo(root: Path) -> Path:
    repo = root / "models"
    identity(repo, "recs", "precomputed: {table: recs, max_age_s: 3600, write_back: true}\n")
    identity(repo, "recs_fresh", "precomputed: {table: fresh, max_age_s: 1}\n")
    identity(repo, "recs_any", "precomputed: {table: any_v7, any_version: true}\n")
    identity(repo, "recs_pinned", "precomputed: {table: pinned_v7}\n")
    identity(repo, "cached", "response_cache: true\n")
    identity(repo, "cached_slow", "response_cache: {enable: true}\nparameters: {execute_delay_ms: 300}\n"
             "instance_group: {count: 4}\n")
    identity(repo, "cached_wide", "response_cache: true\n", width=256)
    identity(repo, "batch_recs", "precomputed: {table: batch_recs}\n")
    return repo


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    (root / "in").mkdir()
    s = FerryServer(repo=make_repo(root), log_path=root / "ferry.log",
                    extra_args=["--admin-key", ADMIN_KEY, "--batch-input-root", str(root / "in"),
                                "--response-cache-mb", "1", "--data-dir", str(root / "data")])
    s.start()
    s.root = root
    yield s
    assert s.stop() == 0, s.log_text()


def line(key: str, values, version: str = "1", model: str | None = None) -> str:
    d = {"id": key, "model_version": version,
         "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [1, len(values)], "data": list(values)}]}
    if model:
        d["model_name"] = model
    return json.dumps(d)


def publish(server, table: str, model: str, body: str, query: str = "", headers=None):
    return server.request("PUT", f"/v1/tables/{table}?model={model}{query}", body.encode(),
                          headers={**AUTH, **(headers or {})}, timeout=30)


def infer(server, model: str, values, key=None, headers=None, binary=False):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, len(values)], "data": list(values)}]}
    params = {}
    if key is not None:
        params["key"] = key
    if binary:
        params["binary_data_output"] = True
    if params:
        body["parameters"] = params
    status, h, data = server.request("POST", f"/v2/models/{model}/infer", json.dumps(body).encode(),
                                     headers=headers, timeout=30)
    return status, h, data


def answer(data: bytes) -> tuple[list[float], dict]:
    d = json.loads(data)
    return d["outputs"][0]["data"], d.get("parameters", {})


def metric(server, name: str, labels: dict) -> float:
    text = server.get("/metrics")[2].decode()
    total = 0.0
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def test_a_published_table_answers_keyed_requests_and_the_model_the_rest(server):
    body = "\n".join(line(f"u{i}", [100 + i] * WIDTH) for i in range(50)) + "\n"
    status, _, data = publish(server, "recs", "recs", body)
    assert status == 200, data
    assert json.loads(data)["entries"] == 50

    status, h, data = infer(server, "recs", [0] * WIDTH, key="u7")
    values, params = answer(data)
    assert status == 200 and values == [107] * WIDTH
    assert h["x-ferry-source"] == "precomputed" and params["ferry_source"] == "precomputed"
    assert 0 <= params["ferry_age_s"] < 60

    status, h, data = infer(server, "recs", [1, 2, 3, 4], key="nobody")  # a key absent from the table
    assert status == 200 and answer(data)[0] == [1, 2, 3, 4] and h["x-ferry-source"] == "live"
    status, h, data = infer(server, "recs", [5, 6, 7, 8])  # no key: live as ever
    assert status == 200 and answer(data)[0] == [5, 6, 7, 8] and h["x-ferry-source"] == "live"
    status, h, data = infer(server, "recs", [0] * WIDTH, key=7)  # an integer key is its decimal text
    assert status == 200 and h["x-ferry-source"] == "live"
    assert metric(server, "ferry_precomputed_lookups_total", {"model": "recs", "outcome": "hit"}) >= 1
    assert metric(server, "ferry_precomputed_lookups_total", {"model": "recs", "outcome": "miss"}) >= 2

    status, _, data = server.get("/v1/tables/recs/entries/u3")
    assert status == 200 and json.loads(data)["outputs"][0]["data"] == [103] * WIDTH
    listed = json.loads(server.get("/v1/tables")[2])["data"]
    assert any(t["name"] == "recs" and t["model"] == "recs" for t in listed)


def test_a_live_answer_is_written_back_for_the_next_request_of_its_key(server):
    status, h, data = infer(server, "recs", [9, 9, 9, 9], key="newcomer")
    assert status == 200 and h["x-ferry-source"] == "live"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # misses meanwhile write the same answer back again
        status, h, data = infer(server, "recs", [9, 9, 9, 9], key="newcomer")
        if h["x-ferry-source"] == "precomputed":
            break
        time.sleep(0.05)
    assert h["x-ferry-source"] == "precomputed"
    status, h, data = infer(server, "recs", [0] * WIDTH, key="newcomer")
    assert h["x-ferry-source"] == "precomputed" and answer(data)[0] == [9, 9, 9, 9]


def test_stale_entries_go_to_the_model(server):
    # recs_fresh's table, with max_age_s: 1.
    assert publish(server, "fresh", "recs_fresh", line("u1", [101] * WIDTH) + "\n")[0] == 200
    status, h, _ = infer(server, "recs_fresh", [0] * WIDTH, key="u1")
    assert h["x-ferry-source"] == "precomputed"
    time.sleep(1.3)
    status, h, data = infer(server, "recs_fresh", [2] * WIDTH, key="u1")
    assert status == 200 and h["x-ferry-source"] == "live" and answer(data)[0] == [2] * WIDTH
    assert metric(server, "ferry_precomputed_lookups_total", {"model": "recs_fresh", "outcome": "stale_age"}) >= 1

    # A table made by version 7: only the model that allows another version answers from it.
    for table, model in (("any_v7", "recs_any"), ("pinned_v7", "recs_pinned")):
        status, _, data = publish(server, table, model, line("k", [7] * WIDTH, version="7") + "\n")
        assert status == 200, data
    status, h, data = infer(server, "recs_any", [0] * WIDTH, key="k")
    assert h["x-ferry-source"] == "precomputed" and json.loads(data)["model_version"] == "7"
    status, h, data = infer(server, "recs_pinned", [3] * WIDTH, key="k")
    assert h["x-ferry-source"] == "live" and answer(data)[0] == [3] * WIDTH
    assert metric(server, "ferry_precomputed_lookups_total",
                  {"model": "recs_pinned", "outcome": "stale_version"}) >= 1


@pytest.mark.parametrize("key,why", [(1.5, "string or an integer"), (True, "string or an integer"),
                                     ("k" * 257, "at most 256"), ("", "empty")])
def test_a_bad_key_is_a_400(server, key, why):
    status, h, data = infer(server, "recs", [0] * WIDTH, key=key)
    assert status == 400 and why in json.loads(data)["error"], data


def test_a_keyed_request_of_several_rows_is_a_400(server):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2, WIDTH], "data": [0] * (2 * WIDTH)}],
            "parameters": {"key": "u1"}}
    status, _, data = server.request("POST", "/v2/models/recs/infer", json.dumps(body).encode())
    assert status == 400 and "one row" in json.loads(data)["error"]


def test_a_bad_table_file_publishes_nothing_and_names_its_lines(server):
    bad = "\n".join([
        line("u1", [1] * WIDTH),
        "{not json",
        line("u2", [1] * 3),                      # wrong shape
        line("u3", [1] * WIDTH).replace("OUTPUT0", "OTHER"),
        json.dumps({"model_version": "1", "outputs": []}),  # no id
    ]) + "\n"
    status, _, data = publish(server, "recs", "recs", bad)
    error = json.loads(data)["error"]
    assert status == 400, data
    for n in (2, 3, 4, 5):
        assert f"line {n}:" in error, error
    assert "line 1:" not in error and "nothing published" in error
    status, h, data = infer(server, "recs", [0] * WIDTH, key="u7")  # the old table still answers
    assert h["x-ferry-source"] == "precomputed" and answer(data)[0] == [107] * WIDTH

    csv_bad = "id,OUTPUT0_0,OUTPUT0_1,OUTPUT0_2,OUTPUT0_3\nu1,1,2,3,4\nu2,1,2,x,4\n"
    status, _, data = publish(server, "recs", "recs", csv_bad, headers={"Content-Type": "text/csv"})
    assert status == 400 and "line 3:" in json.loads(data)["error"], data


def test_publishes_refuse_unknown_models_and_callers_without_the_admin_key(server):
    status, _, data = publish(server, "recs", "no_such_model", line("u1", [1] * WIDTH))
    assert status == 404 and "error" in json.loads(data)
    status, _, data = server.request("PUT", "/v1/tables/recs?model=recs", line("u1", [1] * WIDTH).encode())
    assert status in (401, 403) and "error" in json.loads(data)
    status, _, data = publish(server, "bad%20name", "recs", line("u1", [1] * WIDTH))
    assert status in (400, 404)
    status, _, data = server.get("/v1/tables/none")
    assert status == 404 and "error" in json.loads(data)
    # A table holds one model's answers: another model's may not replace them.
    status, _, data = publish(server, "recs", "cached", line("u1", [1] * WIDTH))
    assert status == 400 and "holds model 'recs'" in json.loads(data)["error"], data


def test_publishing_under_load_fails_no_request_and_never_goes_back(server):
    def generation(g: int) -> str:
        return "\n".join(line(f"g{i}", [g] * WIDTH) for i in range(100)) + "\n"

    assert publish(server, "recs", "recs", generation(1))[0] == 200
    stop = threading.Event()
    failures, backwards, mixed, answers = [], [], [], [0]

    def reader(r: int) -> None:
        last = 0
        i = 0
        while not stop.is_set():
            status, h, data = infer(server, "recs", [0] * WIDTH, key=f"g{(r * 31 + i) % 100}")
            i += 1
            if status != 200 or h.get("x-ferry-source") != "precomputed":
                failures.append((status, h.get("x-ferry-source"), data[:200]))
                continue
            values = answer(data)[0]
            if len(set(values)) != 1:
                mixed.append(values)
            if values[0] < last:
                backwards.append((last, values[0]))
            last = values[0]
            answers[0] += 1

    threads = [threading.Thread(target=reader, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    try:
        for g in range(2, 7):
            status, _, data = publish(server, "recs", "recs", generation(g))
            assert status == 200, data
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert not mixed and not backwards, (mixed[:3], backwards[:3])
    assert answers[0] > 20
    assert answer(infer(server, "recs", [0] * WIDTH, key="g5")[2])[0] == [6] * WIDTH


def test_a_batch_with_publish_becomes_its_models_table(server):
    records = "\n".join(json.dumps({"id": f"b{i}", "inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [1, WIDTH], "data": [i] * WIDTH}]}) for i in range(30))
    (server.root / "in" / "users.jsonl").write_text(records + "\n")
    status, _, data = server.request("POST", "/v1/batches", json.dumps(
        {"model": "batch_recs", "input": "users.jsonl", "publish": {"table": "batch_recs"}}).encode())
    assert status == 200, data
    batch = json.loads(data)
    assert batch["publish"] == {"table": "batch_recs"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and batch["status"] not in ("completed", "failed", "cancelled"):
        time.sleep(0.1)
        batch = json.loads(server.get(f"/v1/batches/{batch['id']}")[2])
    assert batch["status"] == "completed", batch
    info = json.loads(server.get("/v1/tables/batch_recs")[2])
    assert info["entries"] == 30 and info["source"] == batch["id"]
    status, h, data = infer(server, "batch_recs", [0] * WIDTH, key="b12")
    assert h["x-ferry-source"] == "precomputed" and answer(data)[0] == [12] * WIDTH

    status, _, data = server.request("POST", "/v1/batches", json.dumps(
        {"model": "batch_recs", "input": "users.jsonl", "publish": {"table": "x", "key": "user"}}).encode())
    assert status == 400 and "publish.key" in json.loads(data)["error"]
    # A batch fills only the table its own model reads.
    status, _, data = server.request("POST", "/v1/batches", json.dumps(
        {"model": "batch_recs", "input": "users.jsonl", "publish": {"table": "recs"}}).encode())
    assert status == 400 and "reads no table 'recs'" in json.loads(data)["error"], data


def test_a_cached_answer_is_the_live_answer_byte_for_byte(server):
    values = [0.1, -2.5, 3.25, 1e-7]
    status, h1, live = infer(server, "cached", values, binary=True)
    assert status == 200 and h1["x-ferry-source"] == "live"
    status, h2, cached = infer(server, "cached", values, binary=True)
    assert status == 200 and h2["x-ferry-source"] == "cache"
    json_size = int(h1["inference-header-content-length"])
    assert live[json_size:] == cached[int(h2["inference-header-content-length"]):]
    assert len(live) - json_size == WIDTH * 4
    assert list(struct.unpack(f"<{WIDTH}f", live[json_size:])) == pytest.approx(values, rel=1e-6)
    status, h3, _ = infer(server, "cached", values, headers={"Cache-Control": "no-cache"})
    assert status == 200 and h3["x-ferry-source"] == "live"
    status, h4, _ = infer(server, "cached", [v + 1 for v in values])
    assert h4["x-ferry-source"] == "live"
    assert metric(server, "ferry_response_cache_lookups_total", {"model": "cached", "outcome": "bypass"}) >= 1


def test_identical_requests_in_flight_run_the_model_once(server):
    before = metric(server, "ferry_inference_exec_count_total", {"model": "cached_slow"})
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: infer(server, "cached_slow", [4, 3, 2, 1]), range(20)))
    assert all(r[0] == 200 and answer(r[2])[0] == [4, 3, 2, 1] for r in results)
    sources = sorted(r[1]["x-ferry-source"] for r in results)
    assert sources.count("live") == 1, sources
    after = metric(server, "ferry_inference_exec_count_total", {"model": "cached_slow"})
    assert after - before == 1, (before, after)


def test_a_flood_of_distinct_requests_stays_within_the_cache_budget(server):
    budget = 1 << 20
    for i in range(1500):  # 1 KiB of outputs each: over the 1 MiB budget
        status, _, _ = infer(server, "cached_wide", [float(i)] * 256)
        assert status == 200
    assert 0 < metric(server, "ferry_hybrid_memory", {"store": "response_cache", "what": "bytes"}) <= budget
    assert metric(server, "ferry_hybrid_events", {"event": "cache_evictions"}) > 0
    status, h, _ = infer(server, "cached_wide", [1499.0] * 256)
    assert h["x-ferry-source"] == "cache"


def test_a_table_larger_than_its_memory_loaded_from_the_command_line_answers_every_key(tmp_path):
    repo = tmp_path / "models"
    identity(repo, "big", "precomputed: {table: big}\n", width=16)
    rows = ["id," + ",".join(f"OUTPUT0_{k}" for k in range(16))]
    rows += [f"user-{i}," + ",".join(str(i % 1000) for _ in range(16)) for i in range(20000)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    data_dir = tmp_path / "data"
    s = FerryServer(repo=repo, log_path=tmp_path / "ferry.log",
                    extra_args=["--table-memory-mb", "1", "--data-dir", str(data_dir)])
    s.start()
    try:
        loaded = subprocess.run([str(ferry_binary()), "precompute", "load", "--model-repository", str(repo),
                                 "--model", "big", "--table", "big", "--file", str(tmp_path / "big.csv"),
                                 "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        assert json.loads(loaded.stdout)["entries"] == 20000
        time.sleep(1.2)  # the server re-reads the tables each second
        for i in range(0, 20000, 97):
            status, h, data = infer(s, "big", [0] * 16, key=f"user-{i}")
            assert status == 200 and h["x-ferry-source"] == "precomputed", (i, data[:200])
            assert answer(data)[0] == [i % 1000] * 16
        assert 0 < metric(s, "ferry_hybrid_memory", {"store": "tables", "what": "bytes"}) <= 1 << 20
        refused = subprocess.run([str(ferry_binary()), "precompute", "load", "--model-repository", str(repo),
                                  "--model", "big", "--table", "big", "--file", str(tmp_path / "missing.csv"),
                                  "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "missing.csv" in refused.stderr
    finally:
        assert s.stop() == 0, s.log_text()


def test_jobs_carry_keys_too(server):
    request = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, WIDTH], "data": [0] * WIDTH}],
               "parameters": {"key": "g5"}}  # the table as the test under load left it
    status, _, data = server.request("POST", "/v1/jobs", json.dumps({"model": "recs", "request": request}).encode())
    assert status == 202, data
    job_id = json.loads(data)["id"]
    status, _, data = server.get(f"/v1/jobs/{job_id}?wait=10s", timeout=15)
    assert json.loads(data)["status"] == "succeeded", data
    result = json.loads(server.get(f"/v1/jobs/{job_id}/result")[2])
    assert result["parameters"]["ferry_source"] == "precomputed"
    request["parameters"]["key"] = 2.5  # refused when submitted, not when run
    status, _, data = server.request("POST", "/v1/jobs", json.dumps({"model": "recs", "request": request}).encode())
    assert status == 400 and "parameter 'key'" in json.loads(data)["error"], data
