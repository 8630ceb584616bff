"""Batches over /v1/files and /v1/batches, and `ferry batch`, against the real binary.

- a server batch over a path under --batch-input-root: every record answered once, in input order,
  byte for byte what `ferry batch` writes offline for the same input;
- bad records (malformed JSONL, CSV rows of the wrong width or type) go to the errors file with their
  line and the batch goes on; bad submits (unknown model, missing input, a path out of the input root by
  '..' or a symlink, an unwritable output, unknown keys) are 4xx JSON errors and leave nothing behind;
- the official openai client uploads chat requests, creates the batch, polls it and reads the output;
- the kill tests: a 100,000-record batch whose server (and, separately, whose `ferry batch`) is killed
  with SIGKILL at 5 random moments and restarted resumes from its last checkpoint each time and ends
  with exactly one output line per input key, equal to an uninterrupted run's.
  (FERRY_BATCH_KILL_RECORDS / FERRY_BATCH_KILLS change its size.)
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, FerryServer, ferry_binary

KILL_RECORDS = int(os.environ.get("FERRY_BATCH_KILL_RECORDS", "100000"))
KILLS = int(os.environ.get("FERRY_BATCH_KILLS", "5"))


def identity_line(i: int, key: str | None = None) -> str:
    row = [float((i * 7 + k) % 1000) for k in range(16)]
    request = {"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": row}]}
    if key is not None:
        request["id"] = key
    return json.dumps(request)


def write_identity_input(path: Path, n: int, bad_lines=()) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(("{not json" if i in bad_lines else identity_line(i, f"rec-{i}")) + "\n")


def small_repo(dest: Path, models=("identity",)) -> Path:
    dest.mkdir(parents=True)
    for m in models:
        shutil.copytree(EXAMPLES / m, dest / m)
    return dest


def call(server: FerryServer, method: str, path: str, body=None, timeout=30.0, headers=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    sent = {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}
    status, headers, raw = server.request(method, path, body=data, timeout=timeout, headers=sent)
    return status, (json.loads(raw) if raw and headers.get("content-type", "").startswith("application/json") else raw)


def wait_batch(server: FerryServer, batch_id: str, timeout=120.0, states=("completed", "failed", "cancelled")):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, batch = call(server, "GET", f"/v1/batches/{batch_id}")
        assert status == 200, batch
        if batch["status"] in states:
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not in {states} after {timeout} s: {batch}")


def run_offline(*args, check_code=None, timeout=600):
    r = subprocess.run([str(ferry_binary()), "batch", "--progress", "lines", *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    if check_code is not None:
        assert r.returncode == check_code, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch_roots")
    (base / "in").mkdir()
    (base / "out").mkdir()
    return base


@pytest.fixture(scope="module")
def server(tmp_path_factory, roots):
    base = tmp_path_factory.mktemp("batch_server")
    s = FerryServer(repo=small_repo(base / "models", ("identity", "tiny_llm")), log_path=base / "ferry.log",
                    extra_args=["--batch-input-root", str(roots / "in"), "--batch-output-root", str(roots / "out"),
                                "--data-dir", str(base / "data")])
    s.start()
    yield s
    assert s.alive(), s.log_text()
    assert s.stop() == 0, s.log_text()


def test_server_batch_answers_every_record_once_as_offline_does(server, roots, tmp_path):
    n = 3000
    write_identity_input(roots / "in" / "ident.jsonl", n)
    status, batch = call(server, "POST", "/v1/batches",
                         {"model": "identity", "input": "ident.jsonl", "output": "ident-out.jsonl",
                          "metadata": {"owner": "e2e"}})
    assert status == 200, batch
    assert batch["object"] == "batch" and batch["status"] == "validating" and batch["metadata"] == {"owner": "e2e"}
    done = wait_batch(server, batch["id"])
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": n, "completed": n, "failed": 0}
    assert done["completed_at"] >= done["in_progress_at"] >= done["created_at"]
    served = (roots / "out" / "ident-out.jsonl").read_bytes()
    lines = served.decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"rec-{i}" for i in range(n)]
    first = json.loads(lines[0])["outputs"][0]
    assert first["data"] == [2 * float((0 * 7 + k) % 1000) + 1 for k in range(16)]
    # The output is also a file of the Files API.
    status, content = call(server, "GET", f"/v1/files/{done['output_file_id']}/content")
    assert status == 200 and content == served
    # Offline, the same input gives the same bytes.
    run_offline("--model-repository", server.repo, "--model", "identity", "--input", roots / "in" / "ident.jsonl",
                "--output", tmp_path / "offline.jsonl", check_code=0)
    assert (tmp_path / "offline.jsonl").read_bytes() == served
    assert not (tmp_path / "offline.jsonl.errors.jsonl").exists()  # no failures, no errors file


def test_bad_records_go_to_the_errors_file_and_the_batch_goes_on(server, roots):
    write_identity_input(roots / "in" / "bad.jsonl", 50, bad_lines={3, 40})
    with open(roots / "in" / "bad.jsonl", "a") as f:  # a request the model refuses
        f.write(json.dumps({"id": "wrong-shape", "inputs": [
            {"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}) + "\n")
    status, batch = call(server, "POST", "/v1/batches", {"model": "identity", "input": "bad.jsonl"})
    assert status == 200, batch
    done = wait_batch(server, batch["id"])
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 51, "completed": 48, "failed": 3}
    status, errors = call(server, "GET", f"/v1/files/{done['error_file_id']}/content")
    assert status == 200
    errors = [json.loads(line) for line in errors.decode().splitlines()]
    assert [e["line"] for e in errors] == [4, 41, 51]
    assert errors[2]["id"] == "wrong-shape" and errors[2]["error"]["code"] == "INVALID_ARGUMENT"
    assert "JSON" in errors[0]["error"]["message"]


def test_csv_rows_map_to_inputs_and_bad_rows_fail_alone(server, roots):
    path = roots / "in" / "rows.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id"] + [f"f{k}" for k in range(16)])
        for i in range(20):
            w.writerow([f"row-{i}"] + [i + k for k in range(16)])
        w.writerow(["short", 1, 2])
        w.writerow(["typo"] + ["x"] * 16)
    status, batch = call(server, "POST", "/v1/batches", {"model": "identity", "input": "rows.csv"})
    assert status == 200, batch
    assert batch["format"] == "csv"
    done = wait_batch(server, batch["id"])
    assert done["request_counts"] == {"total": 22, "completed": 20, "failed": 2}, done
    out = [json.loads(line) for line in call(server, "GET", f"/v1/files/{done['output_file_id']}/content")[1].splitlines()]
    assert out[5]["id"] == "row-5" and out[5]["outputs"][0]["data"] == [2 * (5 + k) + 1 for k in range(16)]
    errors = [json.loads(line) for line in call(server, "GET", f"/v1/files/{done['error_file_id']}/content")[1].splitlines()]
    assert [(e["id"], e["line"]) for e in errors] == [("short", 22), ("typo", 23)]
    assert "fields" in errors[0]["error"]["message"] and "column 2" in errors[1]["error"]["message"]
    # The same rows answered as CSV: a header, then the id and every output value.
    status, batch = call(server, "POST", "/v1/batches", {"model": "identity", "input": "rows.csv",
                                                         "output": "rows-out.csv"})
    assert status == 200 and batch["output_format"] == "csv", batch
    done = wait_batch(server, batch["id"])
    table = list(csv.reader(io.StringIO((roots / "out" / "rows-out.csv").read_text())))
    assert table[0] == ["id"] + [f"OUTPUT0_{k}" for k in range(16)]
    assert len(table) == 21 and table[6][0] == "row-5"
    assert [float(x) for x in table[6][1:]] == [2 * (5 + k) + 1 for k in range(16)]
    # A header that fits no input is refused when submitted.
    (roots / "in" / "wrong.csv").write_text("id,a,b\n1,2,3\n")
    status, err = call(server, "POST", "/v1/batches", {"model": "identity", "input": "wrong.csv"})
    assert status == 400 and "INPUT0" in err["error"], err


def test_bad_submits_are_4xx_json_and_leave_nothing_behind(server, roots, tmp_path):
    write_identity_input(roots / "in" / "ok.jsonl", 3)
    outside = tmp_path / "secret.jsonl"
    write_identity_input(outside, 3)
    link = roots / "in" / "link.jsonl"
    if not link.exists():
        link.symlink_to(outside)
    locked = roots / "out" / "locked"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o500)
    cases = [
        ({"model": "nope", "input": "ok.jsonl"}, 404),
        ({"model": "identity", "input": "missing.jsonl"}, 404),
        ({"model": "identity", "input": "../secret.jsonl"}, 403),
        ({"model": "identity", "input": str(outside)}, 403),
        ({"model": "identity", "input": "link.jsonl"}, 403),
        ({"model": "identity", "input": "ok.jsonl", "output": "../escape.jsonl"}, 403),
        ({"model": "identity", "input": "ok.jsonl", "output": "/etc/x.jsonl"}, 403),
        ({"model": "identity", "input": "ok.jsonl", "unknown": 1}, 400),
        ({"model": "identity"}, 400),
        ({"model": "identity", "input": "ok.jsonl", "format": "parquet"}, 400),
        ({"model": "tiny_llm", "input": "ok.jsonl"}, 400),
        ({"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}, 404),
        ({"model": "identity", "input": "ok.jsonl", "endpoint": "/v1/embeddings"}, 400),
    ]
    if os.geteuid() != 0:  # root writes anywhere: the unwritable folder only refuses others
        cases.append(({"model": "identity", "input": "ok.jsonl", "output": "locked/out.jsonl"}, 403))
    try:
        for body, code in cases:
            status, err = call(server, "POST", "/v1/batches", body)
            assert status == code, (body, status, err)
            assert isinstance(err, dict) and err["error"], (body, err)
        status, err = call(server, "POST", "/v1/batches", b"{broken")
        assert status == 400 and "error" in err
    finally:
        locked.chmod(0o700)
    assert not (roots / "escape.jsonl").exists()
    assert not any(p.name.startswith("x.jsonl") for p in Path("/etc").iterdir())


def test_list_cancel_events_and_metrics(server, roots):
    write_identity_input(roots / "in" / "long.jsonl", 100_000)
    status, batch = call(server, "POST", "/v1/batches", {"model": "identity", "input": "long.jsonl"})
    assert status == 200, batch
    wait_batch(server, batch["id"], states=("in_progress", "completed"))
    status, listed = call(server, "GET", "/v1/batches?limit=2")
    assert status == 200 and listed["object"] == "list" and listed["data"][0]["id"] == batch["id"]
    assert listed["first_id"] == batch["id"] and len(listed["data"]) <= 2
    status, cancelled = call(server, "POST", f"/v1/batches/{batch['id']}/cancel")
    assert status == 200 and cancelled["status"] in ("cancelling", "completed"), cancelled
    done = wait_batch(server, batch["id"])
    if done["status"] == "cancelled":  # what was written before the cancel stays readable
        assert done["cancelled_at"] is not None
        status, out = call(server, "GET", f"/v1/files/{done['output_file_id']}/content")
        assert status == 200 and len(out.splitlines()) == done["request_counts"]["completed"]
    # The event stream of a final batch: its state, then the end.
    status, _, body = server.request("GET", f"/v1/batches/{batch['id']}/events", timeout=10)
    assert status == 200
    events = [line for line in body.decode().splitlines() if line.startswith("data: ")]
    assert json.loads(events[-1][6:])["status"] == done["status"]
    text = server.get("/metrics")[2].decode()
    assert 'ferry_batch_records_total{outcome="completed"}' in text and "ferry_batch_runs_total" in text
    assert call(server, "GET", "/v1/batches/batch_nope")[0] == 404


def test_openai_client_runs_a_chat_batch_unchanged(server, tmp_path):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    lines = [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "tiny_llm", "max_tokens": 8, "temperature": 0,
                       "messages": [{"role": "user", "content": f"Hello {i}"}]}} for i in range(6)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    uploaded = client.files.create(file=open(path, "rb"), purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.bytes == path.stat().st_size
    assert client.files.retrieve(uploaded.id).filename == "chat.jsonl"
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"run": "e2e"})
    assert batch.status == "validating"
    deadline = time.monotonic() + 120
    while batch.status not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.2)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch
    assert batch.request_counts.total == 6 and batch.request_counts.completed == 6
    assert batch.id in [b.id for b in client.batches.list(limit=10).data]
    out = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in out] == [f"req-{i}" for i in range(6)]
    for o in out:
        assert o["error"] is None and o["response"]["status_code"] == 200
        assert o["response"]["body"]["object"] == "chat.completion"
        assert o["response"]["body"]["choices"][0]["message"]["role"] == "assistant"
    assert client.files.delete(uploaded.id).deleted


def test_an_openai_batch_line_for_an_unknown_model_fails_alone(server, tmp_path):
    lines = [{"custom_id": "good", "method": "POST", "url": "/v1/completions",
              "body": {"model": "tiny_llm", "prompt": "The", "max_tokens": 4}},
             {"custom_id": "bad", "method": "POST", "url": "/v1/completions",
              "body": {"model": "no_such_model", "prompt": "The", "max_tokens": 4}}]
    boundary = "ferryboundary"
    payload = "".join(json.dumps(x) + "\n" for x in lines).encode()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.jsonl\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    status, _, raw = server.request("POST", "/v1/files", body=body,
                                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, raw
    file_id = json.loads(raw)["id"]
    status, batch = call(server, "POST", "/v1/batches", {"input_file_id": file_id, "endpoint": "/v1/completions",
                                                        "completion_window": "24h"})
    assert status == 200, batch
    done = wait_batch(server, batch["id"])
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}, done
    (err,) = [json.loads(x) for x in call(server, "GET", f"/v1/files/{done['error_file_id']}/content")[1].splitlines()]
    assert err["custom_id"] == "bad" and err["response"]["status_code"] == 404 and err["error"]["code"]
    # A malformed upload is a 400.
    status, _, raw = server.request("POST", "/v1/files", body=b"--x\r\nno headers",
                                    headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 400 and json.loads(raw)["error"]


def test_offline_exit_codes_and_errors_file(tmp_path):
    repo = small_repo(tmp_path / "models")
    write_identity_input(tmp_path / "in.jsonl", 10, bad_lines={2})
    r = run_offline("--model-repository", repo, "--model", "identity", "--input", tmp_path / "in.jsonl",
                    "--output", tmp_path / "out.jsonl", check_code=1)
    assert "1 failed" in r.stderr
    (err,) = [json.loads(x) for x in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert err["line"] == 3 and err["id"] == "line-3"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 9
    for args in (["--model", "nope", "--input", tmp_path / "in.jsonl"],
                 ["--model", "identity", "--input", tmp_path / "missing.jsonl"],
                 ["--model", "identity", "--input", tmp_path / "in.jsonl", "--format", "parquet"]):
        r = run_offline("--model-repository", repo, *args, "--output", tmp_path / "never.jsonl", check_code=2)
        assert "ferry batch:" in r.stderr
        assert not list(tmp_path.glob("never.jsonl*")), list(tmp_path.iterdir())
    r = run_offline("--model-repository", repo, "--input", tmp_path / "in.jsonl", "--output", tmp_path / "x.jsonl")
    assert r.returncode == 2  # --model is required: a usage error


def count_keys(path: Path) -> dict:
    keys: dict = {}
    with open(path) as f:
        for line in f:
            key = json.loads(line)["id"]
            keys[key] = keys.get(key, 0) + 1
    return keys


def test_server_kill_test_resumes_from_checkpoints_with_exactly_one_output_per_key(tmp_path):
    roots = tmp_path / "roots"
    (roots / "in").mkdir(parents=True)
    (roots / "out").mkdir()
    write_identity_input(roots / "in" / "kill.jsonl", KILL_RECORDS)
    reference = tmp_path / "reference.jsonl"
    repo = small_repo(tmp_path / "models")
    run_offline("--model-repository", repo, "--model", "identity", "--input", roots / "in" / "kill.jsonl",
                "--output", reference, check_code=0)
    args = ["--batch-input-root", str(roots / "in"), "--batch-output-root", str(roots / "out"),
            "--data-dir", str(tmp_path / "data"), "--batch-checkpoint-records", "1000"]
    server = FerryServer(repo=repo, log_path=tmp_path / "ferry.log", extra_args=args)
    server.start()
    status, batch = call(server, "POST", "/v1/batches", {"model": "identity", "input": "kill.jsonl",
                                                         "output": "kill-out.jsonl"})
    assert status == 200, batch
    # Five random moments of the run: each kill comes once the batch has passed a random point of its
    # input (the run is too fast on this model to aim by wall-clock time).
    rng = random.Random(12)
    points = sorted(rng.uniform(0.05, 0.95) * KILL_RECORDS for _ in range(KILLS))
    killed_at = []
    try:
        for point in points:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                b = call(server, "GET", f"/v1/batches/{batch['id']}")[1]
                if b["records_done"] >= point or b["status"] == "completed":
                    break
                time.sleep(0.005)
            assert b["status"] != "completed", f"the batch ended before the kill at {point:.0f}: {b}"
            server.process.kill()  # SIGKILL: no drain, nothing flushed beyond the last checkpoint
            server.process.wait()
            killed_at.append(b["records_done"])
            server.stopped = False
            server.start()
        done = wait_batch(server, batch["id"], timeout=300)
    finally:
        if server.alive():
            assert server.stop() == 0, server.log_text()
    assert done["status"] == "completed", done
    assert done["request_counts"]["completed"] == KILL_RECORDS
    out = roots / "out" / "kill-out.jsonl"
    keys = count_keys(out)
    assert len(keys) == KILL_RECORDS and set(keys.values()) == {1}
    assert out.read_bytes() == reference.read_bytes()
    assert done["resumes"] == KILLS, done
    print(f"server kill test: {KILL_RECORDS} records, {KILLS} SIGKILLs after checkpoints at {killed_at}, "
          f"{done['resumes']} resumes, {done['records_redone']} records redone")


def test_offline_kill_test_resumes_with_exactly_one_output_per_key(tmp_path):
    repo = small_repo(tmp_path / "models")
    write_identity_input(tmp_path / "in.jsonl", KILL_RECORDS)
    reference = tmp_path / "reference.jsonl"
    run_offline("--model-repository", repo, "--model", "identity", "--input", tmp_path / "in.jsonl",
                "--output", reference, check_code=0)
    out = tmp_path / "out.jsonl"
    base = [str(ferry_binary()), "batch", "--model-repository", str(repo), "--model", "identity",
            "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--progress", "none",
            "--checkpoint-records", "1000"]
    # Each kill comes once the partial output has passed a random point of the final one's size.
    rng = random.Random(7)
    total_bytes = reference.stat().st_size
    points = sorted(rng.uniform(0.05, 0.95) * total_bytes for _ in range(KILLS))
    partial = Path(str(out) + ".partial")
    resumes, redone = [], []
    for attempt in range(KILLS + 1):
        proc = subprocess.Popen(base + (["--resume"] if attempt > 0 else []), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if attempt < KILLS:
            while proc.poll() is None and (not partial.exists() or partial.stat().st_size < points[attempt]):
                time.sleep(0.002)
            assert proc.poll() is None, f"the run ended before the kill at byte {points[attempt]:.0f}"
            proc.kill()
            _, err = proc.communicate()
            assert proc.returncode == -signal.SIGKILL, err
        else:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        resumes += [line for line in err.splitlines() if line.startswith("resuming from the checkpoint")]
        redone += [line for line in err.splitlines() if "records past that checkpoint" in line]
    assert len(resumes) == KILLS, resumes
    assert out.exists() and not Path(str(out) + ".ckpt").exists()
    keys = count_keys(out)
    assert len(keys) == KILL_RECORDS and set(keys.values()) == {1}
    assert out.read_bytes() == reference.read_bytes()
    print(f"offline kill test: {KILL_RECORDS} records, {KILLS} SIGKILLs; {resumes}; {redone}")


def infer_bytes(server: FerryServer, model: str, data: bytes) -> dict:
    """The online answer for one BYTES element, sent with the binary tensor extension."""
    header = json.dumps({"inputs": [{"name": "frame", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(data) + 4}}]}).encode()
    body = header + len(data).to_bytes(4, "little") + data
    status, _, raw = server.request("POST", f"/v2/models/{model}/infer", body=body,
                                    headers={"Inference-Header-Content-Length": str(len(header))})
    assert status == 200, raw
    return json.loads(raw)


def test_a_folder_of_images_is_a_batch_keyed_by_path(tmp_path):
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    repo = tmp_path / "models"
    repo.mkdir()
    shutil.copytree(EXAMPLES.parent / "rug-cutting" / "models" / "line_search", repo / "line_search")
    folder = tmp_path / "in" / "frames"
    (folder / "day2").mkdir(parents=True)
    rng = np.random.default_rng(3)
    frames = {}
    for name in ("a.raw", "b.raw", "day2/c.png"):
        image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        image[:, 150:160] = 255  # a bright stripe: something like a line
        data = image.tobytes() if name.endswith(".raw") else cv2.imencode(".png", image)[1].tobytes()
        (folder / name).write_bytes(data)
        frames[name] = data
    (folder / "day2" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    server = FerryServer(repo=repo, log_path=tmp_path / "ferry.log",
                         extra_args=["--batch-input-root", str(tmp_path / "in"), "--data-dir", str(tmp_path / "data")])
    server.start()
    try:
        status, batch = call(server, "POST", "/v1/batches", {"model": "line_search", "input": "frames"})
        assert status == 200, batch
        assert batch["format"] == "files"
        done = wait_batch(server, batch["id"])
        assert done["request_counts"] == {"total": 4, "completed": 3, "failed": 1}, done
        out = [json.loads(x) for x in call(server, "GET", f"/v1/files/{done['output_file_id']}/content")[1].splitlines()]
        assert [o["id"] for o in out] == ["a.raw", "b.raw", "day2/c.png"]  # path order
        for o in out:
            online = infer_bytes(server, "line_search", frames[o["id"]])
            assert o["outputs"] == online["outputs"], o["id"]
        (err,) = [json.loads(x) for x in call(server, "GET", f"/v1/files/{done['error_file_id']}/content")[1].splitlines()]
        assert err["id"] == "day2/broken.jpg" and err["error"]["code"] == "INVALID_ARGUMENT"
        # A folder for a model without a BYTES input is refused at submit.
        status, e = call(server, "POST", "/v1/batches", {"model": "line_search", "input": "frames", "format": "oip"})
        assert status == 400 and "folder" in e["error"]
    finally:
        assert server.stop() == 0, server.log_text()
