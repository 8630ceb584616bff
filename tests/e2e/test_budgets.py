"""Cost accounting and budgets end to end, with a real SMTP relay (aiosmtpd) and a webhook receiver on
loopback:

- a key with a small hard budget under load gets each alert (50, 80, 100 %) exactly once by webhook
  (signed) and once by e-mail, then 429 with Retry-After until the day ends; a key without a budget
  is still served;
- a restart in the middle keeps the count and the alerts already sent;
- jobs and batches are charged to the key that made them, and refused (429) once its budget is spent;
- /v1/usage totals equal the sum of the answers' own compute times (x-ferry-compute-us) and their count;
- a key sees only its own usage; malformed cost files stop the server with the reason, and a malformed
  PUT of the configuration is refused with 400 while the previous settings stay in force.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from conftest import ADMIN_KEY, FerryServer, ferry_binary, free_port, write_identity_model
from webhook_receiver import WebhookReceiver, make_secret, signature_ok

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
BODY = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}).encode()
LIMIT = 0.2  # USD a day; at 1 USD per compute second: 200 ms of the model's time
EXECUTE_MS = 2  # each batch of the model takes at least this long


class SmtpSink:
    """Collects every message a client hands over."""

    def __init__(self):
        self.messages: list[dict] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


def identity(repo: Path, name: str) -> None:
    write_identity_model(repo, name, [("FP32", [4])], max_batch_size=8,
                         extra=f"parameters: {{execute_delay_ms: '{EXECUTE_MS}'}}\ndynamic_batching: {{max_queue_delay_us: 500}}")


def costs_yaml(hook_url: str, secret: str, smtp_port: int) -> str:
    return (
        "currency: USD\n"
        "prices:\n  metered: {compute_second: 1.0}\n"
        "budgets:\n"
        f"  - {{name: tight, key: tight, period: day, limit: {LIMIT}, alerts: [50, 80, 100], cap: hard}}\n"
        "alerts:\n"
        f"  webhook: {{url: '{hook_url}', secret: '{secret}'}}\n"
        f"  email: {{smtp_url: 'smtp://127.0.0.1:{smtp_port}', from: ferry@example.com, to: [ops@example.com]}}\n")


def make_key(server: FerryServer, name: str) -> dict:
    status, _, body = server.request("POST", "/v1/keys", json.dumps({"name": name}).encode(),
                                     {**ADMIN, "Content-Type": "application/json"})
    assert status == 200, body
    return {"Authorization": f"Bearer {json.loads(body)['secret']}"}


def usage(server: FerryServer, headers: dict, query: str = "") -> dict:
    status, _, body = server.request("GET", "/v1/usage" + query, headers=headers)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module")
def relay():
    sink = SmtpSink()
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture(scope="module")
def receiver():
    with WebhookReceiver("127.0.0.1") as r:
        yield r


@pytest.fixture
def started():
    """The servers a test starts; any still running at its end (a failed assertion) are stopped."""
    servers: list[FerryServer] = []
    yield servers
    for s in servers:
        if s.alive() and not s.stopped:
            s.stop()


def start(started: list, root: Path, extra=()) -> FerryServer:
    (root / "in").mkdir(exist_ok=True)
    s = FerryServer(repo=root / "models", log_path=root / "ferry.log",
                    extra_args=["--admin-key", ADMIN_KEY, "--require-api-keys", "--data-dir", str(root / "data"),
                                "--batch-input-root", str(root / "in"),
                                "--webhook-allow", "127.0.0.1/32", "--costs", str(root / "costs.yaml"), *extra])
    s.start_timeout_s = 30
    s.wait_for_every_model = False
    started.append(s)
    s.start()
    return s


def test_a_small_budget_alerts_once_per_threshold_survives_a_restart_then_refuses(tmp_path, relay, receiver,
                                                                                 started):
    identity(tmp_path / "models", "metered")
    secret = make_secret()
    hook = receiver.script("/budget", ["200"])
    (tmp_path / "costs.yaml").write_text(costs_yaml(hook, secret, relay.port))
    server = start(started, tmp_path)
    keys = {"tight": make_key(server, "tight"), "free": make_key(server, "free")}
    tight = keys["tight"]
    charged = {"us": 0, "n": 0}  # what the answers to "tight" say they cost
    lock = threading.Lock()

    def infer(key: str):
        status, h, body = server.request("POST", "/v2/models/metered/infer", BODY, keys[key], timeout=10)
        if status == 200 and key == "tight":
            with lock:
                charged["us"] += int(h["x-ferry-compute-us"])
                charged["n"] += 1
        return status, h, body

    # Until the first alert, one at a time.
    for _ in range(2000):
        status, _, body = infer("tight")
        assert status == 200, body
        if 50 in usage(server, ADMIN)["budgets"][0]["alerts_sent"]:
            break
    else:
        pytest.fail("the 50 % alert never came")
    before = usage(server, ADMIN, "?group_by=key")
    row = next(r for r in before["rows"] if r["key"] == "tight")
    assert (row["compute_us"], row["requests"]) == (charged["us"], charged["n"])
    assert server.stop() == 0

    # A restart keeps the count and what was sent.
    server = start(started, tmp_path)
    after = usage(server, ADMIN, "?group_by=key")
    assert next(r for r in after["rows"] if r["key"] == "tight")["compute_us"] == charged["us"]
    assert after["budgets"][0]["alerts_sent"] == [50]

    # Then under load until the cap holds.
    refused = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(40):
            for status, h, body in pool.map(lambda _: infer("tight"), range(32)):
                assert status in (200, 429), body
                if status == 429:
                    refused.append((h, json.loads(body)))
            if len(refused) >= 32:
                break
    assert refused, "the hard cap never refused"
    for h, body in refused:
        assert 1 <= int(h["retry-after"]) <= 86400, h
        assert "budget 'tight'" in body["error"], body
    status, h, _ = infer("tight")
    assert status == 429 and int(h["retry-after"]) >= 1
    assert infer("free")[0] == 200  # no budget of its own: still served
    # Jobs run as, and are charged to, whoever submitted them: a spent key cannot go around its cap.
    job = json.dumps({"model": "metered", "request": json.loads(BODY)}).encode()
    status, h, body = server.request("POST", "/v1/jobs", job, keys["tight"])
    assert status == 429 and int(h["retry-after"]) >= 1, body
    status, _, body = server.request("POST", "/v1/jobs", job, keys["free"])
    assert status == 202, body
    status, _, body = server.request("GET", f"/v1/jobs/{json.loads(body)['id']}?wait=30s", headers=keys["free"],
                                     timeout=40)
    assert status == 200 and json.loads(body)["status"] == "succeeded", body
    # So do batches: refused at once for the spent key; the other key's records are charged to it.
    records = 5
    (tmp_path / "in" / "b.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", **json.loads(BODY)}) + "\n" for i in range(records)))
    batch = json.dumps({"model": "metered", "input": "b.jsonl"}).encode()
    status, h, body = server.request("POST", "/v1/batches", batch, keys["tight"])
    assert status == 429 and int(h["retry-after"]) >= 1 and "budget 'tight'" in json.loads(body)["error"], body
    status, _, body = server.request("POST", "/v1/batches", batch, keys["free"])
    assert status == 200, body
    batch_id = json.loads(body)["id"]
    deadline = time.monotonic() + 60
    while (state := json.loads(server.request("GET", f"/v1/batches/{batch_id}", headers=keys["free"])[2])
           )["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state["status"] == "completed" and state["request_counts"]["completed"] == records, state

    # Each threshold once, on both channels.
    assert receiver.wait_for(lambda recs: len([r for r in recs if r.path == "/budget"]) >= 3, 20), receiver.received
    deadline = time.monotonic() + 20
    while relay.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # anything sent twice would be here by now
    hooks = receiver.requests("/budget")
    ids = sorted(r.webhook_id for r in hooks)
    day = usage(server, ADMIN)["budgets"][0]["window"]
    assert ids == sorted(f"msg_alert_tight_{day}_{p}" for p in (50, 80, 100)), hooks
    for r in hooks:
        assert signature_ok(secret, r.headers, r.body)
        event = json.loads(r.body)
        assert event["type"] == "budget.alert" and event["data"]["key"] == "tight" and event["data"]["limit"] == LIMIT
    assert relay.count() == 3, relay.messages
    subjects = sorted(m["data"].split("Subject: ")[1].split("\r\n")[0] for m in relay.messages)
    assert [s.split(": ")[1].split("%")[0] for s in subjects] == ["100", "50", "80"], subjects
    assert all(m["to"] == ["ops@example.com"] and m["from"] == "ferry@example.com" for m in relay.messages)

    # Totals are the sum of the answers' own compute times, and their number.
    final = usage(server, ADMIN, "?group_by=key,model")
    row = next(r for r in final["rows"] if r["key"] == "tight")
    assert (row["compute_us"], row["requests"]) == (charged["us"], charged["n"])
    assert final["budgets"][0]["capped"] is True
    assert abs(row["cost"] - row["compute_us"] / 1e6) < 1e-9
    assert row["cost"] >= LIMIT

    # The infer, the job and the batch's records.
    assert next(r for r in final["rows"] if r["key"] == "free")["requests"] == 2 + records

    # A key sees only its own use.
    own = usage(server, tight)
    assert {r["key"] for r in own["rows"]} == {"tight"}
    status, _, _ = server.request("GET", "/v1/usage?key=free", headers=tight)
    assert status == 403
    assert server.stop() == 0


def test_malformed_cost_settings_are_refused_and_the_previous_ones_kept(tmp_path, started):
    identity(tmp_path / "models", "metered")
    for bad, reason in [("budgets: [{name: b, period: week, limit: 1}]", "period must be day or month"),
                        ("prices: {metered: {compute_second: -2}}", "compute_second"),
                        ("alerts: {email: {smtp_url: 'smtp://x', from: a@b, to: []}}", "1 to 32 addresses"),
                        ("budgets: [", "not valid YAML"), ("", "is empty")]:
        (tmp_path / "costs.yaml").write_text(bad)
        run = __import__("subprocess").run(
            [str(ferry_binary()), "serve", "--model-repository", str(tmp_path / "models"), "--http-port", "0",
             "--data-dir", str(tmp_path / "data"), "--costs", str(tmp_path / "costs.yaml")],
            capture_output=True, text=True, timeout=60)
        assert run.returncode != 0, bad
        assert reason in run.stdout + run.stderr, (bad, run.stdout + run.stderr)

    good = "prices: {metered: {compute_second: 3}}\nbudgets: [{name: all, period: month, limit: 50}]\n"
    (tmp_path / "costs.yaml").write_text(good)
    server = start(started, tmp_path)
    status, _, body = server.request("PUT", "/v1/usage/config", b"budgets: [{name: x, period: fortnight, limit: 1}]",
                                     ADMIN)
    assert status == 400 and "period must be day or month" in json.loads(body)["error"]
    for bad in (b"{not json", b"", b"prices: {m: {compute_second: 1e99}}"):
        status, _, body = server.request("PUT", "/v1/usage/config", bad, ADMIN)
        assert status == 400 and "error" in json.loads(body), (bad, body)
    status, _, body = server.request("GET", "/v1/usage/config", headers=ADMIN)
    kept = json.loads(body)
    assert status == 200 and kept["prices"]["metered"]["compute_second"] == 3 and kept["budgets"][0]["name"] == "all"
    assert (tmp_path / "costs.yaml").read_text() == good
    key = make_key(server, "someone")
    assert server.request("PUT", "/v1/usage/config", good.encode(), key)[0] == 403  # an inference key
    replacement = json.dumps({"currency": "EUR", "budgets": [{"name": "eu", "period": "day", "limit": 2}]})
    status, _, body = server.request("PUT", "/v1/usage/config", replacement.encode(), ADMIN)
    assert status == 200, body
    assert json.loads(body)["currency"] == "EUR"
    assert json.loads((tmp_path / "costs.yaml").read_text())["currency"] == "EUR"
    assert (tmp_path / "costs.yaml").stat().st_mode & 0o077 == 0  # it may hold the webhook secret
    for query in ("?from=2026-13-01", "?group_by=colour", "?from=2026-12-05&to=2026-12-01"):
        status, _, body = server.request("GET", "/v1/usage" + query, headers=ADMIN)
        assert status == 400 and "error" in json.loads(body), (query, body)
    assert server.stop() == 0


def test_language_models_are_charged_their_tokens_and_compute(tmp_path, started):
    import shutil

    from conftest import EXAMPLES
    shutil.copytree(EXAMPLES / "tiny_llm", tmp_path / "models" / "tiny_llm")
    (tmp_path / "costs.yaml").write_text(
        "prices: {tiny_llm: {compute_second: 2, prompt_tokens_per_million: 1000, completion_tokens_per_million: 3000}}\n")
    server = FerryServer(repo=tmp_path / "models", log_path=tmp_path / "ferry.log",
                         extra_args=["--data-dir", str(tmp_path / "data"), "--costs", str(tmp_path / "costs.yaml")])
    server.start_timeout_s = 60
    started.append(server)
    server.start()
    used = {"prompt_tokens": 0, "completion_tokens": 0, "compute_us": 0}

    def add(u: dict):
        for k in used:
            used[k] += u[k]

    for path, body in [("/v1/completions", {"model": "tiny_llm", "prompt": "Once upon", "max_tokens": 8}),
                       ("/v1/chat/completions", {"model": "tiny_llm", "max_tokens": 6,
                                                 "messages": [{"role": "user", "content": "Hello"}]}),
                       ("/v2/models/tiny_llm/generate", {"text_input": "The sea", "parameters": {"max_tokens": 5}})]:
        status, _, data = server.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"},
                                         timeout=60)
        assert status == 200, data
        add(json.loads(data)["usage"])
    status, _, data = server.request(
        "POST", "/v1/completions",
        json.dumps({"model": "tiny_llm", "prompt": "A", "max_tokens": 4, "stream": True,
                    "stream_options": {"include_usage": True}}).encode(), {"Content-Type": "application/json"},
        timeout=60)
    assert status == 200
    events = [json.loads(line[6:]) for line in data.decode().splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    add(next(e["usage"] for e in events if e.get("usage")))
    assert used["compute_us"] > 0 and used["completion_tokens"] > 0
    report = usage(server, {}, "?group_by=model")
    row = next(r for r in report["rows"] if r["model"] == "tiny_llm")
    assert {k: row[k] for k in used} == used
    assert row["requests"] == 4
    expected = used["compute_us"] / 1e6 * 2 + used["prompt_tokens"] / 1e6 * 1000 + used["completion_tokens"] / 1e6 * 3000
    assert abs(row["cost"] - expected) < 1e-9
    assert server.stop() == 0
