"""The fraud-alerts example (examples/fraud-alerts) in small, against the real binary: jobs pushed to a
webhook receiver that verifies signatures.

A small fraud_score model is trained on family A into a temporary repository, 100 family-B
transactions (fraud made common, 20%, so that 100 say something) are submitted as jobs with a webhook
to the example's receiver, running in this process. Then:
- every job's webhook arrived, each webhook-id once after deduplication, names its transaction (the
  Idempotency-Key) and job, and carries a signature that the independent check of
  tests/e2e/webhook_receiver.py accepts; Ferry shows each delivery "delivered";
- the receiver refuses a tampered signature, a changed body, a stale timestamp, missing headers and
  the client's two forgeries with 401, and answers a replayed webhook 200 without counting it again;
- at the threshold make_example.py picked, precision and recall beat random alerting and F1 beats
  alerting on everything;
- the server exits 0 on SIGTERM.
Time-boxed for ASan builds on two cores: a tiny model, 100 jobs at 200/s, deadlines generous.
"""
from __future__ import annotations

import base64
import importlib
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, FerryServer, _SERVERS
from webhook_receiver import signature_ok

EXAMPLE = ROOT / "examples" / "fraud-alerts"
COUNT, FRAUD_RATE, SEED = 100, 0.2, 99
WEBHOOK_DEADLINE_S = 60


def load_example():
    """The example's modules, imported from its folder without leaving it on sys.path or its module
    names (make_example, eval_family: other examples have their own) in sys.modules."""
    names = ["make_example", "eval_family", "receiver", "alert_client"]
    saved_modules = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    saved_path = list(sys.path)
    sys.path.insert(0, str(EXAMPLE))
    try:
        return {n: importlib.import_module(n) for n in names}
    finally:
        sys.path[:] = saved_path
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved_modules)


EX = load_example()


class Run:
    """What the fixture did: the server, the receiver, the raw requests it saw, the submits."""

    def __init__(self, base: Path):
        self.base = base
        self.secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.policy = EX["make_example"].train(str(base), rows=20000, trees=60)
        self.transactions = EX["eval_family"].write_transactions(str(base / "transactions.jsonl"), COUNT,
                                                                 FRAUD_RATE, SEED)
        self.out = io.StringIO()
        self.receiver = EX["receiver"].AlertReceiver(self.secret, self.policy["threshold"],
                                                     log_path=str(base / "received.jsonl"), out=self.out)
        self.raw: list[tuple[dict, bytes]] = []
        handle = self.receiver.handle

        def recording(headers, body):
            self.raw.append((dict(headers), body))
            return handle(headers, body)
        self.receiver.handle = recording
        self.server = FerryServer(repo=base / "models", log_path=base / "ferry.log",
                                  extra_args=["--webhook-allow", "127.0.0.1/32", "--webhook-backoff-ms", "100",
                                              "--job-concurrency", "2"])
        self.submits: list[dict] = []
        self.stats: dict = {}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    r = Run(tmp_path_factory.mktemp("fraud-alerts"))
    r.server.start()
    _SERVERS.append(r.server)  # a failing test reports its log
    client = EX["alert_client"]
    try:
        r.submits = client.submit_all(r.server.host, r.server.port, r.transactions, r.receiver.url, r.secret,
                                      rate=200.0, concurrency=4)
        r.stats = client.wait_for_webhooks(r.receiver.stats, COUNT, WEBHOOK_DEADLINE_S)
        yield r
    finally:
        r.server.stop()
        r.receiver.close()


def test_every_job_is_pushed_once_with_a_valid_signature(run):
    assert run.stats["refused"] == 0 and run.stats["unique"] == COUNT, run.stats
    events = list(run.receiver.events.values())
    assert sorted(e["tx"] for e in events) == sorted(t["id"] for t in run.transactions)
    job_of = {s["tx"]: s["job"] for s in run.submits}
    assert len(set(job_of.values())) == COUNT
    for e in events:
        assert e["type"] == "job.succeeded" and e["webhook_id"] == f"msg_{e['job']}", e
        assert e["job"] == job_of[e["tx"]] and 0.0 <= e["score"] <= 1.0, e
    assert len(run.raw) >= COUNT
    for headers, body in run.raw:
        assert signature_ok(run.secret, headers, body), headers
    alert_lines = [line for line in run.out.getvalue().splitlines() if line.startswith("ALERT ")]
    assert len(alert_lines) == run.stats["alerts"] == sum(e["score"] >= run.policy["threshold"] for e in events)
    logged = [json.loads(line) for line in (run.base / "received.jsonl").read_text().splitlines()]
    assert len(logged) == COUNT
    for s in run.submits[::10]:
        status, _, raw = run.server.get(f"/v1/jobs/{s['job']}")
        job = json.loads(raw)
        assert status == 200 and job["status"] == "succeeded", job
        assert job["idempotency_key"] == s["tx"] and job["webhook"]["state"] == "delivered", job
    every, _ = EX["eval_family"].latencies(run.submits, logged, run.policy["threshold"])
    assert every.min() > 0 and every.max() < WEBHOOK_DEADLINE_S, (every.min(), every.max())


def post(run, headers: dict, body: bytes) -> int:
    return EX["alert_client"].post_webhook(run.receiver.url, headers, body)


def test_receiver_refuses_forgeries_and_drops_replays(run):
    headers, body = next((h, b) for h, b in run.raw if h.get("webhook-id"))
    keep = {k: headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    before = run.receiver.stats()
    assert post(run, keep, body) == 200  # a replay: answered, not counted, not alerted again
    after = run.receiver.stats()
    assert after["duplicates"] == before["duplicates"] + 1
    assert (after["unique"], after["alerts"]) == (before["unique"], before["alerts"])

    signature = keep["webhook-signature"]
    flipped = signature[:-3] + ("A" if signature[-3] != "A" else "B") + signature[-2:]
    fresh = dict(keep, **{"webhook-id": "msg_tampered"})  # not a known id, so only the check decides
    stale = str(int(time.time()) - 3600)
    key = EX["receiver"].secret_key(run.secret)
    forgeries = [
        (dict(fresh, **{"webhook-signature": flipped}), body),                 # a tampered signature
        (dict(fresh, **{"webhook-signature": EX["receiver"].sign(key, "msg_tampered", fresh["webhook-timestamp"],
                                                                 body)}), body + b" "),  # changed body
        ({**fresh, "webhook-timestamp": stale,
          "webhook-signature": EX["receiver"].sign(key, "msg_tampered", stale, body)}, body),  # stale
        ({"webhook-id": "msg_tampered"}, body),                                # no signature at all
    ]
    for h, b in forgeries:
        assert post(run, h, b) == 401, h
    assert EX["alert_client"].forged_webhooks_refused(run.receiver.url, run.secret) == 2
    final = run.receiver.stats()
    assert final["refused"] == after["refused"] + len(forgeries) + 2
    assert final["unique"] == COUNT and "msg_tampered" not in run.receiver.events


def test_alerts_beat_trivial_baselines(run):
    s = EX["eval_family"].score(run.transactions, list(run.receiver.events.values()), run.policy["threshold"])
    precision, recall, alerts = s["model"]
    base = s["base_rate"]
    assert s["frauds"] == round(COUNT * FRAUD_RATE) and alerts > 0, s
    assert precision >= 2 * base, f"precision {precision:.2f} vs random alerting {base:.2f}: {s}"
    assert recall >= 2 * alerts / COUNT, f"recall {recall:.2f} vs random at the same rate: {s}"
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    assert f1 > 2 * base / (1 + base) + 0.1, f"F1 {f1:.2f} vs alerting on everything: {s}"


def test_server_stops_cleanly(run):
    assert run.server.stop() == 0, run.server.log_text()
