#!/usr/bin/env python3
"""The fraud-alerts example's client: submits each transaction to Ferry as an asynchronous job whose
result is pushed to the receiver, then waits until the receiver has every webhook.

    alert_client.py --work DIR --port FERRY_PORT --receiver-port PORT [--rate 100] [--concurrency 4]
                    [--timeout 300] [--job-concurrency N]

Reads DIR/transactions.jsonl and DIR/webhook_secret; POSTs /v1/jobs for each transaction at `rate`
per second (open loop: transaction i is due at start + i/rate) from `concurrency` threads, with
Idempotency-Key = the transaction id (so a submit retried after a 503 or a dropped connection makes no
second job, and the webhook tells which transaction it scored). The submit time is taken just before
the POST. Then it sends the receiver two forged webhooks (a wrong key; a body changed after signing),
which must be refused, and waits for one webhook per transaction. Writes DIR/submitted.jsonl and
DIR/client.json (what the report needs besides the receiver's log).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from receiver import PATH, secret_key, sign

MODEL = "fraud_score"
SUBMIT_ATTEMPTS = 8


def job_body(tx: dict, webhook_url: str, secret: str, model: str = MODEL) -> bytes:
    features = tx["features"]
    request = {"inputs": [{"name": "features", "shape": [1, len(features)], "datatype": "FP32", "data": features}]}
    return json.dumps({"model": model, "request": request, "max_attempts": 3,
                       "webhook_url": webhook_url, "webhook_secret": secret}).encode()


class Submitter:
    """One keep-alive connection per thread; a submit is retried with the same key until a 202."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        if getattr(self._local, "conn", None) is None:
            self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return self._local.conn

    def submit(self, tx_id: str, body: bytes) -> dict:
        """{"tx", "job", "submitted_at" (time.time() just before the first POST), "attempts"}."""
        submitted_at = None
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            conn = self._conn()
            try:
                if submitted_at is None:
                    submitted_at = time.time()
                conn.request("POST", "/v1/jobs", body=body,
                             headers={"Content-Type": "application/json", "Idempotency-Key": tx_id})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                time.sleep(0.05 * attempt)
                continue
            if resp.status == 202:
                return {"tx": tx_id, "job": json.loads(data)["id"], "submitted_at": submitted_at,
                        "attempts": attempt}
            if resp.status != 503:
                raise RuntimeError(f"submit of {tx_id}: HTTP {resp.status} {data[:300]!r}")
            time.sleep(0.05 * attempt)
        raise RuntimeError(f"submit of {tx_id}: no 202 after {SUBMIT_ATTEMPTS} attempts")


def submit_all(host: str, port: int, transactions: list[dict], webhook_url: str, secret: str,
               rate: float, concurrency: int, model: str = MODEL) -> list[dict]:
    """Submits every transaction, transaction i not before start + i/rate; returns the submits."""
    submitter = Submitter(host, port)
    start = time.monotonic() + 0.05

    def one(i_tx):
        i, tx = i_tx
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return submitter.submit(tx["id"], job_body(tx, webhook_url, secret, model))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, enumerate(transactions)))


def post_webhook(url: str, headers: dict, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def forged_webhooks_refused(url: str, secret: str) -> int:
    """Sends two forgeries (signed with another key; signed, then the body changed); returns how many
    the receiver refused with 401."""
    stamp = str(int(time.time()))
    body = json.dumps({"type": "job.succeeded", "timestamp": "", "data": {
        "id": "forged", "idempotency_key": "tx-forged",
        "result": {"outputs": [{"name": "probability", "datatype": "FP32", "shape": [1, 1], "data": [0.99]}]}}}).encode()
    wrong_key = os.urandom(32)
    forged = [({"webhook-id": "msg_forged1", "webhook-timestamp": stamp,
                "webhook-signature": sign(wrong_key, "msg_forged1", stamp, body)}, body),
              ({"webhook-id": "msg_forged2", "webhook-timestamp": stamp,
                "webhook-signature": sign(secret_key(secret), "msg_forged2", stamp, body)},
               body.replace(b"0.99", b"0.01"))]
    return sum(post_webhook(url, h, b) == 401 for h, b in forged)


def receiver_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
        return json.loads(resp.read())


def wait_for_webhooks(stats, count: int, timeout_s: float) -> dict:
    """Polls stats() until it shows `count` unique webhooks; returns the last stats."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = stats()
        if last["unique"] >= count:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{last['unique']} of {count} webhooks after {timeout_s:.0f} s: {last}")
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--port", type=int, required=True, help="Ferry's HTTP port")
    ap.add_argument("--receiver-port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=100.0, help="transactions per second")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--job-concurrency", default="?", help="the server's, for the report")
    args = ap.parse_args()
    with open(os.path.join(args.work, "transactions.jsonl")) as f:
        transactions = [json.loads(line) for line in f if line.strip()]
    secret = open(os.path.join(args.work, "webhook_secret")).read().strip()
    url = f"http://127.0.0.1:{args.receiver_port}{PATH}"
    began = time.monotonic()
    submits = submit_all("127.0.0.1", args.port, transactions, url, secret, args.rate, args.concurrency)
    took = time.monotonic() - began
    print(f"client: {len(submits)} jobs submitted in {took:.1f} s ({len(submits) / took:.0f}/s), "
          f"{sum(s['attempts'] > 1 for s in submits)} needed a retry")
    with open(os.path.join(args.work, "submitted.jsonl"), "w") as f:
        for s in submits:
            f.write(json.dumps(s) + "\n")
    refused = forged_webhooks_refused(url, secret)
    stats = wait_for_webhooks(lambda: receiver_stats(args.receiver_port), len(transactions), args.timeout)
    print(f"client: all {stats['unique']} webhooks in {time.monotonic() - began:.1f} s; forged refused "
          f"{refused}/2; receiver {stats}")
    meta = {"rate": args.rate, "concurrency": args.concurrency, "job_concurrency": args.job_concurrency,
            "forged_refused": f"{refused}/2", "duplicates": stats["duplicates"], "submit_seconds": took}
    with open(os.path.join(args.work, "client.json"), "w") as f:
        json.dump(meta, f, indent=2)
    if refused != 2:
        raise SystemExit("the receiver accepted a forged webhook")


if __name__ == "__main__":
    main()
